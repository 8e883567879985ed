"""Did CodePipeline take our result? Telling "the job is gone" from "we already reported".

A result call is refused with InvalidJobStateException when the job is no longer InProgress. That
happens when the pipeline run was stopped and abandoned or the job timed out (gone: nothing left to
report to) — and also when an earlier attempt of *ours* already delivered this very result and we
are a retry (Step Functions retried the step after a crash, or botocore retried the call after a
lost answer). Treating our own earlier success as "gone" would cancel a build that is fine, so a
refusal that may be ours is checked against the action execution's status in ListActionExecutions.
"""

from __future__ import annotations

from worker.codepipeline import CodePipelineJobs, ResultAnswer, ResultCall
from worker.job import PipelineRef

# The action execution's status once a result of each kind was taken.
AFTER_HAND_OVER = frozenset({"InProgress"})  # a continuation token keeps the action running
AFTER_SUCCESS = frozenset({"Succeeded"})
AFTER_FAILURE = frozenset({"Failed"})


def delivered(
    call: ResultCall,
    jobs: CodePipelineJobs,
    pipeline: PipelineRef,
    *,
    step_retried: bool,
    expected: frozenset[str],
) -> bool:
    """True when CodePipeline holds this result (now, or from an earlier attempt of ours)."""
    if call.answer is ResultAnswer.ACCEPTED:
        return True
    if call.answer is ResultAnswer.NOT_FOUND:
        return False  # the job is gone (e.g. its pipeline was deleted)
    if not (step_retried or call.retried):
        return False  # nobody delivered a result for this job before: it was abandoned
    status = jobs.action_status(pipeline)
    # Cannot tell (no permission, throttled): an earlier attempt of ours is the likely reason.
    return status is None or status in expected
