"""Claiming a job: only an acknowledgement answered InProgress makes the job this execution's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.codepipeline import CodePipelineEmulator
from tests.unit.support import ACTION_TYPE_API, STATE_MACHINE_ARN
from worker.claim import CLAIMED, NOT_CLAIMED, OtherExecutions, claim
from worker.codepipeline import CodePipelineJobs
from worker.job import ExecutionInput, execution_name, sanitize_job

SECRETS = frozenset({"APIToken"})


class FakeStates:
    """Step Functions' ListExecutions as a paginator over the given running executions."""

    def __init__(self, *running: str, page_size: int = 1) -> None:
        self.running = list(running)
        self.page_size = page_size
        self.asked: list[dict[str, Any]] = []

    def get_paginator(self, operation: str) -> FakeStates:
        assert operation == "list_executions"
        return self

    def paginate(self, **params: Any) -> list[dict[str, Any]]:
        self.asked.append(params)
        names = self.running
        return [
            {
                "executions": [
                    {"name": n, "status": "RUNNING"} for n in names[i : i + self.page_size]
                ]
            }
            for i in range(0, max(len(names), 1), self.page_size)
        ]


def _handed_out(codepipeline_client: Any) -> ExecutionInput:
    (job,) = codepipeline_client.poll_for_jobs(actionTypeId=ACTION_TYPE_API, maxBatchSize=1)["jobs"]
    return sanitize_job(job, SECRETS)


def _claim(
    job: ExecutionInput,
    jobs: CodePipelineJobs,
    *,
    retried: bool = False,
    others: OtherExecutions | None = None,
) -> dict[str, Any]:
    return claim(
        job,
        jobs,
        execution=execution_name(job.job_id, job.nonce),
        step_retried=retried,
        others=others,
    )


def _no_results(emulator: CodePipelineEmulator) -> bool:
    return emulator.calls("PutJobSuccessResult") == emulator.calls("PutJobFailureResult") == []


def test_the_hand_out_claims_its_job(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
) -> None:
    # Given a job handed out to this execution
    job_id = create_job()
    job = _handed_out(codepipeline_client)

    # When it acknowledges the job with its nonce
    result = _claim(job, jobs)

    # Then CodePipeline answered InProgress and the job is ours
    assert result == {"claimed": True, "outcome": CLAIMED, "status": "InProgress"}
    (call,) = emulator.calls("AcknowledgeJob")
    assert call.params == {"jobId": job_id, "nonce": job.nonce}
    assert call.response == {"status": "InProgress"}
    assert emulator.job(job_id).status == "InProgress"


@pytest.mark.parametrize(
    "status", ["Created", "Queued", "Dispatched", "TimedOut", "Succeeded", "Failed"]
)
def test_any_other_status_ends_quietly(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
    status: str,
) -> None:
    # Given CodePipeline answers the acknowledge with a status other than InProgress
    job_id = create_job()
    job = _handed_out(codepipeline_client)
    emulator.force_acknowledge_status(job_id, status)

    # When the execution claims the job
    result = _claim(job, jobs)

    # Then it is not claimed, and the execution touches nothing
    assert result == {"claimed": False, "outcome": NOT_CLAIMED, "status": status}
    assert emulator.calls("AcknowledgeJob")[-1].response == {"status": status}
    assert _no_results(emulator)


def test_an_older_hand_out_loses_and_touches_nothing(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
) -> None:
    # Given a job handed out twice (the first hand-out was not acknowledged in time)
    emulator.redelivery_timeout_seconds = 0
    job_id = create_job()
    first = _handed_out(codepipeline_client)
    second = _handed_out(codepipeline_client)
    assert first.nonce != second.nonce

    # When the later hand-out claims first, then the older one tries
    assert _claim(second, jobs)["claimed"] is True
    lost = _claim(first, jobs)

    # Then the older execution ends quietly: no result, the job stays with the winner
    assert lost == {"claimed": False, "outcome": NOT_CLAIMED, "status": "InvalidNonceException"}
    assert emulator.calls("AcknowledgeJob")[-1].error_code == "InvalidNonceException"
    assert emulator.job(job_id).status == "InProgress"
    assert _no_results(emulator)


def test_a_job_that_is_gone_ends_quietly(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
) -> None:
    # Given the job's pipeline was deleted after the hand-out
    create_job()
    job = _handed_out(codepipeline_client)
    emulator.delete_pipeline("release-pipeline")

    # When the execution claims it
    result = _claim(job, jobs, retried=True, others=OtherExecutions(FakeStates(), "arn"))

    # Then JobNotFound ends it without a claim (even on a retry: nobody holds a deleted job)
    assert result == {"claimed": False, "outcome": NOT_CLAIMED, "status": "JobNotFoundException"}
    assert emulator.calls("AcknowledgeJob")[-1].error_code == "JobNotFoundException"
    assert _no_results(emulator)


