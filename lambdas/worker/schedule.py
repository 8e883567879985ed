"""When to look at a running build again: sleep through what is certainly still running, look
often where it may end.

Travis tells how long the branch's recent builds took (wall time from `started_at` to
`finished_at`). From that the schedule draws a *window* around the expected end and looks every
`near` seconds inside it; before it, it sleeps in a few long parks; after it (the build runs
late), it backs off from `near` to `cap`. Without history it backs off as a plain poller would.

Bounds between "Travis finished" and the look that sees it (add one look and one report, about a
second in AWS):
  - the build ends inside the window:          at most `near` seconds;
  - it ends later than the window (overrun):    at most max(near, min(cap, overrun / 2));
  - it ends before the window (early failure): at most max(min_far, far_fraction × expected);
  - no history:                                at most `cap` (the backoff's cap).
A hand-over to a fresh continuation job (the hold limit, an hour) is a stretch without looks; a
polling watch hands over as it enters the window (worker.watch), so none falls inside it unless
the window is longer than the limit.
With push (a Travis webhook wakes the watch), these are the fallback for a webhook that never
comes: Travis never retries a webhook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.settings import WaitSchedule

MIN_SPREAD = 15.0  # seconds: even identical past builds do not end to the second
MIN_MARGIN = 30.0  # the window opens at least this long before the expected end


@dataclass(frozen=True)
class Expectation:
    """How long builds of this branch take, from Travis's recent history (wall seconds)."""

    seconds: float
    spread: float
    samples: int

    @classmethod
    def from_durations(cls, durations: Sequence[float]) -> Expectation | None:
        """The expected duration and its spread; None without a usable sample."""
        import statistics  # only where an expectation is made (cold-start cost)

        usable = sorted(d for d in durations if d > 0)
        if not usable:
            return None
        # Drop the extremes once there are enough samples: one odd build must not widen it all.
        core = usable[1:-1] if len(usable) >= 5 else usable
        spread = (core[-1] - core[0]) / 2
        return cls(
            seconds=float(statistics.median(usable)),
            spread=max(MIN_SPREAD, spread),
            samples=len(usable),
        )

    @property
    def margin(self) -> float:
        return max(MIN_MARGIN, self.spread)

    @property
    def window(self) -> tuple[float, float]:
        """Elapsed seconds between which the build may end."""
        return max(0.0, self.seconds - self.margin), self.seconds + self.margin


@dataclass(frozen=True)
class SchedulePolicy:
    """How eagerly to look; polling and push (webhook) use different ones."""

    near: int  # look this often inside the window
    far_fraction: float  # before the window, park at most this part of the expected duration
    min_far: int  # ... but never less than this (short builds)
    backoff: WaitSchedule  # without history, and the cap after an overrun

    def next_wait(
        self,
        elapsed: float | None,
        expectation: Expectation | None,
        looks: int,
    ) -> int:
        """Seconds to park before the next look.

        `elapsed`: seconds since the build started (None while it is queued); `looks`: how many
        looks this watch made so far (drives the backoff without history).
        """
        if elapsed is None or expectation is None:
            return self.backoff.seconds(looks)
        opens, closes = expectation.window
        if elapsed < opens:
            far = max(float(self.min_far), self.far_fraction * expectation.seconds)
            return _whole(max(float(self.near), min(opens - elapsed, far)))
        if elapsed <= closes:
            return self.near
        overrun = elapsed - closes
        return _whole(max(float(self.near), min(float(self.backoff.cap), overrun / 2)))


POLLING = SchedulePolicy(
    near=20, far_fraction=0.5, min_far=120, backoff=WaitSchedule(first=15, factor=1.5, cap=120)
)
# With a webhook the end is pushed; looks are only the fallback for a webhook that never comes.
PUSH = SchedulePolicy(
    near=300, far_fraction=1.0, min_far=300, backoff=WaitSchedule(first=60, factor=2.0, cap=600)
)


def policy(push: bool, backoff: WaitSchedule | None = None) -> SchedulePolicy:
    """The schedule for a watch; `backoff` overrides the polling backoff (WATCH_WAIT_SECONDS)."""
    if push:
        return PUSH
    if backoff is None:
        return POLLING
    return SchedulePolicy(
        near=POLLING.near,
        far_fraction=POLLING.far_fraction,
        min_far=POLLING.min_far,
        backoff=backoff,
    )


def _whole(seconds: float) -> int:
    return max(1, int(seconds + 0.5))
