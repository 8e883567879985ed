"""The watch schedule: long parks while the build is certainly running, close looks where it may
end, backoff when it runs late or nothing is known — and the bounds the module states."""

from __future__ import annotations

import pytest

from worker.schedule import POLLING, PUSH, Expectation, policy
from worker.settings import WaitSchedule


def looks_until(end: float, start: float, expectation: Expectation | None, push: bool = False):
    """Simulate the watch: (number of looks, delay between `end` and the look that sees it)."""
    rule = policy(push)
    elapsed, looks = start, 0
    while True:
        looks += 1
        if elapsed >= end:
            return looks, elapsed - end
        elapsed += rule.next_wait(elapsed, expectation, looks - 1)


def test_expectation_is_the_median_and_ignores_one_odd_build() -> None:
    # Given five recent builds, one of them stuck for an hour
    expectation = Expectation.from_durations([600, 610, 590, 3600, 605])
    # Then the expectation is their median and the spread ignores the outlier
    assert expectation is not None
    assert expectation.seconds == 605
    assert expectation.spread == pytest.approx(max(15.0, (610 - 600) / 2))
    assert Expectation.from_durations([]) is None
    assert Expectation.from_durations([0, -5]) is None


@pytest.mark.parametrize("end", [575, 590, 600, 615, 630])
def test_a_build_ending_near_its_expected_time_is_seen_within_near_seconds(end: float) -> None:
    # Given builds of this branch take 10 minutes
    expectation = Expectation.from_durations([600, 600, 600])
    # When one ends within the window around that
    looks, delay = looks_until(end, 15, expectation)
    # Then the look that sees it comes at most `near` (20 s) later, in few looks
    assert delay <= POLLING.near
    assert looks <= 8


def test_no_history_backs_off_to_the_cap() -> None:
    # Given nothing is known about the branch
    waits = [POLLING.next_wait(100, None, n) for n in range(12)]
    # Then the waits grow and never exceed the cap, which bounds the delay
    assert waits == sorted(waits)
    assert max(waits) == POLLING.backoff.cap
    _, delay = looks_until(1234, 0, None)
    assert delay <= POLLING.backoff.cap


def test_early_failure_is_seen_within_the_far_bound() -> None:
    expectation = Expectation.from_durations([3600] * 3)
    assert expectation is not None
    far = max(POLLING.min_far, POLLING.far_fraction * expectation.seconds)
    for end in (30, 400, 1700, 2900):
        _, delay = looks_until(end, 10, expectation)
        assert delay <= far


def test_an_overrun_backs_off_from_near_to_the_cap() -> None:
    expectation = Expectation.from_durations([600] * 3)
    assert expectation is not None
    _, closes = expectation.window
    assert POLLING.next_wait(closes + 1, expectation, 5) == POLLING.near
    assert POLLING.next_wait(closes + 1000, expectation, 5) == POLLING.backoff.cap
    _, delay = looks_until(closes + 500, 10, expectation)
    assert delay <= POLLING.backoff.cap


def test_queued_builds_are_looked_at_with_the_backoff() -> None:
    expectation = Expectation.from_durations([600] * 3)
    assert POLLING.next_wait(None, expectation, 0) == POLLING.backoff.first


def test_push_looks_much_less_often_than_polling() -> None:
    expectation = Expectation.from_durations([3600] * 3)
    polling, _ = looks_until(3610, 10, expectation)
    push, _ = looks_until(3610, 10, expectation, push=True)
    assert push < polling
    assert PUSH.near > POLLING.near


def test_the_polling_backoff_can_be_configured() -> None:
    custom = policy(False, WaitSchedule(first=5, factor=2, cap=40))
    assert [custom.next_wait(1, None, n) for n in range(5)] == [5, 10, 20, 40, 40]
    assert custom.near == POLLING.near
