"""Poller Lambda: EventBridge (schedule or CodePipeline action event) → one execution per job."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from worker import aws
from worker.codepipeline import CodePipelineJobs
from worker.observability import logger, metrics, tracer
from worker.poller import ExecutionStarter, action_types_to_poll, poll_and_dispatch
from worker.settings import PollerSettings, Settings

# Stop polling this long before the Lambda timeout, so in-flight StartExecution calls finish.
SAFETY_MARGIN_MS = 10_000
# After an "action started" event, look again a few times (seconds) if the job is not pollable
# yet, instead of leaving it to the next schedule tick (up to a minute later).
EVENT_PATIENCE_SECONDS = (1.0, 2.0, 4.0)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    poller = PollerSettings.from_env()
    trigger = "event" if event.get("detail-type") != "Scheduled Event" else "schedule"
    budget_ms = min(
        poller.time_budget_seconds * 1000, context.get_remaining_time_in_millis() - SAFETY_MARGIN_MS
    )
    deadline_ms = context.get_remaining_time_in_millis() - budget_ms
    summary = poll_and_dispatch(
        action_types_to_poll(event, settings.action_types),
        CodePipelineJobs(),
        ExecutionStarter(aws.client("stepfunctions"), poller.state_machine_arn),
        batch_size=poller.batch_size,
        time_left=lambda: (context.get_remaining_time_in_millis() - deadline_ms) / 1000,
        patience=EVENT_PATIENCE_SECONDS if trigger == "event" else (),
    )
    logger.info("Poll finished", extra={"trigger": trigger, **summary.as_dict()})
    return summary.as_dict()
