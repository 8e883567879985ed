"""Artifacts: S3 locations in job data, the temporary credentials for them, and moto's S3.

Job data carries ``inputArtifacts``/``outputArtifacts`` as ``{name, revision?, location{type: S3,
s3Location{bucketName, objectKey}}}``, ``artifactCredentials`` (temporary STS keys, fresh on every
PollForJobs and GetJobDetails) and ``encryptionKey{id, type: KMS}`` (botocore model: JobData,
Artifact, AWSSessionCredentials, EncryptionKey). Workers read and write those objects with an S3
client built from the credentials, uploading with SSE-KMS under ``encryptionKey.id`` (reference
page, "Output artifacts").

Local runs serve S3 from ``moto.mock_aws``, which accepts any credentials: the helpers here create
the artifact bucket and read or write artifacts in the *active* moto world, and refuse to run
without one so a test never reaches real S3.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact object as moto's S3 holds it."""

    name: str
    bucket: str
    key: str
    body: bytes
    server_side_encryption: str | None  # "aws:kms" when written as AWS asks
    kms_key_id: str | None
    metadata: dict[str, str]


def fake_credentials() -> dict[str, str]:
    """Temporary-credential look-alikes (ASIA prefix: session keys); never valid anywhere."""
    upper = string.ascii_uppercase + string.digits
    b64 = string.ascii_letters + string.digits + "+/"
    return {
        "accessKeyId": "ASIA" + "".join(secrets.choice(upper) for _ in range(16)),
        "secretAccessKey": "".join(secrets.choice(b64) for _ in range(40)),
        "sessionToken": "IQoJb3JpZ2luX2Vj" + "".join(secrets.choice(b64) for _ in range(300)),
    }


def object_key(pipeline_name: str, artifact_name: str) -> str:
    # CodePipeline's layout: <pipeline[:20]>/<artifact[:20]>/<7 random characters>.
    suffix = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(7))
    return f"{pipeline_name[:20]}/{artifact_name[:20]}/{suffix}"


def artifact(
    bucket: str, pipeline_name: str, name: str, revision: str | None = None
) -> dict[str, Any]:
    """One ``Artifact`` of job data (botocore model: Artifact, ArtifactLocation)."""
    found: dict[str, Any] = {
        "name": name,
        "location": {
            "type": "S3",
            "s3Location": {"bucketName": bucket, "objectKey": object_key(pipeline_name, name)},
        },
    }
    if revision is not None:
        found["revision"] = revision
    return found


def event_artifact(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The ``{name, s3location{bucket, key}}`` form of events and ListActionExecutions."""
    location = entry["location"]["s3Location"]
    return {
        "name": entry["name"],
        "s3location": {"bucket": location["bucketName"], "key": location["objectKey"]},
    }


def _require_moto() -> None:
    try:
        from moto.core.models import MockAWS
    except ImportError as error:  # pragma: no cover - moto is a dev dependency
        raise RuntimeError("artifact helpers need moto") from error
    if not getattr(MockAWS, "_mocks_active", False):
        raise RuntimeError("no active moto world: wrap the run in moto.mock_aws()")


def _s3(region: str) -> Any:
    _require_moto()
    # moto accepts any key; these never leave the process.
    return boto3.client(
        "s3", region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def create_bucket(bucket: str, region: str) -> None:
    """Create the artifact bucket in the active moto world (idempotent)."""
    s3 = _s3(region)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket in existing:
        return
    if region == "us-east-1":  # S3 refuses a LocationConstraint of us-east-1
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})


def read(entry: Mapping[str, Any], region: str) -> StoredArtifact:
    """Read the object at an artifact's location (KeyError-like ClientError when absent)."""
    location = entry["location"]["s3Location"]
    answer = _s3(region).get_object(Bucket=location["bucketName"], Key=location["objectKey"])
    return StoredArtifact(
        name=str(entry["name"]),
        bucket=location["bucketName"],
        key=location["objectKey"],
        body=answer["Body"].read(),
        server_side_encryption=answer.get("ServerSideEncryption"),
        kms_key_id=answer.get("SSEKMSKeyId"),
        metadata=dict(answer.get("Metadata") or {}),
    )


def write(
    entry: Mapping[str, Any], body: bytes, region: str, kms_key_id: str | None = None
) -> None:
    """Put an object at an artifact's location, SSE-KMS as CodePipeline writes its artifacts."""
    location = entry["location"]["s3Location"]
    extra: dict[str, str] = {"ServerSideEncryption": "aws:kms"}
    if kms_key_id is not None:
        extra["SSEKMSKeyId"] = kms_key_id
    _s3(region).put_object(
        Bucket=location["bucketName"], Key=location["objectKey"], Body=body, **extra
    )
