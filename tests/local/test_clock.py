"""The local virtual clock: compressed time that everything in a local run agrees on."""

from __future__ import annotations

import time

import pytest

from local.catalogue import BANNED_TOKEN, _banned_token
from local.clock import VirtualClock
from local.travis import RepoScript, TravisFake


def test_a_held_clock_stands_still_and_then_goes_on_from_the_same_instant() -> None:
    clock = VirtualClock(1e-3)  # 1,000 virtual seconds per real second
    with clock.held():
        first = clock.now()
        time.sleep(2.0)  # 2,000 virtual seconds, were the clock running
        assert clock.now() == first
    after = clock.now()
    assert first <= after < first + 1000  # it did not jump over the time it was held
    time.sleep(0.01)
    assert clock.now() > after  # and it runs again


def test_a_clock_is_held_by_one_arrangement_at_a_time() -> None:
    clock = VirtualClock(1.0)
    with clock.held(), pytest.raises(RuntimeError, match="already held"), clock.held():
        pass
    with clock.held():  # released after the failed attempt
        pass


def test_the_banned_token_arrangement_holds_however_fast_virtual_time_runs() -> None:
    # 60 POSTs over real HTTP take far longer than Rack::Attack's 30 s window at this scale
    # (30 virtual seconds are 3 real milliseconds); without holding the clock no window ever
    # counts 50 of them and the catalogue's setup fails, as it did on a loaded CI machine
    with TravisFake({"c1/app": RepoScript()}, clock=VirtualClock(1e-4)) as travis:
        _banned_token(travis, "c1/app")
        assert travis.banned(BANNED_TOKEN)
