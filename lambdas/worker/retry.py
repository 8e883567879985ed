"""The retry policy for calls to third-party services, in one place.

Inside a step we retry briefly (seconds); longer outages are left to the state machine's Retry,
which re-runs the whole (idempotent) step minutes later without holding a Lambda open.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from worker import clock

# Kept back from Lambda's timeout so a step can still raise its own, classified failure.
STEP_MARGIN_SECONDS = 10.0
# One HTTP attempt at most: connect (5 s) + read (20 s) timeouts of the Travis client.
ATTEMPT_SECONDS = 25.0

_step = threading.local()  # one invocation per thread (Lambda: one; the local runner: many)


def start_step(remaining_seconds: float) -> None:
    """Remember when this invocation must be done: Lambda's remaining time minus a margin."""
    _step.deadline = time.monotonic() + remaining_seconds - STEP_MARGIN_SECONDS


def end_step() -> None:
    _step.deadline = None


def step_time_left() -> float | None:
    """Seconds this step may still spend, None outside a step (tests, tools)."""
    deadline = getattr(_step, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


@dataclass
class RetryBudget:
    """Attempts and waiting time one step may spend on one dependency."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 8.0
    max_retry_after: float = 20.0  # a longer Retry-After is left to the state machine
    total_wait: float = 30.0
    sleep: Callable[[float], None] | None = field(default=None, repr=False)  # tests inject
    waited: float = 0.0

    def backoff(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when the budget is spent."""
        if attempt + 1 >= self.attempts:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            delay = retry_after
        else:
            # Full jitter keeps many workers from retrying in lockstep.
            delay = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        if self.waited + delay > self.total_wait:
            return None
        left = step_time_left()
        if left is not None and delay + ATTEMPT_SECONDS > left:
            return None  # the attempt could not finish before Lambda stops the step
        return delay

    def wait(self, seconds: float) -> None:
        self.waited += seconds
        (self.sleep or clock.sleep)(seconds)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by Travis and is ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