def test_a_retried_claim_is_accepted_with_the_same_nonce(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
) -> None:
    # Given the claim step ran, and Step Functions runs it again (its result was lost),
    # against a CodePipeline that accepts a same-nonce re-acknowledge (the emulator's default)
    assert emulator.same_nonce_reacknowledge == "accept"
    job_id = create_job()
    job = _handed_out(codepipeline_client)
    _claim(job, jobs)

    # When the retry acknowledges again
    result = _claim(job, jobs, retried=True)

    # Then the same nonce still owns the job
    assert result == {"claimed": True, "outcome": CLAIMED, "status": "InProgress"}
    assert emulator.ack_count(job_id) == 2


def test_a_refused_reacknowledge_on_a_retry_ends_loudly_without_touching_the_job(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
) -> None:
    # Given our first acknowledge went through, and CodePipeline refuses the same nonce twice
    emulator.same_nonce_reacknowledge = "refuse"
    create_job()
    job = _handed_out(codepipeline_client)
    own = execution_name(job.job_id, job.nonce)
    _claim(job, jobs)
    # and Step Functions lists only this execution (and other jobs') as running
    states = FakeStates(own, "another-job-1a2b3c4d", page_size=1)

    # When the retried claim step acknowledges again
    result = _claim(job, jobs, retried=True, others=OtherExecutions(states, STATE_MACHINE_ARN))

    # Then CodePipeline refused; the answer cannot tell whose acknowledge won, and going on
    # could make a second build beside another hand-out's execution: this one ends without
    # touching the job, and says so (metric ReacknowledgeRefused, an error log line)
    assert emulator.calls("AcknowledgeJob")[-1].error_code == "InvalidNonceException"
    assert result == {"claimed": False, "outcome": "uncertain", "status": "ReacknowledgeRefused"}
    assert states.asked == [{"stateMachineArn": STATE_MACHINE_ARN, "statusFilter": "RUNNING"}]
    assert _no_results(emulator)


def test_a_refused_reacknowledge_on_a_retry_yields_to_another_running_execution(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
) -> None:
    # Given a refused same-nonce re-acknowledge on a retry, while an execution of another
    # hand-out of the same job runs (it is on the second page)
    emulator.same_nonce_reacknowledge = "refuse"
    create_job()
    job = _handed_out(codepipeline_client)
    own = execution_name(job.job_id, job.nonce)
    _claim(job, jobs)
    states = FakeStates(own, execution_name(job.job_id, "2"), page_size=1)

    # When the retried claim step acknowledges again
    result = _claim(job, jobs, retried=True, others=OtherExecutions(states, STATE_MACHINE_ARN))

    # Then the other execution owns the job; this one ends without touching it
    assert result == {"claimed": False, "outcome": "uncertain", "status": "ReacknowledgeRefused"}
    assert _no_results(emulator)


def test_a_refused_acknowledge_on_a_first_attempt_never_asks_step_functions(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
) -> None:
    # Given a hand-out whose nonce CodePipeline refuses on the first attempt
    emulator.same_nonce_reacknowledge = "refuse"
    create_job()
    job = _handed_out(codepipeline_client)
    _claim(job, jobs)
    states = FakeStates()

    # When a first attempt (no retry anywhere) is refused
    result = _claim(job, jobs, others=OtherExecutions(states, STATE_MACHINE_ARN))

    # Then nothing says the earlier acknowledge was ours: not claimed, nothing listed
    assert result["claimed"] is False
    assert states.asked == []


class _LostAnswerClient:
    """AcknowledgeJob refused with InvalidNonce after botocore retried the call once."""

    def acknowledge_job(self, **params: Any) -> dict[str, Any]:
        raise ClientError(
            {
                "Error": {"Code": "InvalidNonceException", "Message": "bad nonce"},
                "ResponseMetadata": {"HTTPStatusCode": 400, "RetryAttempts": 1},
            },
            "AcknowledgeJob",
        )


@pytest.mark.parametrize("running", [(), ("job-1-ffffffff",)])
def test_a_refusal_after_a_botocore_retry_counts_like_a_step_retry(
    running: tuple[str, ...],
) -> None:
    # Given botocore retried the acknowledge (the first try's answer was lost) and it was refused
    job = ExecutionInput.from_state(
        {"jobId": "job-1", "nonce": "1", "actionType": ACTION_TYPE_API, "pipeline": {}}
    )

    # When the claim step (a first attempt) sees the refusal
    result = claim(
        job,
        CodePipelineJobs(_LostAnswerClient()),
        execution="job-1-6b86b273",
        step_retried=False,
        others=OtherExecutions(FakeStates(*running), STATE_MACHINE_ARN),
    )

    # Then, whoever runs, it is an uncertain claim: never worked on, always flagged
    assert result["claimed"] is False
    assert result["outcome"] == "uncertain"
