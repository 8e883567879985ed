"""Helpers shared by the Travis fake's tests (no tests here): clocks, HTTP calls, a receiver.

Timelines are tested with a `SteppedClock`: virtual time nearly stands still (scale 1e6 real
seconds per virtual second) and moves when a test calls `advance`, so "pending before 5 s,
finished after" holds on a loaded machine too. Waiting for threads (ticker, webhooks) always
polls with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs

import requests

from local.clock import VirtualClock
from local.travis import DEFAULT_TOKEN, TravisFake

SLUG = "octo/app"
ENC = "octo%2Fapp"
HEADERS = {
    "Travis-API-Version": "3",
    "Authorization": f"token {DEFAULT_TOKEN}",
    "User-Agent": "codepipeline-travis-worker/test",
    "Accept": "application/json",
}
# 10 s into an epoch-aligned 30 s and 60 s window: Rack::Attack's counters stay in one window
ALIGNED_START = 1_800_000_010.0

T = TypeVar("T")


class SteppedClock(VirtualClock):
    """Virtual time that stands (almost) still until the test moves it (`advance`)."""

    def __init__(self, scale: float = 1e6, *, start: float = ALIGNED_START) -> None:
        super().__init__(scale, start=start)


def call(
    fake: TravisFake,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
    **kwargs: Any,
) -> requests.Response:
    hdrs = dict(HEADERS if headers is None else headers)
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    return requests.request(
        method, fake.base_url + path, json=body, headers=hdrs, timeout=timeout, **kwargs
    )


def create(
    fake: TravisFake, slug: str = ENC, *, headers: dict[str, str] | None = None, **request: Any
) -> requests.Response:
    return call(fake, "POST", f"/repo/{slug}/requests", {"request": request}, headers=headers)


def get_request(fake: TravisFake, rid: int, slug: str = ENC, **kw: Any) -> dict[str, Any]:
    resp = call(fake, "GET", f"/repo/{slug}/request/{rid}", **kw)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def get_build(fake: TravisFake, bid: int, query: str = "") -> dict[str, Any]:
    resp = call(fake, "GET", f"/build/{bid}{query}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def build_id_of(fake: TravisFake, rid: int) -> int:
    builds = get_request(fake, rid)["builds"]
    assert builds, "the request has no build yet"
    return int(builds[0]["id"])


def poll(check: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.01) -> T:
    """Wait until `check()` returns something truthy; fail after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    raw: bytes


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every POST and answers `status`."""

    status: int = 200
    posts: list[Post] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> Receiver:
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = parse_qs(raw.decode(), keep_blank_values=True)
                receiver.posts.append(Post(self.path, dict(self.headers), form, raw))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def to(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path == path]
