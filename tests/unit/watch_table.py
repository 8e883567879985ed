"""The worker's watch table in moto, and a Step Functions that records wake-ups: what the unit
tests of parking, waking, abandoning and webhooks share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.session
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

TABLE = "travis-worker-watches"
_SESSION = botocore.session.get_session()  # created after moto's import: its hooks are in


def moto_client(service: str) -> Any:
    """A client of the active moto world (one session: loading models is the slow part)."""
    return _SESSION.create_client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@contextmanager
def watch_table() -> Iterator[Any]:
    """A moto DynamoDB client with the stack's watch table (key `pk`, on demand)."""
    with mock_aws():
        client = moto_client("dynamodb")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


class RecordingStates:
    """SendTaskSuccess that records what it was sent, or fails with an error code."""

    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.sent: list[dict[str, str]] = []

    def send_task_success(self, **params: str) -> dict[str, Any]:
        if self.error == "unreachable":
            raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com")
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "SendTaskSuccess")
        self.sent.append(params)
        return {}
