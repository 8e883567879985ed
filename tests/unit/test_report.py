"""Telling CodePipeline: the early build link, the outcome, and classified failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from local.codepipeline_emulator import CodePipelineEmulator
from local.travis_fake import TravisFake
from tests.unit.support import (
    ACTION_TYPE_API,
    JOB_TOKEN,
    REVISION,
    SLUG,
    ManualClock,
    run_phase_one,
    step_event,
)
from worker.build import continuation_for, watch_build
from worker.codepipeline import CodePipelineJobs
from worker.continuation import Continuation
from worker.job import ExecutionInput, sanitize_job
from worker.providers.travis.provider import TravisProvider
from worker.report import publish_link, report_failure, report_outcome
from worker.settings import Settings
from worker.step_event import StepEvent

EXECUTION = "5f0c6a3e-8b1d-4e2f-9a7c-1b2d3e4f5a6b-1a2b3c4d"
SECRETS = frozenset({"APIToken"})


@pytest.fixture
def claimed(
    create_job: Callable[..., str], claim_job: Callable[[str], dict[str, Any]]
) -> Callable[[], ExecutionInput]:
    """A job this execution has acknowledged, as the poller sanitized it."""
    return lambda: sanitize_job(claim_job(create_job()), SECRETS)


def _step(job: ExecutionInput, **sections: Any) -> StepEvent:
    return StepEvent.parse(step_event(job, execution=EXECUTION, **sections))


def _failure(emulator: CodePipelineEmulator, job: ExecutionInput) -> dict[str, Any]:
    details = emulator.run_for_job(job.job_id).failure_details
    assert details is not None, "the job got no failure result"
    return details


def _watched(
    job: ExecutionInput, provider: TravisProvider, settings: Settings, clock: ManualClock
) -> dict[str, Any]:
    watch: dict[str, Any] = {}
    while not watch.get("finished"):
        watch = watch_build(_step(job, watch=watch), provider, settings, clock)
    return watch


def test_both_phases_end_to_end_through_codepipeline(
    travis: TravisFake,
    emulator: CodePipelineEmulator,
    codepipeline_client: Any,
    jobs: CodePipelineJobs,
    provider: TravisProvider,
    settings: Settings,
    clock: ManualClock,
    claimed: Callable[[], ExecutionInput],
) -> None:
    # Given phase 1 resolved a build for a claimed job
    job = claimed()
    state = run_phase_one(job, provider, settings, clock)
    build = state["resolution"]["build"]

    # When it publishes the link
    assert publish_link(_step(job, **state), provider, jobs) == {
        "published": True,
        "buildId": build["buildId"],
    }

    # Then the console shows the build at 0% and CodePipeline made a continuation job
    run = emulator.run_for_job(job.job_id)
    (details,) = run.execution_details
    assert details == {
        "summary": f"Travis build #{build['number']} started: {build['url']}",
        "percentComplete": 0,
        "externalExecutionId": build["buildId"],
    }
    (token,) = run.continuation_tokens
    assert JOB_TOKEN not in token

    # When the poller hands the continuation job to phase 2, which watches and reports
    (handed,) = codepipeline_client.poll_for_jobs(actionTypeId=ACTION_TYPE_API, maxBatchSize=1)[
        "jobs"
    ]
    codepipeline_client.acknowledge_job(jobId=handed["id"], nonce=handed["nonce"])
    phase_two = sanitize_job(handed, SECRETS)
    continuation = Continuation.from_dict(phase_two.continuation)
    watch = _watched(phase_two, provider, settings, clock)
    result = report_outcome(_step(phase_two, watch=watch), jobs)

    # Then phase 2 followed phase 1's build, and the action run succeeded with the details
    assert continuation.build_id == build["buildId"]
    assert continuation.request_id == state["submission"]["requestId"]
    assert result == {"result": "success", "buildId": build["buildId"]}
    run = emulator.run_for_job(job.job_id)
    assert run.status == "Succeeded"
    assert run.execution_details[-1] == {
        "summary": f"Travis build #{build['number']} passed: {build['url']}",
        "percentComplete": 100,
        "externalExecutionId": build["buildId"],
    }
    assert run.output_variables == {
        "BuildId": build["buildId"],
        "BuildNumber": build["number"],
        "BuildUrl": build["url"],
        "CommitId": REVISION,
    }
    assert len(travis.requests_for(SLUG)) == 1


def test_publishing_twice_is_harmless(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    provider: TravisProvider,
    settings: Settings,
    clock: ManualClock,
    claimed: Callable[[], ExecutionInput],
) -> None:
    # Given a link published, and the step retried after its result was lost
    job = claimed()
    step = _step(job, **run_phase_one(job, provider, settings, clock))
    publish_link(step, provider, jobs)

    # When it publishes again
    again = publish_link(step, provider, jobs)

    # Then the step succeeds and CodePipeline still has one result and one continuation job
    assert again["published"] is True
    run = emulator.run_for_job(job.job_id)
    assert len(run.results) == 1
    assert len(run.job_ids) == 2


@pytest.mark.parametrize("outcome", ["failed", "errored", "canceled"])
def test_an_unsuccessful_build_fails_the_job_with_its_id(
    travis: TravisFake,
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    provider: TravisProvider,
    settings: Settings,
    clock: ManualClock,
    claimed: Callable[[], ExecutionInput],
    outcome: str,
) -> None:
    # Given a build that ends unsuccessfully, watched to the end
    travis.script(SLUG).outcome = outcome
    first = claimed()
    state = run_phase_one(first, provider, settings, clock)
    continuation = continuation_for(_step(first, **state), provider)
    job = replace(claimed(), continuation=continuation.as_dict())  # phase 2's job
    watch = _watched(job, provider, settings, clock)

    # When the outcome is reported
    result = report_outcome(_step(job, watch=watch), jobs)

    # Then CodePipeline shows JobFailed, naming the build, with its id
    failure = _failure(emulator, job)
    assert failure["type"] == "JobFailed"
    assert failure["externalExecutionId"] == continuation.build_id
    assert outcome in failure["message"]
    assert f"#{continuation.build_number}" in failure["message"]
    assert result == {"result": "failure", "type": "JobFailed", "buildId": continuation.build_id}


# --- the catch-all ----------------------------------------------------------------------------


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
    claimed: Callable[[], ExecutionInput],
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
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[[], ExecutionInput]
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
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[[], ExecutionInput]
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
    claimed: Callable[[], ExecutionInput],
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
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[[], ExecutionInput]
) -> None:
    job = claimed()
    report_failure(_step(job), jobs)
    assert _failure(emulator, job)["type"] == "JobFailed"


def test_the_failure_carries_the_known_build_id(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[[], ExecutionInput]
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
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, claimed: Callable[[], ExecutionInput]
) -> None:
    # Given the catch-all ran once and is retried
    job = claimed()
    step = _step(job, error=_caught("ServiceUnavailable", "Travis CI is unavailable."))
    report_failure(step, jobs)

    # Then the retry succeeds without a second result
    assert report_failure(step, jobs)["type"] == "SystemUnavailable"
    assert len(emulator.run_for_job(job.job_id).results) == 1


def _caught(error: str, message: str) -> dict[str, str]:
    """What a Catch puts at $.error for a Lambda that raised `error(message)`."""
    cause = {"errorMessage": message, "errorType": error, "stackTrace": ["  File x, line 1"]}
    return {"Error": error, "Cause": json.dumps(cause)}


def test_a_passed_build_is_reported_passed_even_if_output_variables_are_refused(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    claimed: Callable[[], ExecutionInput],
) -> None:
    # Given a finished, passed build and a CodePipeline that refuses the output variables once
    job = claimed()
    status = {
        "build_id": "77",
        "number": "7",
        "url": "https://travis/b/77",
        "state": "passed",
        "passed": True,
        "finished": True,
        "progress": 100,
        "commit": REVISION,
    }
    emulator.fail_next(
        "PutJobSuccessResult", 1, "ValidationException", "outputVariables not allowed", 400
    )

    # When the outcome is reported
    result = report_outcome(_step(job, watch={"finished": True, "status": status}), jobs)

    # Then the job still succeeded, without the variables
    assert result == {"result": "success", "buildId": "77"}
    run = emulator.run_for_job(job.job_id)
    assert run.status == "Succeeded"
    assert run.output_variables is None
    assert run.execution_details[-1]["percentComplete"] == 100
