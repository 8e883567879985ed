"""Claim step: acknowledge the job (see worker.claim)."""

from __future__ import annotations

from typing import Any

from worker import aws
from worker.claim import OtherExecutions, claim
from worker.codepipeline import CodePipelineJobs
from worker.handlers.entry import step_handler
from worker.settings import Settings
from worker.step_event import StepEvent


@step_handler
def handler(step: StepEvent, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    others = (
        OtherExecutions(aws.client("stepfunctions"), settings.state_machine_arn)
        if settings.state_machine_arn
        else None
    )
    return claim(
        step.job,
        CodePipelineJobs(),
        execution=step.execution,
        step_retried=step.retries > 0,
        others=others,
    )
