"""The park step: leave the wake-up token, and wake at once when a signal already waits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.support import SLUG, execution_input, step_event
from tests.unit.watch_table import TABLE, RecordingStates, watch_table
from worker import clock
from worker.continuation import Continuation
from worker.park import park
from worker.step_event import StepEvent
from worker.wake import Signal, WatchRegistry, build_item_key, run_item_key

NOW = 1_800_000_000.0
ENDPOINT = "https://api.travis-ci.com"


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
    return WatchRegistry(TABLE, dynamodb=dynamodb, states=states)


def _step(
    token: str = "task-token-1",  # noqa: S107 - a fake task token
    *,
    watched: bool = False,
    **sections: Any,
) -> StepEvent:
    job = execution_input("job-1")
    if watched:
        token_data = Continuation("travis", "900001", "205001", ENDPOINT, SLUG, NOW - 600)
        job = replace(job, continuation=token_data.as_dict())
    event = step_event(job, execution="job-1-6b86b273", **sections)
    event["token"] = token
    return StepEvent.parse(event)


def test_phase_one_parks_without_a_build(
    registry: WatchRegistry, dynamodb: Any, states: RecordingStates
) -> None:
    # Given a phase 1 execution waiting for Travis to create the build
    step = _step(resolution={"lookedAt": NOW - 5})

    # When it parks
    result = park(step, registry)

    # Then its token waits in the run's item, no build is mapped and nobody was woken
    assert result == {"parked": True, "signal": None}
    item = dynamodb.get_item(TableName=TABLE, Key=run_item_key(step.job.pipeline.run_key))["Item"]
    assert item["token"] == {"S": "task-token-1"}
    assert item["execution"] == {"S": "job-1-6b86b273"}
    assert dynamodb.scan(TableName=TABLE)["Count"] == 1
    assert states.sent == []


def test_phase_two_parks_with_its_build(registry: WatchRegistry, dynamodb: Any) -> None:
    # Given a watch of a known build
    step = _step(watched=True, watch={"lookedAt": NOW - 5})

    park(step, registry)

    # Then the webhook receiver can find the run through the build id
    assert registry.build("900001") == (step.job.pipeline.run_key, ENDPOINT)
    assert dynamodb.get_item(TableName=TABLE, Key=build_item_key("900001"))["Item"]["run"] == {
        "S": step.job.pipeline.run_key
    }


def test_a_waiting_abandon_wakes_the_task_at_once(
    registry: WatchRegistry, states: RecordingStates
) -> None:
    # Given the run was abandoned while no execution was parked
    step = _step(watched=True, watch={"lookedAt": NOW - 5})
    registry.mark_abandoned(step.job.pipeline.run_key)

    # When the execution parks
    result = park(step, registry)

    # Then it wakes its own task with the signal
    assert result == {"parked": True, "signal": "abandoned"}
    assert states.sent == [{"taskToken": "task-token-1", "output": '{"signal": "abandoned"}'}]


def test_a_webhook_since_the_last_look_wakes_the_task(
    registry: WatchRegistry, states: RecordingStates
) -> None:
    # Given a webhook marked after the look the watch made before parking
    step = _step(watched=True, watch={"lookedAt": NOW - 5})
    park(step, registry)
    assert registry.mark_webhook(step.job.pipeline.run_key) == "task-token-1"

    # When the next park comes after a look that preceded the webhook
    result = park(_step("task-token-2", watched=True, watch={"lookedAt": NOW - 1}), registry)

    # Then it is woken with the webhook signal
    assert result["signal"] == Signal.WEBHOOK.value
    assert states.sent[-1]["taskToken"] == "task-token-2"


def test_park_needs_the_task_token(registry: WatchRegistry) -> None:
    with pytest.raises(ValueError, match="task token"):
        park(_step(""), registry)
