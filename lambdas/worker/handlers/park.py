"""Park step: leave the wake-up token of a waiting execution (see worker.park)."""

from __future__ import annotations

import os
from typing import Any

from worker.handlers.entry import step_handler
from worker.park import park
from worker.step_event import StepEvent
from worker.wake import WatchRegistry


@step_handler
def handler(step: StepEvent, context: Any) -> dict[str, Any]:
    return park(step, WatchRegistry(os.environ["WATCH_TABLE"]))
