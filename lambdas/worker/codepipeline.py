"""The CodePipeline job API, as the worker uses it.

Wraps the five job-worker operations and turns their errors into what the worker means by them: a
lost claim, a job that already has its result, or CodePipeline being unavailable (which the state
machine retries).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker import aws
from worker.failures import FailureType, ServiceUnavailable, clip
from worker.job import ActionType

MAX_SUMMARY = 2048
MAX_EXTERNAL_ID = 1500

_CLAIM_LOST = frozenset({"InvalidNonceException", "JobNotFoundException"})
_ALREADY_FINISHED = frozenset({"InvalidJobStateException"})
_TRANSIENT = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
    }
)


class CodePipelineRejected(RuntimeError):
    """CodePipeline refused a call for a reason retrying cannot fix."""


class CodePipelineJobs:
    """Job-worker calls on one CodePipeline client (injected in tests)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client if client is not None else aws.client("codepipeline")

    def poll(self, action_type: ActionType, max_batch_size: int) -> list[dict[str, Any]]:
        """Jobs handed out to us now. They carry secrets: never log or forward them raw."""
        response = self._call(
            "PollForJobs", actionTypeId=action_type.as_api(), maxBatchSize=max_batch_size
        )
        return list(response.get("jobs", []))

    def acknowledge(self, job_id: str, nonce: str) -> bool:
        """Claim the job. False when another hand-out of it was claimed first (or it is gone)."""
        try:
            self._call("AcknowledgeJob", jobId=job_id, nonce=nonce, lost=_CLAIM_LOST)
        except _Rejected:
            return False
        return True

    def configuration(self, job_id: str) -> dict[str, str]:
        """The job's configuration including secret values: use it, never log or return it."""
        details = self._call("GetJobDetails", jobId=job_id)["jobDetails"]
        data = details.get("data") or {}
        return dict((data.get("actionConfiguration") or {}).get("configuration") or {})

    def put_success(
        self,
        job_id: str,
        *,
        summary: str,
        external_execution_id: str | None,
        percent_complete: int,
        continuation_token: str | None = None,
        output_variables: dict[str, str] | None = None,
    ) -> bool:
        """Report success. False when the job already had its result (a retried step)."""
        details: dict[str, Any] = {
            "summary": clip(summary, MAX_SUMMARY),
            "percentComplete": percent_complete,
        }
        if external_execution_id:
            details["externalExecutionId"] = external_execution_id[:MAX_EXTERNAL_ID]
        params: dict[str, Any] = {"jobId": job_id, "executionDetails": details}
        if continuation_token is not None:
            params["continuationToken"] = continuation_token
        elif output_variables:
            params["outputVariables"] = output_variables
        try:
            self._call("PutJobSuccessResult", lost=_ALREADY_FINISHED, **params)
        except _Rejected:
            return False
        return True

    def put_failure(
        self,
        job_id: str,
        *,
        failure_type: FailureType,
        message: str,
        external_execution_id: str | None,
    ) -> bool:
        """Report failure. False when the job already had its result (a retried step)."""
        details: dict[str, Any] = {"type": failure_type.value, "message": clip(message)}
        if external_execution_id:
            details["externalExecutionId"] = external_execution_id[:MAX_EXTERNAL_ID]
        try:
            self._call(
                "PutJobFailureResult", jobId=job_id, failureDetails=details, lost=_ALREADY_FINISHED
            )
        except _Rejected:
            return False
        return True

    def _call(
        self, operation: str, *, lost: frozenset[str] = frozenset(), **params: Any
    ) -> dict[str, Any]:
        method = getattr(self._client, _snake(operation))
        try:
            return dict(method(**params))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in lost:
                raise _Rejected(code) from error
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in _TRANSIENT or status >= 500:
                raise ServiceUnavailable(
                    f"CodePipeline {operation} stayed unavailable ({code or status})."
                ) from error
            # Anything else means the worker sent something CodePipeline will never accept: a bug.
            raise CodePipelineRejected(f"CodePipeline rejected {operation} with {code}.") from error
        except BotoCoreError as error:
            raise ServiceUnavailable(
                f"CodePipeline {operation} could not be reached ({type(error).__name__})."
            ) from error


class _Rejected(Exception):
    """CodePipeline refused the call in a way the caller treats as an answer, not an error."""


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")
