"""Poller Lambda: EventBridge (schedule or CodePipeline action event) → one execution per job."""

from __future__ import annotations

from typing import Any

from worker import aws, clock
from worker.clock import parse_time
from worker.codepipeline import CodePipelineJobs
from worker.handlers.entry import event_handler
from worker.observability import logger, metrics
from worker.poller import ExecutionStarter, action_types_to_poll, poll_and_dispatch
from worker.settings import PollerSettings, action_types_from_env

# Stop polling this long before the Lambda timeout, so in-flight StartExecution calls finish.
SAFETY_MARGIN_MS = 10_000
# After an "action started" event (or a hand-over), look again for up to about 30 s if the job is
# not pollable yet, instead of leaving it to the next schedule tick (up to a minute later): a
# STARTED event can precede the job becoming pollable (AWS's own samples poll for up to ~50 s).
EVENT_PATIENCE_SECONDS = (1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0)


@event_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    poller = PollerSettings.from_env()
    trigger = "event" if event.get("detail-type") != "Scheduled Event" else "schedule"
    budget_ms = min(
        poller.time_budget_seconds * 1000, context.get_remaining_time_in_millis() - SAFETY_MARGIN_MS
    )
    deadline_ms = context.get_remaining_time_in_millis() - budget_ms
    summary = poll_and_dispatch(
        action_types_to_poll(event, action_types_from_env()),
        CodePipelineJobs(),
        ExecutionStarter(aws.client("stepfunctions"), poller.state_machine_arn),
        batch_size=poller.batch_size,
        time_left=lambda: (context.get_remaining_time_in_millis() - deadline_ms) / 1000,
        patience=EVENT_PATIENCE_SECONDS if trigger == "event" else (),
    )
    happened = parse_time(event.get("time"))
    if trigger == "event" and summary.executions_started and happened is not None:
        # From CodePipeline's STARTED event to the execution started for its job.
        metrics.add_metric(name="PickupLatency", unit="Seconds", value=clock.now() - happened)
    logger.info("Poll finished", extra={"trigger": trigger, **summary.as_dict()})
    return summary.as_dict()
