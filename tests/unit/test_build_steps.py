"""The submit, resolve and watch steps: one look per invocation, waits and timeouts decided here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from local.travis_fake import TravisFake
from tests.unit.support import SLUG, ManualClock, execution_input, run_phase_one, step_event
from worker.build import continuation_for, resolve_build, submit_build, watch_build
from worker.continuation import Continuation
from worker.failures import (
    BuildNotStarted,
    BuildUnsuccessful,
    ConfigurationInvalid,
    FailureType,
    UnreadableContinuation,
)
from worker.job import ExecutionInput
from worker.providers.travis.provider import TravisProvider
from worker.settings import Settings
from worker.step_event import StepEvent


@pytest.fixture
def job(create_job: Callable[..., str]) -> ExecutionInput:
    return execution_input(create_job())


def _step(job: ExecutionInput, **sections: Any) -> StepEvent:
    return StepEvent.parse(step_event(job, **sections))


def _phase_two_job(create_job: Callable[..., str], continuation: Continuation) -> ExecutionInput:
    # The continuation job is a new CodePipeline job carrying the token, parsed by the poller.
    return execution_input(create_job(), continuation=continuation.as_dict())


# --- submit -----------------------------------------------------------------------------------


def test_submit_step_requests_the_build_once(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: ManualClock
) -> None:
    # When the submit step runs, and runs again (a retry after a lost result)
    first = submit_build(_step(job), provider)
    again = submit_build(_step(job), provider)

    # Then the state holds the request; Travis has one
    (request,) = travis.requests_for(SLUG)
    assert first == {"requestId": str(request.id), "created": True, "submittedAt": clock.now}
    assert again["requestId"] == first["requestId"]
    assert again["created"] is False


def test_submit_step_validates_before_calling_travis(
    travis: TravisFake, provider: TravisProvider, create_job: Callable[..., str]
) -> None:
    job = execution_input(create_job(), configuration={"Owner": "octo-org", "Branch": "main"})

    with pytest.raises(ConfigurationInvalid, match="ProjectName"):
        submit_build(_step(job), provider)

    assert travis.calls == []


# --- resolve ----------------------------------------------------------------------------------


def test_resolve_waits_on_the_schedule_until_the_build_exists(
    travis: TravisFake,
    provider: TravisProvider,
    settings: Settings,
    job: ExecutionInput,
    clock: ManualClock,
) -> None:
    # Given Travis creates the build on the fourth look
    travis.script(SLUG).polls_until_build = 4
    submission = submit_build(_step(job), provider)

    # When the state machine loops Resolve ⇄ Wait as the step says
    results: list[dict[str, Any]] = []
    resolution: dict[str, Any] = {}
    for _ in range(4):
        resolution = resolve_build(
            _step(job, submission=submission, resolution=resolution), provider, settings, clock
        )
        results.append(resolution)
        clock.advance(resolution["waitSeconds"])

    # Then it waited 5, 7, 11 s (the resolve schedule) and then had the build
    assert [r["waitSeconds"] for r in results] == [5, 7, 11, 0]
    assert [r["ready"] for r in results] == [False, False, False, True]
    assert [r["polls"] for r in results] == [1, 2, 3, 4]
    (build,) = travis.builds_for(SLUG)
    assert results[-1]["build"] == {
        "buildId": str(build.id),
        "number": build.number,
        "url": f"{travis.base_url}/{SLUG}/builds/{build.id}",
    }


def test_resolve_timeout_is_build_not_started(
    travis: TravisFake,
    provider: TravisProvider,
    settings: Settings,
    job: ExecutionInput,
    clock: ManualClock,
) -> None:
    # Given Travis never creates the build
    travis.script(SLUG).polls_until_build = 1000
    submission = submit_build(_step(job), provider)

    # When the resolve timeout has passed since the request was made
    clock.advance(settings.resolve_timeout_seconds + 1)

    # Then the step gives up with a classified, explained failure
    with pytest.raises(BuildNotStarted) as raised:
        resolve_build(
            _step(job, submission=submission, resolution={"polls": 40}), provider, settings, clock
        )
    assert submission["requestId"] in raised.value.message
    assert "15 minutes" in raised.value.message
    assert raised.value.failure_type is FailureType.SYSTEM_UNAVAILABLE


def test_resolve_of_a_rejected_request_fails_at_once(
    travis: TravisFake,
    provider: TravisProvider,
    settings: Settings,
    job: ExecutionInput,
    clock: ManualClock,
) -> None:
    travis.script(SLUG).reject = True
    submission = submit_build(_step(job), provider)

    with pytest.raises(ConfigurationInvalid, match=r"\.travis\.yml"):
        resolve_build(_step(job, submission=submission), provider, settings, clock)


# --- watch ------------------------------------------------------------------------------------


def test_watch_follows_the_build_on_the_schedule(
    travis: TravisFake,
    provider: TravisProvider,
    settings: Settings,
    job: ExecutionInput,
    clock: ManualClock,
    create_job: Callable[..., str],
) -> None:
    # Given a started build and its continuation job (the build takes three looks)
    state = run_phase_one(job, provider, settings, clock)
    continuation = continuation_for(_step(job, **state), provider)
    phase_two = _phase_two_job(create_job, continuation)

    # When the state machine loops Watch ⇄ Wait as the step says
    looks: list[dict[str, Any]] = []
    watch: dict[str, Any] = {}
    while not watch.get("finished"):
        watch = watch_build(_step(phase_two, watch=watch), provider, settings, clock)
        looks.append(watch)
        clock.advance(watch["waitSeconds"])

    # Then it waited 15, 22 s (the watch schedule) and ended with the passed build
    assert [w["waitSeconds"] for w in looks] == [15, 22, 0]
    assert [w["status"]["state"] for w in looks] == ["created", "started", "passed"]
    assert looks[-1]["status"]["build_id"] == continuation.build_id
    assert looks[-1]["status"]["passed"] is True
    assert travis.calls_of("cancel_build") == []


def test_watch_timeout_cancels_the_build_and_fails_the_job(
    travis: TravisFake,
    provider: TravisProvider,
    settings: Settings,
    job: ExecutionInput,
    clock: ManualClock,
    create_job: Callable[..., str],
) -> None:
    # Given a build that is still running when the watch timeout has passed
    travis.script(SLUG).polls_until_done = 1000
    state = run_phase_one(job, provider, settings, clock)
    continuation = continuation_for(_step(job, **state), provider)
    phase_two = _phase_two_job(create_job, continuation)
    clock.advance(settings.watch_timeout_seconds + 1)

    # When the watch step looks at it
    with pytest.raises(BuildUnsuccessful) as raised:
        watch_build(_step(phase_two, watch={"polls": 60}), provider, settings, clock)

    # Then Travis canceled the build, and the failure names it for the pipeline user
    assert travis.get_build(int(continuation.build_id)).state == "canceled"
    assert raised.value.build_id == continuation.build_id
    assert raised.value.failure_type is FailureType.JOB_FAILED
    assert f"#{continuation.build_number}" in raised.value.message
    assert "120 minutes" in raised.value.message
    assert continuation.build_id in raised.value.message


def test_a_build_that_finished_past_the_timeout_is_reported_not_canceled(
    travis: TravisFake,
    provider: TravisProvider,
    settings: Settings,
    job: ExecutionInput,
    clock: ManualClock,
    create_job: Callable[..., str],
) -> None:
    travis.script(SLUG).polls_until_done = 1
    state = run_phase_one(job, provider, settings, clock)
    phase_two = _phase_two_job(create_job, continuation_for(_step(job, **state), provider))
    clock.advance(settings.watch_timeout_seconds + 1)

    watch = watch_build(_step(phase_two), provider, settings, clock)

    assert watch["finished"] is True
    assert travis.calls_of("cancel_build") == []


@pytest.mark.parametrize(
    "continuation", [{"unreadable": True}, {"version": 99, "build_id": "1"}, {"version": 1}]
)
def test_watch_of_an_unreadable_continuation_calls_no_one(
    travis: TravisFake,
    provider: TravisProvider,
    settings: Settings,
    clock: ManualClock,
    continuation: dict[str, Any],
) -> None:
    job = execution_input(continuation=continuation)

    with pytest.raises(UnreadableContinuation):
        watch_build(_step(job), provider, settings, clock)

    assert travis.calls == []
