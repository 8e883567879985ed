"""Claiming a job: only the execution whose nonce wins the acknowledgement may finish the job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local.codepipeline_emulator import CodePipelineEmulator
from tests.unit.support import ACTION_TYPE_API
from worker.claim import claim
from worker.codepipeline import CodePipelineJobs
from worker.job import ExecutionInput, sanitize_job

SECRETS = frozenset({"APIToken"})


def _handed_out(codepipeline_client: Any) -> ExecutionInput:
    (job,) = codepipeline_client.poll_for_jobs(actionTypeId=ACTION_TYPE_API, maxBatchSize=1)["jobs"]
    return sanitize_job(job, SECRETS)


def test_the_hand_out_claims_its_job(
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
) -> None:
    job_id = create_job()
    job = _handed_out(codepipeline_client)

    assert claim(job, jobs) == {"claimed": True}
    assert emulator.job(job_id).status == "InProgress"


def test_a_retried_claim_step_still_owns_the_job(
    jobs: CodePipelineJobs, create_job: Callable[..., str], codepipeline_client: Any
) -> None:
    # Given the claim step ran, and Step Functions runs it again (its result was lost)
    create_job()
    job = _handed_out(codepipeline_client)
    claim(job, jobs)

    # Then the same nonce still owns the job
    assert claim(job, jobs) == {"claimed": True}


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
    assert claim(second, jobs) == {"claimed": True}
    lost = claim(first, jobs)

    # Then the older execution ends quietly: no result, the job stays with the winner
    assert lost == {"claimed": False}
    assert emulator.job(job_id).status == "InProgress"
    assert emulator.calls("PutJobSuccessResult") == emulator.calls("PutJobFailureResult") == []
