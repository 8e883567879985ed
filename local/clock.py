"""One virtual clock for a local run: Travis, CodePipeline, Step Functions and the worker agree.

Local runs compress time: a 10-minute Travis build may take six real seconds. Everything that reads
the time in such a run (the Travis fake's build timeline, the job emulator's timeouts, the state
machine's waits, the worker's own `worker.clock`) reads this clock, so "the build finished at
12:04:10" means the same instant to all of them.

`scale` is real seconds per virtual second: 1.0 is real time, 0.01 runs a hundred times faster.
Virtual time starts at the real wall-clock time when the clock is made, so timestamps look real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class VirtualClock:
    """Virtual epoch time that runs `1 / scale` times faster than real time."""

    def __init__(self, scale: float = 1.0, *, start: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be > 0 (real seconds per virtual second)")
        self.scale = scale
        self._real_start = time.monotonic()
        self._virtual_start = time.time() if start is None else start
        self._skipped = 0.0
        self._held_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def now(self) -> float:
        """Virtual epoch seconds (what `time.time()` would say in the compressed world)."""
        return self._virtual_start + self.monotonic()

    def monotonic(self) -> float:
        """Virtual seconds since an arbitrary origin, never going back."""
        held_at = self._held_at
        if held_at is not None:
            return held_at
        return self._running()

    def _running(self) -> float:
        return (time.monotonic() - self._real_start) / self.scale + self._skipped

    @contextmanager
    def held(self) -> Iterator[None]:
        """Stop virtual time while the block runs; it goes on from the same instant afterwards.

        For arrangements that must happen "at once" in virtual time however slow the machine is
        (50 POSTs within one of Travis's 30 s windows is 0.3 real seconds at scale 0.01).
        """
        with self._lock:
            if self._held_at is not None:
                raise RuntimeError("the clock is already held")
            self._held_at = self._running()
        try:
            yield
        finally:
            with self._lock:
                held_at, self._held_at = self._held_at, None
                self._skipped += held_at - self._running()

    def advance(self, virtual_seconds: float) -> None:
        """Jump forward (never back): everything reading the clock sees the time passed."""
        if virtual_seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._skipped += virtual_seconds

    def real_seconds(self, virtual_seconds: float) -> float:
        """How long `virtual_seconds` last in real time."""
        return max(0.0, virtual_seconds) * self.scale

    def sleep(self, virtual_seconds: float) -> None:
        """Sleep for `virtual_seconds` of virtual time (woken early by `release`)."""
        self._stop.wait(self.real_seconds(virtual_seconds))

    def release(self) -> None:
        """Wake every sleeper at once (at the end of a run)."""
        self._stop.set()


REAL_TIME = VirtualClock(1.0)
