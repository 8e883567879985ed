"""Did CodePipeline take our result? "The job is gone" told apart from "we already reported"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from local.codepipeline import CodePipelineEmulator
from worker.codepipeline import CodePipelineJobs, ResultAnswer, ResultCall
from worker.delivery import AFTER_FAILURE, AFTER_HAND_OVER, AFTER_SUCCESS, delivered
from worker.failures import FailureType
from worker.job import PipelineRef


def _pipeline(emulator: CodePipelineEmulator, job_id: str) -> PipelineRef:
    run = emulator.run_for_job(job_id)
    return PipelineRef(
        name=run.pipeline_name,
        stage=run.stage_name,
        action=run.action_name,
        execution_id=run.pipeline_execution_id,
        action_execution_id=run.action_execution_id,
    )


@pytest.fixture
def claimed(
    create_job: Callable[..., str], claim_job: Callable[[str], Any], emulator: CodePipelineEmulator
) -> tuple[str, PipelineRef]:
    job_id = create_job()
    claim_job(job_id)
    return job_id, _pipeline(emulator, job_id)


def _success(jobs: CodePipelineJobs, job_id: str, token: str | None = None) -> ResultCall:
    return jobs.put_success(
        job_id,
        summary="Travis build #7 passed",
        external_execution_id="900001",
        percent_complete=100,
        continuation_token=token,
    )


def test_an_accepted_result_is_delivered(
    jobs: CodePipelineJobs, claimed: tuple[str, PipelineRef], emulator: CodePipelineEmulator
) -> None:
    job_id, pipeline = claimed

    call = _success(jobs, job_id)

    assert delivered(call, jobs, pipeline, step_retried=False, expected=AFTER_SUCCESS)
    assert emulator.calls("ListActionExecutions") == []  # nothing to ask


def test_a_deleted_pipeline_means_gone(
    jobs: CodePipelineJobs, claimed: tuple[str, PipelineRef], emulator: CodePipelineEmulator
) -> None:
    # Given the job's pipeline was deleted
    job_id, pipeline = claimed
    emulator.delete_pipeline(pipeline.name)

    # When a retried step reports
    call = _success(jobs, job_id)

    # Then JobNotFound is gone, without asking anything
    assert call.answer is ResultAnswer.NOT_FOUND
    assert not delivered(call, jobs, pipeline, step_retried=True, expected=AFTER_SUCCESS)
    assert emulator.calls("ListActionExecutions") == []


def test_a_refusal_on_a_first_attempt_means_gone(
    jobs: CodePipelineJobs, claimed: tuple[str, PipelineRef], emulator: CodePipelineEmulator
) -> None:
    # Given the user stopped and abandoned the run
    job_id, pipeline = claimed
    emulator.stop_pipeline_execution(pipeline.name, pipeline.execution_id, abandon=True)

    # When a first attempt reports
    call = _success(jobs, job_id)

    # Then InvalidJobState is gone: nobody of ours reported before
    assert call == ResultCall(ResultAnswer.NOT_IN_PROGRESS)
    assert not delivered(call, jobs, pipeline, step_retried=False, expected=AFTER_SUCCESS)
    assert emulator.calls("ListActionExecutions") == []


def test_a_retry_after_our_hand_over_is_delivered(
    jobs: CodePipelineJobs, claimed: tuple[str, PipelineRef], emulator: CodePipelineEmulator
) -> None:
    # Given our first attempt handed the job over (its answer was lost)
    job_id, pipeline = claimed
    assert _success(jobs, job_id, token='{"version":1}').answer is ResultAnswer.ACCEPTED

    # When the retry hands over again and is refused
    call = _success(jobs, job_id, token='{"version":1}')

    # Then the action is still InProgress (a continuation job runs it): delivered
    assert call.answer is ResultAnswer.NOT_IN_PROGRESS
    assert delivered(call, jobs, pipeline, step_retried=True, expected=AFTER_HAND_OVER)
    assert emulator.calls("ListActionExecutions")[-1].params["pipelineName"] == pipeline.name


def test_a_retry_after_our_success_is_delivered(
    jobs: CodePipelineJobs, claimed: tuple[str, PipelineRef]
) -> None:
    job_id, pipeline = claimed
    _success(jobs, job_id)

    call = _success(jobs, job_id)

    assert delivered(call, jobs, pipeline, step_retried=True, expected=AFTER_SUCCESS)
    # but a success is no failure: expecting Failed, the Succeeded action says "not ours"
    assert not delivered(call, jobs, pipeline, step_retried=True, expected=AFTER_FAILURE)


def test_a_retry_on_an_abandoned_run_is_gone(
    jobs: CodePipelineJobs, claimed: tuple[str, PipelineRef], emulator: CodePipelineEmulator
) -> None:
    # Given the run was abandoned, and a retried step reports
    job_id, pipeline = claimed
    emulator.stop_pipeline_execution(pipeline.name, pipeline.execution_id, abandon=True)

    call = jobs.put_failure(
        job_id, failure_type=FailureType.JOB_FAILED, message="m", external_execution_id=None
    )

    # Then ListActionExecutions says Abandoned: gone
    assert emulator.action_run(pipeline.action_execution_id).status == "Abandoned"
    assert not delivered(call, jobs, pipeline, step_retried=True, expected=AFTER_FAILURE)
    assert not delivered(call, jobs, pipeline, step_retried=True, expected=AFTER_HAND_OVER)


def test_a_botocore_retry_counts_like_a_step_retry(
    jobs: CodePipelineJobs, claimed: tuple[str, PipelineRef]
) -> None:
    job_id, pipeline = claimed
    _success(jobs, job_id)
    refused_after_retry = ResultCall(ResultAnswer.NOT_IN_PROGRESS, retried=True)

    assert delivered(
        refused_after_retry, jobs, pipeline, step_retried=False, expected=AFTER_SUCCESS
    )


def test_a_retry_that_cannot_ask_is_delivered(
    jobs: CodePipelineJobs, claimed: tuple[str, PipelineRef], emulator: CodePipelineEmulator
) -> None:
    # Given a refused retry and ListActionExecutions refused (no permission)
    job_id, pipeline = claimed
    _success(jobs, job_id)
    call = _success(jobs, job_id)
    emulator.fail_next("ListActionExecutions", 1, "AccessDeniedException", "denied", 400)

    # Then an earlier attempt of ours is the likely reason: delivered (no build gets canceled)
    assert delivered(call, jobs, pipeline, step_retried=True, expected=AFTER_SUCCESS)
    assert emulator.calls("ListActionExecutions")[-1].error_code == "AccessDeniedException"
