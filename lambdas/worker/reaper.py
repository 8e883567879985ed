"""Nothing stays open: a job whose execution died after claiming it still gets a result.

Every step after the claim has a catch-all that reports a failure, so a claimed job is answered
whatever fails inside the execution. What no step can catch — the execution's overall timeout, an
operator stopping it, `ReportFailure` failing through all its retries — ends it FAILED, TIMED_OUT
or ABORTED. A rule on those statuses runs this reaper: if the history shows the job was claimed,
it reports a failure naming the execution (CodePipeline refuses it if the job already has a
result, which is then nothing to do) and cancels the build, so none is left running unwatched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from worker.cancel import cancel_quietly
from worker.codepipeline import CodePipelineJobs, ResultAnswer
from worker.continuation import Continuation
from worker.failures import FailureType, JobFailure
from worker.job import ExecutionInput
from worker.observability import logger, metrics
from worker.outcome_metrics import count_failure
from worker.providers import BuildProvider, BuildRef, Submission

ENDED_WITHOUT_RESULT = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def reap(
    event: dict[str, Any],
    states: Any,
    jobs: CodePipelineJobs,
    provider: Callable[[ExecutionInput], BuildProvider],
) -> dict[str, Any]:
    """Handle one "Step Functions Execution Status Change" event."""
    detail: dict[str, Any] = event["detail"] if isinstance(event.get("detail"), dict) else {}
    status = str(detail.get("status", ""))
    arn = str(detail.get("executionArn", ""))
    if status not in ENDED_WITHOUT_RESULT or not arn:
        return {"reaped": False, "reason": "not an execution that ended without a result"}
    execution = states.describe_execution(executionArn=arn)
    name = str(execution.get("name", ""))
    try:
        job = ExecutionInput.from_state(json.loads(execution.get("input") or "{}"))
    except (ValueError, KeyError, TypeError):
        return {"reaped": False, "reason": "not an execution of this worker"}
    logger.thread_safe_append_keys(job_id=job.job_id, execution=name, **job.pipeline.log_keys())
    claimed, build = _claim_and_build(states, arn, job, provider)
    if not claimed:
        logger.info("Execution ended before it claimed its job: nothing to reap")
        return {"reaped": False, "reason": "not claimed"}
    message = (
        f"The worker's Step Functions execution {name} ended {status} before it reported a "
        "result for this job; re-run the stage. Operators: see that execution's history."
    )
    call = jobs.put_failure(
        job.job_id,
        failure_type=FailureType.JOB_FAILED,
        message=message,
        external_execution_id=build.build_id if build else None,
    )
    if call.answer is not ResultAnswer.ACCEPTED:
        logger.info("The job already had its result", extra={"answer": call.answer.value})
        return {"reaped": False, "reason": call.answer.value}
    if build is not None:
        cancel_quietly(job, provider(job), build, "execution ended")
    metrics.add_metric(name="JobsReaped", unit="Count", value=1)
    count_failure(FailureType.JOB_FAILED)
    logger.warning(
        "Reported failure for a job its execution left open",
        extra={"status": status, "build_id": build.build_id if build else None},
    )
    return {"reaped": True, "buildId": build.build_id if build else None}


def _claim_and_build(
    states: Any, arn: str, job: ExecutionInput, provider: Callable[[ExecutionInput], BuildProvider]
) -> tuple[bool, Continuation | None]:
    """Whether the history shows a successful claim, and the build the execution knew of."""
    claimed = False
    build: Continuation | None = None
    if job.continuation:
        try:
            build = Continuation.from_dict(job.continuation)
        except JobFailure:
            build = None
    pages = states.get_paginator("get_execution_history").paginate(
        executionArn=arn, includeExecutionData=True
    )
    for page in pages:
        for event in page.get("events", []):
            exited = event.get("stateExitedEventDetails") or {}
            if not exited:
                continue
            output = _json(exited.get("output"))
            if exited.get("name") == "Claim":
                claimed = claimed or bool((output.get("claim") or {}).get("claimed"))
            resolution = output.get("resolution") or {}
            found = resolution.get("build") if isinstance(resolution, dict) else None
            if build is None and isinstance(found, dict) and found.get("buildId"):
                try:
                    build = provider(job).continuation(
                        job,
                        Submission.from_dict(output["submission"]),
                        BuildRef.from_dict(found),
                        None,
                    )
                except (JobFailure, KeyError, TypeError, ValueError):
                    build = None
    return claimed, build


def _json(raw: Any) -> dict[str, Any]:
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
