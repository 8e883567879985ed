"""boto3 clients, created once per Lambda container and reused across invocations.

Clients are keyed by the endpoint override in the environment (`AWS_ENDPOINT_URL_<SERVICE>`), so
local runs that point the worker at an emulator get a client for that emulator.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
from botocore.config import Config

# CodePipeline publishes no rate limits for the job APIs: retry throttling with jittered
# exponential backoff before a step gives up and lets the state machine retry it. (Adaptive mode's
# learned send rate would help little in short-lived Lambda containers and adds client-side delay.)
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=20,
)


def client(service: str) -> Any:
    """A cached boto3 client for `service` honouring endpoint overrides in the environment."""
    override = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}", "")
    return _cached_client(service, os.environ.get("AWS_REGION", ""), override)


@functools.lru_cache(maxsize=16)
def _cached_client(service: str, region: str, endpoint_override: str) -> Any:
    return boto3.client(
        service,
        region_name=region or None,
        endpoint_url=endpoint_override or None,
        config=RETRY_CONFIG,
    )
