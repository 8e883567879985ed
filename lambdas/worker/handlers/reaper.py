"""Reaper: answers the jobs of executions that ended FAILED, TIMED_OUT or ABORTED."""

from __future__ import annotations

from typing import Any

from worker import aws
from worker.codepipeline import CodePipelineJobs
from worker.failures import ConfigurationInvalid
from worker.handlers.entry import event_handler
from worker.job import ExecutionInput
from worker.providers import BuildProvider, provider_named
from worker.reaper import reap
from worker.settings import Settings


@event_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()

    def provider(job: ExecutionInput) -> BuildProvider:
        registered = settings.registered(job.action_type)
        if registered is None:
            raise ConfigurationInvalid("not an action type of this worker")
        return provider_named(registered.provider, settings)

    return reap(event, aws.client("stepfunctions"), CodePipelineJobs(), provider)
