"""The continuation token: the state that crosses from phase 1 (start) to phase 2 (watch).

CodePipeline stores it and hands it back on the continuation job, so it must hold no secret and fit
in 2048 characters. It is versioned so a newer worker can refuse a token it does not understand with
a clear message instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from worker.failures import UnreadableContinuation

TOKEN_VERSION = 1
MAX_TOKEN_LENGTH = 2048


@dataclass(frozen=True)
class Continuation:
    """What phase 2 needs to follow a build, as published by phase 1."""

    provider: str
    build_id: str
    request_id: str
    endpoint: str
    slug: str
    started: float  # epoch seconds when the build was requested; the watch timeout counts from it
    build_number: str = ""
    version: int = TOKEN_VERSION
    # Added in worker 2 (absent from older tokens, which stay readable):
    url: str = ""  # the build's web page
    revision: str = ""  # the commit the pipeline asked for ("" when not a git commit)
    branch_head: bool = False  # the revision was no git commit id: Travis built the branch head
    expected: float = 0.0  # how long builds of this branch take (seconds), 0 when unknown
    spread: float = 0.0
    published_at: float = 0.0  # when the last summary reached the console (hand-over timing)
    jobs_done: int = -1  # finished Travis jobs in that summary (-1: none published yet)
    hand_overs: int = 0
    lost_answer: bool = False  # a submit answer was lost: look once for a duplicate request
    push: bool = False  # a webhook was added to the build request

    def encode(self) -> str:
        token = json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)
        if len(token) > MAX_TOKEN_LENGTH:
            raise ValueError(
                f"continuation token is {len(token)} characters, over {MAX_TOKEN_LENGTH}"
            )
        return token

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def handed_over(self, at: float, jobs_done: int) -> Continuation:
        """The token for the next continuation job, after publishing progress at `at`."""
        return replace(self, published_at=at, jobs_done=jobs_done, hand_overs=self.hand_overs + 1)

    @classmethod
    def from_dict(cls, data: Any) -> Continuation:
        """Read a token parsed by the poller; raise UnreadableContinuation when it is not ours."""
        if not isinstance(data, dict) or "version" not in data or data.get("unreadable"):
            raise UnreadableContinuation(
                "The continuation token of this job is corrupt (not a token of this worker); "
                "re-run the pipeline stage to start a new build."
            )
        if data.get("version") != TOKEN_VERSION:
            version = data.get("version")
            raise UnreadableContinuation(
                "The continuation token of this job was written by another worker version "
                f"(version {version!r}, this worker reads version {TOKEN_VERSION}); "
                "re-run the pipeline stage to start a new build."
            )
        try:
            return cls(
                provider=_text(data, "provider"),
                build_id=_text(data, "build_id"),
                request_id=_text(data, "request_id"),
                endpoint=_text(data, "endpoint"),
                slug=_text(data, "slug"),
                started=float(data["started"]),
                build_number=str(data.get("build_number", "")),
                url=str(data.get("url", "")),
                revision=str(data.get("revision", "")),
                branch_head=bool(data.get("branch_head", False)),
                expected=float(data.get("expected", 0.0)),
                spread=float(data.get("spread", 0.0)),
                published_at=float(data.get("published_at", 0.0)),
                jobs_done=int(data.get("jobs_done", -1)),
                hand_overs=int(data.get("hand_overs", 0)),
                lost_answer=bool(data.get("lost_answer", False)),
                push=bool(data.get("push", False)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise UnreadableContinuation(
                "The continuation token of this job is incomplete or corrupt; "
                "re-run the pipeline stage to start a new build."
            ) from error


def parse_token(raw: str | None) -> dict[str, Any] | None:
    """Decode the raw token for the execution input: a dict, None when absent.

    A token that is not a JSON object is kept as a marker so the watch step reports it clearly.
    """
    if raw is None or raw == "":
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return {"unreadable": True}
    return data if isinstance(data, dict) else {"unreadable": True}


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, (str, int)) or str(value) == "":
        raise ValueError(key)
    return str(value)
