"""Abandon handler: CodePipeline's ABANDONED/CANCELED action events (see worker.abandon)."""

from __future__ import annotations

import os
from typing import Any

from worker.abandon import handle_action_event
from worker.handlers.entry import event_handler
from worker.settings import action_types_from_env
from worker.wake import WatchRegistry


@event_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_action_event(
        event, action_types_from_env(), WatchRegistry(os.environ["WATCH_TABLE"])
    )
