"""Stop means stop: an abandoned action run cancels its build and reports nothing.

CodePipeline's "Stop and abandon" makes the running action Abandoned and emits an action execution
event with `state: ABANDONED` (CANCELED for actions in notification events), naming pipeline,
pipeline execution, stage and action — no job id (shared/reference/codepipeline-jobs.md). The
handler marks the action run in the watch table and wakes its parked execution at once; steps
that are not parked see the mark before they post a build request or at their next park.

The mark is a cue, not proof: a stage retried after an abandon has the same pipeline execution,
stage and action. Before acting, a step asks ListActionExecutions about its own action execution;
the run is over when that says anything but InProgress.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from worker.codepipeline import CodePipelineJobs
from worker.job import ActionType, PipelineRef
from worker.observability import logger, metrics
from worker.settings import RegisteredActionType
from worker.wake import Signal, WatchRegistry

ENDED_STATES = frozenset({"ABANDONED", "CANCELED"})
RUNNING = "InProgress"


def run_is_over(jobs: CodePipelineJobs, pipeline: PipelineRef) -> bool:
    """True unless CodePipeline shows this job's action execution still InProgress.

    When CodePipeline cannot be asked (throttled, no permission), the mark is trusted.
    """
    status = jobs.action_status(pipeline)
    return status != RUNNING


def handle_action_event(
    event: dict[str, Any],
    registered: Iterable[RegisteredActionType],
    registry: WatchRegistry,
    cancel: Callable[[str, str, str, str], str] | None = None,
) -> dict[str, Any]:
    """Mark the event's action run abandoned and wake its parked execution, if any.

    With no execution parked and a build already published (between the link and the watch's
    claim, when no execution may ever come for the continuation job), cancel it here:
    `cancel(job id, build id, endpoint, slug)`. A watch that is running will cancel it too;
    a second cancel is harmless (Travis answers 202 or 409).
    """
    detail: dict[str, Any] = event["detail"] if isinstance(event.get("detail"), dict) else {}
    state = str(detail.get("state", ""))
    action: dict[str, Any] = detail["type"] if isinstance(detail.get("type"), dict) else {}
    ours = any(
        r.action_type
        == ActionType(
            category=str(action.get("category", "")),
            provider=str(action.get("provider", "")),
            version=str(action.get("version", "")),  # a string in real events, a number in docs
            owner=str(action.get("owner", "")),
        )
        for r in registered
    )
    if state not in ENDED_STATES or not ours:
        return {"marked": False, "woken": False}
    run = PipelineRef(
        name=str(detail.get("pipeline", "")),
        execution_id=str(detail.get("execution-id", "")),
        stage=str(detail.get("stage", "")),
        action=str(detail.get("action", "")),
    )
    logger.thread_safe_append_keys(**run.log_keys())
    item = registry.mark_abandoned(run.run_key)
    token = item.get("token", {}).get("S")
    woken = registry.wake(token, Signal.ABANDONED) if token else False
    canceled = None
    build = item.get("buildId", {}).get("S")
    if not woken and build and cancel is not None:
        canceled = cancel(
            item.get("jobId", {}).get("S", ""),
            build,
            item.get("endpoint", {}).get("S", ""),
            item.get("slug", {}).get("S", ""),
        )
    metrics.add_metric(name="RunsAbandoned", unit="Count", value=1)
    logger.info(
        "Action run abandoned",
        extra={"event_state": state, "woken": woken, "build_id": build, "canceled": canceled},
    )
    return {"marked": True, "woken": woken, "canceled": canceled}
