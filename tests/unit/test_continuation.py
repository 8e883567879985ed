"""The continuation token: what crosses from phase 1 to phase 2 through CodePipeline."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest

from worker.continuation import (
    MAX_TOKEN_LENGTH,
    TOKEN_VERSION,
    Continuation,
    parse_token,
)
from worker.failures import UnreadableContinuation

TOKEN = Continuation(
    provider="travis",
    build_id="900001",
    request_id="205001",
    endpoint="https://api.travis-ci.com",
    slug="octo-org/hello.world",
    started=1_700_000_000.5,
    build_number="42",
)


def test_round_trip_through_codepipeline() -> None:
    # Given the token phase 1 publishes
    raw = TOKEN.encode()

    # When phase 2's poller parses it and the watch step reads it
    parsed = Continuation.from_dict(parse_token(raw))

    # Then phase 2 sees exactly what phase 1 wrote, stamped with the version
    assert parsed == TOKEN
    assert json.loads(raw)["version"] == TOKEN_VERSION


def test_longest_valid_token_fits_codepipeline() -> None:
    # Given the longest values the configuration validation lets through, with every field
    # worker 2 added (the build URL repeats the endpoint and the slug)
    endpoint = "https://" + "h" * 492  # Endpoint is at most 500 characters
    slug = "o" * 100 + "/" + "r" * 100  # Owner and ProjectName at most 100 each
    longest = Continuation(
        provider="travis",
        build_id="9" * 20,
        request_id="9" * 20,
        endpoint=endpoint,
        slug=slug,
        started=1_700_000_000.123456,
        build_number="9" * 20,
        url=f"{endpoint}/{slug}/builds/{'9' * 20}",
        revision="f" * 40,
        branch_head=True,
        expected=123456.789012,
        spread=98765.4321,
        published_at=1_700_086_400.123456,
        jobs_done=9999,
        hand_overs=9999,
        lost_answer=True,
        push=True,
    )

    # When it is encoded
    # Then it fits CodePipeline's 2048-character limit
    assert len(longest.encode()) <= MAX_TOKEN_LENGTH


def test_a_token_over_the_limit_is_refused() -> None:
    too_long = Continuation("travis", "1", "2", "https://" + "h" * 3000, "o/r", 1.0)
    with pytest.raises(ValueError, match="over 2048"):
        too_long.encode()


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_another_version_is_unreadable(version: Any) -> None:
    # Given a token written by another worker version
    data = {**asdict(TOKEN), "version": version}

    # Then phase 2 refuses it with a message saying what to do
    with pytest.raises(UnreadableContinuation, match="re-run the pipeline stage") as raised:
        Continuation.from_dict(data)
    assert f"version {version!r}" in raised.value.message


@pytest.mark.parametrize(
    "change",
    [
        {"build_id": ""},
        {"build_id": None},
        {"slug": ["o/r"]},
        {"started": "yesterday"},
        {"started": None},
    ],
)
def test_a_corrupt_token_is_unreadable(change: dict[str, Any]) -> None:
    data = {**asdict(TOKEN), **change}
    with pytest.raises(UnreadableContinuation, match="incomplete or corrupt"):
        Continuation.from_dict(data)


@pytest.mark.parametrize("missing", ["provider", "build_id", "request_id", "endpoint", "slug"])
def test_a_token_missing_a_field_is_unreadable(missing: str) -> None:
    data = asdict(TOKEN)
    del data[missing]
    with pytest.raises(UnreadableContinuation):
        Continuation.from_dict(data)


@pytest.mark.parametrize("data", [{"unreadable": True}, None, "token", [1, 2]])
def test_what_the_poller_could_not_parse_is_unreadable(data: Any) -> None:
    with pytest.raises(UnreadableContinuation):
        Continuation.from_dict(data)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ("not json", {"unreadable": True}),
        ("[1, 2]", {"unreadable": True}),
        ('{"a": 1}', {"a": 1}),
    ],
)
def test_parse_token(raw: str | None, expected: dict[str, Any] | None) -> None:
    assert parse_token(raw) == expected


def test_a_token_of_worker_one_is_still_read() -> None:
    # Given a token written before worker 2 added its fields
    old = {k: v for k, v in TOKEN.as_dict().items() if k in {
        "provider", "build_id", "request_id", "endpoint", "slug", "started", "build_number",
        "version"}}  # fmt: skip

    # Then it reads with the defaults: nothing published yet, no expectation, no push
    parsed = Continuation.from_dict(old)
    assert parsed == TOKEN
    assert (parsed.jobs_done, parsed.hand_overs, parsed.published_at) == (-1, 0, 0.0)
    assert (parsed.branch_head, parsed.lost_answer, parsed.push) == (False, False, False)


def test_a_hand_over_counts_and_remembers_the_publication() -> None:
    # When phase 2 hands the watch over after publishing 3 finished jobs
    handed = TOKEN.handed_over(1_700_000_900.0, 3).handed_over(1_700_001_800.0, 5)

    # Then the next job's token says when and what was published, and how often
    assert (handed.published_at, handed.jobs_done, handed.hand_overs) == (1_700_001_800.0, 5, 2)
    assert Continuation.from_dict(parse_token(handed.encode())) == handed
    assert TOKEN.hand_overs == 0  # tokens are values
