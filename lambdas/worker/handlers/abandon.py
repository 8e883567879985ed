"""Abandon handler: CodePipeline's ABANDONED/CANCELED action events (see worker.abandon)."""

from __future__ import annotations

from typing import Any

from worker.abandon import handle_action_event
from worker.handlers.entry import event_handler
from worker.settings import Settings
from worker.wake import WatchRegistry


@event_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()

    def cancel(job_id: str, build_id: str, endpoint: str, slug: str) -> str:
        from worker.providers.travis.provider import cancel_build_of

        return cancel_build_of(settings, job_id, build_id, endpoint, slug)

    return handle_action_event(
        event, settings.action_types, WatchRegistry(settings.watch_table), cancel
    )
