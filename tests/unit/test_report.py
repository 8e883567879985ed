"""Telling CodePipeline: the build link, hand-over progress, the outcome with its output artifact,
and classified failures; a job that is gone is never reported as reported."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from moto import mock_aws

from local.codepipeline import CodePipelineEmulator
from tests.unit.support import JOB_TOKEN, REVISION, SLUG, make_settings, step_event
from worker import report
from worker.codepipeline import CodePipelineJobs
from worker.continuation import Continuation
from worker.failures import BuildUnsuccessful, JobGone
from worker.job import ExecutionInput, sanitize_job
from worker.providers import BuildRef, BuildStatus, JobState, Submission
from worker.report import progress_summary, publish_link, report_failure, report_outcome
from worker.schedule import Expectation
from worker.step_event import StepEvent

EXECUTION = "5f0c6a3e-8b1d-4e2f-9a7c-1b2d3e4f5a6b-1a2b3c4d"
SECRETS = frozenset({"APIToken"})
ENDPOINT = "https://api.travis-ci.com"
URL = "https://app.travis-ci.com/github/octo-org/hello.world/builds/900001"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TOKEN = Continuation(
    "travis", "900001", "205001", ENDPOINT, SLUG, 1_700_000_000.0, "7", url=URL, revision=REVISION
)


def _status(state: str = "passed", *, jobs: tuple[str, ...] = ("passed", "passed")) -> BuildStatus:
    finished = state in ("passed", "failed", "errored", "canceled")
    return BuildStatus(
        build_id="900001",
        number="7",
        url=URL,
        state=state,
        finished=finished,
        passed=state == "passed",
        commit=REVISION,
        started_at=1_700_000_100.0,
        finished_at=1_700_000_400.0 if finished else None,
        jobs=tuple(JobState(str(800 + i), f"7.{i + 1}", s) for i, s in enumerate(jobs)),
    )


class FakeProvider:
    """The provider as the report steps use it: one status, an explanation, the continuation."""

    def __init__(
        self, status: BuildStatus | None = None, explanation: str | Exception = ""
    ) -> None:
        self.build_status = status or _status()
        self.explanation = explanation
        self.explained: list[BuildStatus] = []

    def status(self, job: ExecutionInput, continuation: Continuation) -> BuildStatus:
        return self.build_status

    def explain_failure(
        self, job: ExecutionInput, continuation: Continuation, status: BuildStatus
    ) -> str:
        self.explained.append(status)
        if isinstance(self.explanation, Exception):
            raise self.explanation
        return self.explanation

    def continuation(
        self,
        job: ExecutionInput,
        submission: Submission,
        build: BuildRef,
        expectation: Expectation | None,
    ) -> Continuation:
        return Continuation(
            "travis",
            build.build_id,
            submission.request_id,
            ENDPOINT,
            SLUG,
            submission.submitted_at,
            build.number,
            url=build.url,
            branch_head=not submission.sha_sent,
            expected=expectation.seconds if expectation else 0.0,
        )


@pytest.fixture
def claimed(
    create_job: Callable[..., str], claim_job: Callable[[str], dict[str, Any]]
) -> Callable[..., ExecutionInput]:
    """A job this execution has acknowledged, as the poller sanitized it."""
    return lambda **kwargs: sanitize_job(claim_job(create_job(**kwargs)), SECRETS)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The metrics the report steps add."""
    seen: list[str] = []
    monkeypatch.setattr(report.metrics, "add_metric", lambda name, **_: seen.append(name))
    monkeypatch.setattr(report, "count_failure", lambda t: seen.append(f"JobsFailed/{t.value}"))
    return seen


@pytest.fixture
def s3(emulator: CodePipelineEmulator) -> Iterator[None]:
    """moto's S3 with the pipeline's artifact bucket (CodePipeline stays the emulator)."""
    with mock_aws():
        emulator.create_artifact_bucket()
        yield


class FakeLambda:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.invoked: list[dict[str, Any]] = []

    def invoke(self, **params: Any) -> dict[str, Any]:
        if self.error:
            raise self.error
        self.invoked.append(params)
        return {"StatusCode": 202}


@pytest.fixture
def lambda_client(monkeypatch: pytest.MonkeyPatch) -> FakeLambda:
    fake = FakeLambda()
    real = report.aws.client
    monkeypatch.setattr(
        report.aws, "client", lambda service: fake if service == "lambda" else real(service)
    )
    return fake


