"""Claiming a job: the acknowledgement that makes this execution the one that must finish it."""

from __future__ import annotations

from worker.codepipeline import CodePipelineJobs
from worker.job import ExecutionInput
from worker.observability import logger, metrics


def claim(job: ExecutionInput, jobs: CodePipelineJobs) -> dict[str, bool]:
    """Acknowledge the job with this hand-out's nonce.

    Lost races (another hand-out was acknowledged, or the job is gone) end the execution quietly
    without touching the job: the winner owns it.
    """
    claimed = jobs.acknowledge(job.job_id, job.nonce)
    if claimed:
        logger.info("Claimed job", extra={"phase": "watch" if job.continuation else "start"})
        metrics.add_metric(name="JobsClaimed", unit="Count", value=1)
    else:
        logger.info("Job already claimed by another execution; ending without touching it")
        metrics.add_metric(name="ClaimsLost", unit="Count", value=1)
    return {"claimed": claimed}
