"""Stop means stop: ABANDONED (and CANCELED) action events mark the run and wake its watch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.codepipeline import CodePipelineEmulator
from tests.unit.support import ACTION_TYPE_API, REGISTERED
from tests.unit.watch_table import TABLE, RecordingStates, watch_table
from worker import clock
from worker.abandon import handle_action_event, run_is_over
from worker.codepipeline import CodePipelineJobs
from worker.job import PipelineRef
from worker.wake import BuildKey, WatchRegistry, run_item_key


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with watch_table() as client:
        clock.use(lambda: 1_800_000_000.0, lambda seconds: None)
        yield client
        clock.reset()


@pytest.fixture
def states() -> RecordingStates:
    return RecordingStates()


@pytest.fixture
def registry(dynamodb: Any, states: RecordingStates) -> WatchRegistry:
    return WatchRegistry(TABLE, dynamodb=dynamodb, states=states)


@pytest.fixture
def events(emulator: CodePipelineEmulator) -> list[dict[str, Any]]:
    """Every EventBridge event the emulated pipeline emits."""
    heard: list[dict[str, Any]] = []
    emulator.add_event_listener(heard.append)
    return heard


def _run_key(emulator: CodePipelineEmulator, job_id: str) -> str:
    run = emulator.run_for_job(job_id)
    return PipelineRef(
        name=run.pipeline_name,
        stage=run.stage_name,
        action=run.action_name,
        execution_id=run.pipeline_execution_id,
    ).run_key


def _abandon(emulator: CodePipelineEmulator, job_id: str) -> None:
    run = emulator.run_for_job(job_id)
    emulator.stop_pipeline_execution(run.pipeline_name, run.pipeline_execution_id, abandon=True)


@pytest.mark.parametrize("version_as_number", [False, True])
def test_an_abandoned_run_is_marked_and_its_watch_woken(
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    registry: WatchRegistry,
    states: RecordingStates,
    events: list[dict[str, Any]],
    version_as_number: bool,
) -> None:
    # Given a parked watch of a claimed job (type.version a string, as real events, or a number)
    emulator.event_version_as_number = version_as_number
    job_id = create_job()
    claim_job(job_id)
    run_key = _run_key(emulator, job_id)
    registry.park(run_key, "task-token", execution="e", job_id=job_id, build=None, looked_at=0.0)

    # When the user stops and abandons the pipeline execution
    _abandon(emulator, job_id)
    (event,) = [e for e in events if e["detail"]["state"] == "ABANDONED"]
    assert isinstance(event["detail"]["type"]["version"], int if version_as_number else str)
    result = handle_action_event(event, [REGISTERED], registry)

    # Then the run is marked and the parked execution woken with the abandon signal
    assert result == {"marked": True, "woken": True, "canceled": None}
    assert registry.abandoned(run_key)
    assert states.sent == [{"taskToken": "task-token", "output": '{"signal": "abandoned"}'}]


def test_an_abandon_between_link_and_watch_cancels_the_published_build(
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    registry: WatchRegistry,
    states: RecordingStates,
    events: list[dict[str, Any]],
) -> None:
    # Given the link was published (the build noted for the run) and no execution is parked
    job_id = create_job()
    claim_job(job_id)
    run_key = _run_key(emulator, job_id)
    registry.register_build(
        run_key, BuildKey("900001", "https://api.travis-ci.com"), job_id=job_id, slug="o/r"
    )
    canceled: list[tuple[str, str, str, str]] = []

    def cancel(job: str, build: str, endpoint: str, slug: str) -> str:
        canceled.append((job, build, endpoint, slug))
        return "requested"

    # When the run is abandoned
    _abandon(emulator, job_id)
    (event,) = [e for e in events if e["detail"]["state"] == "ABANDONED"]
    result = handle_action_event(event, [REGISTERED], registry, cancel)

    # Then the handler cancels the build itself: nobody may ever come for the continuation job
    assert result == {"marked": True, "woken": False, "canceled": "requested"}
    assert canceled == [(job_id, "900001", "https://api.travis-ci.com", "o/r")]
    assert states.sent == []


def test_a_parked_watch_cancels_its_own_build(
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    registry: WatchRegistry,
    events: list[dict[str, Any]],
) -> None:
    # Given a parked watch of a known build
    job_id = create_job()
    run_key = _run_key(emulator, job_id)
    build = BuildKey("900001", "https://api.travis-ci.com")
    registry.park(run_key, "task-token", execution="e", job_id=job_id, build=build, looked_at=0.0)
    canceled: list[Any] = []

    _abandon(emulator, job_id)
    (event,) = [e for e in events if e["detail"]["state"] == "ABANDONED"]
    result = handle_action_event(event, [REGISTERED], registry, lambda *a: canceled.append(a))

    # Then it is woken to cancel; the handler leaves the build to it
    assert result == {"marked": True, "woken": True, "canceled": None}
    assert canceled == []


def test_a_canceled_run_counts_as_abandoned(
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    registry: WatchRegistry,
    events: list[dict[str, Any]],
) -> None:
    # Given a pipeline update cancels the running action
    job_id = create_job()
    emulator.update_pipeline("release-pipeline")
    (event,) = [e for e in events if e["detail"]["state"] == "CANCELED"]

    # Then the run is marked, though no execution is parked (the next park will see it)
    assert handle_action_event(event, [REGISTERED], registry) == {
        "marked": True,
        "woken": False,
        "canceled": None,
    }
    assert registry.abandoned(_run_key(emulator, job_id))


def test_other_states_are_ignored(
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    registry: WatchRegistry,
    dynamodb: Any,
    events: list[dict[str, Any]],
) -> None:
    # Given the STARTED event of our action, and the SUCCEEDED and FAILED states
    job_id = create_job()
    (started,) = events
    succeeded = emulator.eventbridge_event(
        emulator.run_for_job(job_id).action_execution_id, "SUCCEEDED"
    )
    failed = emulator.eventbridge_event(emulator.run_for_job(job_id).action_execution_id, "FAILED")

    # Then none marks anything
    for event in (started, succeeded, failed):
        assert handle_action_event(event, [REGISTERED], registry) == {
            "marked": False,
            "woken": False,
        }
    assert dynamodb.scan(TableName=TABLE)["Items"] == []


@pytest.mark.parametrize(
    "change",
    [
        {"provider": "Jenkins"},
        {"version": "2"},
        {"owner": "AWS"},
        {"category": "Build"},
    ],
)
def test_events_of_other_action_types_are_ignored(
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    registry: WatchRegistry,
    dynamodb: Any,
    change: dict[str, str],
) -> None:
    job_id = create_job()
    event = emulator.eventbridge_event(
        emulator.run_for_job(job_id).action_execution_id, "ABANDONED"
    )
    event["detail"]["type"] = {**ACTION_TYPE_API, "owner": "Custom", **change}

    assert handle_action_event(event, [REGISTERED], registry)["marked"] is False
    assert (
        dynamodb.get_item(TableName=TABLE, Key=run_item_key(_run_key(emulator, job_id))).get("Item")
        is None
    )


def test_an_event_without_detail_is_ignored(registry: WatchRegistry) -> None:
    assert handle_action_event({"detail-type": "x"}, [REGISTERED], registry)["marked"] is False


def test_the_run_is_over_unless_codepipeline_shows_it_in_progress(
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    jobs: CodePipelineJobs,
) -> None:
    # Given a claimed job's action execution
    job_id = create_job()
    claim_job(job_id)
    run = emulator.run_for_job(job_id)
    pipeline = PipelineRef(
        name=run.pipeline_name,
        stage=run.stage_name,
        action=run.action_name,
        execution_id=run.pipeline_execution_id,
        action_execution_id=run.action_execution_id,
    )

    # Then a mark is contradicted while it runs, and trusted once it is abandoned
    assert run_is_over(jobs, pipeline) is False
    _abandon(emulator, job_id)
    assert run_is_over(jobs, pipeline) is True
    # and trusted when CodePipeline cannot be asked
    emulator.fail_next("ListActionExecutions", 1, "AccessDeniedException", "denied", 400)
    assert run_is_over(jobs, pipeline) is True
