"""Webhook notifications as travis-hub decides them and travis-tasks sends them.

- Which: travis-hub `lib/travis/addons/handlers/webhook.rb` (events build:started|finished|
  canceled|errored, one notifier per `notifications.webhooks` entry) and
  `lib/travis/addons/config/notify.rb` (on_start off by default; on_success, on_failure,
  on_cancel, on_error `always` by default; `change` compares with the previous build).
- What: travis-hub `addons/serializer/tasks/build.rb` builds the data, travis-tasks
  `lib/travis/addons/webhook/payload.rb` turns it into the payload.
- How: travis-tasks `lib/travis/addons/webhook/task.rb`: a form-encoded POST with one field
  `payload` (the JSON string), headers `Signature` (Base64 of an RSA PKCS#1 v1.5 SHA-1 signature
  over that string), `Travis-Repo-Slug` and `User-Agent: Travis CI Notifications`; errors are
  logged and swallowed, so a delivery is **never retried**.

`cryptography` is imported only when a key is first needed, so the rest of the fake works without
it.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local.travis.config import webhook_entries, webhook_targets
from local.travis.model import Json, TravisBuild, WebhookDelivery, iso

if TYPE_CHECKING:
    from local.clock import VirtualClock
    from local.travis.world import World

_KEY_LOCK = threading.Lock()
_SHARED_KEY: Any = None


def signing_key() -> Any:
    """One RSA key pair per process (generating one per fake would slow every test down)."""
    global _SHARED_KEY  # noqa: PLW0603 (a lazily built process-wide cache)
    with _KEY_LOCK:
        if _SHARED_KEY is None:
            from cryptography.hazmat.primitives.asymmetric import rsa

            _SHARED_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _SHARED_KEY


def public_key_pem(key: Any) -> str:
    """The PEM Travis serves at GET /config as config.notifications.webhook.public_key."""
    from cryptography.hazmat.primitives import serialization

    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return str(pem.decode())


def sign(key: Any, content: str) -> str:
    """task.rb#signature: Base64.encode64(key.sign(SHA1, payload)) without newlines."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    raw = key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 (Travis's)
    return base64.b64encode(raw).decode()


# ----- which notifications (travis-hub addons/config/notify.rb) ---------------------------------


def _initial(build: TravisBuild) -> bool:
    return not build.previous_state


def should_notify(entry: Json, event: str, build: TravisBuild, t: float) -> bool:
    """notify.rb#on?(:webhooks, event) for one webhooks entry."""
    state, previous = build.state_at(t), build.previous_state
    action = event.split(":", 1)[1]
    if action == "started":
        return entry.get("on_start", False) in (True, "always")
    if action == "finished":
        if state == "passed":
            freq = entry.get("on_success", "always")
            return freq == "always" or (
                freq == "change" and (previous != "passed" or _initial(build))
            )
        # notify.rb#build_failed?: not passed and every job finished
        freq = entry.get("on_failure", "always")
        return freq == "always" or (freq == "change" and (previous == "passed" or _initial(build)))
    key = {"canceled": "on_cancel", "errored": "on_error"}.get(action)
    if key is None or state != action:
        return False
    freq = entry.get(key, "always")
    return freq == "always" or (freq == "change" and (previous == "passed" or _initial(build)))


# ----- what (hub serializer/tasks/build.rb + tasks webhook/payload.rb) -------------------------

_SHORT = {
    "pending": "Pending", "passed": "Passed", "failed": "Failed", "broken": "Broken",
    "fixed": "Fixed", "failing": "Still Failing", "errored": "Errored", "canceled": "Canceled",
}  # fmt: skip


def result_message(state: str, previous: str | None) -> str | None:
    """travis-tasks addons/util/result_message.rb#short."""
    if state in ("created", "started", "queued"):
        key = "pending"
    elif previous == "passed" and state == "failed":
        key = "broken"
    elif previous == "failed" and state == "passed":
        key = "fixed"
    elif previous == "failed" and state == "failed":
        key = "failing"
    else:
        key = state
    return _SHORT.get(key)


def _result(state: str) -> int | None:
    return {"passed": 0, "failed": 1, "errored": 1}.get(state)  # payload.rb#result


