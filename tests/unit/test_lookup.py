"""Reading Travis's request list for the request a job made, on Travis's real semantics."""

from __future__ import annotations

from worker.providers.travis.lookup import Lookup, job_marker

MARKER = job_marker("job-1")
T0 = 1_800_000_000.0


def entry(
    rid: int,
    *,
    created: float,
    commit_message: str | None = None,
    state: str = "finished",
    result: str | None = "approved",
    event_type: str = "api",
) -> dict:
    from datetime import UTC, datetime

    data = {
        "id": rid,
        "state": state,
        "result": result,
        "message": "Travis's own status text",
        "created_at": datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z"),
        "event_type": event_type,
    }
    if commit_message is not None:
        data["commit"] = {"sha": "abc", "message": commit_message}
    return data


def read(*entries: dict, since: float = T0) -> Lookup:
    lookup = Lookup()
    lookup.read(list(entries), MARKER, since)
    return lookup


def test_our_marker_in_the_commit_message_is_ours_and_the_first_one_wins() -> None:
    lookup = read(
        entry(3, created=T0 + 30, commit_message=f"pipeline {MARKER}"),
        entry(2, created=T0 + 20, commit_message="someone else"),
        entry(1, created=T0 + 10, commit_message=f"pipeline {MARKER}"),
    )
    assert lookup.found == "1"
    assert lookup.ours == ["3", "1"]
    assert lookup.pending == []


def test_travis_status_text_in_message_never_counts() -> None:
    pending = entry(5, created=T0 + 5, state="pending", result=None)
    pending["message"] = f"pending {MARKER}"  # even if it said so, message is Travis's text
    assert read(pending).found is None


def test_an_unprocessed_request_may_be_ours() -> None:
    lookup = read(entry(7, created=T0 + 5, state="pending", result=None))
    assert lookup.found is None
    assert lookup.pending == [("7", T0 + 5)]


def test_processed_without_commit_cannot_be_a_second_build() -> None:
    lookup = read(entry(8, created=T0 + 5, state="finished", result="rejected"))
    assert lookup.found is None and lookup.pending == []


def test_requests_before_the_window_or_not_from_the_api_are_skipped() -> None:
    lookup = read(
        entry(9, created=T0 - 1, state="pending", result=None),
        entry(10, created=T0 + 1, state="pending", result=None, event_type="push"),
    )
    assert lookup.pending == []
    assert lookup.oldest_seen == T0 - 1
