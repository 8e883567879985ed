"""Sanitizing a handed-out job into an execution input, and naming its execution."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from local.codepipeline import CodePipelineEmulator
from tests.unit.support import ACTION_TYPE, ACTION_TYPE_API, JOB_TOKEN, PIPELINE, REVISION
from worker.continuation import Continuation
from worker.job import (
    ActionType,
    ExecutionInput,
    PipelineRef,
    execution_name,
    input_revision,
    sanitize_job,
)

JOB_ID = "5f0c6a3e-8b1d-4e2f-9a7c-1b2d3e4f5a6b"
SECRETS = frozenset({"APIToken"})
_SFN_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")


def _handed_out(codepipeline_client: Any) -> dict[str, Any]:
    (job,) = codepipeline_client.poll_for_jobs(actionTypeId=ACTION_TYPE_API, maxBatchSize=1)["jobs"]
    return dict(job)


def test_sanitize_drops_every_secret_and_keeps_what_steps_need(
    create_job: Callable[..., str], codepipeline_client: Any, emulator: CodePipelineEmulator
) -> None:
    # Given a job as PollForJobs hands it out: APIToken, S3 credentials, artifact locations, a key
    job_id = create_job(encryption_key_id="alias/artifacts-key")
    job = _handed_out(codepipeline_client)
    credentials = job["data"]["artifactCredentials"]

    # When the poller sanitizes it
    sanitized = sanitize_job(job, SECRETS)
    text = json.dumps(sanitized.as_dict())

    # Then no secret survives anywhere in the execution input
    for secret in (JOB_TOKEN, *credentials.values()):
        assert secret not in text
    for word in ("APIToken", "artifactCredentials", "alias/artifacts-key", "bucketName"):
        assert word not in text
    # and the steps still have the job, the pipeline, the non-secret properties and the commit
    assert sanitized.job_id == job_id
    assert sanitized.nonce == job["nonce"]
    assert sanitized.action_type == ACTION_TYPE
    assert sanitized.revision == REVISION
    assert sanitized.configuration == {
        "Owner": "octo-org",
        "ProjectName": "hello.world",
        "Branch": "main",
    }
    run = emulator.run_for_job(job_id)
    assert sanitized.pipeline.name == PIPELINE
    assert sanitized.pipeline.stage == run.stage_name
    assert sanitized.pipeline.action == run.action_name
    assert sanitized.pipeline.execution_id == run.pipeline_execution_id
    assert sanitized.pipeline.action_execution_id == run.action_execution_id
    assert sanitized.continuation is None


def test_sanitize_drops_whatever_the_action_type_declares_secret() -> None:
    # Given an action type that declares two secret properties
    job = _job({"Owner": "o", "Password": "hunter2", "Region": "eu"})

    # When it is sanitized with that declaration
    sanitized = sanitize_job(job, frozenset({"Password", "APIToken"}))

    # Then only the non-secret properties remain
    assert sanitized.configuration == {"Owner": "o", "Region": "eu"}


def test_sanitize_parses_a_continuation_token(
    create_job: Callable[..., str], codepipeline_client: Any, claim_job: Callable[..., Any]
) -> None:
    # Given a continuation job created by publishing a build link
    job_id = create_job()
    claim_job(job_id)
    token = Continuation("travis", "900001", "205001", "https://api.travis-ci.com", "o/r", 1.0)
    codepipeline_client.put_job_success_result(jobId=job_id, continuationToken=token.encode())
    continuation_job = _handed_out(codepipeline_client)

    # When the poller sanitizes it
    sanitized = sanitize_job(continuation_job, SECRETS)

    # Then the token is readable in the execution input (it holds no secret)
    assert sanitized.job_id != job_id
    assert Continuation.from_dict(sanitized.continuation) == token


def test_an_unparsable_continuation_token_is_marked_for_the_watch_step() -> None:
    job = _job({}, continuation_token="not json at all")
    assert sanitize_job(job, SECRETS).continuation == {"unreadable": True}


@pytest.mark.parametrize(
    ("artifacts", "expected"),
    [
        ([], None),
        ([{"name": "Source"}], None),
        ([{"name": "Source", "revision": ""}], None),
        ([{"name": "Source", "revision": REVISION}, {"name": "Other", "revision": "x"}], REVISION),
    ],
)
def test_revision_comes_from_the_first_input_artifact(
    artifacts: list[dict[str, Any]], expected: str | None
) -> None:
    assert input_revision({"inputArtifacts": artifacts}) == expected


def test_execution_input_round_trips_through_the_state() -> None:
    # Given a sanitized job
    original = sanitize_job(_job({"Owner": "o", "Branch": "b"}, continuation_token="{}"), SECRETS)

    # When a step reads it back from the JSON state Step Functions passes along
    state = json.loads(json.dumps(original.as_dict()))

    # Then nothing is lost
    assert ExecutionInput.from_state(state) == original


def test_action_type_version_is_read_as_text() -> None:
    # CodePipeline events have carried the version as a number
    parsed = ActionType.from_api({"category": "Test", "provider": "Travis", "version": 1})
    assert parsed == ACTION_TYPE


def test_execution_name_is_job_id_and_nonce_hash() -> None:
    # Given a job id (a UUID, 36 characters) and a nonce
    name = execution_name(JOB_ID, "3")

    # Then the name is "<job id>-<8 hex of sha256(nonce)>", 45 characters, valid for Step Functions
    assert name == f"{JOB_ID}-{hashlib.sha256(b'3').hexdigest()[:8]}"
    assert len(name) == 45
    assert _SFN_NAME.fullmatch(name)


def test_execution_name_identifies_one_hand_out() -> None:
    # The same hand-out gets the same name (idempotent); another hand-out gets its own
    assert execution_name(JOB_ID, "3") == execution_name(JOB_ID, "3")
    assert execution_name(JOB_ID, "3") != execution_name(JOB_ID, "4")
    assert execution_name(JOB_ID, "3").startswith(JOB_ID)


def test_later_attempts_get_a_suffix_within_the_name_limit() -> None:
    first = execution_name(JOB_ID, "3")
    assert execution_name(JOB_ID, "3", attempt=1) == first
    assert execution_name(JOB_ID, "3", attempt=2) == f"{first}-2"
    assert _SFN_NAME.fullmatch(execution_name(JOB_ID, "3", attempt=99))


def _job(configuration: dict[str, str], continuation_token: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "actionTypeId": ACTION_TYPE_API,
        "actionConfiguration": {"configuration": configuration},
        "pipelineContext": {"pipelineName": "p", "stage": {"name": "s"}, "action": {"name": "a"}},
        "inputArtifacts": [{"name": "Source", "revision": REVISION}],
        "artifactCredentials": {
            "accessKeyId": "AKIAEXAMPLE",
            "secretAccessKey": "s3cr3t",
            "sessionToken": "tok",
        },
    }
    if continuation_token is not None:
        data["continuationToken"] = continuation_token
    return {"id": JOB_ID, "nonce": "1", "accountId": "123456789012", "data": data}


def test_the_run_key_names_one_action_run_as_action_events_do() -> None:
    # Given the pipeline context of a job (the first and every continuation job share it)
    pipeline = PipelineRef(
        name=PIPELINE,
        stage="Test",
        action="Travis",
        execution_id="11111111-2222-3333-4444-555555555555",
        action_execution_id="66666666-7777-8888-9999-000000000000",
    )

    # Then the run key holds what an ABANDONED event carries (no job or action execution id)
    assert pipeline.run_key == f"{PIPELINE}/11111111-2222-3333-4444-555555555555/Test/Travis"
    assert pipeline.log_keys() == {
        "pipeline": PIPELINE,
        "pipeline_execution_id": "11111111-2222-3333-4444-555555555555",
        "stage": "Test",
        "action": "Travis",
    }
