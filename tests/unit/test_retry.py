"""The in-Lambda retry budget: a few quick retries, longer outages left to the state machine."""

from __future__ import annotations

import pytest

from tests.unit.support import Sleeps
from worker.retry import RetryBudget, parse_retry_after


def test_backoff_allows_the_configured_attempts_with_bounded_jitter() -> None:
    # Given the production budget: 4 attempts, delays up to 1, 2, 4 s
    budget = RetryBudget()

    # When a call fails again and again
    delays = [budget.backoff(attempt) for attempt in range(4)]

    # Then three waits are allowed, each within its exponential bound, and no fourth
    assert delays[3] is None
    for attempt, delay in enumerate(delays[:3]):
        assert delay is not None
        assert 0 <= delay <= min(budget.max_delay, budget.base_delay * 2**attempt)


def test_retry_after_is_used_as_given() -> None:
    budget = RetryBudget()
    assert budget.backoff(0, retry_after=3.0) == 3.0
    assert budget.backoff(0, retry_after=0.0) == 0.0


def test_a_retry_after_beyond_the_cap_ends_the_budget() -> None:
    budget = RetryBudget(max_retry_after=20)
    assert budget.backoff(0, retry_after=21) is None


def test_total_waiting_is_capped() -> None:
    # Given a budget that already waited most of its allowance
    sleeps = Sleeps()
    budget = RetryBudget(attempts=10, total_wait=10, sleep=sleeps)
    budget.wait(8)

    # Then a wait that would exceed it is refused; a shorter one is allowed
    assert budget.backoff(1, retry_after=3) is None
    assert budget.backoff(1, retry_after=2) == 2
    assert sleeps.seconds == [8]
    assert budget.waited == 8


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (None, None),
        ("", None),
        ("-1", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected
