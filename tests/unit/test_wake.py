"""The watch table: wake-up tokens, the abandon mark and the webhook mark, in moto's DynamoDB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.watch_table import TABLE, RecordingStates, watch_table
from worker import clock
from worker.failures import ServiceUnavailable
from worker.wake import (
    CLOCK_SKEW_SECONDS,
    BuildKey,
    Signal,
    WatchRegistry,
    build_item_key,
    run_item_key,
)

RUN = "release-pipeline/11111111-2222-3333-4444-555555555555/Test/Travis"
NOW = 1_800_000_000.0


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with watch_table() as client:
        yield client


@pytest.fixture
def now() -> Iterator[list[float]]:
    """The worker's clock, moved by hand (`now[0] = ...`)."""
    value = [NOW]
    clock.use(lambda: value[0], lambda seconds: None)
    yield value
    clock.reset()


@pytest.fixture
def states() -> RecordingStates:
    return RecordingStates()


@pytest.fixture
def registry(dynamodb: Any, states: RecordingStates, now: list[float]) -> WatchRegistry:
    return WatchRegistry(TABLE, dynamodb=dynamodb, states=states)


def _token(item: dict[str, Any]) -> str | None:
    """The parked execution's token in the run's item."""
    return item.get("token", {}).get("S")


def _item(dynamodb: Any, key: dict[str, Any]) -> dict[str, Any] | None:
    return dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")


def _park(
    registry: WatchRegistry,
    token: str = "token-1",  # noqa: S107 - a fake task token
    **kwargs: Any,
) -> Signal | None:
    params: dict[str, Any] = {
        "execution": "job-1-6b86b273",
        "job_id": "job-1",
        "build": None,
        "looked_at": NOW - 10,
    }
    params.update(kwargs)
    return registry.park(RUN, token, **params)


def test_the_table_must_be_configured() -> None:
    with pytest.raises(ValueError, match="watch table"):
        WatchRegistry("")


def test_park_leaves_the_token_and_nothing_wakes_it(registry: WatchRegistry, dynamodb: Any) -> None:
    # Given no signal for the run
    # When an execution parks
    signal = _park(registry)

    # Then its token is in the run's item, which DynamoDB will expire, and nothing is signalled
    assert signal is None
    item = _item(dynamodb, run_item_key(RUN))
    assert item is not None
    assert item["token"] == {"S": "token-1"}
    assert item["execution"] == {"S": "job-1-6b86b273"}
    assert item["jobId"] == {"S": "job-1"}
    assert int(item["expiresAt"]["N"]) == int(NOW) + 3 * 86400
    assert "buildId" not in item
    assert not registry.abandoned(RUN)


def test_park_after_an_abandon_answers_abandoned(registry: WatchRegistry) -> None:
    # Given the run was marked abandoned while no execution was parked (between two looks)
    assert _token(registry.mark_abandoned(RUN)) is None

    # When the next park happens
    # Then it learns at once
    assert _park(registry) is Signal.ABANDONED
    assert registry.abandoned(RUN)


def test_mark_abandoned_returns_the_parked_token(registry: WatchRegistry, now: list[float]) -> None:
    # Given a parked execution
    _park(registry, token="token-7")

    # When the abandon is marked (twice: EventBridge may deliver the event again)
    first = registry.mark_abandoned(RUN)
    assert _token(first) == "token-7"
    now[0] += 60
    second = registry.mark_abandoned(RUN)
    assert _token(second) == "token-7"

    # Then the first mark's time is kept
    assert second == first | {"expiresAt": {"N": str(int(NOW + 60) + 3 * 86400)}}
    assert first["abandonedAt"] == {"N": f"{NOW:.3f}"}


def test_a_registered_build_is_found_by_the_abandon_and_the_webhook(
    registry: WatchRegistry, dynamodb: Any
) -> None:
    # Given the link was published (no execution parked yet): the run notes its build
    registry.register_build(
        RUN, BuildKey("900001", "https://api.travis-ci.com"), job_id="job-1", slug="o/r"
    )

    # Then the webhook receiver finds the run, and an abandon finds the build to cancel
    assert registry.build("900001") == (RUN, "https://api.travis-ci.com")
    item = registry.mark_abandoned(RUN)
    assert _token(item) is None
    assert {k: item[k]["S"] for k in ("buildId", "endpoint", "slug", "jobId")} == {
        "buildId": "900001",
        "endpoint": "https://api.travis-ci.com",
        "slug": "o/r",
        "jobId": "job-1",
    }