def payload(world: World, build: TravisBuild, t: float, web_host: str) -> Json:
    """The webhook payload for `build` as of `t` (no request id: the source sends none)."""
    commit = world.commit_of(build)
    owner_name, name = build.slug.split("/", 1)
    state = build.state_at(t)
    started, finished = iso(build.started_as_of(t)), iso(build.finished_as_of(t))
    c: dict[str, Any] = {
        "commit": commit.sha if commit else build.sha,
        "branch": build.branch,
        "message": commit.message if commit else build.message,
        "compare_url": commit.compare_url if commit else None,
        "committed_at": iso(commit.committed_at) if commit else None,
        "author_name": commit.author_name if commit else None,
        "author_email": commit.author_email if commit else None,
        "committer_name": commit.author_name if commit else None,
        "committer_email": commit.author_email if commit else None,
    }
    repo = world.script_of(build.slug)
    matrix = [
        {
            "id": j.id,
            "repository_id": repo.repo_id,
            "parent_id": build.id,
            "number": j.number,
            "state": j.state_at(t),
            "config": {k: v for k, v in build.config.items() if k != "notifications"},
            "status": _result(j.state_at(t)),
            "result": _result(j.state_at(t)),
            "commit": c["commit"],
            "branch": c["branch"],
            "message": c["message"],
            "compare_url": c["compare_url"],
            # hub serializer/tasks/build.rb#job_data sends the *build's* times for every job
            "started_at": started,
            "finished_at": finished,
            "committed_at": c["committed_at"],
            "author_name": c["author_name"],
            "author_email": c["author_email"],
            "committer_name": c["committer_name"],
            "committer_email": c["committer_email"],
            "allow_failure": j.allow_failure,
        }
        for j in build.jobs
    ]
    return {
        "id": build.id,
        "number": build.number,
        "config": build.config,
        "type": build.event_type,
        "state": state,
        "status": _result(state),
        "result": _result(state),
        "status_message": result_message(state, build.previous_state),
        "result_message": result_message(state, build.previous_state),
        "started_at": started,
        "finished_at": finished,
        "duration": build.duration_as_of(t),
        "build_url": f"https://{web_host}/{build.slug}/builds/{build.id}",
        "commit_id": commit.id if commit else None,
        "commit": c["commit"],
        "base_commit": None,
        "head_commit": None,
        "branch": c["branch"],
        "message": c["message"],
        "compare_url": c["compare_url"],
        "committed_at": c["committed_at"],
        "author_name": c["author_name"],
        "author_email": c["author_email"],
        "committer_name": c["committer_name"],
        "committer_email": c["committer_email"],
        "pull_request": False,
        "pull_request_number": None,
        "pull_request_title": None,
        "tag": None,
        "repository": {
            "id": repo.repo_id,
            "name": name,
            "owner_name": owner_name,
            "url": f"https://github.com/{build.slug}",
        },
        "matrix": matrix,
    }


# ----- how (travis-tasks addons/webhook/task.rb) -------------------------------------------------


@dataclass
class _Outgoing:
    due: float  # time.monotonic() when to send
    delivery: WebhookDelivery
    drop: bool


class Deliverer:
    """Sends webhook POSTs from one thread, in order, never retrying; records every one."""

    def __init__(self, clock: VirtualClock, stop: threading.Event) -> None:
        self.clock = clock
        self._stop = stop
        self._queue: queue.Queue[_Outgoing | None] = queue.Queue()
        self._lock = threading.Condition()
        self._records: list[WebhookDelivery] = []
        self._submitted = 0
        self._thread: threading.Thread | None = None
        self.delay = 0.0  # assumed: virtual seconds between the event and the POST (sidekiq)
        self.timeout = 60.0  # travis-tasks task.rb DEFAULT_TIMEOUT, virtual seconds
        self.drop_remaining = 0  # drop the next N deliveries (-1: all)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="travis-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def submit(
        self, key: Any, event: str, build_id: int, data: Json, *, urls: list[str], slug: str
    ) -> None:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        signature = sign(key, text)
        for url in urls:
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "Signature": signature,
                "Travis-Repo-Slug": slug,
                "User-Agent": "Travis CI Notifications",
            }
            parts = urllib.parse.urlsplit(url)
            if parts.username and parts.password:  # task.rb#add_headers: basic auth from the URL
                creds = (
                    f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password)}"
                )
                headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
            record = WebhookDelivery(url, event, build_id, text, signature, headers)
            with self._lock:
                self._submitted += 1
                drop = self.drop_remaining != 0
                if self.drop_remaining > 0:
                    self.drop_remaining -= 1
            due = time.monotonic() + self.clock.real_seconds(self.delay)
            self._queue.put(_Outgoing(due, record, drop))

    @property
    def records(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self._records)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            wait = item.due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            self._send(item)

    def _send(self, item: _Outgoing) -> None:
        record = item.delivery
        record.timestamp = self.clock.now()
        if item.drop:
            record.dropped = True
        else:
            parts = urllib.parse.urlsplit(record.url)
            netloc = parts.hostname or ""
            if parts.port:
                netloc += f":{parts.port}"
            clean = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
            body = urllib.parse.urlencode({"payload": record.payload}).encode()
            req = urllib.request.Request(clean, data=body, headers=record.headers, method="POST")  # noqa: S310
            timeout = max(0.5, self.clock.real_seconds(self.timeout))
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                    record.status = int(resp.status)
            except urllib.error.HTTPError as exc:
                record.status = int(exc.code)  # task.rb#log_error: logged, not retried
            except (OSError, ValueError) as exc:
                record.error = f"{type(exc).__name__}: {exc}"  # task.rb#process: rescued, logged
        with self._lock:
            self._records.append(record)
            self._lock.notify_all()

    def idle(self, timeout: float) -> bool:
        """Wait until every submitted delivery has been sent (or dropped)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._records) >= self._submitted, timeout)


def deliver_events(
    world: World, deliverer: Deliverer, key: Any, events: list[Any], web_host: str
) -> None:
    """Turn build events into deliveries (caller holds the world's lock)."""
    for event in events:
        build = world.builds[event.build_id]
        entries = [
            e
            for e in webhook_entries(build.config)
            if should_notify(e, event.name, build, event.at)
        ]
        urls = [u for e in entries for u in webhook_targets(e)]
        if urls:
            data = payload(world, build, event.at, web_host)
            deliverer.submit(key, event.name, build.id, data, urls=urls, slug=build.slug)
