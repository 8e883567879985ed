"""The CodePipeline adapter against the job-API emulator, through a real boto3 client."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from local.codepipeline import CodePipelineEmulator
from tests.unit.support import ACTION_TYPE, JOB_TOKEN, botocore_client
from worker.codepipeline import (
    MAX_EXTERNAL_ID,
    MAX_SUMMARY,
    Acknowledgement,
    ActionTypeUnknown,
    CodePipelineJobs,
    CodePipelineRejected,
    ResultAnswer,
    ResultCall,
)
from worker.failures import MAX_MESSAGE_LENGTH, FailureType, ServiceUnavailable
from worker.job import PipelineRef

ACCEPTED = ResultCall(ResultAnswer.ACCEPTED)


def _last(emulator: CodePipelineEmulator, operation: str) -> dict[str, Any]:
    return emulator.calls(operation)[-1].params


def test_poll_hands_out_our_jobs(
    jobs: CodePipelineJobs, create_job: Callable[..., str], emulator: CodePipelineEmulator
) -> None:
    # Given three jobs waiting for our action type
    created = {create_job() for _ in range(3)}

    # When the worker polls with a batch of two, twice
    first = jobs.poll(ACTION_TYPE, 2)
    second = jobs.poll(ACTION_TYPE, 2)

    # Then it asked for our type and batch size, and got every job once
    assert len(first) == 2
    assert {j["id"] for j in first + second} == created
    assert _last(emulator, "PollForJobs") == {
        "actionTypeId": ACTION_TYPE.as_api(),
        "maxBatchSize": 2,
    }
    assert jobs.poll(ACTION_TYPE, 2) == []


def test_acknowledge_claims_the_job(
    jobs: CodePipelineJobs, create_job: Callable[..., str], emulator: CodePipelineEmulator
) -> None:
    job_id = create_job()
    (job,) = jobs.poll(ACTION_TYPE, 1)

    answer = jobs.acknowledge(job_id, job["nonce"])

    assert answer == Acknowledgement(status="InProgress")
    assert answer.claimed
    assert emulator.job(job_id).status == "InProgress"


def test_acknowledge_with_a_stale_nonce_is_a_lost_claim(
    jobs: CodePipelineJobs, create_job: Callable[..., str], emulator: CodePipelineEmulator
) -> None:
    # Given a job another hand-out already claimed
    job_id = create_job()
    (job,) = jobs.poll(ACTION_TYPE, 1)
    assert jobs.acknowledge(job_id, job["nonce"]).claimed

    # When an execution with another nonce tries to claim it
    # Then it learns it lost, and the job stays with the winner
    lost = jobs.acknowledge(job_id, "not-" + job["nonce"])
    assert lost == Acknowledgement(status=None, refused="InvalidNonceException")
    assert not lost.claimed
    assert emulator.calls("AcknowledgeJob")[-1].error_code == "InvalidNonceException"
    assert emulator.job(job_id).status == "InProgress"


def test_acknowledge_of_an_unknown_job_is_a_lost_claim(
    jobs: CodePipelineJobs, emulator: CodePipelineEmulator
) -> None:
    answer = jobs.acknowledge(str(uuid.uuid4()), "1")
    assert answer == Acknowledgement(status=None, refused="JobNotFoundException")
    assert emulator.calls("AcknowledgeJob")[-1].error_code == "JobNotFoundException"


def test_configuration_includes_secret_values(
    jobs: CodePipelineJobs, create_job: Callable[..., str]
) -> None:
    # GetJobDetails is where a step reads APIToken at the moment it calls Travis
    configuration = jobs.configuration(create_job())
    assert configuration["APIToken"] == JOB_TOKEN
    assert configuration["Owner"] == "octo-org"


def test_put_success_with_a_continuation_token(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    emulator: CodePipelineEmulator,
) -> None:
    # Given a claimed job
    job_id = create_job()
    claim_job(job_id)

    # When phase 1 publishes the build link (output variables are not allowed with a token)
    accepted = jobs.put_success(
        job_id,
        summary="Travis build #7 started",
        external_execution_id="900001",
        percent_complete=0,
        continuation_token='{"version":1}',
        output_variables={"BuildId": "900001"},
    )

    # Then CodePipeline accepted exactly the details and token, and made a continuation job
    assert accepted == ACCEPTED
    assert _last(emulator, "PutJobSuccessResult") == {
        "jobId": job_id,
        "executionDetails": {
            "summary": "Travis build #7 started",
            "percentComplete": 0,
            "externalExecutionId": "900001",
        },
        "continuationToken": '{"version":1}',
    }
    assert len(emulator.run_for_job(job_id).job_ids) == 2


def test_put_success_with_output_variables(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    emulator: CodePipelineEmulator,
) -> None:
    job_id = create_job()
    claim_job(job_id)

    jobs.put_success(
        job_id,
        summary="passed",
        external_execution_id=None,
        percent_complete=100,
        output_variables={"BuildId": "900001"},
    )

    params = _last(emulator, "PutJobSuccessResult")
    assert params["outputVariables"] == {"BuildId": "900001"}
    assert "externalExecutionId" not in params["executionDetails"]
    assert emulator.run_for_job(job_id).status == "Succeeded"


def test_a_second_result_is_reported_as_already_finished(
    jobs: CodePipelineJobs, create_job: Callable[..., str], claim_job: Callable[[str], Any]
) -> None:
    # Given a job that got its result (a retried step reports again)
    job_id = create_job()
    claim_job(job_id)
    assert (
        jobs.put_failure(
            job_id, failure_type=FailureType.JOB_FAILED, message="x", external_execution_id=None
        )
        == ACCEPTED
    )

    # Then both kinds of result answer "not in progress" instead of failing the step
    refused = ResultCall(ResultAnswer.NOT_IN_PROGRESS)
    assert (
        jobs.put_failure(
            job_id, failure_type=FailureType.JOB_FAILED, message="x", external_execution_id=None
        )
        == refused
    )
    assert (
        jobs.put_success(job_id, summary="s", external_execution_id=None, percent_complete=100)
        == refused
    )


def test_a_result_for_a_deleted_pipeline_is_not_found(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    emulator: CodePipelineEmulator,
) -> None:
    # Given a claimed job whose pipeline was deleted
    job_id = create_job()
    claim_job(job_id)
    emulator.delete_pipeline("release-pipeline")

    # When a result is reported
    call = jobs.put_success(job_id, summary="s", external_execution_id=None, percent_complete=1)

    # Then the job is gone, not "already answered"
    assert call == ResultCall(ResultAnswer.NOT_FOUND)
    assert emulator.calls("PutJobSuccessResult")[-1].error_code == "JobNotFoundException"


def test_a_result_retried_by_botocore_says_so(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    emulator: CodePipelineEmulator,
) -> None:
    # Given a claimed job and a CodePipeline that fails the first attempt (5xx)
    job_id = create_job()
    claim_job(job_id)
    emulator.fail_next("PutJobSuccessResult", 1)

    # When the result is reported (botocore retries by itself)
    call = jobs.put_success(job_id, summary="s", external_execution_id=None, percent_complete=1)

    # Then it was accepted on the second attempt, and the answer says an earlier try may have won
    assert call == ResultCall(ResultAnswer.ACCEPTED, retried=True)
    assert [c.error_code for c in emulator.calls("PutJobSuccessResult")] == [
        "InternalFailure",
        None,
    ]


def test_an_acknowledge_retried_by_botocore_says_so(
    jobs: CodePipelineJobs, create_job: Callable[..., str], emulator: CodePipelineEmulator
) -> None:
    job_id = create_job()
    (job,) = jobs.poll(ACTION_TYPE, 1)
    emulator.throttle_next("AcknowledgeJob")

    answer = jobs.acknowledge(job_id, job["nonce"])

    assert answer == Acknowledgement(status="InProgress", retried=True)


def test_poll_for_a_deleted_action_type_is_action_type_unknown(
    jobs: CodePipelineJobs, emulator: CodePipelineEmulator
) -> None:
    emulator.delete_action_type(ACTION_TYPE.as_api())

    with pytest.raises(ActionTypeUnknown, match="ActionTypeNotFoundException"):
        jobs.poll(ACTION_TYPE, 1)
    assert len(emulator.calls("PollForJobs")) == 1  # not retried


def test_details_read_artifacts_credentials_and_key(
    jobs: CodePipelineJobs, create_job: Callable[..., str], emulator: CodePipelineEmulator
) -> None:
    # Given a job with an output artifact in an encrypted pipeline
    job_id = create_job(output_artifact_name="BuildReport", encryption_key_id="alias/pipeline")

    details = jobs.details(job_id)

    # Then the step sees where to write, with which credentials and key
    (artifact,) = details.output_artifacts
    location = emulator.action_run(emulator.job(job_id).action_execution_id).output_artifacts[0]
    assert artifact.name == "BuildReport"
    assert (artifact.bucket, artifact.key) == (
        location["location"]["s3Location"]["bucketName"],
        location["location"]["s3Location"]["objectKey"],
    )
    assert details.encryption_key_id == "alias/pipeline"
    assert details.credentials["accessKeyId"].startswith("ASIA")
    assert details.configuration["APIToken"] == JOB_TOKEN


def _pipeline(emulator: CodePipelineEmulator, job_id: str) -> PipelineRef:
    run = emulator.run_for_job(job_id)
    return PipelineRef(
        name=run.pipeline_name,
        stage=run.stage_name,
        action=run.action_name,
        execution_id=run.pipeline_execution_id,
        action_execution_id=run.action_execution_id,
    )


def test_action_status_follows_the_action_execution(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    emulator: CodePipelineEmulator,
) -> None:
    # Given a claimed job in a running pipeline
    job_id = create_job()
    claim_job(job_id)
    pipeline = _pipeline(emulator, job_id)
    assert jobs.action_status(pipeline) == "InProgress"

    # When the user stops and abandons the pipeline execution
    emulator.stop_pipeline_execution(pipeline.name, pipeline.execution_id, abandon=True)

    # Then ListActionExecutions shows this action execution Abandoned
    assert jobs.action_status(pipeline) == "Abandoned"
    (call,) = emulator.calls("ListActionExecutions")[-1:]
    assert call.params == {
        "pipelineName": pipeline.name,
        "filter": {"pipelineExecutionId": pipeline.execution_id},
    }


def test_action_status_cannot_be_told(
    jobs: CodePipelineJobs, create_job: Callable[..., str], emulator: CodePipelineEmulator
) -> None:
    job_id = create_job()
    pipeline = _pipeline(emulator, job_id)

    # Without ids nothing is asked; an unknown action execution or a refusal says None
    assert jobs.action_status(PipelineRef(name=pipeline.name)) is None
    assert emulator.calls("ListActionExecutions") == []
    other = PipelineRef(
        name=pipeline.name,
        execution_id=pipeline.execution_id,
        action_execution_id=str(uuid.uuid4()),
    )
    assert jobs.action_status(other) is None
    emulator.fail_next("ListActionExecutions", 1, "AccessDeniedException", "no", 400)
    assert jobs.action_status(pipeline) is None


def test_long_texts_are_clipped_to_codepipeline_limits(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    emulator: CodePipelineEmulator,
) -> None:
    # Given a summary, an id and a message longer than CodePipeline accepts
    first, second = create_job(), create_job()
    claim_job(first)
    claim_job(second)

    # When they are reported
    assert (
        jobs.put_success(
            first,
            summary="s" * 5000,
            external_execution_id="9" * 2000,
            percent_complete=100,
        )
        == ACCEPTED
    )
    assert (
        jobs.put_failure(
            second,
            failure_type=FailureType.CONFIGURATION_ERROR,
            message="m" * 9000,
            external_execution_id="9" * 2000,
        )
        == ACCEPTED
    )

    # Then CodePipeline received them within its limits (and accepted them)
    success = emulator.calls("PutJobSuccessResult")[-1].params["executionDetails"]
    assert len(success["summary"]) == MAX_SUMMARY == 2048
    assert len(success["externalExecutionId"]) == MAX_EXTERNAL_ID
    failure = emulator.calls("PutJobFailureResult")[-1].params["failureDetails"]
    assert len(failure["message"]) == MAX_MESSAGE_LENGTH
    assert failure["type"] == "ConfigurationError"
    assert len(failure["externalExecutionId"]) == MAX_EXTERNAL_ID


@pytest.mark.parametrize("operation", ["PollForJobs", "AcknowledgeJob", "PutJobFailureResult"])
def test_throttling_after_retries_is_service_unavailable(
    jobs: CodePipelineJobs, emulator: CodePipelineEmulator, operation: str
) -> None:
    # Given CodePipeline throttles every call for a while
    emulator.throttle_next(operation, 10)

    # When the worker calls it
    with pytest.raises(ServiceUnavailable, match=operation):
        _call(jobs, operation)

    # Then the client retried as configured (3 attempts) before the step gave up
    assert [c.error_code for c in emulator.calls(operation)] == ["ThrottlingException"] * 3


def test_brief_throttling_is_absorbed_by_the_client_retries(
    jobs: CodePipelineJobs, create_job: Callable[..., str], emulator: CodePipelineEmulator
) -> None:
    create_job()
    emulator.throttle_next("PollForJobs", 2)

    assert len(jobs.poll(ACTION_TYPE, 1)) == 1
    assert len(emulator.calls("PollForJobs")) == 3


def test_an_internal_failure_is_service_unavailable(
    jobs: CodePipelineJobs, emulator: CodePipelineEmulator
) -> None:
    emulator.fail_next("GetJobDetails", 10)
    with pytest.raises(ServiceUnavailable, match="GetJobDetails"):
        jobs.configuration(str(uuid.uuid4()))


def test_a_validation_error_is_rejected_not_retried(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    claim_job: Callable[[str], Any],
    emulator: CodePipelineEmulator,
) -> None:
    # Given an output variable name CodePipeline does not allow (a worker bug)
    job_id = create_job()
    claim_job(job_id)

    # When it is reported
    with pytest.raises(CodePipelineRejected, match="ValidationException"):
        jobs.put_success(
            job_id,
            summary="s",
            external_execution_id=None,
            percent_complete=100,
            output_variables={"not allowed!": "x"},
        )

    # Then it was sent once: retrying cannot fix it
    assert len(emulator.calls("PutJobSuccessResult")) == 1


def test_an_unreachable_codepipeline_is_service_unavailable() -> None:
    # Given an endpoint where nothing listens
    jobs = CodePipelineJobs(botocore_client("codepipeline", "http://127.0.0.1:9", attempts=2))

    with pytest.raises(ServiceUnavailable, match="could not be reached"):
        jobs.poll(ACTION_TYPE, 1)


def _call(jobs: CodePipelineJobs, operation: str) -> None:
    job_id = str(uuid.uuid4())
    if operation == "PollForJobs":
        jobs.poll(ACTION_TYPE, 1)
    elif operation == "AcknowledgeJob":
        jobs.acknowledge(job_id, "1")
    else:
        jobs.put_failure(
            job_id, failure_type=FailureType.JOB_FAILED, message="m", external_execution_id=None
        )
