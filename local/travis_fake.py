"""A scriptable fake of the Travis CI API v3, served over real HTTP on 127.0.0.1.

Unit tests of the Travis client, the end-to-end suite and `make demo` talk to it exactly as they
would to api.travis-ci.com, so timeouts, dropped sockets and broken bodies exercise real HTTP.

Faithful to Travis (travis-ci/travis-api and its trigger-a-build documentation):
  - endpoints and shapes: POST /repo/{slug}/requests (202 "pending"), GET /repo/{slug}/requests,
    GET /repo/{slug}/request/{id}, GET /build/{id}, POST /build/{id}/cancel (202, state_change);
    slugs may be %2F/%2f-encoded, raw, or a numeric repository id; an /api or /v3 prefix is accepted
    (Travis Enterprise serves the API under https://HOST/api);
  - error bodies {"@type": "error", "error_type", "error_message"} with Travis's error types
    (not_found, insufficient_access, request_limit_reached + max_requests/per_seconds,
    build_not_cancelable 409, wrong_params);
  - build states created -> started -> passed|failed|errored|canceled, number is a string,
    previous_state is the state of the previous build on the same branch (as in Travis);
  - per-repository request limit, default 10 per rolling hour, 429 past it.
Invented (Travis differs or says nothing):
  - a missing/unknown token answers 401 (real Travis answers 403 login_required/wrong_credentials
    and serves public repositories anonymously); a missing Travis-API-Version answers 400;
  - request states are only "pending" then "finished" with result "approved"/"rejected";
  - message objects carry a human "text" field besides Travis's level/key/code/args (see
    `reject_message` and `missing_commit_message`); the missing-commit rejection is our model;
  - progress is driven by GET counts, not by time; jobs report only id and state;
  - Retry-After on the per-repo 429 (Travis documents it only as "may carry").
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

Json = dict[str, Any]

KINDS = ("create_request", "list_requests", "get_request", "get_build", "cancel_build")
OUTCOMES = ("passed", "failed", "errored", "canceled")
TERMINAL = frozenset(OUTCOMES)
ALL = "all"
DEFAULT_TOKEN = "fake-travis-token"
MALFORMED_STYLES = (
    "html",  # a proxy's error page (text/html)
    "truncated",  # JSON cut in half, Content-Length correct
    "wrong_shape",  # valid JSON object with the wrong fields and types
    "not_object",  # valid JSON, but a list
    "empty",  # empty body
    "huge",  # multi-megabyte JSON
    "incomplete",  # Content-Length promises more than is sent, then the socket closes
)
MAX_BODY = 1 << 20


def token_fingerprint(token: str) -> str:
    """Short sha256 prefix: recordings identify tokens without ever holding one."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(error_type: str, message: str, **extra: Any) -> Json:
    return {"@type": "error", "error_type": error_type, "error_message": message, **extra}


def reject_message(text: str, code: str = "rejected", msg_id: int = 1) -> Json:
    """Shape of a scripted rejection message (Travis's message fields plus our `text`)."""
    return {
        "@type": "message",
        "id": msg_id,
        "level": "error",
        "key": "request",
        "code": code,
        "args": {},
        "text": text,
    }


def missing_commit_message(sha: str, slug: str, msg_id: int = 1) -> Json:
    """Shape of the rejection message for a sha that is not among the repo's known commits."""
    msg = reject_message(
        f"commit {sha} could not be found in repository {slug}", "missing_commit", msg_id
    )
    msg["args"] = {"sha": sha}
    return msg


