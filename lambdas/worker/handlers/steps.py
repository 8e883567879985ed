"""State machine step Lambdas. Each parses the step event and calls one domain function.

The payload is `{"state": $, "execution": $$.Execution.Name}`; the job id is the correlation id of
every log line. Events are never logged: the state is safe, but the habit keeps it that way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from worker.build import resolve_build, submit_build, watch_build
from worker.claim import claim as claim_job
from worker.codepipeline import CodePipelineJobs
from worker.failures import ConfigurationInvalid
from worker.observability import logger, metrics, tracer
from worker.providers import BuildProvider, provider_named
from worker.report import publish_link, report_failure, report_outcome
from worker.retry import end_step, start_step
from worker.settings import Settings
from worker.step_event import StepEvent

JOB_ID_PATH = "state.jobId"
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def step_handler(handler: Handler) -> Handler:
    """The same setup on every step: its deadline, then Powertools (job id as correlation id,
    metrics, tracing).

    `log_event=False` is explicit so that POWERTOOLS_LOGGER_LOG_EVENT cannot turn event logging on.
    """

    @functools.wraps(handler)
    def within_deadline(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        start_step(context.get_remaining_time_in_millis() / 1000)
        try:
            return handler(event, context)
        finally:
            end_step()

    traced = tracer.capture_lambda_handler(within_deadline, capture_response=False)
    with_metrics = metrics.log_metrics(traced)
    return logger.inject_lambda_context(
        with_metrics, log_event=False, correlation_id_path=JOB_ID_PATH
    )


def _provider(step: StepEvent, settings: Settings) -> BuildProvider:
    registered = settings.registered(step.job.action_type)
    if registered is None:
        action = step.job.action_type
        raise ConfigurationInvalid(
            f"This worker does not serve the action type {action.category}/{action.provider}/"
            f"{action.version}."
        )
    return provider_named(registered.provider, settings)


@step_handler
def claim(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return claim_job(StepEvent.parse(event).job, CodePipelineJobs())


@step_handler
def submit(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = StepEvent.parse(event)
    return submit_build(step, _provider(step, Settings.from_env()))


@step_handler
def resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = StepEvent.parse(event)
    settings = Settings.from_env()
    return resolve_build(step, _provider(step, settings), settings)


@step_handler
def publish(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = StepEvent.parse(event)
    return publish_link(step, _provider(step, Settings.from_env()), CodePipelineJobs())


@step_handler
def watch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = StepEvent.parse(event)
    settings = Settings.from_env()
    return watch_build(step, _provider(step, settings), settings)


@step_handler
def report(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return report_outcome(StepEvent.parse(event), CodePipelineJobs())


@step_handler
def report_error(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return report_failure(StepEvent.parse(event), CodePipelineJobs())
