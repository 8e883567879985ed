"""ReportFailure step: the catch-all classified failure (see worker.report)."""

from __future__ import annotations

from typing import Any

from worker.codepipeline import CodePipelineJobs
from worker.handlers.entry import step_handler
from worker.report import report_failure
from worker.step_event import StepEvent


@step_handler
def handler(step: StepEvent, context: Any) -> dict[str, Any]:
    return report_failure(step, CodePipelineJobs())
