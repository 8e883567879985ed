"""The output artifact: a zipped build-report.json at the job's artifact location, SSE-KMS."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.codepipeline import CodePipelineEmulator
from tests.unit.support import REVISION, SLUG
from worker import artifact as artifact_module
from worker.artifact import REPORT_FILE, build_report, write_report
from worker.codepipeline import Artifact, CodePipelineJobs, JobDetails
from worker.continuation import Continuation
from worker.failures import ServiceUnavailable
from worker.providers import BuildStatus, JobState

URL = "https://app.travis-ci.com/github/octo-org/hello.world/builds/900001"
TOKEN = Continuation("travis", "900001", "205001", "https://api.travis-ci.com", SLUG, 1.0, "7")
STATUS = BuildStatus(
    build_id="900001",
    number="7",
    url=URL,
    state="passed",
    finished=True,
    passed=True,
    commit=REVISION,
    started_at=1_700_000_000.4,
    finished_at=1_700_000_061.0,
    jobs=(JobState("801", "7.1", "passed"), JobState("802", "7.2", "passed")),
)


@pytest.fixture
def s3(emulator: CodePipelineEmulator) -> Iterator[None]:
    with mock_aws():
        emulator.create_artifact_bucket()
        yield


def _unzipped(body: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.namelist() == [REPORT_FILE]
        return dict(json.loads(archive.read(REPORT_FILE)))


def test_the_report_tells_a_downstream_action_about_the_build() -> None:
    assert build_report(TOKEN, STATUS) == {
        "provider": "travis",
        "buildId": "900001",
        "number": "7",
        "url": URL,
        "state": "passed",
        "commit": REVISION,
        "branchHead": False,
        "durationSeconds": 61,
        "jobs": [
            {
                "id": "801",
                "number": "7.1",
                "state": "passed",
                "url": "https://app.travis-ci.com/github/octo-org/hello.world/jobs/801",
            },
            {
                "id": "802",
                "number": "7.2",
                "state": "passed",
                "url": "https://app.travis-ci.com/github/octo-org/hello.world/jobs/802",
            },
        ],
    }


def test_an_unknown_duration_is_null() -> None:
    from dataclasses import replace

    assert build_report(TOKEN, replace(STATUS, started_at=None))["durationSeconds"] is None


def test_the_report_is_written_with_the_jobs_credentials_and_key(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    s3: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a job of an encrypted pipeline with two output artifacts
    job_id = create_job(output_artifact_name=["BuildReport", "Other"], encryption_key_id="alias/k")
    details = jobs.details(job_id)
    clients: list[dict[str, Any]] = []
    real = boto3.client

    def spy(service: str, **kwargs: Any) -> Any:
        clients.append({"service": service, **kwargs})
        return real(service, **kwargs)

    monkeypatch.setattr(boto3, "client", spy)

    # When the report is written
    written = write_report(details, build_report(TOKEN, STATUS))

    # Then both artifacts hold the zip, SSE-KMS under the job's key
    assert written == 2
    for name in ("BuildReport", "Other"):
        stored = emulator.read_output_artifact(job_id, name)
        assert stored.server_side_encryption == "aws:kms"
        assert stored.kms_key_id == "alias/k"
        assert _unzipped(stored.body)["buildId"] == "900001"
    # through an S3 client built from the job's artifact credentials, not the function's role
    (client,) = [c for c in clients if c["service"] == "s3"][:1]
    assert client["aws_access_key_id"] == details.credentials["accessKeyId"]
    assert client["aws_session_token"] == details.credentials["sessionToken"]


def test_without_a_key_the_default_kms_key_is_used(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, create_job: Callable[..., str], s3: None
) -> None:
    job_id = create_job(output_artifact_name="BuildReport")
    details = jobs.details(job_id)
    assert details.encryption_key_id is None

    write_report(details, build_report(TOKEN, STATUS))

    stored = emulator.read_output_artifact(job_id)
    assert stored.server_side_encryption == "aws:kms"
    assert _unzipped(stored.body)["state"] == "passed"


def test_a_job_without_output_artifacts_writes_nothing() -> None:
    class NoS3:
        def put_object(self, **params: Any) -> None:
            raise AssertionError("nothing to write")

    details = JobDetails(
        configuration={}, output_artifacts=(), credentials={}, encryption_key_id=None
    )
    assert write_report(details, {}, s3=NoS3()) == 0


def test_a_failed_write_is_service_unavailable_without_details() -> None:
    class DeniedS3:
        def put_object(self, **params: Any) -> None:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "secret-session-token"}}, "PutObject"
            )

    details = JobDetails(
        configuration={},
        output_artifacts=(Artifact("BuildReport", "bucket", "key"),),
        credentials={"sessionToken": "secret-session-token"},
        encryption_key_id=None,
    )
    with pytest.raises(ServiceUnavailable, match="BuildReport") as raised:
        write_report(details, {}, s3=DeniedS3())
    assert "secret-session-token" not in str(raised.value)
    assert raised.value.__cause__ is None  # `from None`: the S3 error text stays out of the cause


def test_the_s3_client_uses_only_the_given_credentials() -> None:
    client = artifact_module._s3_client(
        {"accessKeyId": "ASIAEXAMPLE", "secretAccessKey": "s", "sessionToken": "t"}
    )
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.token) == ("ASIAEXAMPLE", "t")