def _step(job: ExecutionInput, *, retries: int = 0, **sections: Any) -> StepEvent:
    event = step_event(job, execution=EXECUTION, **sections)
    event["retries"] = retries
    return StepEvent.parse(event)


def _watching(job: ExecutionInput, token: Continuation = TOKEN) -> ExecutionInput:
    return replace(job, continuation=token.as_dict())


def _failure(emulator: CodePipelineEmulator, job: ExecutionInput) -> dict[str, Any]:
    details = emulator.run_for_job(job.job_id).failure_details
    assert details is not None, "the job got no failure result"
    return details


def _abandon(emulator: CodePipelineEmulator, job: ExecutionInput) -> None:
    emulator.stop_pipeline_execution(job.pipeline.name, job.pipeline.execution_id, abandon=True)


# --- report_outcome: passed ------------------------------------------------------------------


def test_a_passed_build_succeeds_with_variables_and_the_output_artifact(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    s3: None,
    counted: list[str],
) -> None:
    # Given a watched job of an encrypted pipeline that declares an output artifact
    job = _watching(claimed(output_artifact_name="BuildReport", encryption_key_id=KMS_KEY))

    # When the passed build is reported
    result = report_outcome(_step(job), FakeProvider(_status("passed")), jobs)

    # Then CodePipeline took a success with the build's details and output variables
    assert result == {"result": "passed", "buildId": "900001"}
    (call,) = emulator.calls("PutJobSuccessResult")
    assert call.params == {
        "jobId": job.job_id,
        "executionDetails": {
            "summary": f"Travis build #7 passed: {URL}",
            "percentComplete": 100,
            "externalExecutionId": "900001",
        },
        "outputVariables": {
            "BuildId": "900001",
            "BuildNumber": "7",
            "BuildUrl": URL,
            "CommitId": REVISION,
        },
    }
    assert emulator.run_for_job(job.job_id).status == "Succeeded"
    # and the output artifact is a zip holding build-report.json, written SSE-KMS with the key
    artifact = emulator.read_output_artifact(job.job_id)
    assert artifact.server_side_encryption == "aws:kms"
    assert artifact.kms_key_id == KMS_KEY
    with zipfile.ZipFile(io.BytesIO(artifact.body)) as archive:
        assert archive.namelist() == ["build-report.json"]
        written = json.loads(archive.read("build-report.json"))
    assert written["buildId"] == "900001"
    assert written["state"] == "passed"
    assert written["commit"] == REVISION
    assert written["durationSeconds"] == 300
    assert [j["number"] for j in written["jobs"]] == ["7.1", "7.2"]
    assert JOB_TOKEN not in artifact.body.decode("latin-1")
    assert "BuildsPassed" in counted


def test_refused_output_variables_still_report_the_pass(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    counted: list[str],
) -> None:
    # Given CodePipeline refuses the output variables once (a job without output artifacts)
    job = _watching(claimed())
    emulator.fail_next("PutJobSuccessResult", 1, "ValidationException", "bad variables", 400)

    # When the passed build is reported
    result = report_outcome(_step(job), FakeProvider(), jobs)

    # Then it was reported again without them, and the job succeeded
    assert result == {"result": "passed", "buildId": "900001"}
    first, second = emulator.calls("PutJobSuccessResult")
    assert "outputVariables" in first.params
    assert "outputVariables" not in second.params
    run = emulator.run_for_job(job.job_id)
    assert run.status == "Succeeded"
    assert run.output_variables is None
    assert run.execution_details[-1]["percentComplete"] == 100


