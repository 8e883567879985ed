"""Push completion: Travis's signed webhook wakes the parked watch of the build it names."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.unit.watch_table import TABLE, RecordingStates, watch_table
from worker import clock
from worker.wake import BuildKey, WatchRegistry, run_item_key
from worker.webhook import KEY_REFRESH_SECONDS, PublicKeys, handle_webhook

ENDPOINT = "https://api.travis-ci.com"
RUN = "release-pipeline/11111111-2222-3333-4444-555555555555/Test/Travis"
NOW = 1_800_000_000.0
PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ROTATED = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _sign(key: rsa.RSAPrivateKey, payload: str) -> str:
    """As travis-tasks signs: RSA PKCS#1 v1.5 with SHA-1 over the payload, Base64."""
    signed = key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    return base64.b64encode(signed).decode()


def _webhook(
    build_id: int = 900001,
    *,
    key: rsa.RSAPrivateKey | None = PRIVATE,
    method: str = "POST",
    base64_body: bool = False,
    signature: str | None = None,
) -> dict[str, Any]:
    """A function URL event (payload format 2.0) carrying Travis's form POST."""
    payload = json.dumps({"id": build_id, "number": "7", "state": "passed"})
    body = urlencode({"payload": payload})
    headers = {"content-type": "application/x-www-form-urlencoded", "travis-repo-slug": "o/r"}
    if signature is not None:
        headers["Signature"] = signature
    elif key is not None:
        headers["Signature"] = _sign(key, payload)
    return {
        "version": "2.0",
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": "/"}},
        "body": base64.b64encode(body.encode()).decode() if base64_body else body,
        "isBase64Encoded": base64_body,
    }


class KeyServer:
    """Travis's `GET /config` public key per endpoint, counting reads; the clock is by hand."""

    def __init__(self) -> None:
        self.pem = _pem(PRIVATE)
        self.reads: list[str] = []
        self.now = 0.0
        self.fail = False

    def __call__(self, endpoint: str) -> str:
        self.reads.append(endpoint)
        if self.fail:
            raise ConnectionError("Travis unreachable")
        return self.pem


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with watch_table() as client:
        clock.use(lambda: NOW, lambda seconds: None)
        yield client
        clock.reset()


@pytest.fixture
def states() -> RecordingStates:
    return RecordingStates()


@pytest.fixture
def registry(dynamodb: Any, states: RecordingStates) -> WatchRegistry:
    watches = WatchRegistry(TABLE, dynamodb=dynamodb, states=states)
    # an execution watching build 900001 is parked (its last look was before the webhook)
    watches.park(
        RUN,
        "task-token",
        execution="job-1-6b86b273",
        job_id="job-1",
        build=BuildKey("900001", ENDPOINT),
        looked_at=NOW - 30,
    )
    return watches


@pytest.fixture
def server() -> KeyServer:
    return KeyServer()


@pytest.fixture
def keys(server: KeyServer) -> PublicKeys:
    return PublicKeys(server, clock=lambda: server.now)


def _message(answer: dict[str, Any]) -> str:
    return str(json.loads(answer["body"])["message"])


def _webhook_at(dynamodb: Any) -> str | None:
    item = dynamodb.get_item(TableName=TABLE, Key=run_item_key(RUN))["Item"]
    return item.get("webhookAt", {}).get("N")


def test_a_signed_webhook_wakes_the_watch(
    registry: WatchRegistry,
    keys: PublicKeys,
    server: KeyServer,
    states: RecordingStates,
    dynamodb: Any,
) -> None:
    # Given a parked watch of build 900001 on the default endpoint
    # When Travis posts the signed webhook
    answer = handle_webhook(_webhook(), registry, keys)

    # Then the signature was checked with that endpoint's key, and the watch woken
    assert answer["statusCode"] == 202
    assert _message(answer) == "woken"
    assert server.reads == [ENDPOINT]
    assert states.sent == [{"taskToken": "task-token", "output": '{"signal": "webhook"}'}]
    assert _webhook_at(dynamodb) is not None


def test_a_base64_body_is_read(
    registry: WatchRegistry, keys: PublicKeys, states: RecordingStates
) -> None:
    answer = handle_webhook(_webhook(base64_body=True), registry, keys)
    assert (answer["statusCode"], _message(answer)) == (202, "woken")
    assert len(states.sent) == 1


