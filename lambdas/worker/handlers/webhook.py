"""Webhook receiver: Travis's build notifications through a function URL (see worker.webhook)."""

from __future__ import annotations

import os
from typing import Any

from worker.handlers.entry import event_handler
from worker.wake import WatchRegistry
from worker.webhook import PublicKeys, handle_webhook


def _read_key(endpoint: str) -> str:
    # Imported here: requests is only needed when a key is not cached yet (cold start cost).
    from worker.providers.travis.client import webhook_public_key

    return webhook_public_key(endpoint)


# Travis's public keys, kept for the container's life (one per endpoint).
_KEYS = PublicKeys(_read_key)


@event_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_webhook(event, WatchRegistry(os.environ["WATCH_TABLE"]), _KEYS)
