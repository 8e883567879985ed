"""The submit step on Travis's real semantics: one build request per action run, whatever happens.

Travis creates a request `pending` (no commit) and only processes it later; the message we POST
(with our marker) shows up as `commit.message` once processed. A retried submit must therefore
never post while a request that may be ours is unprocessed. Time is the shared virtual clock,
moved by hand: `clock.advance(30)` is the state machine's retry interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from local.travis import Fault, TravisFake, render
from tests.unit.support import (
    JOB_TOKEN,
    REVISION,
    SLUG,
    ActionStatus,
    Sleeps,
    StubRegistry,
    VirtualClockView,
    execution_input,
    make_settings,
    step_event,
)
from worker.codepipeline import CodePipelineJobs
from worker.failures import (
    ActionAbandoned,
    ConfigurationInvalid,
    RequestAmbiguous,
    RequestLimitReached,
    RequestPending,
    ServiceUnavailable,
)
from worker.job import ExecutionInput
from worker.providers.travis import client as client_module
from worker.providers.travis.client import TravisClient
from worker.providers.travis.lookup import job_marker
from worker.providers.travis.provider import PENDING_BOUND_SECONDS, TravisProvider
from worker.providers.travis.token import TokenSource
from worker.retry import RetryBudget
from worker.step_event import StepEvent
from worker.submit import submit_build

RETRY_INTERVAL = 30.0  # the state machine retries the submit no earlier than this
HOLD_REAL_SECONDS = 1.0  # how long Travis holds a slow POST, in real seconds (timeout: 0.1 s)


@pytest.fixture
def job(create_job: Callable[..., str]) -> ExecutionInput:
    return execution_input(create_job())


@pytest.fixture
def submit(
    provider: TravisProvider,
    registry: StubRegistry,
    jobs: CodePipelineJobs,
    action_status: ActionStatus,
) -> Callable[..., dict[str, Any]]:
    """Run the submit step for `job`: attempt `retries + 1`, the state entered at `entered_at`."""

    def run(job: ExecutionInput, retries: int = 0, entered_at: float | None = None) -> dict:
        event = step_event(job, retries=retries, entered_at=entered_at)
        return submit_build(StepEvent.parse(event), provider, registry, jobs)

    return run


def _creates(travis: TravisFake) -> list[Any]:
    return travis.calls_of("create_request")


def _someone_else_posts(travis: TravisFake, message: str = "a build from a developer") -> int:
    """Another client of the repository asks for a build through the API (same repo, not us)."""
    other = TravisClient(travis.base_url, JOB_TOKEN, budget=RetryBudget(sleep=lambda s: None))
    answer = other.create_request(SLUG, {"request": {"branch": "main", "message": message}})
    return int(answer["request"]["id"])


# --- the first attempt ----------------------------------------------------------------------------


def test_the_first_attempt_posts_once_with_the_marker_and_the_commit(
    travis: TravisFake, submit: Callable[..., dict], job: ExecutionInput, clock: VirtualClockView
) -> None:
    # When the first attempt of the submit runs
    submission = submit(job)

    # Then Travis received exactly one request: our branch, commit and marker, no list first
    assert [c.kind for c in travis.calls] == ["create_request"]
    (request,) = travis.requests_for(SLUG)
    assert request.branch_sent == "main"
    assert request.sha_sent == REVISION
    assert job_marker(job.job_id) in (request.message or "")
    assert "release-pipeline/Test/Travis" in (request.message or "")
    # and the step returned that request, created now
    assert submission["requestId"] == str(request.id)
    assert submission["created"] is True
    assert submission["shaSent"] is True
    assert submission["lostAnswer"] is False
    assert submission["submittedAt"] == pytest.approx(clock.now, abs=1)


def test_an_invalid_configuration_posts_nothing(
    travis: TravisFake, submit: Callable[..., dict], create_job: Callable[..., str]
) -> None:
    job = execution_input(create_job(), configuration={"Owner": "octo-org", "Branch": "main"})

    with pytest.raises(ConfigurationInvalid, match="ProjectName"):
        submit(job)

    assert travis.calls == []


# --- a retried attempt after a lost answer --------------------------------------------------------


@pytest.mark.parametrize("lost", ["502", "drop"])
def test_a_lost_answer_is_found_by_its_marker_once_processed(
    travis: TravisFake,
    submit: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    lost: str,
) -> None:
    # Given Travis creates our request but the answer is lost (a 502, or the socket drops)
    travis.process_then_fail_next("create_request", 502 if lost == "502" else None)
    entered = clock.now
    with pytest.raises(ServiceUnavailable, match="looks for it before it asks again"):
        submit(job, retries=0, entered_at=entered)

    # When the state machine retries 30 s later (Travis processes requests within 5 s)
    clock.advance(RETRY_INTERVAL)
    submission = submit(job, retries=1, entered_at=entered)

    # Then the retry found the request by the marker in its commit message and posted nothing
    (request,) = travis.requests_for(SLUG)
    assert len(_creates(travis)) == 1
    assert submission["requestId"] == str(request.id)
    assert submission["created"] is False
    assert submission["lostAnswer"] is True
    # and it looked from the state's first entry (less the clock-skew margin), small answers
    (listed,) = travis.calls_of("list_requests")
    assert listed.query["representation"] == ["minimal"]
    assert listed.query["from"] == [_iso(entered - 120)]
    assert submission["windowStart"] == pytest.approx(entered)


@pytest.mark.parametrize("unknown_sha", ["reject", "build_head"])
def test_a_lost_answer_for_a_commit_travis_does_not_know(
    travis: TravisFake,
    submit: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    unknown_sha: str,
) -> None:
    # Given the pipeline's commit is not in the repository, and our answer was lost
    script = travis.script(SLUG)
    script.known_commits = {"f" * 40}
    script.unknown_sha = unknown_sha
    travis.process_then_fail_next("create_request", 502)
    entered = clock.now
    with pytest.raises(ServiceUnavailable):
        submit(job, entered_at=entered)

    # When the retry runs after Travis processed the request
    clock.advance(RETRY_INTERVAL)
    submission = submit(job, retries=1, entered_at=entered)

    first = travis.requests_for(SLUG)[0]
    if unknown_sha == "build_head":
        # Then (legacy Travis builds the branch head, commit message ours) it is found
        assert submission["requestId"] == str(first.id)
        assert submission["created"] is False
        assert len(_creates(travis)) == 1
    else:
        # Then (Travis rejects it: "missing commit", no commit row, no build, ever) it cannot be
        # a second build: the retry asks again, and resolve reports the missing commit
        assert first.status_message == "missing commit"
        assert first.build_id is None
        assert submission["created"] is True
        assert len(_creates(travis)) == 2
    clock.advance(RETRY_INTERVAL)
    assert sum(1 for b in travis.builds_for(SLUG) if b.request_id is not None) == (
        1 if unknown_sha == "build_head" else 0
    )


def test_a_retry_waits_while_a_request_in_the_window_is_unprocessed(
    travis: TravisFake, submit: Callable[..., dict], job: ExecutionInput, clock: VirtualClockView
) -> None:
    # Given Travis is slow to process requests (2 minutes) and our answer was lost
    travis.script(SLUG).processing_delay = 120
    travis.process_then_fail_next("create_request", 502)
    entered = clock.now
    with pytest.raises(ServiceUnavailable):
        submit(job, entered_at=entered)

    # When the retry runs 30 s later, the request still pending (no commit: may be ours)
    clock.advance(RETRY_INTERVAL)
    with pytest.raises(RequestPending, match="may be this job's"):
        submit(job, retries=1, entered_at=entered)

    # Then it did not post again
    assert len(_creates(travis)) == 1
    assert travis.requests_for(SLUG)[0].state == "pending"

    # and once Travis processed it, the next retry finds it (still one request)
    clock.advance(120)
    submission = submit(job, retries=2, entered_at=entered)
    (request,) = travis.requests_for(SLUG)
    assert submission["requestId"] == str(request.id)
    assert submission["created"] is False
    assert len(_creates(travis)) == 1


def test_a_request_never_processed_is_ambiguous_after_the_bound(
    travis: TravisFake, submit: Callable[..., dict], job: ExecutionInput, clock: VirtualClockView
) -> None:
    # Given Travis never processes requests, and our answer was lost
    travis.script(SLUG).processing_delay = None
    travis.process_then_fail_next("create_request", 502)
    entered = clock.now
    with pytest.raises(ServiceUnavailable):
        submit(job, entered_at=entered)

    # When the retries go on inside the bound, then past it
    clock.advance(RETRY_INTERVAL)
    with pytest.raises(RequestPending):
        submit(job, retries=1, entered_at=entered)
    clock.advance(PENDING_BOUND_SECONDS)
    with pytest.raises(RequestAmbiguous, match="does not ask for another build") as ambiguous:
        submit(job, retries=2, entered_at=entered)

    # Then the job fails as SystemUnavailable, and Travis never got a second POST
    assert ambiguous.value.failure_type == "SystemUnavailable"
    assert "10 minutes" in ambiguous.value.message
    assert len(_creates(travis)) == 1
    assert len(travis.requests_for(SLUG)) == 1


def test_a_post_answered_after_the_read_timeout_is_found_by_the_next_attempt(
    travis: TravisFake,
    submit: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Travis acts at once but answers long after the client's read timeout (here 0.2 s)
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.2)
    travis.add_fault("create_request", Fault(delay=3600, process_first=True))
    entered = clock.now
    with pytest.raises(ServiceUnavailable):
        submit(job, entered_at=entered)

    # When the retry runs
    clock.advance(RETRY_INTERVAL)
    submission = submit(job, retries=1, entered_at=entered)

    # Then it is the request the timed-out POST made; nothing was posted again
    (request,) = travis.requests_for(SLUG)
    assert submission["requestId"] == str(request.id)
    assert submission["created"] is False
    assert len(_creates(travis)) == 1


def _wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_slow_post_that_lands_after_the_timeout_is_found_by_the_next_attempt(
    travis: TravisFake,
    submit: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Travis holds the POST longer than the client's read timeout, then creates the request
    # (0.1 s read timeout; the fake holds it a real second of the all-but-frozen clock)
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.1)
    travis.slow_next("create_request", HOLD_REAL_SECONDS / clock.virtual.scale)
    entered = clock.now
    with pytest.raises(ServiceUnavailable):
        submit(job, entered_at=entered)
    assert travis.requests_for(SLUG) == []  # not yet: the client gave up first
    _wait_until(lambda: len(travis.requests_for(SLUG)) == 1)  # ... and then it landed

    # When the state machine retries (30 s later: longer than Travis held it)
    clock.advance(RETRY_INTERVAL)
    submission = submit(job, retries=1, entered_at=entered)

    # Then the retry found the late request; Travis has one
    (request,) = travis.requests_for(SLUG)
    assert submission["requestId"] == str(request.id)
    assert submission["created"] is False
    assert len(_creates(travis)) == 1


def test_a_failed_post_is_never_repeated_within_the_attempt(
    travis: TravisFake, submit: Callable[..., dict], job: ExecutionInput, sleeps: Sleeps
) -> None:
    # Given Travis answers the POST with a 500 (the outcome is unknown)
    travis.fail_next("create_request", 500)

    # When the first attempt runs
    with pytest.raises(ServiceUnavailable):
        submit(job)

    # Then it posted once and did not wait to post again
    assert len(_creates(travis)) == 1
    assert sleeps.seconds == []


# --- other requests in the window -----------------------------------------------------------------


def test_someone_elses_pending_request_delays_but_does_not_block(
    travis: TravisFake, submit: Callable[..., dict], job: ExecutionInput, clock: VirtualClockView
) -> None:
    # Given our first attempt created nothing (the global throttle, every try)
    travis.fail_next("create_request", 429, times=3)
    entered = clock.now
    with pytest.raises(ServiceUnavailable, match="kept throttling"):
        submit(job, entered_at=entered)
    assert travis.requests_for(SLUG) == []
    # and meanwhile a developer asked for a build through the API (pending, no commit yet)
    theirs = _someone_else_posts(travis)

    # When the retry runs before Travis processed it
    with pytest.raises(RequestPending, match=str(theirs)):
        submit(job, retries=1, entered_at=entered)
    creates = len(_creates(travis))

    # and again once Travis processed it (their commit message has no marker of ours)
    clock.advance(RETRY_INTERVAL)
    submission = submit(job, retries=2, entered_at=entered)

    # Then the retry posted our request, once
    assert len(_creates(travis)) == creates + 1
    ours = travis.requests_with(job_marker(job.job_id), SLUG)
    assert [r.id for r in ours] == [int(submission["requestId"])]
    assert submission["created"] is True
    assert submission["lostAnswer"] is True  # resolve looks for duplicates once


def test_requests_before_the_window_are_ignored(
    travis: TravisFake, submit: Callable[..., dict], job: ExecutionInput, clock: VirtualClockView
) -> None:
    # Given a request from long before this job that Travis never processed
    travis.script(SLUG).processing_delay = None
    _someone_else_posts(travis)
    travis.script(SLUG).processing_delay = 5.0
    clock.advance(3600)

    # When a retried attempt of a job entered just now runs
    entered = clock.now
    submission = submit(job, retries=1, entered_at=entered)

    # Then the old request did not hold it up: our request was posted
    assert submission["created"] is True
    assert len(travis.requests_with(job_marker(job.job_id), SLUG)) == 1
    (listed,) = travis.calls_of("list_requests")
    assert listed.query["from"] == [_iso(entered - 120)]


def test_a_push_or_cron_request_never_counts(
    travis: TravisFake,
    submit: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a request in the window that Travis shows as a cron request, never processed
    # (the fake only makes API requests: its renderer is told which one is the cron's)
    travis.script(SLUG).processing_delay = None
    cron = _someone_else_posts(travis, "cron")
    travis.script(SLUG).processing_delay = 5.0
    real = render.Renderer._request_event_type
    monkeypatch.setattr(
        render.Renderer,
        "_request_event_type",
        lambda self, r: "cron" if r.id == cron else real(self, r),
    )

    # When a retried attempt runs
    submission = submit(job, retries=1, entered_at=clock.now)

    # Then the cron request was not taken for a maybe-ours one: we posted
    assert submission["created"] is True
    assert len(travis.requests_with(job_marker(job.job_id), SLUG)) == 1


# --- throttles and limits -------------------------------------------------------------------------


def test_the_request_limit_reports_at_once_with_when_it_frees_up(
    travis: TravisFake,
    submit: Callable[..., dict],
    job: ExecutionInput,
    clock: VirtualClockView,
    sleeps: Sleeps,
) -> None:
    # Given the repository's limit is 2 requests an hour, both used 20 minutes ago
    travis.script(SLUG).rate_limit = 2
    _someone_else_posts(travis)
    _someone_else_posts(travis)
    clock.advance(20 * 60)

    # When our submit runs
    with pytest.raises(RequestLimitReached) as limit:
        submit(job)

    # Then it failed at once, naming the limit and when the next request is possible
    message = limit.value.message
    assert "2 build requests per 60 minutes" in message
    assert "in about 40 minutes" in message
    assert "counting every API request from anyone" in message
    # and Travis got one POST of ours (answered 429), no second, no wait
    assert [c.status for c in _creates(travis)][-1] == 429
    assert len(_creates(travis)) == 3
    assert sleeps.seconds == []
    assert travis.requests_with(job_marker(job.job_id), SLUG) == []


def test_the_global_throttle_is_retried_a_bounded_number_of_times(
    travis: TravisFake, submit: Callable[..., dict], job: ExecutionInput, sleeps: Sleeps
) -> None:
    # Given Rack::Attack answers "Retry later" twice (nothing created)
    travis.fail_next("create_request", 429, times=2)

    # When the submit runs
    submission = submit(job)

    # Then it posted again after short pauses, and the third POST created the request
    assert [c.status for c in _creates(travis)] == [429, 429, 202]
    assert len(sleeps.seconds) == 2
    (request,) = travis.requests_for(SLUG)
    assert submission["requestId"] == str(request.id)


def test_a_throttle_that_does_not_end_gives_up_after_three_posts(
    travis: TravisFake, submit: Callable[..., dict], job: ExecutionInput
) -> None:
    travis.fail_next("create_request", 429, times=10)

    with pytest.raises(ServiceUnavailable, match="kept throttling"):
        submit(job)

    assert [c.status for c in _creates(travis)] == [429, 429, 429]
    assert travis.requests_for(SLUG) == []


# --- abandoned runs, revisions, push --------------------------------------------------------------


def test_an_abandoned_run_posts_nothing(
    travis: TravisFake,
    submit: Callable[..., dict],
    job: ExecutionInput,
    registry: StubRegistry,
    action_status: ActionStatus,
) -> None:
    # Given the run was stopped and abandoned, and CodePipeline confirms it
    registry.mark(job.pipeline.run_key)
    action_status.status = "Abandoned"

    # When the submit runs
    with pytest.raises(ActionAbandoned):
        submit(job)

    # Then Travis got no build request
    assert _creates(travis) == []
    assert action_status.asked == [job.pipeline]


def test_a_mark_codepipeline_contradicts_does_not_stop_the_build(
    travis: TravisFake,
    submit: Callable[..., dict],
    job: ExecutionInput,
    registry: StubRegistry,
    action_status: ActionStatus,
) -> None:
    # Given a mark left by an earlier run of the stage; this run is InProgress
    registry.mark(job.pipeline.run_key)

    submission = submit(job)

    assert submission["created"] is True
    assert len(_creates(travis)) == 1


def test_a_revision_that_is_no_commit_id_is_not_sent_as_sha(
    travis: TravisFake, submit: Callable[..., dict], create_job: Callable[..., str]
) -> None:
    # Given an S3 source: the revision is an object version id
    version_id = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
    job = execution_input(create_job(revision=version_id), revision=version_id)

    submission = submit(job)

    (request,) = travis.requests_for(SLUG)
    assert request.sha_sent is None
    assert "sha" not in _creates(travis)[0].body["request"]
    assert submission["shaSent"] is False


def test_push_settings_add_the_webhook_to_the_request(
    travis: TravisFake,
    tokens: TokenSource,
    budget: Callable[[], RetryBudget],
    registry: StubRegistry,
    jobs: CodePipelineJobs,
    job: ExecutionInput,
) -> None:
    # Given the worker is deployed with a webhook receiver
    url = "https://abc123.lambda-url.us-east-1.on.aws/"
    provider = TravisProvider(
        make_settings(travis.base_url, webhook_url=url), tokens, budget=budget
    )

    submission = submit_build(StepEvent.parse(step_event(job)), provider, registry, jobs)

    (call,) = _creates(travis)
    assert call.body["request"]["config"] == {"notifications": {"webhooks": {"urls": [url]}}}
    assert submission["push"] is True


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
