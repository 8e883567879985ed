"""Telling CodePipeline: the early build link, progress (a hand-over), the final outcome, or a
classified failure. A result CodePipeline no longer takes (the job is gone) is never logged or
counted as reported: the step says `gone` and the execution ends in its own state."""

from __future__ import annotations

import json
from typing import Any

from worker import aws, clock
from worker.artifact import build_report, write_report
from worker.codepipeline import CodePipelineJobs, CodePipelineRejected
from worker.continuation import Continuation
from worker.delivery import AFTER_FAILURE, AFTER_HAND_OVER, AFTER_SUCCESS, delivered
from worker.failures import (
    FailureType,
    JobFailure,
    JobGone,
    clip,
    failure_type_for_error,
    is_known_failure,
    is_timeout,
)
from worker.job import ActionType
from worker.observability import logger, metrics
from worker.outcome_metrics import count_failure
from worker.providers import BuildProvider, BuildRef, BuildStatus, JobState, Submission
from worker.schedule import Expectation
from worker.settings import Settings
from worker.step_event import StepEvent
from worker.wake import BuildKey, WatchRegistry


def publish_link(
    step: StepEvent, provider: BuildProvider, jobs: CodePipelineJobs, settings: Settings
) -> dict[str, Any]:
    """Finish a job with a continuation token: the console shows the link (phase 1) or the
    build's progress (a hand-over in phase 2), and CodePipeline creates the next job."""
    now = clock.now()
    if step.job.continuation:
        continuation = Continuation.from_dict(step.job.continuation)
        status = _status(step.section("watch")["status"])
        summary = progress_summary(status)
        percent = status.progress
        token = continuation.handed_over(now, status.jobs_done)
        what = "Handed the watch over"
    else:
        resolution = step.section("resolution")
        build = BuildRef.from_dict(resolution["build"])
        expectation = (
            Expectation(float(resolution["expected"]), float(resolution.get("spread", 0)), 1)
            if float(resolution.get("expected") or 0) > 0
            else None
        )
        submission = Submission.from_dict(step.section("submission"))
        continuation = provider.continuation(step.job, submission, build, expectation)
        summary = f"Travis build #{build.number} started: {build.url}"
        if continuation.branch_head:
            summary += (
                f" (the head of branch {step.job.configuration.get('Branch', '')}: the "
                "pipeline's revision is not a git commit id)"
            )
        percent = 0
        token = continuation.handed_over(now, 0)
        what = "Published the build link"
    call = jobs.put_success(
        step.job.job_id,
        summary=summary,
        external_execution_id=continuation.build_id,
        percent_complete=percent,
        continuation_token=token.encode(),
    )
    if not delivered(
        call, jobs, step.job.pipeline, step_retried=step.retries > 0, expected=AFTER_HAND_OVER
    ):
        raise JobGone(
            "CodePipeline no longer accepts results for this job.", build_id=continuation.build_id
        )
    logger.info(what, extra={"summary": summary, "percent": percent})
    if not step.job.continuation and settings.watch_table:
        WatchRegistry(settings.watch_table).register_build(
            step.job.pipeline.run_key,
            BuildKey(continuation.build_id, continuation.endpoint),
            job_id=step.job.job_id,
            slug=continuation.slug,
        )
    _wake_poller(settings, step.job.action_type)
    return {"published": True, "buildId": continuation.build_id, "percent": percent}


def progress_summary(status: BuildStatus) -> str:
    jobs = f": {status.jobs_done} of {len(status.jobs)} jobs done" if status.jobs else ""
    return f"Travis build #{status.number} {status.state}{jobs}: {status.url}"


def report_outcome(
    step: StepEvent, provider: BuildProvider, jobs: CodePipelineJobs
) -> dict[str, Any]:
    """Report a finished build: success with details, output variables and the output artifact,
    or JobFailed naming the failing jobs with the end of their logs. `$.reported`."""
    continuation = Continuation.from_dict(step.job.continuation)
    # The result always comes from Travis itself, read now (never from a webhook or the state).
    status = provider.status(step.job, continuation)
    if not status.finished:
        status = _status(step.section("watch")["status"])
    name = f"Travis build #{status.number}"
    if status.passed:
        details = jobs.details(step.job.job_id)
        written = write_report(details, build_report(continuation, status))
        variables = {
            "BuildId": status.build_id,
            "BuildNumber": status.number,
            "BuildUrl": status.url,
        }
        if status.commit:
            variables["CommitId"] = status.commit
        summary = f"{name} passed: {status.url}"
        if continuation.branch_head:
            summary += " (built the branch head: the pipeline's revision is not a git commit)"
        try:
            call = jobs.put_success(
                step.job.job_id,
                summary=summary,
                external_execution_id=status.build_id,
                percent_complete=100,
                output_variables=variables,
            )
        except CodePipelineRejected:
            # Output variables are a bonus: a passed build must never be reported as failed
            # because CodePipeline refused them.
            logger.warning("CodePipeline refused the output variables; reporting without them")
            call = jobs.put_success(
                step.job.job_id,
                summary=summary,
                external_execution_id=status.build_id,
                percent_complete=100,
            )
        if not delivered(
            call, jobs, step.job.pipeline, step_retried=step.retries > 0, expected=AFTER_SUCCESS
        ):
            return _gone(status.build_id)
        metrics.add_metric(name="BuildsPassed", unit="Count", value=1)
        logger.info("Reported success", extra={"summary": summary, "artifacts": written})
        return {"result": "passed", "buildId": status.build_id}
    message = f"{name} {status.state}: {status.url}"
    try:
        explanation = provider.explain_failure(step.job, continuation, status)
    except JobFailure as error:
        logger.warning("Could not read the failing jobs' logs", extra={"error": error.message})
        explanation = ""
    if explanation:
        message = f"{message}\n{explanation}"
    message = clip(message)
    call = jobs.put_failure(
        step.job.job_id,
        failure_type=FailureType.JOB_FAILED,
        message=message,
        external_execution_id=status.build_id,
    )
    if not delivered(
        call, jobs, step.job.pipeline, step_retried=step.retries > 0, expected=AFTER_FAILURE
    ):
        return _gone(status.build_id)
    metrics.add_metric(name="BuildsFailed", unit="Count", value=1)
    count_failure(FailureType.JOB_FAILED)
    logger.info(
        "Reported build failure",
        extra={"failure_type": FailureType.JOB_FAILED.value, "failure_message": message},
    )
    return {"result": "failed", "type": FailureType.JOB_FAILED.value, "buildId": status.build_id}


