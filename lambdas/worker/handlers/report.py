"""Report step: the final outcome of a finished build (see worker.report)."""

from __future__ import annotations

from typing import Any

from worker.codepipeline import CodePipelineJobs
from worker.handlers.entry import provider_for, step_handler
from worker.report import report_outcome
from worker.settings import Settings
from worker.step_event import StepEvent


@step_handler
def handler(step: StepEvent, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    return report_outcome(step, provider_for(step, settings), CodePipelineJobs())
