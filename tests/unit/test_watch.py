"""The watch step: one look at the build per invocation, and what comes next.

`next` is report (finished), park (with the schedule's wait), handover (publish progress in a
fresh continuation job) or cancel (the run was abandoned). The watch timeout cancels the build and
fails the job; a build of another commit is a RevisionMismatch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from local.travis import ALL, JobScript, TravisFake
from tests.unit.support import (
    JOB_TOKEN,
    SLUG,
    WATCH_WAIT,
    ActionStatus,
    StubRegistry,
    VirtualClockView,
    execution_input,
    run_phase_one,
    step_event,
)
from worker.codepipeline import CodePipelineJobs
from worker.continuation import Continuation
from worker.failures import BuildUnsuccessful, RevisionMismatch
from worker.job import ExecutionInput
from worker.providers import BuildRef, Submission
from worker.providers.travis.provider import TravisProvider
from worker.schedule import Expectation, policy
from worker.settings import Settings
from worker.step_event import StepEvent
from worker.watch import watch_build

QUICK, SLOW = 60.0, 600.0  # job run times (virtual seconds)


@pytest.fixture
def watched(
    travis: TravisFake,
    create_job: Callable[..., str],
    provider: TravisProvider,
    settings: Settings,
    clock: VirtualClockView,
    jobs: CodePipelineJobs,
    registry: StubRegistry,
    action_status: ActionStatus,
) -> Callable[..., ExecutionInput]:
    """Phase 1 up to the build, then the continuation job phase 2 runs with."""

    def start(*job_scripts: JobScript, expected: float = 0.0) -> ExecutionInput:
        travis.script(SLUG).jobs = list(job_scripts) or [JobScript(duration=SLOW)]
        first = execution_input(create_job())
        state = run_phase_one(first, provider, settings, clock, jobs=jobs, registry=registry)
        submission = Submission.from_dict(state["submission"])
        build = BuildRef.from_dict(state["resolution"]["build"])
        expectation = Expectation(expected, 20.0, 3) if expected else None
        continuation = provider.continuation(first, submission, build, expectation)
        return execution_input(create_job(), continuation=continuation.as_dict())

    return start


@pytest.fixture
def watch(
    provider: TravisProvider, settings: Settings, jobs: CodePipelineJobs, registry: StubRegistry
) -> Callable[..., dict[str, Any]]:
    def run(job: ExecutionInput, **sections: Any) -> dict[str, Any]:
        event = step_event(job, **sections)
        return watch_build(StepEvent.parse(event), provider, settings, jobs, registry)

    return run


def _continuation(job: ExecutionInput) -> Continuation:
    return Continuation.from_dict(job.continuation)


def replace_continuation(job: ExecutionInput, continuation: Continuation) -> ExecutionInput:
    return dataclasses.replace(job, continuation=continuation.as_dict())


def test_progress_comes_from_the_builds_jobs(
    travis: TravisFake,
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
) -> None:
    # Given a build of a quick and a slow job, the quick one done
    job = watched(JobScript(duration=QUICK), JobScript(duration=SLOW))
    clock.advance(30 + QUICK)

    # When the watch looks
    result = watch(job)

    # Then it asked Travis for the build with its jobs, and counts the finished one
    call = travis.calls_of("get_build")[-1]  # (resolve read the build once too)
    assert call.path == f"/build/{_continuation(job).build_id}"
    assert call.query["include"] == ["build.jobs"]
    status = result["status"]
    assert (status["state"], status["jobs_done"], status["jobs"]) == ("started", 1, 2)
    assert status["progress"] == 50
    assert status["finished"] is False
    assert result["looks"] == 1


def test_the_look_is_dated_when_travis_was_asked(
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
    provider: TravisProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a look whose answer takes 5 s (the build may finish, and Travis send its webhook,
    # after Travis answered "started" and before the step ends)
    job = watched()
    clock.advance(60)
    asked = clock.now
    status = provider.status

    def slow_status(*args: Any) -> Any:
        answer = status(*args)
        clock.advance(5)
        return answer

    monkeypatch.setattr(provider, "status", slow_status)

    # When the watch looks
    result = watch(job)

    # Then the look is dated when it asked: the park wakes on any webhook noted after that
    assert result["next"] == "park"
    assert result["lookedAt"] == pytest.approx(asked, abs=0.5)


def test_a_finished_build_is_reported(
    travis: TravisFake,
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
) -> None:
    job = watched(JobScript(duration=QUICK), JobScript(duration=QUICK, state="failed"))
    clock.advance(30 + QUICK)

    result = watch(job)

    assert result["next"] == "report"
    assert result["status"]["state"] == "failed"
    assert result["status"]["passed"] is False
    assert result["status"]["progress"] == 100
    assert result["status"]["jobs_done"] == 2


def test_without_history_the_watch_parks_on_the_backoff(
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
) -> None:
    # Given a build with no expectation (no history), still running
    job = watched()
    clock.advance(30)

    # When the watch looks twice
    first = watch(job)
    second = watch(job, watch=first)

    # Then it parks on the polling backoff: 15 s, then 22 s
    assert first["next"] == "park"
    assert first["waitSeconds"] == WATCH_WAIT.seconds(0)
    assert second["waitSeconds"] == WATCH_WAIT.seconds(1)
    assert second["looks"] == 2


def test_with_an_expectation_the_watch_sleeps_until_the_window(
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
    settings: Settings,
) -> None:
    # Given builds of this branch take about 600 s, and this one started a while ago
    job = watched(expected=SLOW)
    clock.advance(60)

    result = watch(job)

    # Then it parks as the schedule says for the elapsed time (long before the window)
    elapsed = result["lookedAt"] - result["status"]["started_at"]
    wanted = policy(False, settings.watch_wait).next_wait(elapsed, Expectation(SLOW, 20.0, 1), 0)
    assert result["next"] == "park"
    assert result["waitSeconds"] == wanted
    assert wanted > WATCH_WAIT.cap  # a long park, not a poll


def test_progress_after_the_progress_interval_hands_over(
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
    settings: Settings,
) -> None:
    # Given one of two jobs finished
    job = watched(JobScript(duration=QUICK), JobScript(duration=3600))
    clock.advance(30 + QUICK)

    # When the watch looks before the progress interval has passed since the publication: park
    assert watch(job)["next"] == "park"

    # and after it: hand over (publish the progress in a fresh job)
    clock.advance(settings.progress_seconds)
    assert watch(job)["next"] == "handover"


def test_without_progress_the_watch_hands_over_after_the_maximum(
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
    settings: Settings,
) -> None:
    # Given a single long job: no progress to publish
    job = watched(JobScript(duration=3 * 3600))
    clock.advance(settings.progress_seconds + 60)
    assert watch(job)["next"] == "park"

    # When the watch has held the job for HAND_OVER_MAX_SECONDS
    clock.advance(settings.hand_over_max_seconds)
    result = watch(job)

    # Then it hands over anyway
    assert result["next"] == "handover"
    assert result["status"]["jobs_done"] == 0


def test_a_park_never_sleeps_past_the_hand_over(
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
    settings: Settings,
) -> None:
    job = watched(JobScript(duration=3 * 3600), expected=3 * 3600)
    clock.advance(settings.hand_over_max_seconds - 100)

    result = watch(job)

    assert result["next"] == "park"
    assert result["waitSeconds"] <= 100


def test_the_hold_limit_never_falls_inside_the_end_window(
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
    settings: Settings,
) -> None:
    # Given a single-job build expected to end about when the hold limit falls due (an hour)
    limit = settings.hand_over_max_seconds
    job = watched(JobScript(duration=3 * 3600), expected=limit)
    began = clock.now
    first = watch(job)
    assert first["next"] == "park"  # far from the end: sleep

    # When the watch wakes at its last look before the window where the build may end (parks
    # last whole seconds, looks do not start on one: the park to the window ends a little short)
    clock.advance(first["waitSeconds"] + 0.7)
    while (result := watch(job))["next"] == "park" and clock.now + result["waitSeconds"] < (
        began + limit - 30  # the window opens at expected - max(30 s, spread)
    ):
        clock.advance(result["waitSeconds"])

    # Then it hands over there, long before the limit, so no hand-over interrupts the window
    # (at the last long park's look: not at the window's edge, where its chain of steps would
    # run into the window)
    assert result["next"] == "handover"
    assert clock.now - began < limit - 30 - policy(False).near

    # and the fresh job parks through the window: it hands over again only at its own limit
    fresh = replace_continuation(job, _continuation(job).handed_over(clock.now, 0))
    waits = []
    while clock.now < began + limit + 30:
        result = watch(fresh)
        assert result["next"] == "park"
        waits.append(result["waitSeconds"])
        clock.advance(result["waitSeconds"])
    assert len(waits) > 3 and max(waits[1:]) <= policy(False).near  # in the window: often


def test_push_watches_keep_the_hold_limit(
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
    settings: Settings,
    provider: TravisProvider,
    jobs: CodePipelineJobs,
    registry: StubRegistry,
) -> None:
    # Given a push watch (the webhook reports the end; looks are only its fallback)
    push = dataclasses.replace(settings, webhook_url="https://hooks.example/travis")
    job = watched(JobScript(duration=3 * 3600), expected=settings.hand_over_max_seconds)
    clock.advance(60)

    # When it looks before and as it enters the end window (a polling watch hands over there)
    for _ in range(2):
        result = watch_build(StepEvent.parse(step_event(job)), provider, push, jobs, registry)
        assert result["next"] == "park"
        clock.advance(result["waitSeconds"])


def test_an_abandoned_run_cancels_without_looking(
    travis: TravisFake,
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    action_status: ActionStatus,
) -> None:
    # Given the run was abandoned and CodePipeline confirms it
    job = watched()
    travis.reset_calls()
    action_status.status = "Abandoned"

    result = watch(job, woken={"signal": "abandoned"})

    # Then the next step cancels the build; the watch asked Travis nothing
    assert result == {"next": "cancel", "reason": "abandoned", "looks": 1}
    assert travis.calls == []


def test_a_contradicted_abandon_mark_is_cleared_and_the_watch_goes_on(
    travis: TravisFake,
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    registry: StubRegistry,
    action_status: ActionStatus,
) -> None:
    # Given a mark left by an earlier run of the stage; CodePipeline says this run is InProgress
    job = watched()
    registry.mark(job.pipeline.run_key)
    travis.reset_calls()

    result = watch(job, woken={"signal": "abandoned"})

    # Then the mark is cleared and the build watched as usual
    assert registry.cleared == [job.pipeline.run_key]
    assert result["next"] == "park"
    assert [c.kind for c in travis.calls] == ["get_build"]


@pytest.mark.parametrize("may_cancel", [True, False])
def test_the_watch_timeout_cancels_and_fails(
    travis: TravisFake,
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
    settings: Settings,
    may_cancel: bool,
) -> None:
    # Given a build that runs past the watch timeout
    job = watched(JobScript(duration=5 * 3600))
    if not may_cancel:
        travis.add_token(JOB_TOKEN, ALL, can_cancel=False)
    clock.advance(settings.watch_timeout_seconds + 1)

    # When the watch looks
    with pytest.raises(BuildUnsuccessful, match="did not finish within 120 minutes") as timeout:
        watch(job)

    # Then it asked Travis to cancel the build, and says whether Travis did
    build_id = _continuation(job).build_id
    (cancel,) = travis.calls_of("cancel_build")
    assert cancel.path == f"/build/{build_id}/cancel"
    assert timeout.value.build_id == build_id
    if may_cancel:
        assert cancel.status == 202
        assert "it was canceled" in timeout.value.message
        clock.advance(60)
        assert travis.get_build(int(build_id)).state == "canceled"
    else:
        assert cancel.status == 403
        assert "the token may not cancel builds" in timeout.value.message
        assert travis.get_build(int(build_id)).state == "started"


def test_a_build_of_another_commit_is_a_mismatch_and_canceled(
    travis: TravisFake,
    watched: Callable[..., ExecutionInput],
    watch: Callable[..., dict],
    clock: VirtualClockView,
) -> None:
    # Given the pipeline asked for another commit than the one Travis builds (a continuation
    # token whose revision differs, e.g. published by an older worker that did not check)
    other = "abcdef0123456789abcdef0123456789abcdef01"
    job = watched()
    assert job.continuation is not None
    job.continuation["revision"] = other
    clock.advance(30)

    # When the watch looks
    with pytest.raises(RevisionMismatch) as mismatch:
        watch(job)

    # Then the job fails RevisionOutOfSync and the running build is canceled
    assert mismatch.value.failure_type == "RevisionOutOfSync"
    assert other in mismatch.value.message
    assert "it was canceled" in mismatch.value.message
    assert len(travis.calls_of("cancel_build")) == 1
