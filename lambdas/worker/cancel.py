"""Canceling a Travis build: when the run was abandoned, the job is gone, the build is the wrong
commit, or it ran past the watch timeout. Travis cancels asynchronously (202, the build stays
started for a while); a finished build answers 409 and a token without the permission 403."""

from __future__ import annotations

from worker.continuation import Continuation
from worker.failures import JobFailure
from worker.job import ExecutionInput
from worker.observability import logger, metrics
from worker.providers import BuildProvider, CancelResult


def cancel_build(
    job: ExecutionInput, provider: BuildProvider, continuation: Continuation, reason: str
) -> CancelResult:
    """Ask Travis to cancel the build; raises only when Travis cannot be reached (retried)."""
    result = provider.cancel(job, continuation)
    if result is CancelResult.REQUESTED:
        metrics.add_metric(name="BuildsCanceled", unit="Count", value=1)
    log = logger.warning if result is CancelResult.NOT_PERMITTED else logger.info
    log(
        "Canceled the build" if result is CancelResult.REQUESTED else "Build not canceled",
        extra={"build_id": continuation.build_id, "reason": reason, "cancel": result.value},
    )
    return result


def cancel_quietly(
    job: ExecutionInput, provider: BuildProvider, continuation: Continuation, reason: str = ""
) -> CancelResult | None:
    """Best effort, for paths that report something else anyway."""
    try:
        return cancel_build(job, provider, continuation, reason)
    except JobFailure as error:
        logger.warning(
            "Could not cancel the build",
            extra={"build_id": continuation.build_id, "error": error.message},
        )
        return None


def cancel_note(result: CancelResult | None) -> str:
    """How a failure message tells what became of the build."""
    if result is CancelResult.REQUESTED:
        return "it was canceled"
    if result is CancelResult.ALREADY_FINISHED:
        return "it had already finished"
    if result is CancelResult.NOT_PERMITTED:
        return "it could not be canceled: the token may not cancel builds"
    return "canceling it failed"
