"""Claiming a job: the acknowledgement that makes this execution the one that must finish it.

AcknowledgeJob answers the job's status; only `InProgress` makes the job ours. Any other status,
a nonce CodePipeline refuses (another hand-out won) or a job that is gone end the execution
quietly without touching the job: the winner owns it, or nobody needs it.

One dependency on undocumented behaviour, kept small: a *re-acknowledge with the same nonce*.
When our earlier acknowledge may have gone through (Step Functions retried the step, or botocore
retried the call after a timeout, a 5xx or a throttle), CodePipeline sees the same nonce twice. If
it accepts (presumed: every AWS SDK retries the call by itself), the job is ours as usual. If it
refuses with InvalidNonceException, the answer cannot tell whether our first acknowledge won or
another hand-out (a newer nonce) did: going on could make a second build beside that other
execution's, and failing the job could fail a job that execution is running. So the execution
ends without touching the job — loudly: an error log, the `ReacknowledgeRefused` metric and its
alarm, naming whether another execution of the job runs. If ours had won, CodePipeline times the
job out; the operator sees why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.codepipeline import CodePipelineJobs
from worker.job import ExecutionInput
from worker.observability import logger, metrics

# Claim outcomes, as `$.claim.outcome`.
CLAIMED = "claimed"
NOT_CLAIMED = "not_claimed"


@dataclass(frozen=True)
class OtherExecutions:
    """Finds executions of the same job under other names (other hand-outs)."""

    client: Any
    state_machine_arn: str

    def exist(self, job_id: str, own_name: str) -> bool:
        pages = self.client.get_paginator("list_executions").paginate(
            stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
        )
        return any(
            e["name"].startswith(job_id) and e["name"] != own_name
            for page in pages
            for e in page.get("executions", [])
        )


def claim(
    job: ExecutionInput,
    jobs: CodePipelineJobs,
    *,
    execution: str,
    step_retried: bool,
    others: OtherExecutions | None,
) -> dict[str, Any]:
    """Acknowledge the job with this hand-out's nonce; `$.claim` of the execution."""
    answer = jobs.acknowledge(job.job_id, job.nonce)
    phase = "watch" if job.continuation else "start"
    if answer.claimed:
        logger.info("Claimed job", extra={"phase": phase})
        metrics.add_metric(name="JobsClaimed", unit="Count", value=1)
        return {"claimed": True, "outcome": CLAIMED, "status": answer.status}
    may_be_ours = answer.refused == "InvalidNonceException" and (step_retried or answer.retried)
    if may_be_ours:
        other = others is not None and others.exist(job.job_id, execution)
        metrics.add_metric(name="ReacknowledgeRefused", unit="Count", value=1)
        logger.error(
            "CodePipeline refused to acknowledge the job again with the same nonce; ending "
            "without touching it (if our first acknowledge won, the job times out)",
            extra={"another_execution": other, "phase": phase},
        )
        return {"claimed": False, "outcome": "uncertain", "status": "ReacknowledgeRefused"}
    logger.info(
        "Job not claimed; ending without touching it",
        extra={"status": answer.status, "refused": answer.refused},
    )
    metrics.add_metric(name="ClaimsLost", unit="Count", value=1)
    return {
        "claimed": False,
        "outcome": NOT_CLAIMED,
        "status": answer.status or answer.refused or "unknown",
    }
