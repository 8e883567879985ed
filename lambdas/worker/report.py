"""Telling CodePipeline: the early build link, the final outcome, or a classified failure."""

from __future__ import annotations

import json
from typing import Any

from worker.build import continuation_for
from worker.codepipeline import CodePipelineJobs, CodePipelineRejected
from worker.failures import (
    FailureType,
    failure_type_for_error,
    is_known_failure,
    is_timeout,
)
from worker.observability import logger, metrics
from worker.providers import BuildProvider
from worker.step_event import StepEvent


def publish_link(
    step: StepEvent, provider: BuildProvider, jobs: CodePipelineJobs
) -> dict[str, Any]:
    """Finish phase 1 with a continuation token: the console shows the build link right away.

    CodePipeline answers with a continuation job (new id and nonce) that the poller picks up to
    start phase 2.
    """
    continuation = continuation_for(step, provider)
    build = step.section("resolution")["build"]
    accepted = jobs.put_success(
        step.job.job_id,
        summary=f"Travis build #{build['number']} started: {build['url']}",
        external_execution_id=continuation.build_id,
        percent_complete=0,
        continuation_token=continuation.encode(),
    )
    logger.info(
        "Published the build link",
        extra={"build_id": continuation.build_id, "already_published": not accepted},
    )
    return {"published": True, "buildId": continuation.build_id}


def report_outcome(step: StepEvent, jobs: CodePipelineJobs) -> dict[str, Any]:
    """Report a finished build: success with details and output variables, or JobFailed."""
    status = step.section("watch")["status"]
    build_id = str(status["build_id"])
    name = f"Travis build #{status['number']}"
    if status["passed"]:
        variables = {
            "BuildId": build_id,
            "BuildNumber": str(status["number"]),
            "BuildUrl": str(status["url"]),
        }
        if status.get("commit"):
            variables["CommitId"] = str(status["commit"])

        def succeed(output_variables: dict[str, str] | None) -> None:
            jobs.put_success(
                step.job.job_id,
                summary=f"{name} passed: {status['url']}",
                external_execution_id=build_id,
                percent_complete=100,
                output_variables=output_variables,
            )

        try:
            succeed(variables)
        except CodePipelineRejected:
            # Output variables are a bonus: a passed build must never be reported as failed
            # because CodePipeline refused them.
            logger.warning("CodePipeline refused the output variables; reporting without them")
            succeed(None)
        metrics.add_metric(name="BuildsPassed", unit="Count", value=1)
        logger.info("Reported success", extra={"build_id": build_id})
        return {"result": "success", "buildId": build_id}
    jobs.put_failure(
        step.job.job_id,
        failure_type=FailureType.JOB_FAILED,
        message=f"{name} {status['state']}: {status['url']}",
        external_execution_id=build_id,
    )
    metrics.add_metric(name="BuildsFailed", unit="Count", value=1)
    logger.info("Reported build failure", extra={"build_id": build_id, "state": status["state"]})
    return {"result": "failure", "type": FailureType.JOB_FAILED.value, "buildId": build_id}


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
    jobs.put_failure(
        step.job.job_id, failure_type=failure_type, message=message, external_execution_id=build_id
    )
    metrics.add_metric(name="JobsFailed", unit="Count", value=1)
    logger.warning(
        "Reported failure",
        extra={
            "failure_type": failure_type.value,
            "error": _safe_name(error_name),
            "build_id": build_id,
        },
    )
    return {"result": "failure", "type": failure_type.value, "buildId": build_id}


def known_build_id(step: StepEvent) -> str | None:
    """The build this execution knows of, for failureDetails.externalExecutionId."""
    build = step.section("resolution").get("build")
    if isinstance(build, dict) and build.get("buildId"):
        return str(build["buildId"])
    continuation = step.job.continuation or {}
    return str(continuation["build_id"]) if continuation.get("build_id") else None


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
