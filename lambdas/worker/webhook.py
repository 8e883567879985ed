"""Push completion: Travis's webhook wakes the watch of the build it names.

Travis (travis-tasks) POSTs a form with one field, `payload` (the build as JSON), signed in the
`Signature` header with the installation's key. The receiver — a Lambda function URL — accepts
only builds an execution is watching, checks the signature with the public key of the endpoint
that build lives on (legacy `GET /config`, cached), and wakes the parked execution. That is all a
webhook can do: the woken step reads the build from `GET /build/{id}`, so a forged or replayed
webhook costs at most one extra look at Travis, never a result. Travis never retries a webhook;
the watch schedule stays the fallback.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from worker import signature
from worker.observability import logger, metrics
from worker.wake import Signal, WatchRegistry

KEY_CACHE_SECONDS = 3600.0
KEY_REFRESH_SECONDS = 60.0  # a failed check re-reads the key (rotation) at most this often
MAX_BODY_BYTES = 1_000_000

PublicKeyReader = Callable[[str], str]  # endpoint -> PEM


@dataclass
class PublicKeys:
    """Travis public keys by endpoint, cached for the Lambda container's life."""

    read: PublicKeyReader
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, tuple[tuple[int, int], float]] = field(default_factory=dict)

    def key(self, endpoint: str, *, fresh: bool = False) -> tuple[int, int] | None:
        cached = self._keys.get(endpoint)
        now = self.clock()
        if cached is not None:
            age = now - cached[1]
            if age < KEY_CACHE_SECONDS and not (fresh and age >= KEY_REFRESH_SECONDS):
                return cached[0]
        try:
            key = signature.public_key(self.read(endpoint))
        except Exception as error:
            logger.warning(
                "Could not read Travis's public key", extra={"error": type(error).__name__}
            )
            return cached[0] if cached else None
        self._keys[endpoint] = (key, now)
        return key


def handle_webhook(
    event: dict[str, Any], registry: WatchRegistry, keys: PublicKeys
) -> dict[str, Any]:
    """The function URL's answer (payload format 2.0)."""
    if _method(event) != "POST":
        return _answer(405, "POST a Travis CI webhook here")
    body = _body(event)
    if body is None:
        return _answer(413, "too large")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    raw_payload = (fields.get("payload") or [""])[0]
    header = _header(event, "signature")
    try:
        payload = json.loads(raw_payload)
        build_id = str(payload["id"])
    except (ValueError, KeyError, TypeError):
        return _answer(400, "expected a Travis CI webhook (form field 'payload')")
    watched = registry.build(build_id)
    if watched is None:
        metrics.add_metric(name="WebhooksIgnored", unit="Count", value=1)
        return _answer(202, "not watched")
    run_key, endpoint = watched
    if not _signed(raw_payload.encode(), header, endpoint, keys):
        metrics.add_metric(name="WebhooksRejected", unit="Count", value=1)
        logger.warning("Rejected a webhook with a bad signature", extra={"build_id": build_id})
        return _answer(401, "bad signature")
    token = registry.mark_webhook(run_key)
    woken = registry.wake(token, Signal.WEBHOOK) if token else False
    metrics.add_metric(name="WebhooksAccepted", unit="Count", value=1)
    logger.info(
        "Webhook woke the watch",
        extra={"build_id": build_id, "state": payload.get("state"), "woken": woken},
    )
    return _answer(202, "woken" if woken else "noted")


def _signed(payload: bytes, header: str, endpoint: str, keys: PublicKeys) -> bool:
    if not header or not endpoint:
        return False
    key = keys.key(endpoint)
    if key is not None and signature.verify(payload, header, key):
        return True
    fresh = keys.key(endpoint, fresh=True)  # the installation may have rotated its key
    return fresh is not None and fresh != key and signature.verify(payload, header, fresh)


def _method(event: dict[str, Any]) -> str:
    http = (event.get("requestContext") or {}).get("http") or {}
    return str(http.get("method") or event.get("httpMethod") or "").upper()


def _header(event: dict[str, Any], name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if str(key).lower() == name:
            return str(value)
    return ""


def _body(event: dict[str, Any]) -> bytes | None:
    raw = event.get("body") or ""
    data = base64.b64decode(raw) if event.get("isBase64Encoded") else str(raw).encode()
    return None if len(data) > MAX_BODY_BYTES else data


def _answer(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": message}),
    }