def test_a_passed_branch_head_says_so(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    job = _watching(claimed(), replace(TOKEN, branch_head=True, revision=""))

    report_outcome(_step(job), FakeProvider(), jobs)

    summary = emulator.calls("PutJobSuccessResult")[-1].params["executionDetails"]["summary"]
    assert "branch head" in summary


def test_a_pass_for_a_job_that_is_gone_is_not_counted(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    counted: list[str],
) -> None:
    # Given the run was stopped and abandoned while the build ran
    job = _watching(claimed())
    _abandon(emulator, job)

    # When the pass is reported
    result = report_outcome(_step(job), FakeProvider(), jobs)

    # Then the step says gone, and nothing counts it as passed
    assert result == {"result": "gone", "buildId": "900001"}
    assert emulator.calls("PutJobSuccessResult")[-1].error_code == "InvalidJobStateException"
    assert "BuildsPassed" not in counted
    assert "JobsGone" in counted


def test_a_retried_report_after_our_success_is_passed(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
) -> None:
    # Given the report step succeeded, its answer was lost, and Step Functions retries it
    job = _watching(claimed())
    report_outcome(_step(job), FakeProvider(), jobs)

    # Then the retry, refused, learns from ListActionExecutions that the success was ours
    assert report_outcome(_step(job, retries=1), FakeProvider(), jobs)["result"] == "passed"
    assert len(emulator.run_for_job(job.job_id).results) == 1


def test_an_unfinished_status_falls_back_to_the_watch(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    # Given Travis answers a status not yet finished (a stale read) where the watch saw the end
    job = _watching(claimed())
    watched = _status("failed").as_dict()

    result = report_outcome(
        _step(job, watch={"status": watched}), FakeProvider(_status("started")), jobs
    )

    assert result["result"] == "failed"


# --- report_outcome: failed ------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["failed", "errored", "canceled"])
def test_an_unsuccessful_build_fails_naming_the_jobs_with_their_log_tail(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    counted: list[str],
    outcome: str,
) -> None:
    # Given a build that ended unsuccessfully, and the provider's account of its failing job
    job = _watching(claimed())
    explanation = "Job #7.2 failed: https://travis/jobs/801\n  $ make test\n  FAIL test_math.py"
    provider = FakeProvider(_status(outcome, jobs=("passed", outcome)), explanation)

    # When the outcome is reported
    result = report_outcome(_step(job), provider, jobs)

    # Then the job failed with the build's id and a message naming the job, with its log tail
    assert result == {"result": "failed", "type": "JobFailed", "buildId": "900001"}
    failure = _failure(emulator, job)
    assert failure["type"] == "JobFailed"
    assert failure["externalExecutionId"] == "900001"
    assert failure["message"] == (
        f"Travis build #7 {outcome}: {URL}\n"
        "Job #7.2 failed: https://travis/jobs/801\n$ make test\nFAIL test_math.py"
    )
    assert counted == ["BuildsFailed", "JobsFailed/JobFailed"]


def test_unreadable_logs_still_fail_the_job(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    job = _watching(claimed())
    provider = FakeProvider(_status("failed"), BuildUnsuccessful("logs unavailable"))

    report_outcome(_step(job), provider, jobs)

    assert _failure(emulator, job)["message"] == f"Travis build #7 failed: {URL}"


def test_a_failure_for_a_job_that_is_gone_is_not_counted(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    counted: list[str],
) -> None:
    job = _watching(claimed())
    emulator.delete_pipeline(job.pipeline.name)

    result = report_outcome(_step(job), FakeProvider(_status("failed")), jobs)

    assert result == {"result": "gone", "buildId": "900001"}
    assert counted == ["JobsGone"]


# --- publish_link ----------------------------------------------------------------------------

PHASE_ONE = {
    "submission": Submission("205001", True, 1_700_000_000.0).as_dict(),
    "resolution": {
        "ready": True,
        "build": BuildRef("900001", "7", URL, REVISION).as_dict(),
        "expected": 420.0,
        "spread": 30.0,
    },
}


def test_the_build_link_is_published_with_a_continuation_token(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    lambda_client: FakeLambda,
) -> None:
    # Given phase 1 resolved the build of a claimed job, in a deployment that names its poller
    job = claimed()
    settings = make_settings("http://127.0.0.1:1", poller_function="travis-worker-poller")

    # When it publishes the link
    result = publish_link(_step(job, **PHASE_ONE), FakeProvider(), jobs, settings)

    # Then the console shows the build at 0% and CodePipeline made a continuation job
    assert result == {"published": True, "buildId": "900001", "percent": 0}
    (call,) = emulator.calls("PutJobSuccessResult")
    assert call.params["executionDetails"] == {
        "summary": f"Travis build #7 started: {URL}",
        "percentComplete": 0,
        "externalExecutionId": "900001",
    }
    token = Continuation.from_dict(json.loads(call.params["continuationToken"]))
    assert (token.build_id, token.expected, token.hand_overs, token.jobs_done) == (
        "900001",
        420.0,
        1,
        0,
    )
    assert JOB_TOKEN not in call.params["continuationToken"]
    run = emulator.run_for_job(job.job_id)
    assert run.status == "InProgress"
    assert len(run.job_ids) == 2
    # and the poller was woken for the continuation job, asynchronously
    (invoked,) = lambda_client.invoked
    assert invoked["FunctionName"] == "travis-worker-poller"
    assert invoked["InvocationType"] == "Event"
    assert json.loads(invoked["Payload"])["detail"]["type"] == job.action_type.as_api()


def test_a_branch_head_build_says_so_in_the_link(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    # Given the revision was no commit id: Travis builds the branch head
    job = claimed()
    sections = {
        **PHASE_ONE,
        "submission": Submission("205001", True, 1_700_000_000.0, sha_sent=False).as_dict(),
    }

    publish_link(_step(job, **sections), FakeProvider(), jobs, make_settings("http://x"))

    summary = emulator.calls("PutJobSuccessResult")[-1].params["executionDetails"]["summary"]
    assert summary.startswith(f"Travis build #7 started: {URL} (the head of branch main")


def test_a_refused_link_on_a_first_attempt_is_job_gone(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    lambda_client: FakeLambda,
) -> None:
    # Given the run was abandoned before the link was published
    job = claimed()
    _abandon(emulator, job)
    settings = make_settings("http://x", poller_function="travis-worker-poller")

    # Then the step raises JobGone carrying the build (the state machine cancels it)
    with pytest.raises(JobGone) as raised:
        publish_link(_step(job, **PHASE_ONE), FakeProvider(), jobs, settings)
    assert raised.value.build_id == "900001"
    assert lambda_client.invoked == []


def test_a_failed_poller_wake_is_harmless(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeLambda(RuntimeError("lambda down"))
    monkeypatch.setattr(report.aws, "client", lambda service: fake)
    settings = make_settings("http://x", poller_function="travis-worker-poller")

    result = publish_link(_step(claimed(), **PHASE_ONE), FakeProvider(), jobs, settings)

    assert result["published"] is True


def test_a_hand_over_shows_the_progress(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    # Given a watch that saw 2 of 5 Travis jobs finish and hands over to a fresh job
    job = _watching(claimed(), replace(TOKEN, hand_overs=1, jobs_done=0))
    status = _status("started", jobs=("passed", "failed", "started", "queued", "created"))

    # When it publishes the progress
    result = publish_link(
        _step(job, watch={"status": status.as_dict()}), FakeProvider(), jobs, make_settings("x")
    )

    # Then the console shows "k of n jobs done" and the percentage, and the token counts on
    assert result == {"published": True, "buildId": "900001", "percent": 40}
    call = emulator.calls("PutJobSuccessResult")[-1].params
    assert call["executionDetails"] == {
        "summary": f"Travis build #7 started: 2 of 5 jobs done: {URL}",
        "percentComplete": 40,
        "externalExecutionId": "900001",
    }
    token = json.loads(call["continuationToken"])
    assert (token["hand_overs"], token["jobs_done"]) == (2, 2)
    assert token["published_at"] > 0


def test_the_progress_summary_without_jobs() -> None:
    status = replace(_status("created"), jobs=())
    assert progress_summary(status) == f"Travis build #7 created: {URL}"


def test_a_retried_hand_over_after_ours_is_published(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    job = _watching(claimed())
    step = _step(job, retries=1, watch={"status": _status("started").as_dict()})
    publish_link(step, FakeProvider(), jobs, make_settings("x"))

    # The retry is refused, but the action is still InProgress after our hand-over
    assert publish_link(step, FakeProvider(), jobs, make_settings("x"))["published"] is True
    assert emulator.calls("PutJobSuccessResult")[-1].error_code == "InvalidJobStateException"


# --- report_failure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "failure_type"),
    [
        ("ConfigurationInvalid", "ConfigurationError"),
        ("PermissionDenied", "PermissionError"),
        ("RevisionNotFound", "RevisionUnavailable"),
        ("BuildUnsuccessful", "JobFailed"),
        ("ServiceUnavailable", "SystemUnavailable"),
        ("BuildNotStarted", "SystemUnavailable"),
        ("UnreadableContinuation", "JobFailed"),
    ],
)
def test_our_failures_are_reported_with_our_message(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    error: str,
    failure_type: str,
) -> None:
    # Given a step failed with one of our failures (as Step Functions passes it to the catch-all)
    job = claimed()
    message = f"The property Owner is wrong ({error})."

    # When the failure is reported
    result = report_failure(_step(job, error=_caught(error, message)), jobs)

    # Then the type follows the classification table and the user reads our message
    failure = _failure(emulator, job)
    assert failure["type"] == failure_type
    assert failure["message"] == message
    assert "externalExecutionId" not in failure
    assert result["type"] == failure_type


def test_an_unknown_error_names_the_execution_and_never_echoes_its_message(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    # Given a bug whose message happens to contain a secret
    job = claimed()
    leaked = f"KeyError: token {JOB_TOKEN} in {{'APIToken': '{JOB_TOKEN}'}}"

    # When it is reported
    report_failure(_step(job, error=_caught("KeyError", leaked)), jobs)

    # Then the pipeline user learns where to look, not what the bug said
    failure = _failure(emulator, job)
    assert failure["type"] == "JobFailed"
    assert EXECUTION in failure["message"]
    assert "KeyError" in failure["message"]
    assert JOB_TOKEN not in failure["message"]
    assert "APIToken" not in failure["message"]


def test_a_known_name_without_a_readable_cause_is_treated_as_unexpected(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    job = claimed()

    report_failure(_step(job, error={"Error": "ConfigurationInvalid", "Cause": "not json"}), jobs)

    failure = _failure(emulator, job)
    assert failure["type"] == "ConfigurationError"
    assert EXECUTION in failure["message"]
    assert "not json" not in failure["message"]


@pytest.mark.parametrize(
    ("error", "failure_type", "words"),
    [
        ("States.Timeout", "JobFailed", "timed out"),
        ("Sandbox.Timedout", "JobFailed", "timed out"),
        ("Lambda.ServiceException", "SystemUnavailable", "Lambda.ServiceException"),
        ("Lambda.Unknown", "JobFailed", "Lambda.Unknown"),
        ("Bad<script>\nName", "JobFailed", "BadscriptName"),
    ],
)
def test_platform_errors_name_the_execution(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    error: str,
    failure_type: str,
    words: str,
) -> None:
    job = claimed()

    report_failure(_step(job, error={"Error": error, "Cause": "task timed out after 90 s"}), jobs)

    failure = _failure(emulator, job)
    assert failure["type"] == failure_type
    assert words in failure["message"]
    assert EXECUTION in failure["message"]
    assert "<script>" not in failure["message"]


def test_a_missing_error_section_is_still_reported(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    job = claimed()
    report_failure(_step(job), jobs)
    assert _failure(emulator, job)["type"] == "JobFailed"


def test_the_failure_carries_the_known_build_id(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    # Given a phase 1 job that failed after its build was resolved
    first = claimed()
    resolution = {"ready": True, "build": {"buildId": "900042", "number": "7", "url": "u"}}
    report_failure(
        _step(first, resolution=resolution, error=_caught("ServiceUnavailable", "down")), jobs
    )

    # And a phase 2 job whose build is known from its continuation
    token = Continuation("travis", "900043", "205001", "https://api.travis-ci.com", SLUG, 1.0)
    second = replace(claimed(), continuation=token.as_dict())
    report_failure(_step(second, error=_caught("BuildUnsuccessful", "timed out")), jobs)

    # Then each failure points at its build
    assert _failure(emulator, first)["externalExecutionId"] == "900042"
    assert _failure(emulator, second)["externalExecutionId"] == "900043"


def test_reporting_on_a_finished_job_does_not_fail(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[..., ExecutionInput]
) -> None:
    # Given the catch-all ran once and is retried
    job = claimed()
    error = _caught("ServiceUnavailable", "Travis CI is unavailable.")
    report_failure(_step(job, error=error), jobs)

    # Then the retry succeeds without a second result (the action shows our Failed)
    assert report_failure(_step(job, retries=1, error=error), jobs)["type"] == "SystemUnavailable"
    assert len(emulator.run_for_job(job.job_id).results) == 1


def test_the_catch_all_for_a_job_that_is_gone_is_not_counted(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[..., ExecutionInput],
    counted: list[str],
) -> None:
    # Given the run was stopped and abandoned before the catch-all ran
    job = claimed()
    _abandon(emulator, job)

    result = report_failure(_step(job, error=_caught("ServiceUnavailable", "down")), jobs)

    assert result == {"result": "gone", "buildId": None}
    assert counted == ["JobsGone"]


def _caught(error: str, message: str) -> dict[str, str]:
    """What a Catch puts at $.error for a Lambda that raised `error(message)`."""
    cause = {"errorMessage": message, "errorType": error, "stackTrace": ["  File x, line 1"]}
    return {"Error": error, "Cause": json.dumps(cause)}
