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


def test_no_retry_that_could_not_finish_before_the_step_must_end() -> None:
    from worker.retry import ATTEMPT_SECONDS, STEP_MARGIN_SECONDS, end_step, start_step

    # Given a step with 40 s left before Lambda stops it (30 s after the margin)
    start_step(40.0)
    try:
        budget = RetryBudget(attempts=10, total_wait=1000)
        # Then a retry whose attempt would end after the deadline is not made
        assert budget.backoff(0, retry_after=30.0 - ATTEMPT_SECONDS + 1) is None
        assert budget.backoff(0, retry_after=1.0) == 1.0
    finally:
        end_step()
    assert STEP_MARGIN_SECONDS == 10.0
    # And outside a step there is no deadline
    assert RetryBudget(attempts=10, total_wait=1000).backoff(0, retry_after=19.0) == 19.0


def test_the_client_does_not_start_a_call_it_cannot_finish() -> None:
    import requests

    from worker.providers.travis.client import CONNECT_TIMEOUT, READ_TIMEOUT, _timeouts
    from worker.retry import end_step, start_step

    start_step(10.0 + 3.0)  # 3 s left after the margin
    try:
        with pytest.raises(requests.Timeout):
            _timeouts()
    finally:
        end_step()
    start_step(10.0 + 12.0)  # 12 s left: the read timeout shrinks to fit
    try:
        connect, read = _timeouts()
        assert connect == CONNECT_TIMEOUT and read < 12.0
    finally:
        end_step()
    assert _timeouts() == (CONNECT_TIMEOUT, READ_TIMEOUT)
