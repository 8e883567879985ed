"""Finding the build request a job already made, the way Travis really shows it.

The submit puts a marker with the job id in the message it sends. Travis does not show that
message in `request.message` (its own status text) but as the *commit* message, and only once it
has processed the request; until then the request is `pending` with no commit and no branch
(travis-api v3/queries/request.rb#create_request, v3/renderer/request.rb; see
shared/reference/travis-api-v3.md). So a request of the last few minutes falls in one of three
kinds:

  - processed, with a commit: ours exactly when the commit message holds our marker;
  - not processed yet (no commit): it may be ours — nothing can be concluded until Travis
    processes it;
  - processed without a commit (rejected before a commit was recorded): it has no build and never
    will, so it cannot be a second build, ours or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.clock import parse_time

API_EVENT = "api"
# Request states after Travis processed a request (travis-core Request: created -> started ->
# finished; the API creates it "pending"); anything else without a commit is not processed yet.
PROCESSED_STATES = frozenset({"finished", "rejected", "errored", "canceled", "approved"})


def job_marker(job_id: str) -> str:
    """Put in the Travis request message, which Travis shows as the commit message."""
    return f"[codepipeline-job {job_id}]"


@dataclass
class Lookup:
    """What the requests of the window say about this job's request."""

    found: str | None = None  # the id of our request
    pending: list[tuple[str, float]] = field(default_factory=list)  # (id, created_at) unknown
    ours: list[str] = field(default_factory=list)  # every processed request with our marker
    oldest_seen: float | None = None  # created_at of the oldest entry read (paging stops there)

    def read(self, entries: list[dict[str, Any]], marker: str, window_start: float) -> None:
        for entry in entries:
            created = parse_time(entry.get("created_at"))
            if created is not None:
                self.oldest_seen = (
                    created if self.oldest_seen is None else min(self.oldest_seen, created)
                )
            if created is not None and created < window_start:
                continue  # before this job could have posted
            if entry.get("event_type") not in (None, API_EVENT):
                continue  # a push, pull request or cron request is never ours
            request_id = entry.get("id")
            if request_id is None:
                continue
            commit = entry.get("commit") if isinstance(entry.get("commit"), dict) else None
            if commit:
                if marker in str(commit.get("message") or ""):
                    self.ours.append(str(request_id))
                    # Newest first: the last one read is the first we made, the one we keep.
                    self.found = str(request_id)
                continue
            if _processed(entry):
                continue
            self.pending.append((str(request_id), created if created is not None else 0.0))


def _processed(entry: dict[str, Any]) -> bool:
    return entry.get("result") is not None or str(entry.get("state")) in PROCESSED_STATES
