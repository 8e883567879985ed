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
    # Given the longest values the configuration validation lets through
    longest = Continuation(
        provider="travis",
        build_id="9" * 20,
        request_id="9" * 20,
        endpoint="https://" + "h" * 492,  # Endpoint is at most 500 characters
        slug="o" * 100 + "/" + "r" * 100,  # Owner and ProjectName at most 100 each
        started=1_700_000_000.123456,
        build_number="9" * 20,
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
