"""The poller: hand every job CodePipeline gives us to its own state machine execution.

Runs on a schedule (the sweeper, which also picks up continuation jobs) and on CodePipeline's
"action started" events (low latency). It claims nothing itself: the execution claims the job, so a
poller that dies half-way leaves unclaimed jobs that CodePipeline simply hands out again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.codepipeline import ActionTypeUnknown, CodePipelineJobs
from worker.failures import ServiceUnavailable
from worker.job import ActionType, execution_name, sanitize_job
from worker.observability import logger, metrics
from worker.settings import RegisteredActionType

MAX_ATTEMPTS_PER_HAND_OUT = 3
_ENDED_WITHOUT_RESULT = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


@dataclass
class PollSummary:
    """What one poller run did (returned by the Lambda, so visible in tests and logs)."""

    jobs_received: int = 0
    executions_started: int = 0
    already_handled: int = 0
    start_failures: int = 0
    poll_failures: int = 0
    unknown_action_types: int = 0
    polls: int = 0
    action_types: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ExecutionStarter:
    """Starts one execution per job hand-out, idempotently by name."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._state_machine_arn = state_machine_arn

    def start(self, job_id: str, nonce: str, execution_input: dict[str, Any]) -> bool:
        """True when a new execution started; False when this hand-out is already handled."""
        body = json.dumps(execution_input, separators=(",", ":"))
        for attempt in range(1, MAX_ATTEMPTS_PER_HAND_OUT + 1):
            name = execution_name(job_id, nonce, attempt)
            try:
                self._client.start_execution(
                    stateMachineArn=self._state_machine_arn, name=name, input=body
                )
                return True
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                    raise
            # Same hand-out seen again (duplicate event, concurrent poller). Only if the earlier
            # execution ended before it could claim the job does this hand-out need another one.
            if self._status(name) not in _ENDED_WITHOUT_RESULT:
                return False
        return False

    def _status(self, name: str) -> str:
        arn = self._state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        return str(self._client.describe_execution(executionArn=arn).get("status", ""))


def action_types_to_poll(
    event: dict[str, Any], registered: Iterable[RegisteredActionType]
) -> list[RegisteredActionType]:
    """All our action types on a schedule; on an action event, those of the event's type.

    The event's version is not compared: it arrives as a number or a string.
    """
    registered = list(registered)
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else None
    action = (detail or {}).get("type") if detail else None
    if not isinstance(action, dict):
        return registered
    return [
        r
        for r in registered
        if r.action_type.category == action.get("category")
        and r.action_type.provider == action.get("provider")
        and action.get("owner", "Custom") == "Custom"
    ]


def poll_and_dispatch(
    registered: Iterable[RegisteredActionType],
    jobs: CodePipelineJobs,
    starter: ExecutionStarter,
    *,
    batch_size: int,
    time_left: Callable[[], float],
    patience: Sequence[float] = (),
    sleep: Callable[[float], None] | None = None,
) -> PollSummary:
    """Poll each action type until it has no job for us or the time budget is spent.

    `patience` are the pauses before polling again when an action type had no job at all: an
    "action started" event can arrive before CodePipeline makes the job pollable.
    """
    summary = PollSummary()
    for action in registered:
        summary.action_types.append(_label(action.action_type))
        pauses = list(patience)
        received = 0
        while time_left() > 0:
            summary.polls += 1
            try:
                handed_out = jobs.poll(action.action_type, batch_size)
            except ActionTypeUnknown:
                # Deleted (or never created) in CodePipeline: serve the other types, say so.
                summary.unknown_action_types += 1
                metrics.add_metric(name="ActionTypesUnknown", unit="Count", value=1)
                logger.error(
                    "CodePipeline does not know this action type (deleted?); skipping it",
                    extra={"action_type": summary.action_types[-1]},
                )
                break
            except ServiceUnavailable:
                # Another action type may still be served; this one waits for the next tick.
                summary.poll_failures += 1
                logger.warning(
                    "PollForJobs failed", extra={"action_type": summary.action_types[-1]}
                )
                break
            if not handed_out:
                if received or not pauses or pauses[0] >= time_left():
                    break
                (sleep or time.sleep)(pauses.pop(0))
                continue
            received += len(handed_out)
            summary.jobs_received += len(handed_out)
            for job in handed_out:
                _dispatch(job, action, starter, summary)
    metrics.add_metric(name="JobsReceived", unit="Count", value=summary.jobs_received)
    metrics.add_metric(name="ExecutionsStarted", unit="Count", value=summary.executions_started)
    return summary


def _dispatch(
    job: dict[str, Any],
    action: RegisteredActionType,
    starter: ExecutionStarter,
    summary: PollSummary,
) -> None:
    try:
        execution_input = sanitize_job(job, action.secret_properties)
    except (KeyError, TypeError, ValueError):
        # A job we cannot read must not block the rest of the batch; never log its content.
        summary.start_failures += 1
        logger.error(
            "Could not read a job handed out by CodePipeline",
            extra={"job": str(job.get("id", "?"))[:64]},
        )
        return
    logger.thread_safe_append_keys(job_id=execution_input.job_id)
    try:
        started = starter.start(
            execution_input.job_id, execution_input.nonce, execution_input.as_dict()
        )
    except (ClientError, BotoCoreError, ServiceUnavailable) as error:
        # Unclaimed, so nothing is lost: CodePipeline hands the job out again.
        summary.start_failures += 1
        logger.warning(
            "Could not start an execution; the job will be handed out again",
            extra={"error": type(error).__name__},
        )
        return
    finally:
        logger.thread_safe_remove_keys(["job_id"])
    if started:
        summary.executions_started += 1
        logger.info(
            "Started execution",
            extra={
                "job": execution_input.job_id,
                "continuation": execution_input.continuation is not None,
            },
        )
    else:
        summary.already_handled += 1
        logger.info("Hand-out already handled", extra={"job": execution_input.job_id})


def _label(action_type: ActionType) -> str:
    return (
        f"{action_type.owner}/{action_type.category}/{action_type.provider}/{action_type.version}"
    )
