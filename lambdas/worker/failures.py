"""The failure classification: the one place deciding what CodePipeline is told when a job fails.

Steps raise a `JobFailure` subclass when they know what went wrong. Lambda reports the exception's
class name as the Step Functions error name, so the catch-all `ReportFailure` step can map the error
name back to a CodePipeline `failureDetails.type` with `failure_type_for_error`. Messages of our own
failures are written for pipeline users and never contain secrets; messages of anything else are
never echoed (they could hold anything), the user gets a pointer to the execution instead.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

MAX_MESSAGE_LENGTH = 5000  # PutJobFailureResult failureDetails.message limit


class FailureType(StrEnum):
    """CodePipeline's `failureDetails.type` values."""

    JOB_FAILED = "JobFailed"
    CONFIGURATION_ERROR = "ConfigurationError"
    PERMISSION_ERROR = "PermissionError"
    REVISION_OUT_OF_SYNC = "RevisionOutOfSync"
    REVISION_UNAVAILABLE = "RevisionUnavailable"
    SYSTEM_UNAVAILABLE = "SystemUnavailable"


class JobFailure(Exception):
    """A failure we understand; its message is safe to show to pipeline users."""

    failure_type: ClassVar[FailureType] = FailureType.JOB_FAILED

    def __init__(self, message: str, *, build_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.build_id = build_id


class ConfigurationInvalid(JobFailure):
    """A property is missing or invalid, the repository is unknown, or Travis rejected it."""

    failure_type = FailureType.CONFIGURATION_ERROR


class PermissionDenied(JobFailure):
    """Travis refused the token, or the token may not do what the worker asked (403)."""

    failure_type = FailureType.PERMISSION_ERROR


class RevisionNotFound(JobFailure):
    """The commit the pipeline carries does not exist in the repository."""

    failure_type = FailureType.REVISION_UNAVAILABLE


class BuildUnsuccessful(JobFailure):
    """The build ended failed, errored or canceled, or ran past the watch timeout."""

    failure_type = FailureType.JOB_FAILED


class ServiceUnavailable(JobFailure):
    """A dependency stayed unavailable through the in-Lambda retry budget.

    The state machine retries steps that raise this; only when its retries run out does the job
    fail, as SystemUnavailable.
    """

    failure_type = FailureType.SYSTEM_UNAVAILABLE


class BuildNotStarted(JobFailure):
    """Travis accepted the request but created no build within the resolve timeout."""

    failure_type = FailureType.SYSTEM_UNAVAILABLE


class UnreadableContinuation(JobFailure):
    """A continuation job carries a token this worker version cannot read."""

    failure_type = FailureType.JOB_FAILED


class RevisionMismatch(JobFailure):
    """Travis built another commit than the pipeline's revision."""

    failure_type = FailureType.REVISION_OUT_OF_SYNC


class RequestLimitReached(JobFailure):
    """Travis's hourly build-request limit of the repository is reached.

    Not retried by the state machine: posting again before the limit frees up only adds requests.
    """

    failure_type = FailureType.SYSTEM_UNAVAILABLE


class TravisBanned(JobFailure):
    """Travis banned the token for an hour (too many requests in a short time): temporary."""

    failure_type = FailureType.SYSTEM_UNAVAILABLE


class RequestPending(JobFailure):
    """A build request that may be ours is not processed by Travis yet: look again later.

    The state machine retries the submit on this error; the submit itself gives up (with
    `RequestAmbiguous`) when the request stays unprocessed past its bound.
    """

    failure_type = FailureType.SYSTEM_UNAVAILABLE


class RequestAmbiguous(JobFailure):
    """Whether Travis holds a request of this job cannot be told; posting again could make a
    second build, so the job fails instead."""

    failure_type = FailureType.SYSTEM_UNAVAILABLE


class ActionEnded(Exception):
    """CodePipeline no longer waits for this job: the state machine ends the execution quietly."""

    def __init__(self, message: str, *, build_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.build_id = build_id


class ActionAbandoned(ActionEnded):
    """The pipeline run was stopped and abandoned: no build must be started or left running."""


class JobGone(ActionEnded):
    """CodePipeline refused a result: the job is finished, abandoned or deleted."""


_FAILURES_BY_NAME: dict[str, type[JobFailure]] = {
    cls.__name__: cls
    for cls in (
        JobFailure,
        ConfigurationInvalid,
        PermissionDenied,
        RevisionNotFound,
        BuildUnsuccessful,
        ServiceUnavailable,
        BuildNotStarted,
        UnreadableContinuation,
        RevisionMismatch,
        RequestLimitReached,
        TravisBanned,
        RequestPending,
        RequestAmbiguous,
    )
}

# Step Functions names for a step that timed out or whose Lambda crashed: the work is unfinished,
# but nothing says the user's configuration is at fault.
_TIMEOUT_ERRORS = frozenset({"States.Timeout", "Sandbox.Timedout"})


def failure_type_for_error(error_name: str) -> FailureType:
    """Map a Step Functions error name (an exception class name or States.*) to a failure type."""
    failure = _FAILURES_BY_NAME.get(error_name)
    if failure is not None:
        return failure.failure_type
    if error_name.startswith("Lambda.") and error_name != "Lambda.Unknown":
        return FailureType.SYSTEM_UNAVAILABLE
    return FailureType.JOB_FAILED


def is_known_failure(error_name: str) -> bool:
    """True when the error was raised by our code with a user-facing message."""
    return error_name in _FAILURES_BY_NAME


def is_timeout(error_name: str) -> bool:
    return error_name in _TIMEOUT_ERRORS


def clip(message: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """Shorten a message to CodePipeline's limit, keeping it readable (and its line breaks:
    a quoted log tail is lines)."""
    lines = (" ".join(line.split()) for line in message.splitlines())
    message = "\n".join(line for line in lines if line)
    return message if len(message) <= limit else message[: limit - 1] + "…"
