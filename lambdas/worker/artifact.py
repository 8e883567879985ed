"""The output artifact: a JSON build report in the job's output artifact location.

The action type allows one output artifact; a downstream action that reads it fails if the worker
never writes it (shared/reference/codepipeline-jobs.md, "Output artifacts"). CodePipeline hands the
job temporary S3 credentials and, for encrypted pipelines, a KMS key: the report is written with
those credentials and SSE-KMS, as an S3 object at the artifact's location. CodePipeline artifacts
are zip files; the report is `build-report.json` inside one, so a downstream CodeBuild action can
read it as a file.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.codepipeline import JobDetails
from worker.continuation import Continuation
from worker.failures import ServiceUnavailable
from worker.providers import BuildStatus

REPORT_FILE = "build-report.json"


def build_report(continuation: Continuation, status: BuildStatus) -> dict[str, Any]:
    """What a downstream action may want to know about the build."""
    duration = (
        round(status.finished_at - status.started_at)
        if status.finished_at and status.started_at
        else None
    )
    return {
        "provider": continuation.provider,
        "buildId": status.build_id,
        "number": status.number,
        "url": status.url,
        "state": status.state,
        "commit": status.commit,
        "branchHead": continuation.branch_head,
        "durationSeconds": duration,
        "jobs": [
            {
                "id": job.job_id,
                "number": job.number,
                "state": job.state,
                "url": f"{status.url.rsplit('/builds/', 1)[0]}/jobs/{job.job_id}",
            }
            for job in status.jobs
        ],
    }


def write_report(details: JobDetails, report: dict[str, Any], s3: Any | None = None) -> int:
    """Write the report to every declared output artifact; returns how many were written."""
    if not details.output_artifacts:
        return 0
    client = s3 if s3 is not None else _s3_client(details.credentials)
    body = _zipped(json.dumps(report, indent=2, sort_keys=True) + "\n")
    extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
    if details.encryption_key_id:
        extra["SSEKMSKeyId"] = details.encryption_key_id
    for artifact in details.output_artifacts:
        try:
            client.put_object(Bucket=artifact.bucket, Key=artifact.key, Body=body, **extra)
        except (ClientError, BotoCoreError) as error:
            raise ServiceUnavailable(
                f"The build report could not be written to the output artifact {artifact.name} "
                f"({type(error).__name__})."
            ) from None
    return len(details.output_artifacts)


def _zipped(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(REPORT_FILE, text)
    return buffer.getvalue()


def _s3_client(credentials: dict[str, str]) -> Any:
    """An S3 client with the job's artifact credentials (never the function's own role)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        aws_access_key_id=credentials.get("accessKeyId"),
        aws_secret_access_key=credentials.get("secretAccessKey"),
        aws_session_token=credentials.get("sessionToken"),
        config=Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 5}),
    )
