"""The emulator's sense of time: one clock for every timeout, delay and timestamp it produces.

A local run compresses time with ``local.clock.VirtualClock``; the emulator must then count
redelivery windows, action timeouts, the pollable delay and its own latency in *virtual* seconds,
and stamp events and ListActionExecutions with virtual wall-clock times. Accepted clocks:

* a ``VirtualClock`` (or anything with ``monotonic()``, ``now()`` and ``sleep(seconds)``);
* a bound ``vc.monotonic`` or ``vc.now`` of such a clock (its owner's ``sleep`` is used);
* any other ``() -> float`` (``time.monotonic`` by default, or a hand-moved test clock): sleeping
  then waits until that clock has advanced, so a delay is always in the clock's own seconds.

Wall-clock times are the clock's reading plus a fixed offset taken once at construction (for a
VirtualClock: ``now() - monotonic()``, which is constant by its definition).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

# A hand-moved clock may never advance on its own: poll it at this real interval while sleeping.
_POLL_REAL_SECONDS = 0.002


@runtime_checkable
class VirtualClockLike(Protocol):
    """What the emulator uses of ``local.clock.VirtualClock``."""

    def monotonic(self) -> float: ...

    def now(self) -> float: ...

    def sleep(self, virtual_seconds: float) -> None: ...


ClockSource = Callable[[], float] | VirtualClockLike


class Timing:
    """Reads one clock: ``now()`` for durations, ``epoch(t)`` for timestamps, ``sleep(d)``."""

    def __init__(self, clock: ClockSource = time.monotonic) -> None:
        owner = getattr(clock, "__self__", None)
        if isinstance(clock, VirtualClockLike) and not callable(clock):
            self.now: Callable[[], float] = clock.monotonic
            self._sleep: Callable[[float], None] = clock.sleep
            self._offset = clock.now() - clock.monotonic()
        elif isinstance(owner, VirtualClockLike) and callable(clock):
            self.now = clock
            self._sleep = owner.sleep
            self._offset = owner.now() - clock()
        elif callable(clock):
            self.now = clock
            self._sleep = time.sleep if clock is time.monotonic else self._sleep_by_polling
            self._offset = time.time() - clock()
        else:
            raise TypeError(f"not a clock: {clock!r}")

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    def _sleep_by_polling(self, seconds: float) -> None:
        deadline = self.now() + seconds
        while self.now() < deadline:
            time.sleep(_POLL_REAL_SECONDS)

    def epoch(self, reading: float | None = None) -> float:
        """Epoch seconds of a clock reading (default: now) in the clock's world."""
        return (self.now() if reading is None else reading) + self._offset

    def datetime(self, reading: float | None = None) -> datetime:
        return datetime.fromtimestamp(self.epoch(reading), UTC)

    def event_time(self, reading: float | None = None) -> str:
        # EventBridge "time": ISO 8601 UTC to the second (user guide's sample events).
        return self.datetime(reading).strftime("%Y-%m-%dT%H:%M:%SZ")
