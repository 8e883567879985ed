"""What every handler does around its one domain call: deadline, log context, metrics.

Log context is set with Powertools' thread-safe keys (one context per invocation, also when the
local runner runs many invocations in one process): every line of a job says pipeline, pipeline
execution, stage, action, job id, execution name and, once known, build id. Events are never
logged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from worker.failures import ConfigurationInvalid
from worker.observability import logger, metrics
from worker.retry import end_step, start_step
from worker.settings import Settings
from worker.step_event import StepEvent

if TYPE_CHECKING:
    from worker.providers import BuildProvider

Handler = Callable[[dict[str, Any], Any], Any]
StepFunction = Callable[[StepEvent, Any], Any]

_warm: set[str] = set()


def step_handler(step_function: StepFunction) -> Handler:
    """A state machine step: parse the step event, set the job's log context, keep the
    deadline, flush metrics."""

    @functools.wraps(step_function)
    def handler(event: dict[str, Any], context: Any) -> Any:
        start_step(context.get_remaining_time_in_millis() / 1000)
        _invocation_keys(context)
        try:
            step = StepEvent.parse(event)
            job = step.job
            keys: dict[str, Any] = {
                "job_id": job.job_id,
                "correlation_id": job.job_id,
                "execution": step.execution,
                **job.pipeline.log_keys(),
            }
            build = (job.continuation or {}).get("build_id") or (
                (step.section("resolution").get("build") or {}).get("buildId")
            )
            if build:
                keys["build_id"] = str(build)
            logger.thread_safe_append_keys(**keys)
            return step_function(step, context)
        finally:
            end_step()
            logger.thread_safe_clear_keys()

    return metrics.log_metrics(handler)


def event_handler(function: Handler) -> Handler:
    """A Lambda behind EventBridge or a function URL: log context and metrics only."""

    @functools.wraps(function)
    def handler(event: dict[str, Any], context: Any) -> Any:
        _invocation_keys(context)
        try:
            return function(event, context)
        finally:
            logger.thread_safe_clear_keys()

    return metrics.log_metrics(handler)


def provider_for(step: StepEvent, settings: Settings) -> BuildProvider:
    """The provider serving the job's action type (imported only by steps that call it)."""
    from worker.providers import provider_named

    registered = settings.registered(step.job.action_type)
    if registered is None:
        action = step.job.action_type
        raise ConfigurationInvalid(
            f"This worker does not serve the action type {action.category}/{action.provider}/"
            f"{action.version}."
        )
    return provider_named(registered.provider, settings)


def _invocation_keys(context: Any) -> None:
    name = str(getattr(context, "function_name", ""))
    logger.thread_safe_append_keys(
        function_name=name,
        function_request_id=str(getattr(context, "aws_request_id", "")),
        cold_start=name not in _warm,
    )
    _warm.add(name)
