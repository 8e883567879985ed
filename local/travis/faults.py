"""Fault injection: what a flaky Travis, or a proxy in front of it, does instead of answering.

Faults act in front of the fake (like a proxy or an overloaded dyno), never inside its logic.
`Fault.delay` is in **virtual seconds** of the fake's clock (a 25 s answer in a run compressed
100 times takes 0.25 s), so a slow answer keeps its ordering against the client's timeouts.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass

from local.travis.errors import Reply, compact, plain, v3_error

KINDS = (
    "create_request",
    "list_requests",
    "get_request",
    "get_build",
    "list_builds",
    "cancel_build",
    "get_log",
    "get_config",
)
MALFORMED_STYLES = (
    "html",  # a proxy's error page (text/html)
    "truncated",  # JSON cut in half, Content-Length correct
    "wrong_shape",  # valid JSON object with the wrong fields and types
    "not_object",  # valid JSON, but a list
    "empty",  # empty body
    "huge",  # multi-megabyte JSON
    "incomplete",  # Content-Length promises more than is sent, then the socket closes
)


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or after) the real answer.

    Precedence: delay first; then drop (close the socket, no answer), else malformed body, else
    status. `process_first` performs the real operation before the delay and the fault: the case
    where Travis acted but the client saw a failure (or saw nothing before its timeout).
    A status fault answers the body Travis's own layers send for it (500: the ErrorHandler text,
    429: Rack::Attack's "Retry later", 403: "Forbidden", 502/503/504: a proxy page); Travis never
    sends Retry-After, so `retry_after` is for a proxy that does.
    """

    status: int | None = None
    retry_after: int | None = None
    malformed: str | None = None  # one of MALFORMED_STYLES
    delay: float = 0.0  # virtual seconds
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

    @property
    def overrides(self) -> bool:
        """Whether the fault replaces the real answer (a pure delay does not)."""
        return bool(self.drop or self.malformed or self.status)


# The old fake's menu, kept as it was for existing soak runs (it includes a Retry-After that real
# Travis never sends).
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

CLIENT_READ_TIMEOUT = 20.0  # virtual seconds: the worker's read timeout

# Soak menu drawn from what real Travis does (see errors.py for the sources of each answer).
REAL_FAILURE_MODES = (
    Fault(status=500),  # app/middleware/error_handler.rb: an exception the app did not rescue
    Fault(status=429),  # rack-attack throttle: "Retry later", no Retry-After
    Fault(status=503, malformed="html"),  # assumed: the platform's router page when dynos are busy
    Fault(drop=True),  # a connection reset between the client and Travis
    Fault(drop=True, process_first=True),  # created, answer lost (a POST that succeeded)
    Fault(status=500, process_first=True),  # created, then the answer failed
    Fault(delay=CLIENT_READ_TIMEOUT + 5.0),  # slower than the client waits (then answered)
    Fault(delay=CLIENT_READ_TIMEOUT + 5.0, process_first=True),  # acted at once, answered late
    Fault(malformed="truncated"),  # a body cut off by a proxy
)


@dataclass
class _Queued:
    kind: str
    fault: Fault
    remaining: int
    slug: str | None


class FaultBook:
    """Queued faults (fired in order, per kind and optionally per repository) and a random mode."""

    def __init__(self) -> None:
        self._queue: list[_Queued] = []
        self._random: tuple[float, frozenset[str], random.Random, list[Fault]] | None = None

    def add(self, kind: str, fault: Fault, times: int, slug: str | None) -> None:
        if kind != "*" and kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS} or '*'")
        if fault.malformed is not None and fault.malformed not in MALFORMED_STYLES:
            raise ValueError(f"unknown malformed style {fault.malformed!r}")
        self._queue.append(_Queued(kind, fault, times, slug.lower() if slug else None))

    def clear(self) -> None:
        self._queue.clear()
        self._random = None

    def pending(self) -> list[tuple[str, Fault, int]]:
        return [(q.kind, q.fault, q.remaining) for q in self._queue]

    def set_random(
        self, rate: float, kinds: Iterable[str], seed: int, faults: Iterable[Fault] | None
    ) -> None:
        if rate <= 0:
            self._random = None
            return
        menu = list(faults) if faults is not None else list(RANDOM_FAULTS)
        self._random = (min(rate, 1.0), frozenset(kinds), random.Random(seed), menu)

    def take(self, kind: str, slug: str | None) -> Fault | None:
        for queued in self._queue:
            if queued.kind in ("*", kind) and queued.slug in (None, slug):
                queued.remaining -= 1
                if queued.remaining <= 0:
                    self._queue.remove(queued)
                return queued.fault
        if self._random is not None:
            rate, kinds, rng, menu = self._random
            if kind in kinds and rng.random() < rate:
                return rng.choice(menu)
        return None


_PROXY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body>"
    b"<center><h1>502 Bad Gateway</h1></center><hr>nginx</body></html>"
)


def fault_reply(fault: Fault) -> Reply:
    """The broken answer a fault sends."""
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    style = fault.malformed
    if style is None:
        status = fault.status or 500
        if status == 500:
            reply = plain(500, "Sorry, we experienced an error.\n")  # error_handler.rb
        elif status == 429:
            reply = plain(429, "Retry later\n")  # rack-attack throttled response
        elif status == 403:
            reply = plain(403, "Forbidden\n")  # rack-attack blocklisted response
        elif status in (502, 503, 504):
            reply = Reply(status, _PROXY_PAGE, "text/html")
        else:
            reply = v3_error(status, "error", "injected fault")
        reply.headers = headers
        return reply
    status = fault.status or (502 if style == "html" else 200)
    if style == "html":
        return Reply(status, _PROXY_PAGE, "text/html", headers)
    if style == "truncated":
        text = json.dumps({"@type": "build", "id": 1, "state": "passed", "jobs": []}, indent=2)
        return Reply(status, text[: len(text) // 2].encode(), headers=headers)
    if style == "wrong_shape":
        odd = {"@type": "surprise", "id": "not-a-number", "state": 42, "builds": "none"}
        reply = compact(status, odd)
    elif style == "not_object":
        reply = compact(status, ["unexpected", "list"])
    elif style == "empty":
        reply = Reply(status)
    elif style == "huge":
        reply = compact(status, {"@type": "error", "error_message": "x" * max(0, fault.huge_bytes)})
    else:  # "incomplete"
        text = json.dumps({"@type": "build", "id": 1, "state": "passed"})
        return Reply(status, text.encode(), headers=headers, declared_length=len(text) * 4)
    reply.headers = headers
    return reply