def test_park_answers_a_webhook_that_came_after_the_last_look(
    registry: WatchRegistry, now: list[float]
) -> None:
    # Given a watched run, and a webhook that came after the look that preceded this park
    _park(registry)
    now[0] = NOW + 5
    assert registry.mark_webhook(RUN) == "token-1"

    # Then a park after a look before the webhook is woken; after a later look it is not
    assert _park(registry, looked_at=NOW + 5) is Signal.WEBHOOK  # webhookAt >= looked_at
    assert _park(registry, looked_at=NOW + 1) is Signal.WEBHOOK
    # (within the hosts' clock skew of the look it still counts: one look too many at worst)
    assert _park(registry, looked_at=NOW + 5 + CLOCK_SKEW_SECONDS) is Signal.WEBHOOK
    assert _park(registry, looked_at=NOW + 5.01 + CLOCK_SKEW_SECONDS) is None


def test_mark_webhook_on_an_unknown_run_creates_nothing(
    registry: WatchRegistry, dynamodb: Any
) -> None:
    assert registry.mark_webhook(RUN) is None
    assert _item(dynamodb, run_item_key(RUN)) is None
    assert dynamodb.scan(TableName=TABLE)["Items"] == []


def test_park_with_a_build_maps_the_build_to_its_run(
    registry: WatchRegistry, dynamodb: Any
) -> None:
    # Given a phase 2 park that knows its build
    _park(registry, build=BuildKey("900001", "https://api.travis-ci.com"))

    # Then the webhook receiver can find the run and its endpoint through the build id
    assert registry.build("900001") == (RUN, "https://api.travis-ci.com")
    assert registry.build("900002") is None
    build = _item(dynamodb, build_item_key("900001"))
    assert build is not None
    assert int(build["expiresAt"]["N"]) == int(NOW) + 3 * 86400
    run = _item(dynamodb, run_item_key(RUN))
    assert run is not None
    assert (run["buildId"], run["endpoint"]) == (
        {"S": "900001"},
        {"S": "https://api.travis-ci.com"},
    )


def test_clear_abandoned_forgets_the_mark(registry: WatchRegistry) -> None:
    # Given a mark left by an earlier run of the same stage, which CodePipeline contradicts
    _park(registry)
    registry.mark_abandoned(RUN)

    registry.clear_abandoned(RUN)

    # Then the next park is not told "abandoned", and the token stays
    assert not registry.abandoned(RUN)
    assert _park(registry, token="token-2") is None


def test_wake_sends_the_signal(registry: WatchRegistry, states: RecordingStates) -> None:
    assert registry.wake("token-1", Signal.WEBHOOK) is True
    assert states.sent == [{"taskToken": "token-1", "output": '{"signal": "webhook"}'}]


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_wake_of_a_task_no_longer_waiting_is_ignored(
    dynamodb: Any, now: list[float], code: str
) -> None:
    registry = WatchRegistry(TABLE, dynamodb=dynamodb, states=RecordingStates(code))
    assert registry.wake("token-1", Signal.ABANDONED) is False


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException", "unreachable"])
def test_wake_failing_otherwise_is_service_unavailable(
    dynamodb: Any, now: list[float], code: str
) -> None:
    registry = WatchRegistry(TABLE, dynamodb=dynamodb, states=RecordingStates(code))
    with pytest.raises(ServiceUnavailable, match="Step Functions"):
        registry.wake("token-1", Signal.ABANDONED)


def test_a_missing_table_is_service_unavailable(dynamodb: Any, now: list[float]) -> None:
    registry = WatchRegistry("no-such-table", dynamodb=dynamodb, states=RecordingStates())
    with pytest.raises(ServiceUnavailable, match="watch table"):
        _park(registry)
    with pytest.raises(ServiceUnavailable, match="watch table"):
        registry.abandoned(RUN)


def test_the_handshake_park_first_then_mark(registry: WatchRegistry) -> None:
    # Given an execution parked first
    assert _park(registry, token="token-1") is None
    # When the abandon comes second, it sees the token
    assert _token(registry.mark_abandoned(RUN)) == "token-1"


def test_the_handshake_mark_first_then_park(registry: WatchRegistry, now: list[float]) -> None:
    # Given the abandon and a webhook came while no execution was parked
    assert registry.mark_webhook(RUN) is None  # no run yet: nothing
    _park(registry)  # a park and its look ...
    now[0] += 1
    assert registry.mark_webhook(RUN) == "token-1"
    assert _token(registry.mark_abandoned(RUN)) == "token-1"
    # When the next park comes second, it sees the marks (abandon first)
    assert _park(registry, token="token-2", looked_at=NOW) is Signal.ABANDONED
