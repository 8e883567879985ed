"""Travis as a build provider: tokens, one request per job under random faults, status, the
continuation, failure explanations, duplicates and malformed answers.

The submit, resolve and watch steps have their own files (test_submit.py, test_resolve.py,
test_watch.py); this file calls the provider directly.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from local.codepipeline import CodePipelineEmulator
from local.travis import REAL_FAILURE_MODES, JobScript, TravisFake, token_fingerprint
from tests.unit.support import (
    CONFIGURATION,
    JOB_TOKEN,
    SLUG,
    WORKER_TOKEN,
    SecretStore,
    VirtualClockView,
    execution_input,
    make_settings,
    worker_env,
)
from worker.continuation import Continuation
from worker.failures import (
    ConfigurationInvalid,
    RequestAmbiguous,
    RequestPending,
    ServiceUnavailable,
)
from worker.job import ExecutionInput
from worker.providers import BuildRef, CancelResult, Submission, SubmitAttempt, provider_named
from worker.providers.travis import client as client_module
from worker.providers.travis.client import TravisClient
from worker.providers.travis.lookup import job_marker
from worker.providers.travis.provider import TravisProvider, is_commit_id
from worker.retry import RetryBudget
from worker.schedule import Expectation
from worker.settings import Settings

PROCESSED = 6.0


@pytest.fixture
def job(create_job: Callable[..., str]) -> ExecutionInput:
    """A job that exists in CodePipeline (its APIToken is read from there), sanitized."""
    return execution_input(create_job())


def _first(clock: VirtualClockView) -> SubmitAttempt:
    return SubmitAttempt(first=True, window_start=clock.now)


def _nothing() -> None:
    return None


def _build(
    provider: TravisProvider, job: ExecutionInput, clock: VirtualClockView
) -> tuple[Submission, BuildRef]:
    submission = provider.submit(job, _first(clock), _nothing)
    clock.advance(PROCESSED)
    build = provider.resolve(job, submission.request_id)
    assert build is not None
    return submission, build


# --- tokens ---------------------------------------------------------------------------------------


def test_the_jobs_api_token_is_what_travis_sees(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: VirtualClockView
) -> None:
    _build(provider, job, clock)

    assert {c.token_sha for c in travis.calls} == {token_fingerprint(JOB_TOKEN)}


def test_the_workers_token_is_used_without_an_api_token(
    travis: TravisFake,
    provider: TravisProvider,
    create_job: Callable[..., str],
    secret: SecretStore,
    clock: VirtualClockView,
) -> None:
    job = execution_input(create_job(api_token=None))

    provider.submit(job, _first(clock), _nothing)

    assert {c.token_sha for c in travis.calls} == {token_fingerprint(WORKER_TOKEN)}
    assert secret.calls == [(secret.reads[0], False)]


def test_an_untrusted_endpoint_never_sees_the_workers_token(
    travis: TravisFake,
    provider: TravisProvider,
    create_job: Callable[..., str],
    secret: SecretStore,
    clock: VirtualClockView,
) -> None:
    # Given a pipeline pointing Endpoint at a host the deployment does not trust, with no APIToken
    with TravisFake(auto_repos=True, tokens={WORKER_TOKEN: "all"}) as elsewhere:
        configuration = {
            **CONFIGURATION,
            "Endpoint": elsewhere.base_url.replace("127.0.0.1", "localhost"),
        }
        job = execution_input(create_job(api_token=None), configuration=configuration)

        # When the job is submitted
        with pytest.raises(ConfigurationInvalid, match="not trusted"):
            provider.submit(job, _first(clock), _nothing)

        # Then that host heard nothing, and the secret was not even read
        assert elsewhere.calls == []
    assert secret.reads == []


def test_an_invalid_configuration_reaches_no_one(
    travis: TravisFake,
    provider: TravisProvider,
    create_job: Callable[..., str],
    clock: VirtualClockView,
) -> None:
    job = execution_input(create_job(), configuration={**CONFIGURATION, "Owner": "a/b"})

    with pytest.raises(ConfigurationInvalid, match="Owner"):
        provider.submit(job, _first(clock), _nothing)

    assert travis.calls == []


# --- one request per job, whatever Travis does ----------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_one_request_per_job_whatever_travis_does(
    travis: TravisFake,
    provider: TravisProvider,
    job: ExecutionInput,
    clock: VirtualClockView,
    seed: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (the client's read timeout shortened: slow answers are virtual hours, real-time forever)
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.1)
    # Given a Travis that fails half of all calls the ways real Travis fails (seeded), and
    # processes requests only after 40 s
    travis.script(SLUG).processing_delay = 40
    travis.random_faults(0.5, seed=seed, faults=REAL_FAILURE_MODES)
    entered = clock.now

    # When the state machine retries the submit every 30 s until it returns
    submission = None
    for attempt in range(30):
        try:
            submission = provider.submit(
                job, SubmitAttempt(first=attempt == 0, window_start=entered), _nothing
            )
            break
        except (ServiceUnavailable, RequestPending):
            clock.advance(30)
        except RequestAmbiguous:
            break

    # Then at most one request of the job exists, and a returned submission names it
    travis.clear_faults()
    clock.advance(PROCESSED)
    ours = travis.requests_with(job_marker(job.job_id), SLUG)
    assert len(ours) <= 1
    if submission is not None:
        assert [str(r.id) for r in ours] == [submission.request_id]


# --- resolve and history --------------------------------------------------------------------------


def test_resolve_is_none_while_the_request_is_pending(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: VirtualClockView
) -> None:
    submission = provider.submit(job, _first(clock), _nothing)

    assert provider.resolve(job, submission.request_id) is None
    assert travis.requests_for(SLUG)[0].state == "pending"


def test_an_unknown_request_is_a_configuration_error(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    with pytest.raises(ConfigurationInvalid, match="HTTP 404"):
        provider.resolve(job, "999999")


def test_a_request_answer_of_the_wrong_shape_is_service_unavailable(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: VirtualClockView
) -> None:
    submission = provider.submit(job, _first(clock), _nothing)
    travis.malformed_next("get_request", "wrong_shape")

    with pytest.raises(ServiceUnavailable, match="malformed"):
        provider.resolve(job, submission.request_id)


def test_an_unavailable_history_only_means_no_expectation(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    travis.fail_next("list_builds", 503, times=10)

    assert provider.expectation(job) is None
    assert len(travis.calls_of("list_builds")) >= 2


# --- phase 2 --------------------------------------------------------------------------------------


def test_the_continuation_holds_what_phase_two_needs(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: VirtualClockView
) -> None:
    submission, build = _build(provider, job, clock)

    continuation = provider.continuation(job, submission, build, Expectation(600.0, 20.0, 3))

    assert continuation == Continuation(
        provider="travis",
        build_id=build.build_id,
        request_id=submission.request_id,
        endpoint=travis.base_url,
        slug=SLUG,
        started=submission.submitted_at,
        build_number=build.number,
        url=f"https://app.travis-ci.com/github/{SLUG}/builds/{build.build_id}",
        revision=str(job.revision),
        expected=600.0,
        spread=20.0,
    )
    assert JOB_TOKEN not in continuation.encode()


def test_status_follows_the_build_with_its_jobs(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: VirtualClockView
) -> None:
    # Given a build of a quick, a failing and a slow job
    travis.script(SLUG).jobs = [
        JobScript(duration=30),
        JobScript(duration=30, state="failed"),
        JobScript(duration=600),
    ]
    submission, build = _build(provider, job, clock)
    continuation = provider.continuation(job, submission, build, None)
    clock.advance(60)

    status = provider.status(job, continuation)

    assert (status.state, status.finished, status.passed) == ("started", False, False)
    assert [j.state for j in status.jobs] == ["passed", "failed", "started"]
    assert status.jobs_done == 2
    assert status.progress == 66
    assert status.commit == job.revision
    assert status.started_at is not None

    clock.advance(600)
    final = provider.status(job, continuation)
    assert (final.state, final.finished, final.passed, final.progress) == (
        "failed",
        True,
        False,
        100,
    )


@pytest.mark.parametrize("style", ["empty", "wrong_shape"])
def test_an_unreadable_build_is_service_unavailable(
    travis: TravisFake,
    provider: TravisProvider,
    job: ExecutionInput,
    clock: VirtualClockView,
    style: str,
) -> None:
    # Given Travis keeps answering the build with something that is no build state
    submission, build = _build(provider, job, clock)
    continuation = provider.continuation(job, submission, build, None)
    travis.malformed_next("get_build", style, times=10)

    # Then the watch step fails retryably instead of guessing a state
    with pytest.raises(ServiceUnavailable, match=build.build_id):
        provider.status(job, continuation)


@pytest.mark.parametrize("may_cancel", [True, False])
def test_cancel_answers_what_travis_did(
    travis: TravisFake,
    provider: TravisProvider,
    job: ExecutionInput,
    clock: VirtualClockView,
    may_cancel: bool,
) -> None:
    submission, build = _build(provider, job, clock)
    continuation = provider.continuation(job, submission, build, None)
    if not may_cancel:
        travis.add_token(JOB_TOKEN, "all", can_cancel=False)

    result = provider.cancel(job, continuation)

    assert result is (CancelResult.REQUESTED if may_cancel else CancelResult.NOT_PERMITTED)
    clock.advance(30)
    assert travis.get_build(int(build.build_id)).state == ("canceled" if may_cancel else "started")


def test_cancel_of_a_finished_build(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: VirtualClockView
) -> None:
    submission, build = _build(provider, job, clock)
    clock.advance(3600)

    result = provider.cancel(job, provider.continuation(job, submission, build, None))

    assert result is CancelResult.ALREADY_FINISHED
    assert travis.get_build(int(build.build_id)).state == "passed"


def test_a_failure_is_explained_with_the_log_tails_of_failing_jobs(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: VirtualClockView
) -> None:
    # Given three failing jobs (only two are quoted), one passing; a log that prints the token
    log = f"$ pytest\nusing token {JOB_TOKEN}\nFAILED test_app.py::test_it\nexit 1\n"
    travis.script(SLUG).jobs = [
        JobScript(duration=30),
        JobScript(duration=30, state="failed", log=log),
        JobScript(duration=30, state="errored", log=log),
        JobScript(duration=30, state="failed", log=log),
    ]
    submission, build = _build(provider, job, clock)
    continuation = provider.continuation(job, submission, build, None)
    clock.advance(600)
    status = provider.status(job, continuation)

    explanation = provider.explain_failure(job, continuation, status)

    # Then two logs were read, their tails quoted, the token never
    assert len(travis.calls_of("get_log")) == 2
    assert "failed:" in explanation and "errored:" in explanation
    assert "FAILED test_app.py::test_it" in explanation
    assert JOB_TOKEN not in explanation
    assert "(1 more failing job not shown.)" in explanation


def test_duplicates_of_our_marker_are_canceled_and_ours_kept(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: VirtualClockView
) -> None:
    # Given two requests with our marker (a lost POST that landed) and one of someone else
    window = clock.now
    ours = provider.submit(job, _first(clock), _nothing)
    provider.submit(job, _first(clock), _nothing)
    TravisClient(
        travis.base_url, JOB_TOKEN, budget=RetryBudget(sleep=lambda s: None)
    ).create_request(SLUG, {"request": {"branch": "main", "message": "a developer's build"}})
    clock.advance(PROCESSED)
    assert len(travis.requests_with(job_marker(job.job_id), SLUG)) == 2

    # When the duplicates are canceled
    canceled = provider.cancel_duplicates(job, ours, window)

    # Then only the other build of ours was canceled
    (_, duplicate) = travis.requests_with(job_marker(job.job_id), SLUG)
    assert canceled == [str(duplicate.build_id)]
    assert [c.path for c in travis.calls_of("cancel_build")] == [f"/build/{canceled[0]}/cancel"]


@pytest.mark.parametrize(
    ("revision", "commit"),
    [
        ("0123456789abcdef0123456789abcdef01234567", True),
        ("0123abc", True),
        ("0123ABCDEF", True),
        ("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", False),
        ("v1.2.3", False),
        ("", False),
        (None, False),
    ],
)
def test_what_counts_as_a_commit_id(revision: str | None, commit: bool) -> None:
    assert is_commit_id(revision) is commit


# --- the provider seam ----------------------------------------------------------------------------


def test_the_registry_builds_travis_from_the_environment(
    travis: TravisFake, emulator: CodePipelineEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in worker_env(travis.base_url, emulator.endpoint_url).items():
        monkeypatch.setenv(name, value)

    provider = provider_named("travis", Settings.from_env())

    assert isinstance(provider, TravisProvider)
    provider.validate(CONFIGURATION)  # the default endpoint from the environment is accepted


def test_an_unregistered_provider_is_named() -> None:
    with pytest.raises(KeyError, match="jenkins"):
        provider_named("jenkins", make_settings("https://api.travis-ci.com"))