def test_an_unknown_build_is_accepted_and_wakes_nothing(
    registry: WatchRegistry,
    keys: PublicKeys,
    server: KeyServer,
    states: RecordingStates,
    dynamodb: Any,
) -> None:
    # Given a webhook for a build nobody watches (another pipeline's, or an old one)
    answer = handle_webhook(_webhook(900999), registry, keys)

    # Then it is answered 202 without reading a key or touching any run
    assert (answer["statusCode"], _message(answer)) == (202, "not watched")
    assert server.reads == []
    assert states.sent == []
    assert _webhook_at(dynamodb) is None


@pytest.mark.parametrize(
    "signature",
    [None, "", "not base64!", base64.b64encode(b"x" * 256).decode()],
    ids=["other-key", "empty", "garbage", "wrong-bytes"],
)
def test_a_bad_signature_is_refused_and_wakes_nothing(
    registry: WatchRegistry,
    keys: PublicKeys,
    states: RecordingStates,
    dynamodb: Any,
    signature: str | None,
) -> None:
    event = _webhook(key=ROTATED) if signature is None else _webhook(signature=signature)

    answer = handle_webhook(event, registry, keys)

    assert (answer["statusCode"], _message(answer)) == (401, "bad signature")
    assert states.sent == []
    assert _webhook_at(dynamodb) is None


def test_a_rotated_key_is_read_again(
    registry: WatchRegistry, keys: PublicKeys, server: KeyServer, states: RecordingStates
) -> None:
    # Given the key was cached by an earlier webhook
    assert handle_webhook(_webhook(), registry, keys)["statusCode"] == 202
    assert server.reads == [ENDPOINT]

    # When the installation rotates its key, shortly after: the re-read is rate limited
    server.pem = _pem(ROTATED)
    server.now = KEY_REFRESH_SECONDS - 1
    assert handle_webhook(_webhook(key=ROTATED), registry, keys)["statusCode"] == 401
    assert server.reads == [ENDPOINT]

    # Then a webhook signed with the new key, once the refresh interval passed, re-reads it
    server.now = KEY_REFRESH_SECONDS + 1
    answer = handle_webhook(_webhook(key=ROTATED), registry, keys)
    assert answer["statusCode"] == 202
    assert server.reads == [ENDPOINT, ENDPOINT]
    assert len(states.sent) == 2


def test_an_unreadable_key_refuses_the_webhook(
    registry: WatchRegistry, keys: PublicKeys, server: KeyServer, states: RecordingStates
) -> None:
    server.fail = True
    assert handle_webhook(_webhook(), registry, keys)["statusCode"] == 401
    assert states.sent == []


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD"])
def test_only_post_is_accepted(registry: WatchRegistry, keys: PublicKeys, method: str) -> None:
    answer = handle_webhook(_webhook(method=method), registry, keys)
    assert answer["statusCode"] == 405
    assert answer["headers"] == {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "body", ["", "payload=not-json", "other=1", urlencode({"payload": json.dumps({"no": "id"})})]
)
def test_a_body_that_is_no_travis_webhook_is_a_bad_request(
    registry: WatchRegistry, keys: PublicKeys, states: RecordingStates, body: str
) -> None:
    event = {**_webhook(), "body": body}
    assert handle_webhook(event, registry, keys)["statusCode"] == 400
    assert states.sent == []


def test_a_huge_body_is_refused(registry: WatchRegistry, keys: PublicKeys) -> None:
    event = {**_webhook(), "body": "payload=" + "x" * 1_000_001}
    assert handle_webhook(event, registry, keys)["statusCode"] == 413


def test_a_webhook_while_no_execution_is_parked_is_noted_for_the_next_park(
    dynamodb: Any, keys: PublicKeys, states: RecordingStates
) -> None:
    # Given the build is known, but its watch is between two looks (its token already used)
    registry = WatchRegistry(TABLE, dynamodb=dynamodb, states=RecordingStates("TaskTimedOut"))
    registry.park(
        RUN, "old-token", execution="e", job_id="j", build=BuildKey("900001", ENDPOINT), looked_at=0
    )

    # When the webhook comes
    answer = handle_webhook(_webhook(), registry, keys)

    # Then it is noted, and the next park is told at once
    assert (answer["statusCode"], _message(answer)) == (202, "noted")
    signal = registry.park(RUN, "new-token", execution="e", job_id="j", build=None, looked_at=NOW)
    assert signal is not None
    assert signal.value == "webhook"
