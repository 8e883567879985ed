"""Travis as a build provider: one request per job whatever fails, builds resolved and followed."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from local.codepipeline_emulator import CodePipelineEmulator
from local.travis_fake import Fault, TravisFake, token_fingerprint
from tests.unit.support import (
    BRANCH,
    CONFIGURATION,
    JOB_TOKEN,
    PIPELINE,
    REVISION,
    SLUG,
    WORKER_TOKEN,
    ManualClock,
    SecretStore,
    Sleeps,
    execution_input,
    make_settings,
    worker_env,
)
from worker.continuation import Continuation
from worker.failures import ConfigurationInvalid, RevisionNotFound, ServiceUnavailable
from worker.job import ExecutionInput
from worker.providers import BuildRef, Submission, provider_named
from worker.providers.travis import client as client_module
from worker.providers.travis.provider import TravisProvider, job_marker
from worker.settings import Settings


@pytest.fixture
def job(create_job: Callable[..., str]) -> ExecutionInput:
    """A job that exists in CodePipeline (its APIToken is read from there), sanitized."""
    return execution_input(create_job())


def _submit_and_resolve(
    provider: TravisProvider, job: ExecutionInput
) -> tuple[Submission, BuildRef]:
    submission = provider.submit(job)
    for _ in range(10):
        build = provider.resolve(job, submission.request_id)
        if build is not None:
            return submission, build
    raise AssertionError("the fake never created the build")


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- submit -----------------------------------------------------------------------------------


def test_submit_requests_a_build_of_the_pipelines_commit(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, clock: ManualClock
) -> None:
    # When a job is submitted
    submission = provider.submit(job)

    # Then Travis received one request for the branch AND the exact commit, marked with the job
    (request,) = travis.requests_for(SLUG)
    assert request.branch == BRANCH
    assert request.sha == REVISION
    assert job_marker(job.job_id) in (request.message or "")
    assert PIPELINE in (request.message or "")
    assert request.token_sha == token_fingerprint(JOB_TOKEN)
    assert submission == Submission(str(request.id), created=True, submitted_at=clock.now)
    # and a retried submit could find it: the marker is looked for before posting
    assert [c.kind for c in travis.calls] == ["list_requests", "create_request"]


def test_submit_without_a_revision_builds_the_branch(
    travis: TravisFake, provider: TravisProvider, create_job: Callable[..., str]
) -> None:
    job = execution_input(create_job(revision=None), revision=None)

    provider.submit(job)

    (call,) = travis.calls_of("create_request")
    assert call.body["request"]["branch"] == BRANCH
    assert "sha" not in call.body["request"]


def test_a_retried_submit_finds_the_earlier_request(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    # Given a submit that succeeded, but whose step result was lost (Lambda timeout, retry)
    first = provider.submit(job)

    # When the step runs again
    second = provider.submit(job)

    # Then it finds the request it made and posts nothing
    assert second.request_id == first.request_id
    assert not second.created
    assert len(travis.calls_of("create_request")) == 1
    assert travis.created_count() == 1


def test_requests_of_other_jobs_are_not_mistaken_for_ours(
    travis: TravisFake, provider: TravisProvider, create_job: Callable[..., str]
) -> None:
    # Given another job of the same repository already submitted
    provider.submit(execution_input(create_job()))

    # When this job is submitted
    mine = provider.submit(execution_input(create_job()))

    # Then it gets its own request
    assert mine.created
    assert travis.created_count() == 2


@pytest.mark.parametrize(
    "fault",
    [Fault(status=502, process_first=True), Fault(drop=True, process_first=True)],
    ids=["created-then-502", "created-then-dropped"],
)
def test_a_lost_answer_is_found_by_marker_and_never_duplicated(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, fault: Fault
) -> None:
    # Given Travis creates the request but the answer never arrives
    travis.add_fault("create_request", fault)

    # When the job is submitted
    submission = provider.submit(job)

    # Then the worker finds the request by its marker instead of posting again
    (request,) = travis.requests_with(job_marker(job.job_id))
    assert submission.request_id == str(request.id)
    assert submission.created
    assert len(travis.calls_of("create_request")) == 1


def test_a_post_that_lands_after_the_timeout_is_never_duplicated(
    travis: TravisFake,
    provider: TravisProvider,
    job: ExecutionInput,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Travis creates the request only after the client's read timeout gave up on it
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.2)
    travis.slow_next("create_request", 1.0)  # long after the client gave up and looked

    # When the submit step runs, finds nothing yet, and is retried later by the state machine
    with pytest.raises(ServiceUnavailable, match="did not confirm"):
        provider.submit(job)
    _wait_for(lambda: travis.created_count() == 1)
    submission = provider.submit(job)

    # Then the retry finds the late request: one POST, one request
    assert submission.request_id == str(travis.requests_for(SLUG)[0].id)
    assert not submission.created
    assert len(travis.calls_of("create_request")) == 1


def test_a_failed_post_is_never_repeated_in_the_same_step(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    # Given a 502 from a proxy before Travis saw the request
    travis.fail_next("create_request", 502)

    # When the submit step runs
    # Then it looks for the request once, and leaves posting again to a later retry
    with pytest.raises(ServiceUnavailable, match=SLUG):
        provider.submit(job)
    assert [c.kind for c in travis.calls] == ["list_requests", "create_request", "list_requests"]
    assert travis.created_count() == 0

    # When the state machine retries the step
    submission = provider.submit(job)

    # Then it looks first, finds nothing, and posts: one request in all
    assert submission.created
    assert travis.created_count() == 1
    assert len(travis.calls_of("create_request")) == 2


def test_429_then_success(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, sleeps: Sleeps
) -> None:
    # Given Travis rate-limits the first POST and asks for 2 seconds
    travis.fail_next("create_request", 429, retry_after=2)

    # When the job is submitted
    submission = provider.submit(job)

    # Then the worker waited as asked and posted again (a 429 created nothing)
    assert sleeps.seconds == [2.0]
    assert len(travis.calls_of("create_request")) == 2
    assert travis.created_count() == 1
    assert submission.created


def test_429_with_retry_after_zero_posts_again_at_once(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, sleeps: Sleeps
) -> None:
    travis.fail_next("create_request", 429, retry_after=0)

    provider.submit(job)

    assert sleeps.seconds == [0.0]
    assert travis.created_count() == 1


def test_the_hourly_request_limit_is_left_to_the_state_machine(
    travis: TravisFake,
    provider: TravisProvider,
    create_job: Callable[..., str],
    sleeps: Sleeps,
) -> None:
    # Given a repository that used its requests for this hour (Retry-After ~ an hour)
    travis.script(SLUG).rate_limit = 1
    provider.submit(execution_input(create_job()))
    job = execution_input(create_job())
    travis.reset_calls()

    # When the job is submitted
    with pytest.raises(ServiceUnavailable, match="request limit"):
        provider.submit(job)

    # Then the Lambda did not wait an hour, and posted once
    assert sleeps.seconds == []
    assert len(travis.calls_of("create_request")) == 1


@pytest.mark.parametrize("seed", range(6))
def test_one_request_per_job_whatever_travis_does(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, seed: int
) -> None:
    # Given a Travis that fails half of all calls in every way it can (seeded)
    travis.random_faults(0.5, seed=seed)

    # When the submit step is retried by the state machine until it succeeds
    submission = None
    for _ in range(20):
        try:
            submission = provider.submit(job)
            break
        except ServiceUnavailable:
            continue

    # Then exactly one request exists for the job, and it is the one the step reports
    assert submission is not None
    (request,) = travis.requests_with(job_marker(job.job_id))
    assert submission.request_id == str(request.id)


def test_an_invalid_configuration_reaches_no_one(
    travis: TravisFake, provider: TravisProvider, create_job: Callable[..., str]
) -> None:
    job = execution_input(create_job(), configuration={**CONFIGURATION, "Owner": "a/b"})

    with pytest.raises(ConfigurationInvalid, match="Owner"):
        provider.submit(job)

    assert travis.calls == []


def test_the_workers_token_is_used_without_an_api_token(
    travis: TravisFake,
    provider: TravisProvider,
    create_job: Callable[..., str],
    secret: SecretStore,
) -> None:
    job = execution_input(create_job(api_token=None))

    provider.submit(job)

    assert {c.token_sha for c in travis.calls} == {token_fingerprint(WORKER_TOKEN)}
    assert secret.reads


def test_an_untrusted_endpoint_never_sees_the_workers_token(
    travis: TravisFake,
    provider: TravisProvider,
    create_job: Callable[..., str],
    secret: SecretStore,
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
            provider.submit(job)

        # Then that host heard nothing, and the secret was not even read
        assert elsewhere.calls == []
    assert secret.reads == []


# --- resolve ----------------------------------------------------------------------------------


def test_resolve_is_none_while_the_request_is_pending(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    travis.script(SLUG).polls_until_build = 3
    submission = provider.submit(job)

    assert provider.resolve(job, submission.request_id) is None
    assert provider.resolve(job, submission.request_id) is None
    build = provider.resolve(job, submission.request_id)

    assert build is not None
    (created,) = travis.builds_for(SLUG)
    assert build == BuildRef(
        build_id=str(created.id),
        number=created.number,
        url=f"{travis.base_url}/{SLUG}/builds/{created.id}",
    )


def test_a_rejected_request_is_a_configuration_error_with_travis_reason(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    # Given a repository whose .travis.yml is missing
    travis.script(SLUG).reject = True
    submission = provider.submit(job)

    # When the build is resolved
    with pytest.raises(ConfigurationInvalid) as raised:
        provider.resolve(job, submission.request_id)

    # Then the user reads Travis's reason, the repository and the branch
    assert ".travis.yml: missing" in raised.value.message
    assert SLUG in raised.value.message
    assert BRANCH in raised.value.message


def test_a_rejection_with_structured_messages_only(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    # Given Travis's own message objects (code, key, args, no human text)
    travis.script(SLUG).reject = True
    travis.script(SLUG).reject_messages = [
        {"code": "branch_excluded", "key": "branches", "args": {"branch": "main"}, "text": ""}
    ]
    submission = provider.submit(job)

    with pytest.raises(ConfigurationInvalid, match="branches branch_excluded branch=main"):
        provider.resolve(job, submission.request_id)


def test_a_missing_commit_is_revision_unavailable(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    # Given the pipeline carries a commit the repository does not have
    travis.script(SLUG).known_commits = {"f" * 40}
    submission = provider.submit(job)

    # When the build is resolved
    with pytest.raises(RevisionNotFound) as raised:
        provider.resolve(job, submission.request_id)

    # Then the error names the commit and the repository
    assert REVISION in raised.value.message
    assert SLUG in raised.value.message


def test_an_unknown_request_is_a_configuration_error(
    provider: TravisProvider, job: ExecutionInput
) -> None:
    with pytest.raises(ConfigurationInvalid):
        provider.resolve(job, "999999999")


# --- status and cancel ------------------------------------------------------------------------


def test_status_follows_the_build_with_progress_from_jobs(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    # Given a build of 4 jobs that takes 4 looks to finish
    travis.script(SLUG).jobs = 4
    travis.script(SLUG).polls_until_done = 4
    submission, build = _submit_and_resolve(provider, job)
    continuation = provider.continuation(job, submission, build)

    # When the build is looked at until it ends
    looks = [provider.status(job, continuation) for _ in range(4)]

    # Then state and progress follow Travis, and the last look carries the result and commit
    assert [(s.state, s.progress, s.finished) for s in looks] == [
        ("created", 0, False),
        ("started", 25, False),
        ("started", 50, False),
        ("passed", 100, True),
    ]
    assert looks[-1].passed
    assert looks[-1].commit == REVISION
    assert looks[-1].number == build.number
    assert looks[-1].url == build.url


@pytest.mark.parametrize("outcome", ["failed", "errored", "canceled"])
def test_status_of_an_unsuccessful_build(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput, outcome: str
) -> None:
    travis.script(SLUG).outcome = outcome
    travis.script(SLUG).polls_until_done = 1
    submission, build = _submit_and_resolve(provider, job)

    status = provider.status(job, provider.continuation(job, submission, build))

    assert (status.state, status.finished, status.passed) == (outcome, True, False)


def test_the_continuation_holds_what_phase_two_needs(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    submission, build = _submit_and_resolve(provider, job)

    continuation = provider.continuation(job, submission, build)

    assert continuation == Continuation(
        provider="travis",
        build_id=build.build_id,
        request_id=submission.request_id,
        endpoint=travis.base_url,
        slug=SLUG,
        started=submission.submitted_at,
        build_number=build.number,
    )
    assert JOB_TOKEN not in continuation.encode()


def test_an_unreadable_build_is_service_unavailable(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    # Given a build Travis keeps answering with an empty body
    submission, build = _submit_and_resolve(provider, job)
    continuation = provider.continuation(job, submission, build)
    travis.malformed_next("get_build", "empty", times=10)

    # Then the watch step fails retryably instead of guessing a state
    with pytest.raises(ServiceUnavailable, match=build.build_id):
        provider.status(job, continuation)


def test_a_build_answer_of_the_wrong_shape_is_service_unavailable(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    # Given Travis answers the build with an object whose state is no build state
    submission, build = _submit_and_resolve(provider, job)
    continuation = provider.continuation(job, submission, build)
    travis.malformed_next("get_build", "wrong_shape")

    # Then the watch step does not wait on it as if the build were running
    with pytest.raises(ServiceUnavailable, match="malformed"):
        provider.status(job, continuation)


def test_a_request_answer_of_the_wrong_shape_is_service_unavailable(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    submission = provider.submit(job)
    travis.malformed_next("get_request", "wrong_shape")

    with pytest.raises(ServiceUnavailable, match="malformed"):
        provider.resolve(job, submission.request_id)


def test_cancel_stops_the_build_in_travis(
    travis: TravisFake, provider: TravisProvider, job: ExecutionInput
) -> None:
    submission, build = _submit_and_resolve(provider, job)

    provider.cancel(job, provider.continuation(job, submission, build))

    assert travis.get_build(int(build.build_id)).state == "canceled"


# --- the provider seam ------------------------------------------------------------------------


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
