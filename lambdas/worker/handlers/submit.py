"""Submit step: request the Travis build, at most once per job (see worker.submit)."""

from __future__ import annotations

from typing import Any

from worker.codepipeline import CodePipelineJobs
from worker.handlers.entry import provider_for, step_handler
from worker.settings import Settings
from worker.step_event import StepEvent
from worker.submit import submit_build
from worker.wake import WatchRegistry


@step_handler
def handler(step: StepEvent, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    return submit_build(
        step, provider_for(step, settings), WatchRegistry(settings.watch_table), CodePipelineJobs()
    )
