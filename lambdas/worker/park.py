"""Parking an execution until its next look, or until someone wakes it (see worker.wake).

The state machine runs this step as a `.waitForTaskToken` task whose timeout is the next look:
the step leaves the token in the watch table and returns; the task then waits. If a signal is
already waiting (the run was abandoned, or Travis's webhook came while no execution was parked),
the step wakes its own task at once.
"""

from __future__ import annotations

from typing import Any

from worker.continuation import Continuation
from worker.observability import logger
from worker.step_event import StepEvent
from worker.wake import BuildKey, WatchRegistry


def park(step: StepEvent, registry: WatchRegistry) -> dict[str, Any]:
    """Leave this execution's wake-up token for its action run."""
    if not step.token:
        raise ValueError("the park step needs the task token ($$.Task.Token)")
    build = _build(step)
    looked = step.section("watch").get("lookedAt") or step.section("resolution").get("lookedAt")
    signal = registry.park(
        step.job.pipeline.run_key,
        step.token,
        execution=step.execution,
        job_id=step.job.job_id,
        build=build,
        looked_at=float(looked or 0.0),
    )
    if signal is not None:
        woken = registry.wake(step.token, signal)
        logger.info("Woken at once", extra={"signal": signal.value, "woken": woken})
    return {"parked": True, "signal": signal.value if signal else None}


def _build(step: StepEvent) -> BuildKey | None:
    if step.job.continuation:
        continuation = Continuation.from_dict(step.job.continuation)
        return BuildKey(continuation.build_id, continuation.endpoint)
    return None  # phase 1: the build is not known yet (webhooks matter only once it is)
