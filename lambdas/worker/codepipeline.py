"""The CodePipeline job API, as the worker uses it.

Wraps the job-worker operations and turns their answers into what the worker means by them: a
claim or not, a result accepted or refused because the job is gone, or CodePipeline being
unavailable (which the state machine retries). Facts from the botocore model (codepipeline
2015-07-09) and shared/reference/codepipeline-jobs.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker import aws
from worker.failures import FailureType, ServiceUnavailable, clip
from worker.job import ActionType, PipelineRef

MAX_SUMMARY = 2048
MAX_EXTERNAL_ID = 1500
# AcknowledgeJob answers a JobStatus; only InProgress means "yours, go on" (AWS's Java sample
# worker and the Jenkins and TeamCity plugins stop on any other status).
CLAIMED_STATUS = "InProgress"

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


class ActionTypeUnknown(CodePipelineRejected):
    """PollForJobs named an action type CodePipeline does not know (deleted or never created)."""


class ResultAnswer(StrEnum):
    """What became of a PutJobSuccessResult / PutJobFailureResult."""

    ACCEPTED = "accepted"
    # InvalidJobStateException: the job is not InProgress any more (it has a result, or it was
    # abandoned or timed out).
    NOT_IN_PROGRESS = "not_in_progress"
    # JobNotFoundException: the job is gone (e.g. its pipeline was deleted).
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Acknowledgement:
    """The answer to AcknowledgeJob."""

    status: str | None  # the JobStatus CodePipeline answered, None when it refused
    refused: str | None = None  # InvalidNonceException / JobNotFoundException
    retried: bool = False  # botocore sent the call more than once: an earlier try may have won

    @property
    def claimed(self) -> bool:
        return self.status == CLAIMED_STATUS


@dataclass(frozen=True)
class ResultCall:
    answer: ResultAnswer
    retried: bool = False  # botocore sent the call more than once: an earlier try may have won


@dataclass(frozen=True)
class Artifact:
    """An output artifact location of the job."""

    name: str
    bucket: str
    key: str


@dataclass(frozen=True)
class JobDetails:
    """What GetJobDetails tells a step that needs secrets: never log or return it."""

    configuration: dict[str, str]
    output_artifacts: tuple[Artifact, ...]
    credentials: dict[str, str]  # artifactCredentials: temporary S3 credentials
    encryption_key_id: str | None


class CodePipelineJobs:
    """Job-worker calls on one CodePipeline client (injected in tests)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client if client is not None else aws.client("codepipeline")

    def poll(self, action_type: ActionType, max_batch_size: int) -> list[dict[str, Any]]:
        """Jobs handed out to us now. They carry secrets: never log or forward them raw."""
        try:
            response = self._call(
                "PollForJobs", actionTypeId=action_type.as_api(), maxBatchSize=max_batch_size
            )
        except CodePipelineRejected as error:
            if "ActionTypeNotFoundException" in str(error):
                raise ActionTypeUnknown(str(error)) from error
            raise
        return list(response.get("jobs", []))

    def acknowledge(self, job_id: str, nonce: str) -> Acknowledgement:
        """Claim the job with this hand-out's nonce."""
        try:
            response = self._client.acknowledge_job(jobId=job_id, nonce=nonce)
        except ClientError as error:
            code = _code(error)
            if code in ("InvalidNonceException", "JobNotFoundException"):
                return Acknowledgement(status=None, refused=code, retried=_retried(error))
            raise self._unavailable_or_rejected("AcknowledgeJob", error) from error
        except BotoCoreError as error:
            raise _unreachable("AcknowledgeJob", error) from error
        return Acknowledgement(status=str(response.get("status") or ""), retried=_retried(response))

    def details(self, job_id: str) -> JobDetails:
        """The job's configuration (secret values included), artifacts and credentials."""
        details = self._call("GetJobDetails", jobId=job_id)["jobDetails"]
        data = details.get("data") or {}
        artifacts = []
        for artifact in data.get("outputArtifacts") or []:
            location = (artifact.get("location") or {}).get("s3Location") or {}
            if location.get("bucketName") and location.get("objectKey"):
                artifacts.append(
                    Artifact(
                        name=str(artifact.get("name", "")),
                        bucket=str(location["bucketName"]),
                        key=str(location["objectKey"]),
                    )
                )
        key = data.get("encryptionKey") or {}
        return JobDetails(
            configuration=dict((data.get("actionConfiguration") or {}).get("configuration") or {}),
            output_artifacts=tuple(artifacts),
            credentials=dict(data.get("artifactCredentials") or {}),
            encryption_key_id=str(key["id"]) if key.get("id") else None,
        )

    def configuration(self, job_id: str) -> dict[str, str]:
        """The job's configuration including secret values: use it, never log or return it."""
        return self.details(job_id).configuration

    def put_success(
        self,
        job_id: str,
        *,
        summary: str,
        external_execution_id: str | None,
        percent_complete: int,
        continuation_token: str | None = None,
        output_variables: dict[str, str] | None = None,
    ) -> ResultCall:
        """Report success (or hand over to a continuation job when a token is given)."""
        details: dict[str, Any] = {
            "summary": clip(summary, MAX_SUMMARY),
            "percentComplete": max(0, min(100, percent_complete)),
        }
        if external_execution_id:
            details["externalExecutionId"] = external_execution_id[:MAX_EXTERNAL_ID]
        params: dict[str, Any] = {"jobId": job_id, "executionDetails": details}
        if continuation_token is not None:
            params["continuationToken"] = continuation_token
        elif output_variables:
            params["outputVariables"] = output_variables
        return self._result("PutJobSuccessResult", params)

    def put_failure(
        self,
        job_id: str,
        *,
        failure_type: FailureType,
        message: str,
        external_execution_id: str | None,
    ) -> ResultCall:
        """Report failure."""
        details: dict[str, Any] = {"type": failure_type.value, "message": clip(message)}
        if external_execution_id:
            details["externalExecutionId"] = external_execution_id[:MAX_EXTERNAL_ID]
        return self._result("PutJobFailureResult", {"jobId": job_id, "failureDetails": details})

    def action_status(self, pipeline: PipelineRef) -> str | None:
        """The status CodePipeline shows for this job's action execution (InProgress, Abandoned,
        Succeeded, Failed), None when it cannot be told."""
        if not (pipeline.name and pipeline.execution_id and pipeline.action_execution_id):
            return None
        params: dict[str, Any] = {
            "pipelineName": pipeline.name,
            "filter": {"pipelineExecutionId": pipeline.execution_id},
        }
        while True:
            try:
                page = self._call("ListActionExecutions", **params)
            except (ServiceUnavailable, CodePipelineRejected):
                return None
            for detail in page.get("actionExecutionDetails") or []:
                if detail.get("actionExecutionId") == pipeline.action_execution_id:
                    return str(detail.get("status") or "") or None
            if not page.get("nextToken"):
                return None
            params["nextToken"] = page["nextToken"]

    def _result(self, operation: str, params: dict[str, Any]) -> ResultCall:
        method = getattr(self._client, _snake(operation))
        try:
            response = method(**params)
        except ClientError as error:
            code = _code(error)
            if code == "InvalidJobStateException":
                return ResultCall(ResultAnswer.NOT_IN_PROGRESS, retried=_retried(error))
            if code == "JobNotFoundException":
                return ResultCall(ResultAnswer.NOT_FOUND, retried=_retried(error))
            raise self._unavailable_or_rejected(operation, error) from error
        except BotoCoreError as error:
            raise _unreachable(operation, error) from error
        return ResultCall(ResultAnswer.ACCEPTED, retried=_retried(response))

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self._client, _snake(operation))
        try:
            return dict(method(**params))
        except ClientError as error:
            raise self._unavailable_or_rejected(operation, error) from error
        except BotoCoreError as error:
            raise _unreachable(operation, error) from error

    @staticmethod
    def _unavailable_or_rejected(operation: str, error: ClientError) -> Exception:
        code = _code(error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in _TRANSIENT or status >= 500:
            return ServiceUnavailable(
                f"CodePipeline {operation} stayed unavailable ({code or status})."
            )
        # Anything else means the worker sent something CodePipeline will never accept.
        return CodePipelineRejected(f"CodePipeline rejected {operation} with {code}.")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _retried(answer: Any) -> bool:
    """botocore's count of retries for this call (on success or error)."""
    response = answer.response if isinstance(answer, ClientError) else answer
    metadata = response.get("ResponseMetadata", {}) if isinstance(response, dict) else {}
    return int(metadata.get("RetryAttempts", 0) or 0) > 0


def _unreachable(operation: str, error: BotoCoreError) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"CodePipeline {operation} could not be reached ({type(error).__name__})."
    )


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")
