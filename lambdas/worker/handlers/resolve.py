"""Resolve step: wait for Travis to create the build (see worker.resolve)."""

from __future__ import annotations

from typing import Any

from worker.codepipeline import CodePipelineJobs
from worker.handlers.entry import provider_for, step_handler
from worker.resolve import resolve_build
from worker.settings import Settings
from worker.step_event import StepEvent


@step_handler
def handler(step: StepEvent, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    return resolve_build(step, provider_for(step, settings), settings, CodePipelineJobs())
