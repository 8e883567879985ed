"""Publish step: the build link (phase 1) or progress (a hand-over in phase 2) to the console."""

from __future__ import annotations

from typing import Any

from worker.codepipeline import CodePipelineJobs
from worker.handlers.entry import provider_for, step_handler
from worker.report import publish_link
from worker.settings import Settings
from worker.step_event import StepEvent


@step_handler
def handler(step: StepEvent, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    return publish_link(step, provider_for(step, settings), CodePipelineJobs(), settings)
