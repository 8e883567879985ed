"""Watch step: one look at the build and what comes next (see worker.watch)."""

from __future__ import annotations

from typing import Any

from worker.codepipeline import CodePipelineJobs
from worker.handlers.entry import provider_for, step_handler
from worker.settings import Settings
from worker.step_event import StepEvent
from worker.wake import WatchRegistry
from worker.watch import watch_build


@step_handler
def handler(step: StepEvent, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    return watch_build(
        step,
        provider_for(step, settings),
        settings,
        CodePipelineJobs(),
        WatchRegistry(settings.watch_table),
    )
