"""End to end: CodePipeline as it really is — stop means stop, only a real claim is a claim, gone
is not failed, progress in the console, the event path waits long enough."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from local.clock import VirtualClock
from local.codepipeline import CodePipelineEmulator
from local.runner import REDELIVERY_SECONDS, synthesize
from local.travis import JobScript, SeedBuild
from tests.e2e.conftest import CONFIG, QUICK, REVISION, SLUG, TIME_SCALE, end_states, quick_travis

pytestmark = pytest.mark.e2e
# A 30-minute build on a branch whose builds take 30 minutes: without a wake-up, the watch's
# next look would be a quarter of an hour away.
LONG = replace(
    QUICK,
    jobs=2,
    job_duration=1800.0,
    history=[SeedBuild(duration=1800.0, finished_ago=3600.0 * n) for n in (1, 2, 3)],
)


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def started_run(worker: Any, travis: Any, **kwargs: Any) -> Any:
    run_id = worker.start_action(CONFIG, revision=REVISION, **kwargs)
    return worker.emulator.action_run(run_id)


def watching(worker: Any, run_id: str) -> bool:
    """The continuation job is claimed: an execution watches the build (phase 2)."""
    run = worker.emulator.action_run(run_id)
    return len(run.job_ids) >= 2 and worker.emulator.ack_count(run.job_ids[1]) >= 1


@pytest.mark.parametrize(
    "result_on_abandoned", ["InvalidJobStateException", "JobNotFoundException"]
)
def test_an_abandoned_run_cancels_its_build_within_a_minute(
    worker_for: Any, clock: VirtualClock, result_on_abandoned: str
) -> None:
    # Given a long build being watched (the link is in the console, the watch is parked)
    travis = quick_travis(clock)
    travis.add_repo(SLUG, LONG)
    emulator = CodePipelineEmulator(
        redelivery_timeout_seconds=REDELIVERY_SECONDS,
        clock=clock,
        result_on_abandoned=result_on_abandoned,
    )
    worker = worker_for(travis=travis, emulator=emulator, clock=clock)
    run = started_run(worker, travis)
    wait_until(lambda: watching(worker, run.action_execution_id))
    time.sleep(0.2)  # let it look and park

    # When the user stops the pipeline run with "Stop and abandon"
    stopped_at, stopped_real = clock.now(), time.monotonic()
    worker.emulator.stop_pipeline_execution(
        run.pipeline_name, run.pipeline_execution_id, abandon=True
    )

    # Then Travis is asked to cancel the build at once: the event woke the parked watch (its
    # next look was minutes away), no wait in between — in AWS a matter of seconds; here the
    # compressed clock inflates local processing a hundredfold, so the bound is in real time
    wait_until(lambda: travis.calls_of("cancel_build"))
    assert time.monotonic() - stopped_real < 5
    first = travis.calls_of("cancel_build")[0]  # the watch and the abandon handler may both ask
    assert first.status == 202
    assert max(worker.observations.parks) >= 300  # the look it did not have to wait for
    assert first.timestamp - stopped_at < 300
    (build,) = [b for b in travis.builds_for(SLUG) if b.event_type == "api"]
    assert build.cancel_requested_at is not None
    worker.wait_idle(timeout=20)
    # And nothing was reported after the abandon, nor counted as passed
    final = worker.emulator.action_run(run.action_execution_id)
    assert final.status == "Abandoned"
    assert [r.kind for r in final.results] == ["success"]  # the link only
    assert worker.metric_total("BuildsPassed") == 0
    # And the execution that watched ended in its own state
    assert any(s.endswith(":Abandoned") for s in end_states(worker, final))
    assert len(travis.requests_for(SLUG)) == 1


def test_abandoned_before_the_build_exists_leaves_no_build_behind(
    worker_for: Any, clock: VirtualClock
) -> None:
    # Given Travis takes two minutes to turn the request into a build
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(LONG, processing_delay=120.0))
    worker = worker_for(travis=travis, clock=clock)
    run = started_run(worker, travis)
    wait_until(lambda: travis.requests_for(SLUG))

    # When the run is abandoned while the request is still pending
    worker.emulator.stop_pipeline_execution(
        run.pipeline_name, run.pipeline_execution_id, abandon=True
    )

    # Then the worker waits for the build only to cancel it, and publishes nothing
    wait_until(lambda: travis.calls_of("cancel_build"), timeout=40)
    worker.wait_idle(timeout=20)
    final = worker.emulator.action_run(run.action_execution_id)
    assert final.results == []
    (build,) = [b for b in travis.builds_for(SLUG) if b.event_type == "api"]
    assert build.cancel_requested_at is not None
    assert end_states(worker, final) == ["SUCCEEDED:Abandoned"]


def test_an_acknowledge_that_is_not_in_progress_starts_no_build(
    worker_for: Any, clock: VirtualClock
) -> None:
    # Given CodePipeline answers AcknowledgeJob with a status other than InProgress
    travis = quick_travis(clock)
    worker = worker_for(travis=travis, clock=clock, deliver_events=False, sweep=False)
    job_id = worker.emulator.create_job(
        worker.action_type, CONFIG, input_revision=REVISION, pipeline_name="p"
    )
    worker.emulator.force_acknowledge_status(job_id, "TimedOut", count=100)

    # When the poller hands the job to an execution
    worker.poll()
    worker.wait_idle(timeout=20)

    # Then the execution ends quietly without touching the job, and Travis heard nothing
    (execution,) = worker.executions()
    assert worker.end_state(execution["executionArn"]) == "NotClaimed"
    assert execution["status"] == "SUCCEEDED"
    assert travis.calls == []
    assert worker.emulator.job(job_id).result is None


def test_a_gone_job_ends_in_its_own_state_not_as_failed(
    worker_for: Any, clock: VirtualClock
) -> None:
    # Given a build being watched
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, job_duration=120.0))
    worker = worker_for(travis=travis, clock=clock)
    run = started_run(worker, travis, pipeline_name="doomed")
    wait_until(lambda: watching(worker, run.action_execution_id))

    # When the pipeline is deleted before the build ends (its jobs vanish)
    worker.emulator.delete_pipeline("doomed")

    # Then the execution ends SUCCEEDED in JobGone: nothing reported, nothing counted as passed
    wait_until(
        lambda: any(
            e["status"] == "SUCCEEDED" and worker.end_state(e["executionArn"]) == "JobGone"
            for e in worker.executions()
        ),
        timeout=40,
    )
    assert worker.metric_total("BuildsPassed") == 0
    assert worker.metric_total("JobsGone") >= 1
    assert not [e for e in worker.executions() if e["status"] == "FAILED"]


@pytest.fixture(scope="module")
def progress_template() -> dict[str, Any]:
    return synthesize({"progressMinutes": 1, "handOverMaxMinutes": 5})


def test_progress_reaches_the_console_during_a_long_build(
    worker_for: Any, clock: VirtualClock, progress_template: dict[str, Any]
) -> None:
    # Given a build of four jobs in stages that finish one after another over 8 minutes
    travis = quick_travis(clock)
    travis.add_repo(
        SLUG,
        replace(QUICK, jobs=[JobScript(duration=120.0, stage=f"s{n}") for n in range(4)]),
    )
    worker = worker_for(template=progress_template, travis=travis, clock=clock)

    # When the action runs
    run_id = worker.start_action(CONFIG, revision=REVISION)
    (run,) = worker.wait_for_runs([run_id], timeout=90)

    # Then the console got progress at least twice between the link and the final result,
    # each from a fresh continuation job, and one build only
    middle = [d for d in run.execution_details[1:-1]]
    assert len(middle) >= 2
    assert all(0 < d["percentComplete"] < 100 for d in middle)
    assert all("jobs done" in d["summary"] for d in middle)
    assert run.status == "Succeeded"
    assert len(set(run.job_ids)) == len(run.job_ids) >= 4
    assert len(travis.requests_for(SLUG)) == 1
    states = end_states(worker, run)
    assert states.count("SUCCEEDED:HandedOver") >= 2


def test_a_job_pollable_20s_after_its_event_is_picked_up_by_the_event_path(
    worker_for: Any,
) -> None:
    # Given CodePipeline makes the job pollable 20 s after the STARTED event, and no sweeper
    clock = VirtualClock(TIME_SCALE)
    emulator = CodePipelineEmulator(
        redelivery_timeout_seconds=REDELIVERY_SECONDS, clock=clock, pollable_delay_seconds=20.0
    )
    # (the poller's patience runs on real seconds in the Lambda; compress it like the rest)
    worker = worker_for(emulator=emulator, clock=clock, sweep=False)

    # When the pipeline reaches the action
    run_id = worker.start_action(CONFIG, revision=REVISION)

    # Then the poller invoked by the event keeps looking and starts the execution
    (run,) = worker.wait_for_runs([run_id], timeout=60)
    assert run.status == "Succeeded"
    event_polls = [s for s in worker.observations.poller_summaries if s.get("polls", 0) > 1]
    assert event_polls, "the event path polled more than once"
