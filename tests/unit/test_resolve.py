"""The resolve step: one look at our request per invocation, and what comes next.

`next` is park (the request is not a build yet), publish (the build exists and is the pipeline's
commit) or cancel (the run was abandoned); rejections, missing commits, wrong commits and timeouts
fail the job with what Travis said.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from local.travis import RepoScript, SeedBuild, TravisFake
from tests.unit.support import (
    JOB_TOKEN,
    RESOLVE_WAIT,
    SLUG,
    ActionStatus,
    StubRegistry,
    VirtualClockView,
    execution_input,
    step_event,
)
from worker.codepipeline import CodePipelineJobs
from worker.failures import (
    BuildNotStarted,
    ConfigurationInvalid,
    RevisionMismatch,
    RevisionNotFound,
    ServiceUnavailable,
)
from worker.job import ExecutionInput
from worker.providers.travis import client as client_module
from worker.providers.travis.client import TravisClient
from worker.providers.travis.lookup import job_marker
from worker.providers.travis.provider import TravisProvider
from worker.resolve import resolve_build
from worker.retry import RetryBudget
from worker.settings import Settings
from worker.step_event import StepEvent
from worker.submit import submit_build

PROCESSED = 6.0  # virtual seconds: past the fake's default processing delay (5 s)
HOLD_REAL_SECONDS = 1.5  # how long Travis holds a slow POST, in real seconds (timeout: 0.1 s)


@pytest.fixture
def job(create_job: Callable[..., str]) -> ExecutionInput:
    return execution_input(create_job())


@pytest.fixture
def submitted(
    provider: TravisProvider,
    registry: StubRegistry,
    jobs: CodePipelineJobs,
    action_status: ActionStatus,
) -> Callable[[ExecutionInput], dict[str, Any]]:
    def submit(job: ExecutionInput) -> dict[str, Any]:
        return submit_build(StepEvent.parse(step_event(job)), provider, registry, jobs)

    return submit


@pytest.fixture
def resolve(
    provider: TravisProvider, settings: Settings, jobs: CodePipelineJobs, action_status: Any
) -> Callable[..., dict[str, Any]]:
    def run(job: ExecutionInput, submission: dict[str, Any], **sections: Any) -> dict[str, Any]:
        event = step_event(job, submission=submission, **sections)
        return resolve_build(StepEvent.parse(event), provider, settings, jobs)

    return run


def _our_builds(travis: TravisFake) -> list[Any]:
    return [b for b in travis.builds_for(SLUG) if b.request_id is not None]


def test_a_pending_request_parks_on_the_schedule(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
) -> None:
    # Given our request, not processed yet
    submission = submitted(job)

    # When resolve looks twice before Travis made the build
    first = resolve(job, submission)
    second = resolve(job, submission, resolution=first)

    # Then it parks, waiting longer each time, and asked Travis for our request each time
    assert first["next"] == "park"
    assert first["build"] is None
    assert (first["polls"], first["waitSeconds"]) == (1, RESOLVE_WAIT.seconds(0))
    assert (second["polls"], second["waitSeconds"]) == (2, RESOLVE_WAIT.seconds(1))
    assert first["lookedAt"] == pytest.approx(clock.now, abs=1)
    gets = travis.calls_of("get_request")
    assert [c.path.rsplit("/", 1)[-1] for c in gets] == [submission["requestId"]] * 2


def test_a_build_is_published_with_the_expectation_from_history(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
) -> None:
    # Given the branch's recent builds took 580, 600 and 620 s
    history = [
        SeedBuild(duration=d, finished_ago=3600.0 * (i + 1)) for i, d in enumerate((580, 600, 620))
    ]
    travis.add_repo(SLUG, RepoScript(history=history))
    submission = submitted(job)

    # When resolve looks after Travis processed the request
    clock.advance(PROCESSED)
    resolution = resolve(job, submission)

    # Then it publishes our build, expecting 600 s give or take 20 s
    (build,) = _our_builds(travis)
    assert resolution["next"] == "publish"
    assert resolution["build"]["buildId"] == str(build.id)
    assert resolution["build"]["number"] == build.number
    assert resolution["build"]["commit"] == job.revision
    assert resolution["build"]["url"].endswith(f"/{SLUG}/builds/{build.id}")
    assert resolution["expected"] == pytest.approx(600)
    assert resolution["spread"] == pytest.approx(20)
    (history_call,) = travis.calls_of("list_builds")
    assert history_call.query["branch.name"] == ["main"]


def test_without_history_the_expectation_is_zero(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
) -> None:
    submission = submitted(job)
    clock.advance(PROCESSED)

    resolution = resolve(job, submission)

    assert resolution["next"] == "publish"
    assert (resolution["expected"], resolution["spread"]) == (0.0, 0.0)


def test_a_rejection_quotes_travis_status_text_and_the_lint(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
) -> None:
    # Given Travis rejects the request, with a config-lint error
    script = travis.script(SLUG)
    script.reject = True
    script.reject_message = "branch not included or excluded"
    script.messages = [
        {"level": "error", "key": "branches", "code": "unknown_key", "args": {"key": "onlyy"}},
        {"level": "info", "key": "language", "code": "default", "args": {}},
    ]
    submission = submitted(job)
    clock.advance(PROCESSED)

    # When resolve looks
    with pytest.raises(ConfigurationInvalid) as rejected:
        resolve(job, submission)

    # Then the failure quotes Travis's status text and the error entry (not the info one)
    message = rejected.value.message
    assert "rejected the build request" in message
    assert "branch not included or excluded" in message
    assert "unknown_key branches key=onlyy" in message
    assert "default" not in message
    assert _our_builds(travis) == []


@pytest.mark.parametrize("unknown_sha", ["reject", "build_head"])
def test_a_missing_commit_is_revision_not_found(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    unknown_sha: str,
) -> None:
    # Given the pipeline's commit does not exist in the repository
    script = travis.script(SLUG)
    script.known_commits = {"f" * 40}
    script.unknown_sha = unknown_sha
    submission = submitted(job)
    clock.advance(PROCESSED)

    if unknown_sha == "reject":
        # Then Travis rejects it ("missing commit"): RevisionUnavailable naming the commit
        with pytest.raises(RevisionNotFound, match=job.revision or "") as missing:
            resolve(job, submission)
        assert "missing commit" in missing.value.message
        assert missing.value.failure_type == "RevisionUnavailable"
        assert travis.calls_of("cancel_build") == []
    else:
        # Then legacy Travis builds the branch head instead: another commit, canceled
        with pytest.raises(RevisionMismatch):
            resolve(job, submission)
        assert len(travis.calls_of("cancel_build")) == 1


def test_travis_building_another_commit_is_a_mismatch_and_the_build_is_canceled(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
) -> None:
    # Given Travis builds another commit than the one asked for
    other = "abcdef0123456789abcdef0123456789abcdef01"
    travis.script(SLUG).build_sha = other
    submission = submitted(job)
    clock.advance(PROCESSED)

    # When resolve looks
    with pytest.raises(RevisionMismatch) as mismatch:
        resolve(job, submission)

    # Then the job fails RevisionOutOfSync naming both commits, and the build was canceled
    (build,) = _our_builds(travis)
    assert mismatch.value.failure_type == "RevisionOutOfSync"
    assert other in mismatch.value.message and str(job.revision) in mismatch.value.message
    assert "it was canceled" in mismatch.value.message
    assert mismatch.value.build_id == str(build.id)
    (cancel,) = travis.calls_of("cancel_build")
    assert cancel.path == f"/build/{build.id}/cancel"
    assert travis.get_build(build.id).cancel_requested_at is not None


def test_an_abandoned_run_cancels_its_build(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    action_status: ActionStatus,
) -> None:
    # Given the run was abandoned (woken with the signal, CodePipeline confirms)
    submission = submitted(job)
    action_status.status = "Abandoned"
    woken = {"signal": "abandoned"}

    # When resolve looks before the build exists: it waits for the build (to cancel it)
    waiting = resolve(job, submission, woken=woken)
    assert waiting["next"] == "park"
    assert waiting["abandoned"] is True

    # and once it exists, the next is cancel (the abandon is remembered)
    clock.advance(PROCESSED)
    resolution = resolve(job, submission, resolution=waiting)
    (build,) = _our_builds(travis)
    assert resolution["next"] == "cancel"
    assert resolution["build"]["buildId"] == str(build.id)
    assert travis.calls_of("list_builds") == []  # nothing published


def test_an_abandon_mark_codepipeline_contradicts_is_ignored(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    action_status: ActionStatus,
) -> None:
    submission = submitted(job)
    clock.advance(PROCESSED)

    resolution = resolve(job, submission, woken={"signal": "abandoned"})

    assert action_status.asked == [job.pipeline]
    assert resolution["next"] == "publish"


def test_no_build_within_the_resolve_timeout_is_build_not_started(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    settings: Settings,
    action_status: ActionStatus,
) -> None:
    # Given Travis never processes the request
    travis.script(SLUG).processing_delay = None
    submission = submitted(job)

    # When resolve looks past the resolve timeout
    clock.advance(settings.resolve_timeout_seconds + 1)
    with pytest.raises(BuildNotStarted, match="within 15 minutes"):
        resolve(job, submission)

    # and an abandoned run in that case ends without a build to cancel
    action_status.status = "Abandoned"
    ended = resolve(job, submission, woken={"signal": "abandoned"})
    assert (ended["next"], ended["build"]) == ("cancel", None)


def test_a_lost_answer_earlier_cancels_duplicates_with_our_marker(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    provider: TravisProvider,
    registry: StubRegistry,
    jobs: CodePipelineJobs,
    job: ExecutionInput,
    clock: VirtualClockView,
) -> None:
    # Given our first POST's answer was lost, the retry found that request,
    entered = clock.now
    travis.process_then_fail_next("create_request", 502)
    with pytest.raises(ServiceUnavailable):
        submitted(job)
    clock.advance(30)
    event = step_event(job, retries=1, entered_at=entered)
    submission = submit_build(StepEvent.parse(event), provider, registry, jobs)
    assert submission["lostAnswer"] is True
    # and a copy of that POST landed late anyway (same marker); someone else's request too
    other = TravisClient(travis.base_url, JOB_TOKEN, budget=RetryBudget(sleep=lambda s: None))
    late = other.create_request(SLUG, {"request": {"branch": "main", "message": _msg(job)}})
    other.create_request(SLUG, {"request": {"branch": "main", "message": "a developer"}})
    clock.advance(PROCESSED)

    # When resolve finds our build
    resolution = resolve(job, submission)

    # Then only the late duplicate's build was canceled: not ours, not the developer's
    assert resolution["next"] == "publish"
    duplicate = travis.get_request(int(late["request"]["id"]))
    (cancel,) = travis.calls_of("cancel_build")
    assert cancel.path == f"/build/{duplicate.build_id}/cancel"
    assert resolution["build"]["buildId"] != str(duplicate.build_id)
    assert [r.id for r in travis.requests_with(job_marker(job.job_id))] == [
        int(submission["requestId"]),
        duplicate.id,
    ]


def test_a_post_landing_after_the_retry_posted_is_canceled_as_a_duplicate(
    travis: TravisFake,
    resolve: Callable[..., dict],
    provider: TravisProvider,
    registry: StubRegistry,
    jobs: CodePipelineJobs,
    job: ExecutionInput,
    clock: VirtualClockView,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Travis holds our first POST past the client's timeout and past the retry (which
    # saw nothing and posted): 0.1 s read timeout, 1.5 real seconds of hold
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.1)
    travis.slow_next("create_request", HOLD_REAL_SECONDS / clock.virtual.scale)
    entered = clock.now
    with pytest.raises(ServiceUnavailable):
        submit_build(StepEvent.parse(step_event(job)), provider, registry, jobs)
    clock.advance(30)
    event = step_event(job, retries=1, entered_at=entered)
    submission = submit_build(StepEvent.parse(event), provider, registry, jobs)
    assert (submission["created"], submission["lostAnswer"]) == (True, True)
    # and then the held POST landed: two requests with our marker
    deadline = time.monotonic() + 5
    while len(travis.requests_with(job_marker(job.job_id), SLUG)) < 2:
        assert time.monotonic() < deadline, "the held POST never landed"
        time.sleep(0.01)
    clock.advance(PROCESSED)

    # When resolve finds the build of the request the retry made
    resolution = resolve(job, submission)

    # Then the late request's build is canceled, ours is published
    ours, late = sorted(
        travis.requests_with(job_marker(job.job_id), SLUG),
        key=lambda r: str(r.id) != submission["requestId"],
    )
    assert resolution["next"] == "publish"
    assert resolution["build"]["buildId"] == str(ours.build_id)
    (cancel,) = travis.calls_of("cancel_build")
    assert cancel.path == f"/build/{late.build_id}/cancel"


def test_without_a_lost_answer_no_duplicates_are_looked_for(
    travis: TravisFake,
    submitted: Callable[..., dict],
    resolve: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
) -> None:
    submission = submitted(job)
    clock.advance(PROCESSED)

    resolve(job, submission)

    assert travis.calls_of("list_requests") == []
    assert travis.calls_of("cancel_build") == []


def _msg(job: ExecutionInput) -> str:
    return f"AWS CodePipeline late copy {job_marker(job.job_id)}"
