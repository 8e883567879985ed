"""TravisFake: the scriptable fake server, its public scripting, fault and recording API."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from local.clock import VirtualClock
from local.travis import api
from local.travis.app import Settings, TravisApp, split_prefix
from local.travis.errors import Reply
from local.travis.faults import KINDS, Fault, FaultBook, fault_reply
from local.travis.middleware import Attack, AttackLimits, header_token
from local.travis.model import (
    ALL,
    DEFAULT_TOKEN,
    OUTCOMES,
    RecordedCall,
    RepoScript,
    TravisBuild,
    TravisJob,
    TravisRequest,
    WebhookDelivery,
    token_fingerprint,
)
from local.travis.server import (
    Handler,
    RawCall,
    Server,
    drop,
    header_problems,
    read_call,
    write_reply,
)
from local.travis.webhooks import Deliverer, deliver_events, public_key_pem, signing_key
from local.travis.world import World


class TravisFake:
    """The fake server and its scripted world. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        repos: Mapping[str, RepoScript] | None = None,
        tokens: Mapping[str, str | Iterable[str]] | None = None,
        *,
        auto_repos: bool = False,
        clock: VirtualClock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        public_mode: bool = True,
        enterprise: bool = False,
        attack: AttackLimits | None = None,
        require_user_agent: bool = False,
        errored_event: str = "finished",
        web_host: str = "travis-ci.com",
        tick_seconds: float = 0.02,
        webhook_key: Any = None,
    ) -> None:
        """See the package docstring for every option; `tokens` maps token -> "all" or slugs."""
        if errored_event not in ("finished", "errored"):
            raise ValueError("errored_event is 'finished' or 'errored'")
        self.clock = clock if clock is not None else VirtualClock(1.0)
        self._host, self._port = host, port
        self.settings = Settings(public_mode, enterprise, require_user_agent, web_host)
        self._tick = tick_seconds
        self._key = webhook_key
        self.world = World(clock=self.clock.now, errored_event=errored_event)
        self.world.auto_repos = auto_repos
        self.attack = Attack(attack or AttackLimits())
        self.app = TravisApp(self.world, self.attack, self.settings, lambda: self.public_key_pem)
        self.faults = FaultBook()
        self._calls: list[RecordedCall] = []
        self._stop = threading.Event()
        self.deliverer = Deliverer(self.clock, self._stop)
        self._server: Server | None = None
        self._threads: list[threading.Thread] = []
        for slug, script in (repos or {}).items():
            self.add_repo(slug, script)
        for token, allowed in (tokens if tokens is not None else {DEFAULT_TOKEN: ALL}).items():
            self.add_token(token, allowed)

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> TravisFake:
        server = Server((self._host, self._port), Handler)
        server.handle_call = self._handle
        self._server = server
        self._stop.clear()
        self.deliverer.start()
        serve = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        ticker = threading.Thread(target=self._ticker, name="travis-ticker", daemon=True)
        self._threads = [serve, ticker]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes handlers sleeping on a slow fault, and the ticker
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self.deliverer.stop()

    def __enter__(self) -> TravisFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("TravisFake is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Endpoint to configure in the client, e.g. http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://{self._host}:{self.port}"

    def _ticker(self) -> None:
        # processes requests and fires webhooks between calls (travis-hub does not wait for you)
        while not self._stop.wait(self._tick):
            self.advance()

    def advance(self) -> None:
        """Let Travis catch up with the clock now (done before every call and by the ticker)."""
        with self.world.lock:
            events = self.world.advance(self.clock.now())
            if events:
                key = self.webhook_key
                deliver_events(self.world, self.deliverer, key, events, self.settings.web_host)

    # ----- scripting -------------------------------------------------------------------------

    def add_repo(self, slug: str, script: RepoScript | None = None, **overrides: Any) -> RepoScript:
        """Register (or replace) a repository; returns the live script, mutable by tests."""
        script = replace(script or RepoScript(), **overrides)
        if isinstance(script.jobs, int) and script.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        with self.world.lock:
            return self.world.add_repo(slug, script, self.clock.now())

    def script(self, slug: str) -> RepoScript:
        with self.world.lock:
            return self.world.script_of(slug)

    @property
    def auto_repos(self) -> bool:
        return self.world.auto_repos

    @auto_repos.setter
    def auto_repos(self, value: bool) -> None:
        self.world.auto_repos = value

    @property
    def auto_template(self) -> RepoScript:
        """Copied for each repository auto_repos creates."""
        return self.world.auto_template

    @auto_template.setter
    def auto_template(self, value: RepoScript) -> None:
        self.world.auto_template = value

    def add_token(
        self,
        token: str,
        repos: str | Iterable[str] = ALL,
        *,
        can_create: bool = True,
        can_cancel: bool = True,
    ) -> None:
        """A valid token; `repos` is "all" or the slugs it has access to (read, create, cancel)."""
        allowed = None if repos == ALL else frozenset(s.lower() for s in repos)
        with self.world.lock:
            self.world.add_token(token, allowed, can_create, can_cancel)

    def revoke_token(self, token: str) -> None:
        """The token no longer exists: Travis answers 403 "access denied" (scope_check.rb)."""
        with self.world.lock:
            self.world.tokens.pop(token, None)

    # ----- faults ----------------------------------------------------------------------------

    def add_fault(
        self, kind: str, fault: Fault, times: int = 1, *, slug: str | None = None
    ) -> None:
        """Queue `fault` for the next `times` calls of `kind` (a KINDS entry, or "*" for any),
        optionally only for calls about one repository `slug`."""
        with self.world.lock:
            self.faults.add(kind, fault, times, slug)

    def fail_next(
        self,
        kind: str,
        status: int = 503,
        *,
        times: int = 1,
        retry_after: int | None = None,
        slug: str | None = None,
    ) -> None:
        self.add_fault(kind, Fault(status=status, retry_after=retry_after), times, slug=slug)

    def malformed_next(
        self,
        kind: str,
        style: str = "html",
        *,
        status: int | None = None,
        times: int = 1,
        slug: str | None = None,
    ) -> None:
        """Answer a broken body; status defaults to 502 for "html" (a proxy page), else 200."""
        self.add_fault(kind, Fault(status=status, malformed=style), times, slug=slug)

    def slow_next(self, kind: str, seconds: float, *, times: int = 1) -> None:
        """Wait `seconds` (virtual), then answer normally (the client may have given up by then)."""
        self.add_fault(kind, Fault(delay=seconds), times)

    def drop_next(self, kind: str, *, times: int = 1) -> None:
        self.add_fault(kind, Fault(drop=True), times)

    def process_then_fail_next(
        self,
        kind: str = "create_request",
        status: int | None = 502,
        *,
        times: int = 1,
        slug: str | None = None,
    ) -> None:
        """Do the real work (e.g. create the request), then answer `status` or drop (None)."""
        self.add_fault(
            kind, Fault(status=status, drop=status is None, process_first=True), times, slug=slug
        )

    def clear_faults(self) -> None:
        with self.world.lock:
            self.faults.clear()

    @property
    def pending_faults(self) -> list[tuple[str, Fault, int]]:
        with self.world.lock:
            return self.faults.pending()

    def random_faults(
        self,
        rate: float,
        *,
        kinds: Iterable[str] = KINDS,
        seed: int = 0,
        faults: Iterable[Fault] | None = None,
    ) -> None:
        """Seeded soak mode: each call of `kinds` not hit by the queue fails with chance `rate`
        (menu: RANDOM_FAULTS unless `faults`, e.g. REAL_FAILURE_MODES). rate <= 0 disables."""
        with self.world.lock:
            self.faults.set_random(rate, kinds, seed, faults)

    # ----- webhooks --------------------------------------------------------------------------

    @property
    def webhook_key(self) -> Any:
        """The RSA private key that signs deliveries (a `cryptography` key object)."""
        if self._key is None:
            self._key = signing_key()
        return self._key

    @property
    def public_key_pem(self) -> str:
        return public_key_pem(self.webhook_key)

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        """Every webhook POST made (or dropped), in order."""
        return self.deliverer.records

    def deliveries_for(self, build_id: int) -> list[WebhookDelivery]:
        return [d for d in self.deliverer.records if d.build_id == build_id]

    def webhooks_idle(self, timeout: float = 5.0) -> bool:
        """Let Travis catch up, then wait until every webhook due so far has been sent."""
        self.advance()
        return self.deliverer.idle(timeout)

    def drop_webhooks(self, times: int | None = 1) -> None:
        """Drop the next `times` deliveries (None: all from now on; 0: stop dropping)."""
        self.deliverer.drop_remaining = -1 if times is None else times

    @property
    def webhook_delay(self) -> float:
        """Virtual seconds between a build event and its webhook POST (assumed; default 0)."""
        return self.deliverer.delay

    @webhook_delay.setter
    def webhook_delay(self, seconds: float) -> None:
        self.deliverer.delay = seconds

    # ----- recorded state --------------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        with self.world.lock:
            return [copy.deepcopy(c) for c in self._calls]

    def calls_of(self, kind: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.kind == kind]

    def header_problems(self) -> list[tuple[str, str]]:
        """(kind, problem) for every problem of every call, in call order."""
        return [(c.kind, p) for c in self.calls for p in c.header_problems]

    def reset_calls(self) -> None:
        with self.world.lock:
            self._calls.clear()

    def requests_for(self, slug: str | None = None) -> list[TravisRequest]:
        """Requests created (oldest first), for one repository or all; `message` as POSTed."""
        self.advance()
        with self.world.lock:
            return [
                copy.deepcopy(r)
                for r in sorted(self.world.requests.values(), key=lambda r: r.id)
                if slug is None or r.slug.lower() == slug.lower()
            ]

    def requests_with(self, marker: str, slug: str | None = None) -> list[TravisRequest]:
        """Requests whose POSTed message contains `marker` (e.g. a CodePipeline job id)."""
        return [r for r in self.requests_for(slug) if marker in (r.message or "")]

    def created_count(self, slug: str | None = None) -> int:
        """Create-request POSTs that actually created a request (including process-then-fail)."""
        return len(self.requests_for(slug))

    def _snapshot(self, build: TravisBuild) -> TravisBuild:
        copied = copy.deepcopy(build)
        copied.state = build.state_at(self.clock.now())
        return copied

    def builds_for(self, slug: str | None = None) -> list[TravisBuild]:
        """Builds (oldest first, seeded history included), `state` as of now."""
        self.advance()
        with self.world.lock:
            return [
                self._snapshot(b)
                for b in sorted(self.world.builds.values(), key=lambda b: b.id)
                if slug is None or b.slug.lower() == slug.lower()
            ]

    def get_request(self, request_id: int) -> TravisRequest:
        self.advance()
        with self.world.lock:
            return copy.deepcopy(self.world.requests[request_id])

    def get_build(self, build_id: int) -> TravisBuild:
        self.advance()
        with self.world.lock:
            return self._snapshot(self.world.builds[build_id])

    def get_job(self, job_id: int) -> TravisJob:
        with self.world.lock:
            return copy.deepcopy(self.world.jobs[job_id])

    def banned(self, token: str) -> bool:
        """Whether Rack::Attack has banned this token (an hour after 50 POSTs in 30 s)."""
        with self.world.lock:
            return self.attack.banned(token, self.clock.now())

    # ----- HTTP handling ---------------------------------------------------------------------

    def _kind_of(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        _, rest = split_prefix(path)
        rest = rest[3:] if rest.startswith("/v3/") else rest
        if rest == "/config":
            return ("get_config" if method == "GET" else "unknown"), {}
        kind, captures = api.route(method, rest)
        return (kind if kind in KINDS else "unknown"), captures

    def _slug_of(self, captures: dict[str, str]) -> str | None:
        """The repository a call is about, for slug-scoped faults (caller holds the lock)."""
        if "repo" in captures:
            found = self.world.find_repo(unquote(captures["repo"]))
            return found[0].lower() if found else unquote(captures["repo"]).lower()
        build = None
        if "build_id" in captures:
            build = self.world.builds.get(int(captures["build_id"]))
        elif "job_id" in captures and int(captures["job_id"]) in self.world.jobs:
            build = self.world.builds[self.world.jobs[int(captures["job_id"])].build_id]
        elif "request_id" in captures and captures["request_id"].isdigit():
            req = self.world.requests.get(int(captures["request_id"]))
            return req.slug.lower() if req else None
        return build.slug.lower() if build else None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = read_call(h)
        kind, captures = self._kind_of(raw.method, raw.path)
        token, _ = header_token(raw.headers)
        call = RecordedCall(
            method=raw.method,
            path=raw.path,
            query=raw.query,
            kind=kind,
            slug=None,
            body=None,
            token_present=bool(token),
            token_sha=token_fingerprint(token) if token else None,
            header_problems=header_problems(raw.headers, raw.method, kind),
            timestamp=self.clock.now(),
        )
        with self.world.lock:
            self._calls.append(call)
            call.slug = self._slug_of(captures)
            fault = self.faults.take(kind, call.slug)
            call.fault = fault.label() if fault else None
        wait = self.clock.real_seconds(fault.delay) if fault is not None else 0.0
        reply: Reply | None = None
        if fault is not None and fault.process_first:
            reply = self._answer(raw, call)
        if wait:
            self._stop.wait(wait)
        if fault is None or (not fault.process_first and not fault.overrides):
            reply = self._answer(raw, call)
        if fault is not None and fault.overrides:
            reply = None if fault.drop else fault_reply(fault)
        if reply is None:
            drop(h)
            return
        with self.world.lock:
            call.status = reply.status
        write_reply(h, reply)

    def _answer(self, raw: RawCall, call: RecordedCall) -> Reply:
        with self.world.lock:
            self.advance()
            reply = self.app.answer(raw, call, self.clock.now())
            if call.slug is None:
                _, captures = self._kind_of(raw.method, raw.path)
                call.slug = self._slug_of(captures)
            return reply