@dataclass
class RepoScript:
    """How one repository behaves. Snapshotted per request at creation: edits affect later ones."""

    exists: bool = True
    outcome: str = "passed"  # terminal build state: passed|failed|errored|canceled
    polls_until_build: int = 1  # GET request calls until it resolves (<= 0: at creation)
    polls_until_done: int = 3  # GET build calls until terminal (1st created, then started)
    jobs: int = 2
    reject: bool = False
    reject_messages: list[str | Json] = field(default_factory=lambda: [".travis.yml: missing"])
    known_commits: set[str] | None = None  # None: every sha exists
    auth_error: int | None = None  # force 401 or 403 for every call on this repo
    rate_limit: int = 10  # requests per rate_window seconds
    rate_window: float = 3600.0
    default_branch: str = "main"
    repo_id: int = 0  # 0: assigned by the fake


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or after) the real answer.

    Precedence: delay first; then drop (close the socket, no answer), else malformed body, else
    status with a Travis error body. `process_first` performs the real operation before answering
    the fault: the case where Travis acted but the client saw a failure.
    """

    status: int | None = None
    retry_after: int | None = None
    malformed: str | None = None  # one of MALFORMED_STYLES
    delay: float = 0.0
    drop: bool = False
    process_first: bool = False
    huge_bytes: int = 5_000_000

    def label(self) -> str:
        parts = [f"delay={self.delay:g}"] if self.delay else []
        if self.drop:
            parts.append("drop")
        elif self.malformed:
            parts.append(f"malformed={self.malformed}")
        elif self.status:
            parts.append(f"status={self.status}")
        if self.process_first:
            parts.append("process_first")
        return ",".join(parts) or "none"


# The default menu of the seeded random mode: what a flaky Travis (or a proxy before it) does.
RANDOM_FAULTS = (
    Fault(status=500),
    Fault(status=502),
    Fault(status=503),
    Fault(status=429, retry_after=0),
    Fault(drop=True),
    Fault(status=502, malformed="html"),
    Fault(malformed="truncated"),
    Fault(status=502, process_first=True),
    Fault(drop=True, process_first=True),
)


@dataclass
class RecordedCall:
    """One HTTP call as the fake saw it. `token_sha` is a fingerprint, never the token."""

    method: str
    path: str  # raw request path, query excluded
    query: dict[str, list[str]]
    kind: str  # one of KINDS or "unknown"
    slug: str | None  # resolved repository slug when known
    body: Any  # parsed JSON body (None if absent or unparsable)
    token_present: bool
    token_sha: str | None
    header_problems: list[str]
    status: int | None = None  # None: connection dropped without an answer
    fault: str | None = None
    timestamp: float = 0.0


@dataclass
class TravisRequest:
    """A request created through POST /repo/{slug}/requests."""

    id: int
    slug: str
    repo_id: int
    branch: str
    sha: str
    message: str | None
    config: Any
    merge_mode: str | None
    created_at: float
    token_sha: str | None
    script: RepoScript = field(repr=False)
    polls: int = 0
    state: str = "pending"
    result: str | None = None
    messages: list[Json] = field(default_factory=list)
    build_id: int | None = None


@dataclass
class TravisBuild:
    """A build; its state is a pure function of GET count, cancellation and the script."""

    id: int
    number: str
    slug: str
    repo_id: int
    request_id: int
    branch: str
    sha: str
    message: str | None
    outcome: str
    polls_until_done: int
    job_ids: list[int]
    created_at: float
    polls: int = 0
    canceled: bool = False
    finished_jobs_at_cancel: int = 0
    started_at: float | None = None
    finished_at: float | None = None

    def progress(self) -> tuple[str, list[str]]:
        """(build state, job states) at the current GET count."""
        n_jobs, needed = len(self.job_ids), max(1, self.polls_until_done)
        if self.canceled:
            done = self.finished_jobs_at_cancel
            return "canceled", ["passed"] * done + ["canceled"] * (n_jobs - done)
        if self.polls >= needed:
            if self.outcome == "passed":
                return "passed", ["passed"] * n_jobs
            return self.outcome, ["passed"] * (n_jobs - 1) + [self.outcome]
        if self.polls <= 1:
            return "created", ["created"] * n_jobs
        done = min(n_jobs - 1, n_jobs * (self.polls - 1) // (needed - 1))
        return "started", ["passed"] * done + ["started"] * (n_jobs - done)

    @property
    def state(self) -> str:
        return self.progress()[0]


@dataclass
class _Reply:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"
    declared_length: int | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 makes concurrent clients wait on SYN retries
    fake: TravisFake

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-answer are expected here; keep test output clean."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one call per connection: no stale keep-alive surprises

    def _dispatch(self) -> None:
        cast(_Server, self.server).fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base class name)
        """Silence per-call logging; the fake records calls itself."""


for _verb in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    setattr(_Handler, f"do_{_verb}", _Handler._dispatch)


_PREFIX = re.compile(r"^(?:/api(?=/))?(?:/v3(?=/))?")
_REPO_PATH = re.compile(
    r"^/repo/(?P<slug>[^/]+|[^/]+/[^/]+)/(?:(?P<list>requests)|request/(?P<rid>[^/]+))/?$"
)
_BUILD_PATH = re.compile(r"^/build/(?P<bid>[^/]+)(?P<cancel>/cancel)?/?$")


class TravisFake:
    """The fake server and its scripted world. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        repos: Mapping[str, RepoScript] | None = None,
        tokens: Mapping[str, str | Iterable[str]] | None = None,
        *,
        auto_repos: bool = False,
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`tokens` maps token -> "all" or the slugs it may use (default {DEFAULT_TOKEN: "all"}).

        `auto_repos` makes unscripted owner/name slugs exist with a default RepoScript (demo use);
        otherwise they answer 404. `clock` drives the rate-limit window (inject one to test expiry).
        """
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._clock = clock
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.auto_repos = auto_repos
        self.auto_template = RepoScript()  # copied for each repository auto_repos creates
        self._repos: dict[str, tuple[str, RepoScript]] = {}  # lower slug -> (slug, script)
        self._tokens: dict[str, frozenset[str] | None] = {}  # None: all repositories
        self._calls: list[RecordedCall] = []
        self._requests: dict[int, TravisRequest] = {}
        self._builds: dict[int, TravisBuild] = {}
        self._creations: dict[str, list[float]] = {}  # lower slug -> clock() of each creation
        self._build_numbers: dict[str, int] = {}
        self._faults: list[list[Any]] = []  # [kind, Fault, remaining]
        self._random: tuple[float, frozenset[str], random.Random, list[Fault]] | None = None
        self._ids = {"repo": 1000, "request": 205000, "build": 900000, "job": 5000000}
        for slug, script in (repos or {}).items():
            self.add_repo(slug, script)
        for token, allowed in (tokens if tokens is not None else {DEFAULT_TOKEN: ALL}).items():
            self.add_token(token, allowed)

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> TravisFake:
        server = _Server((self._host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._stop_event.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop_event.set()  # wakes handlers sleeping on a slow fault
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

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

    # ----- scripting -------------------------------------------------------------------------

    def add_repo(self, slug: str, script: RepoScript | None = None, **overrides: Any) -> RepoScript:
        """Register (or replace) a repository; returns the live script, mutable by tests."""
        script = replace(script or RepoScript(), **overrides)
        with self._lock:
            if not script.repo_id:
                self._ids["repo"] += 1
                script.repo_id = self._ids["repo"]
            self._repos[slug.lower()] = (slug, script)
        return script

    def script(self, slug: str) -> RepoScript:
        with self._lock:
            return self._repos[slug.lower()][1]

    def add_token(self, token: str, repos: str | Iterable[str] = ALL) -> None:
        allowed = None if repos == ALL else frozenset(s.lower() for s in repos)
        with self._lock:
            self._tokens[token] = allowed

    def add_fault(
        self, kind: str, fault: Fault, times: int = 1, *, slug: str | None = None
    ) -> None:
        """Queue `fault` for the next `times` calls of `kind` (a KINDS entry, or "*" for any),
        optionally only for calls about one repository `slug`."""
        if kind != "*" and kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS} or '*'")
        if fault.malformed is not None and fault.malformed not in MALFORMED_STYLES:
            raise ValueError(f"unknown malformed style {fault.malformed!r}")
        with self._lock:
            self._faults.append([kind, fault, times, slug.lower() if slug else None])

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
        """Sleep `seconds`, then answer normally (the client may have given up by then)."""
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
        fault = Fault(status=status, drop=status is None, process_first=True)
        self.add_fault(kind, fault, times, slug=slug)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._random = None

    @property
    def pending_faults(self) -> list[tuple[str, Fault, int]]:
        with self._lock:
            return [(k, f, n) for k, f, n, _ in self._faults]

    def random_faults(
        self,
        rate: float,
        *,
        kinds: Iterable[str] = KINDS,
        seed: int = 0,
        faults: Iterable[Fault] | None = None,
    ) -> None:
        """Seeded soak mode: each call of `kinds` not hit by the queue fails with chance `rate`.

        The default menu mixes 5xx, 429 (Retry-After 0), drops, HTML and truncated bodies, and
        process-then-fail (which, on create_request, makes a request the client never hears of).
        rate <= 0 disables.
        """
        if rate <= 0:
            with self._lock:
                self._random = None
            return
        menu = list(faults) if faults is not None else list(RANDOM_FAULTS)
        with self._lock:
            self._random = (min(rate, 1.0), frozenset(kinds), random.Random(seed), menu)

    # ----- recorded state --------------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls]

    def calls_of(self, kind: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.kind == kind]

    def header_problems(self) -> list[tuple[str, str]]:
        """(kind, problem) for every problem of every call, in call order."""
        return [(c.kind, p) for c in self.calls for p in c.header_problems]

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def requests_for(self, slug: str | None = None) -> list[TravisRequest]:
        """Requests created (oldest first), for one repository or all."""
        with self._lock:
            return [
                copy.deepcopy(r)
                for r in sorted(self._requests.values(), key=lambda r: r.id)
                if slug is None or r.slug.lower() == slug.lower()
            ]

    def requests_with(self, marker: str, slug: str | None = None) -> list[TravisRequest]:
        """Requests whose message contains `marker` (e.g. a CodePipeline job id)."""
        return [r for r in self.requests_for(slug) if marker in (r.message or "")]

    def created_count(self, slug: str | None = None) -> int:
        """Create-request POSTs that actually created a request (including process-then-fail)."""
        return len(self.requests_for(slug))

    def builds_for(self, slug: str | None = None) -> list[TravisBuild]:
        with self._lock:
            return [
                copy.deepcopy(b)
                for b in sorted(self._builds.values(), key=lambda b: b.id)
                if slug is None or b.slug.lower() == slug.lower()
            ]

    def get_request(self, request_id: int) -> TravisRequest:
        with self._lock:
            return copy.deepcopy(self._requests[request_id])

    def get_build(self, build_id: int) -> TravisBuild:
        with self._lock:
            return copy.deepcopy(self._builds[build_id])

    # ----- HTTP handling ---------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method = h.command.upper()
        split = urlsplit(h.path)
        path = _PREFIX.sub("", split.path)
        query = parse_qs(split.query)
        length = int(h.headers.get("Content-Length") or 0)
        raw_body = h.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
        body: Any = None
        problems = self._header_problems(h, method)
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                problems.append("invalid_json_body")
        kind, params = self._route(method, path)
        auth = h.headers.get("Authorization") or ""
        token = auth[len("token ") :].strip() if auth.lower().startswith("token ") else ""
        call = RecordedCall(
            method=method,
            path=split.path,
            query=query,
            kind=kind,
            slug=None,
            body=body,
            token_present=bool(token),
            token_sha=token_fingerprint(token) if token else None,
            header_problems=problems,
            timestamp=time.time(),
        )
        with self._lock:
            self._calls.append(call)
            call.slug = self._slug_of(params)  # refined by _answer; known even for faults
            fault = self._take_fault(kind, call.slug)
            call.fault = fault.label() if fault else None

        if fault is not None and fault.delay:
            self._stop_event.wait(fault.delay)
        overrides = fault is not None and bool(fault.drop or fault.malformed or fault.status)
        reply: _Reply | None = None
        if fault is None or not overrides or fault.process_first:
            with self._lock:
                reply = self._answer(call, params, token)
        if fault is not None and overrides:
            reply = None if fault.drop else self._fault_reply(fault)
        if reply is None:
            h.close_connection = True  # drop: the server closes the socket without a byte
            return
        with self._lock:
            call.status = reply.status
        self._write(h, reply)

    @staticmethod
    def _header_problems(h: BaseHTTPRequestHandler, method: str) -> list[str]:
        """Why: tests assert the client sends what Travis needs, not just that calls succeed."""
        problems = []
        version = h.headers.get("Travis-API-Version")
        if version is None:
            problems.append("missing_api_version")
        elif version.strip() != "3":
            problems.append("bad_api_version")
        auth = h.headers.get("Authorization")
        if auth is None:
            problems.append("missing_authorization")
        elif not auth.lower().startswith("token ") or not auth[6:].strip():
            problems.append("bad_authorization_scheme")
        agent = h.headers.get("User-Agent")
        if not agent:
            problems.append("missing_user_agent")
        elif agent.lower().startswith(("python-requests/", "python-urllib", "curl/")):
            problems.append("generic_user_agent")
        accept = h.headers.get("Accept")
        if accept and not any(t in accept.lower() for t in ("json", "*/*", "application/*")):
            problems.append("accept_not_json")  # Travis answers JSON only
        if method in ("POST", "PUT", "PATCH"):
            ctype = h.headers.get("Content-Type")
            if ctype is None:
                problems.append("missing_content_type")
            elif ctype.split(";")[0].strip().lower() != "application/json":
                problems.append("bad_content_type")
        return problems

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, dict[str, str]]:
        if m := _REPO_PATH.match(path):
            params = {"slug": unquote(m["slug"])}
            if m["list"]:
                return {"POST": "create_request", "GET": "list_requests"}.get(
                    method, "unknown"
                ), params
            params["request_id"] = m["rid"]
            return ("get_request" if method == "GET" else "unknown"), params
        if m := _BUILD_PATH.match(path):
            params = {"build_id": m["bid"]}
            if m["cancel"]:
                return ("cancel_build" if method == "POST" else "unknown"), params
            return ("get_build" if method == "GET" else "unknown"), params
        return "unknown", {}

    def _slug_of(self, params: dict[str, str]) -> str | None:
        """The repository a call is about, for slug-scoped faults (caller holds the lock)."""
        if "slug" in params:
            return params["slug"].lower()
        bid = params.get("build_id", "")
        build = self._builds.get(int(bid)) if bid.isdigit() else None
        return build.slug.lower() if build else None

    def _take_fault(self, kind: str, slug: str | None = None) -> Fault | None:
        for entry in self._faults:
            if entry[0] in ("*", kind) and entry[3] in (None, slug):
                entry[2] -= 1
                if entry[2] <= 0:
                    self._faults.remove(entry)
                return cast(Fault, entry[1])
        if self._random is not None:
            rate, kinds, rng, menu = self._random
            if kind in kinds and rng.random() < rate:
                return rng.choice(menu)
        return None

    def _fault_reply(self, fault: Fault) -> _Reply:
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        style = fault.malformed
        if style is None:
            status = fault.status or 500
            err = (
                _error("request_limit_reached", "request limit reached for resource")
                if status == 429
                else _error("server_error", "internal server error")
            )
            return _Reply(status, err, headers)
        status = fault.status or (502 if style == "html" else 200)
        if style == "html":
            page = b"<html><head><title>502 Bad Gateway</title></head><body>" + (
                b"<center><h1>502 Bad Gateway</h1></center><hr>nginx</body></html>"
            )
            return _Reply(status, headers=headers, raw=page, content_type="text/html")
        if style == "truncated":
            text = json.dumps({"@type": "build", "id": 1, "state": "passed", "jobs": []})
            return _Reply(status, headers=headers, raw=text[: len(text) // 2].encode())
        if style == "wrong_shape":
            odd = {"@type": "surprise", "id": "not-a-number", "state": 42, "builds": "none"}
            return _Reply(status, odd, headers)
        if style == "not_object":
            return _Reply(status, ["unexpected", "list"], headers)
        if style == "empty":
            return _Reply(status, headers=headers, raw=b"")
        if style == "huge":
            filler = "x" * max(0, fault.huge_bytes)
            return _Reply(status, {"@type": "error", "error_message": filler}, headers)
        text = json.dumps({"@type": "build", "id": 1, "state": "passed"})  # "incomplete"
        return _Reply(status, headers=headers, raw=text.encode(), declared_length=len(text) * 4)

    def _write(self, h: BaseHTTPRequestHandler, reply: _Reply) -> None:
        raw = reply.raw if reply.raw is not None else json.dumps(reply.payload).encode()
        try:
            h.send_response(reply.status)
            h.send_header("Content-Type", reply.content_type)
            length = reply.declared_length if reply.declared_length is not None else len(raw)
            h.send_header("Content-Length", str(length))
            for name, value in reply.headers.items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(raw)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout hit during a slow fault)

    # ----- the API itself (called under the lock) --------------------------------------------

    def _answer(self, call: RecordedCall, params: dict[str, str], token: str) -> _Reply:
        kind, problems = call.kind, call.header_problems
        if kind == "unknown":
            if params:
                return _Reply(405, _error("method_not_allowed", "method not allowed"))
            return _Reply(404, _error("not_found", "resource not found (or insufficient access)"))
        if "missing_api_version" in problems or "bad_api_version" in problems:
            return _Reply(400, _error("missing_api_version", "Travis-API-Version: 3 required"))
        if not token:
            return _Reply(401, _error("login_required", "login required"))
        if token not in self._tokens:
            return _Reply(401, _error("wrong_credentials", "access denied"))

        build: TravisBuild | None = None
        request: TravisRequest | None = None
        if kind in ("get_build", "cancel_build"):
            bid = params["build_id"]
            build = self._builds.get(int(bid)) if bid.isdigit() else None
            if build is None:
                return _not_found("build")
            params["slug"] = build.slug
        found = self._find_repo(params["slug"])
        if found is None:
            return _not_found("repository")
        slug, script = found
        call.slug = slug
        if script.auth_error in (401, 403):
            if script.auth_error == 401:
                return _Reply(401, _error("wrong_credentials", "access denied"))
            return _Reply(403, _error("insufficient_access", "access denied for this repository"))
        allowed = self._tokens[token]
        if allowed is not None and slug.lower() not in allowed:
            return _Reply(
                403,
                _error(
                    "insufficient_access",
                    f"operation requires {kind} access to repository",
                    permission=kind,
                ),
            )
        if kind == "get_request":
            rid = params["request_id"]
            request = self._requests.get(int(rid)) if rid.isdigit() else None
            if request is None or request.slug != slug:
                return _not_found("request")
            request.polls += 1
            if request.state == "pending" and request.polls >= request.script.polls_until_build:
                self._resolve(request)
            return _Reply(200, self._request_view(request))
        if kind == "list_requests":
            return _Reply(200, self._list_view(slug, script, call.query))
        if kind == "create_request":
            return self._create(slug, script, call.body, token)
        if build is None:  # unreachable: build kinds resolved the build above
            raise RuntimeError(f"no build for {kind}")
        if kind == "get_build":
            build.polls += 1
            return _Reply(200, self._build_view(build))
        state, jobs = build.progress()  # cancel_build
        if state in TERMINAL:
            return _Reply(
                409, _error("build_not_cancelable", "build is not running, cannot cancel")
            )
        before = self._build_view(build, minimal=True)
        build.canceled = True
        build.finished_jobs_at_cancel = jobs.count("passed")
        build.finished_at = time.time()
        return _Reply(
            202,
            {
                "@type": "pending",
                "build": before,
                "state_change": "cancel",
                "resource_type": "build",
            },
        )

    def _find_repo(self, slug_or_id: str) -> tuple[str, RepoScript] | None:
        if slug_or_id.isdigit():
            for slug, script in self._repos.values():
                if script.repo_id == int(slug_or_id) and script.exists:
                    return slug, script
            return None
        entry = self._repos.get(slug_or_id.lower())
        if entry is None and self.auto_repos and slug_or_id.count("/") == 1:
            self.add_repo(slug_or_id, self.auto_template, repo_id=0)
            entry = self._repos[slug_or_id.lower()]
        return entry if entry is not None and entry[1].exists else None

    def _create(self, slug: str, script: RepoScript, body: Any, token: str) -> _Reply:
        req = body.get("request") if isinstance(body, dict) else None
        if not isinstance(req, dict):
            return _Reply(400, _error("wrong_params", "wrong parameters: missing request"))
        now = self._clock()
        window = [t for t in self._creations.get(slug.lower(), []) if now - t < script.rate_window]
        self._creations[slug.lower()] = window
        if len(window) >= script.rate_limit:
            wait = max(1, math.ceil(script.rate_window - (now - window[0]))) if window else 1
            return _Reply(
                429,
                _error(
                    "request_limit_reached",
                    "request limit reached for resource",
                    max_requests=script.rate_limit,
                    per_seconds=int(script.rate_window),
                    repository=self._repo_view(slug, script),
                ),
                {"Retry-After": str(wait)},
            )
        window.append(now)
        branch = str(req.get("branch") or script.default_branch)
        sha = req.get("sha")
        if not sha:  # Travis builds the branch head; invent a stable one
            sha = hashlib.sha256(f"{slug}@{branch}".encode()).hexdigest()[:40]
        self._ids["request"] += 1
        request = TravisRequest(
            id=self._ids["request"],
            slug=slug,
            repo_id=script.repo_id,
            branch=branch,
            sha=str(sha),
            message=req.get("message"),
            config=req.get("config", {}),
            merge_mode=req.get("merge_mode"),
            created_at=time.time(),
            token_sha=token_fingerprint(token),
            script=copy.deepcopy(script),
        )
        self._requests[request.id] = request
        if script.polls_until_build <= 0:
            self._resolve(request)
        return _Reply(
            202,
            {
                "@type": "pending",
                "remaining_requests": script.rate_limit - len(window),
                "repository": self._repo_view(slug, script),
                "request": {
                    "id": request.id,
                    "message": request.message,
                    "branch": request.branch,
                    "config": request.config,
                },
                "resource_type": "request",
            },
        )

    def _resolve(self, request: TravisRequest) -> None:
        script = request.script
        request.state = "finished"
        known = script.known_commits
        if known is not None and request.sha not in known:
            request.result = "rejected"
            request.messages = [missing_commit_message(request.sha, request.slug)]
            return
        if script.reject:
            request.result = "rejected"
            request.messages = [
                {**reject_message("", msg_id=i), **m}
                if isinstance(m, dict)
                else reject_message(m, msg_id=i)
                for i, m in enumerate(script.reject_messages, 1)
            ]
            return
        request.result = "approved"
        number = self._build_numbers.get(request.slug.lower(), 0) + 1
        self._build_numbers[request.slug.lower()] = number
        self._ids["build"] += 1
        jobs = []
        for _ in range(max(1, script.jobs)):
            self._ids["job"] += 1
            jobs.append(self._ids["job"])
        build = TravisBuild(
            id=self._ids["build"],
            number=str(number),
            slug=request.slug,
            repo_id=request.repo_id,
            request_id=request.id,
            branch=request.branch,
            sha=request.sha,
            message=request.message,
            outcome=script.outcome if script.outcome in TERMINAL else "errored",
            polls_until_done=script.polls_until_done,
            job_ids=jobs,
            created_at=time.time(),
        )
        self._builds[build.id] = build
        request.build_id = build.id

    @staticmethod
    def _repo_view(slug: str, script: RepoScript) -> Json:
        return {
            "@type": "repository",
            "id": script.repo_id,
            "name": slug.rsplit("/", maxsplit=1)[-1],
            "slug": slug,
        }

    def _request_view(self, r: TravisRequest) -> Json:
        builds = []
        if r.build_id is not None:
            b = self._builds[r.build_id]
            builds.append({"@type": "build", "id": b.id, "number": b.number, "state": b.state})
        return {
            "@type": "request",
            "@href": f"/repo/{r.repo_id}/request/{r.id}",
            "id": r.id,
            "state": r.state,
            "result": r.result,
            "message": r.message,
            "repository": self._repo_view(r.slug, r.script),
            "branch_name": r.branch,
            "commit": {"@type": "commit", "sha": r.sha, "message": r.message},
            "builds": builds,
            "owner": {"@type": "user", "login": r.slug.split("/")[0]},
            "created_at": _iso(r.created_at),
            "event_type": "api",
            "base_commit": None,
            "head_commit": None,
            "messages": copy.deepcopy(r.messages),
        }

    def _list_view(self, slug: str, script: RepoScript, query: dict[str, list[str]]) -> Json:
        def number(name: str, default: int) -> int:
            value = (query.get(name) or [""])[0]
            return int(value) if value.isdigit() else default

        limit, offset = number("limit", 25), number("offset", 0)
        mine = sorted((r for r in self._requests.values() if r.slug == slug), key=lambda r: -r.id)
        page = mine[offset : offset + limit]
        return {
            "@type": "requests",
            "@href": f"/repo/{script.repo_id}/requests",
            "@pagination": {
                "limit": limit,
                "offset": offset,
                "count": len(mine),
                "is_first": offset == 0,
                "is_last": offset + limit >= len(mine),
            },
            "requests": [self._request_view(r) for r in page],
        }

    def _previous_state(self, b: TravisBuild) -> str | None:
        earlier = [
            o
            for o in self._builds.values()
            if o.slug == b.slug and o.branch == b.branch and o.id < b.id
        ]
        return max(earlier, key=lambda o: o.id).state if earlier else None

    def _build_view(self, b: TravisBuild, *, minimal: bool = False) -> Json:
        state, job_states = b.progress()
        now = time.time()
        if state != "created" and b.started_at is None:
            b.started_at = now
        if state in TERMINAL and b.finished_at is None:
            b.finished_at = now
        view: Json = {"@type": "build", "@href": f"/build/{b.id}", "id": b.id}
        view.update(number=b.number, state=state)
        if minimal:
            return view
        duration = None
        if b.started_at is not None and b.finished_at is not None:
            duration = int(b.finished_at - b.started_at)
        view.update(
            {
                "duration": duration,
                "event_type": "api",
                "previous_state": self._previous_state(b),
                "pull_request_title": None,
                "pull_request_number": None,
                "started_at": _iso(b.started_at),
                "finished_at": _iso(b.finished_at),
                "private": False,
                "repository": {"@type": "repository", "id": b.repo_id, "slug": b.slug},
                "branch": {"@type": "branch", "name": b.branch},
                "tag": None,
                "commit": {"@type": "commit", "sha": b.sha, "message": b.message or ""},
                "jobs": [
                    {"@type": "job", "id": jid, "state": s}
                    for jid, s in zip(b.job_ids, job_states, strict=True)
                ],
                "stages": [],
                "created_by": {"@type": "user", "id": 1, "login": b.slug.split("/")[0]},
                "updated_at": _iso(now),
            }
        )
        return view


def _not_found(resource: str) -> _Reply:
    return _Reply(
        404,
        _error(
            "not_found", f"{resource} not found (or insufficient access)", resource_type=resource
        ),
    )


def main(argv: list[str] | None = None) -> None:
    """Serve a fake for manual runs and demos: python -m local.travis_fake --port 8099."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--outcome", default="passed", choices=OUTCOMES)
    parser.add_argument("--polls-until-done", type=int, default=3)
    args = parser.parse_args(argv)  # every owner/name slug exists (auto_repos)
    fake = TravisFake(tokens={args.token: ALL}, auto_repos=True, port=args.port)
    fake.auto_template = RepoScript(outcome=args.outcome, polls_until_done=args.polls_until_done)
    with fake:
        print(f"Travis fake on {fake.base_url} (token fingerprint {token_fingerprint(args.token)})")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
