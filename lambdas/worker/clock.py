"""The worker's wall clock, in one place.

Everything in the worker that asks "what time is it" or "wait this long" asks this module, so a
local run can put the whole worker on the same compressed virtual clock as the Travis fake and the
CodePipeline emulator (`local.clock.VirtualClock`), and unit tests can move time by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

_now: Callable[[], float] = time.time
_sleep: Callable[[float], None] = time.sleep


def now() -> float:
    """Epoch seconds."""
    return _now()


def sleep(seconds: float) -> None:
    """Wait `seconds` (in the clock's seconds)."""
    _sleep(seconds)


def use(now_source: Callable[[], float], sleeper: Callable[[float], None]) -> None:
    """Replace the clock (local runs and tests); `reset` restores the real one."""
    global _now, _sleep
    _now, _sleep = now_source, sleeper


def reset() -> None:
    use(time.time, time.sleep)


def parse_time(value: Any) -> float | None:
    """An ISO 8601 timestamp (`2026-12-01T10:00:00Z`, with or without fractions) as epoch
    seconds; None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