def report_failure(step: StepEvent, jobs: CodePipelineJobs) -> dict[str, Any]:
    """The catch-all: whatever went wrong after the claim, the job gets a classified failure."""
    error = step.section("error")
    error_name = str(error.get("Error") or "Unknown")
    cause = _cause(error.get("Cause"))
    failure_type = failure_type_for_error(error_name)
    if is_known_failure(error_name) and cause.get("errorMessage"):
        message = str(cause["errorMessage"])
    elif is_timeout(error_name):
        message = (
            f"The worker timed out while handling this job; see Step Functions "
            f"execution {step.execution}."
        )
    else:
        message = (
            f"The worker failed unexpectedly ({_safe_name(error_name)}) while handling this "
            f"job; see Step Functions execution {step.execution}."
        )
    build_id = known_build_id(step)
    call = jobs.put_failure(
        step.job.job_id, failure_type=failure_type, message=message, external_execution_id=build_id
    )
    if not delivered(
        call, jobs, step.job.pipeline, step_retried=step.retries > 0, expected=AFTER_FAILURE
    ):
        return _gone(build_id)
    count_failure(failure_type)
    logger.warning(
        "Reported failure",
        extra={
            "failure_type": failure_type.value,
            "error": _safe_name(error_name),
            "failure_message": clip(message, 1000),
        },
    )
    return {"result": "failed", "type": failure_type.value, "buildId": build_id}


def known_build_id(step: StepEvent) -> str | None:
    """The build this execution knows of, for failureDetails.externalExecutionId."""
    build = step.section("resolution").get("build")
    if isinstance(build, dict) and build.get("buildId"):
        return str(build["buildId"])
    continuation = step.job.continuation or {}
    if continuation.get("build_id"):
        return str(continuation["build_id"])
    return None


def _gone(build_id: str | None) -> dict[str, Any]:
    metrics.add_metric(name="JobsGone", unit="Count", value=1)
    logger.warning("CodePipeline no longer accepts results for this job; nothing was reported")
    return {"result": "gone", "buildId": build_id}


def _status(data: dict[str, Any]) -> BuildStatus:
    """The status a watch step put in the state (its jobs are counted there, not listed)."""
    done = int(data.get("jobs_done", 0))
    total = int(data.get("jobs", 0)) if isinstance(data.get("jobs"), int) else 0
    jobs = tuple(
        JobState(job_id=str(i), number="", state="passed" if i < done else "started")
        for i in range(total)
    )
    return BuildStatus(
        build_id=str(data["build_id"]),
        number=str(data.get("number", "")),
        url=str(data.get("url", "")),
        state=str(data.get("state", "")),
        finished=bool(data.get("finished")),
        passed=bool(data.get("passed")),
        commit=str(data["commit"]) if data.get("commit") else None,
        started_at=data.get("started_at"),
        finished_at=data.get("finished_at"),
        jobs=jobs,
    )


def _wake_poller(settings: Settings, action_type: ActionType) -> None:
    """Invoke the poller for the continuation job CodePipeline just created, instead of leaving
    it to the next sweep (up to a minute later). Best effort: the sweeper is the fallback."""
    if not settings.poller_function:
        return
    event = {
        "source": "codepipeline-travis-worker",
        "detail-type": "Continuation Job Created",
        "detail": {"type": action_type.as_api()},
    }
    try:
        aws.client("lambda").invoke(
            FunctionName=settings.poller_function,
            InvocationType="Event",
            Payload=json.dumps(event).encode(),
        )
    except Exception as error:
        logger.warning("Could not wake the poller", extra={"error": type(error).__name__})


def _cause(raw: Any) -> dict[str, Any]:
    """Step Functions gives a Lambda error's cause as JSON {errorMessage, errorType, ...}."""
    if isinstance(raw, dict):
        return raw
    try:
        data = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _safe_name(error_name: str) -> str:
    # An error name is a class or States.* name; keep it short and printable.
    return "".join(c for c in error_name if c.isalnum() or c in "._")[:80] or "Unknown"
