"""The CodePipeline job-worker emulator, driven by real botocore clients over HTTP."""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.session
import cbor2
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries import standard
from moto import mock_aws

from local.clock import VirtualClock
from local.codepipeline import (
    EVENT_DETAIL_TYPE,
    ActionRun,
    CodePipelineEmulator,
    NonceMode,
)

ACTION_TYPE = {"category": "Test", "owner": "Custom", "provider": "Travis", "version": "1"}
CONFIG = {"Owner": "octo", "ProjectName": "hello", "Branch": "main", "APIToken": "secret-token"}
REVISION = "0123456789abcdef0123456789abcdef01234567"
SIGNED = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/codepipeline/aws4_request, x"


_SESSIONS: dict[str, botocore.session.Session] = {}


def make_client(url: str, protocol: str = "json", cbor_model: Path | None = None, **retries: Any):
    """A real botocore client; ``cbor`` loads a model copy that only offers RPC v2 CBOR."""
    session = _SESSIONS.get(protocol)
    if session is None:  # one session per protocol: loading the model is the slow part
        session = botocore.session.get_session()
        if protocol == "cbor":
            assert cbor_model is not None
            session.get_component("data_loader").search_paths.insert(0, str(cbor_model))
        _SESSIONS[protocol] = session
    client = session.create_client(
        "codepipeline",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3, **retries}),
    )
    assert client.meta.service_model.resolved_protocol == (
        "smithy-rpc-v2-cbor" if protocol == "cbor" else "json"
    )
    return client


class ManualClock:
    """The emulator's clock, moved by hand: redelivery and timeouts without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def write_cbor_model(root: Path) -> Path:
    """A copy of the CodePipeline model that only offers Smithy RPC v2 CBOR."""
    # botocore 1.44.5 prefers awsJson for CodePipeline; this copy makes it speak CBOR instead.
    source = Path(botocore.__file__).parent / "data/codepipeline/2015-07-09/service-2.json.gz"
    model = json.loads(gzip.decompress(source.read_bytes()))
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    target = root / "codepipeline" / "2015-07-09"
    target.mkdir(parents=True)
    (target / "service-2.json").write_text(json.dumps(model))
    return root


@pytest.fixture(scope="module")
def cbor_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cbor_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(autouse=True)
def instant_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep botocore's retry *decisions* real but skip its sleeps (up to seconds each).
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)


@pytest.fixture
def emulator() -> Iterator[CodePipelineEmulator]:
    with CodePipelineEmulator(redelivery_timeout_seconds=60, seed=7) as emu:
        yield emu


@pytest.fixture
def client(emulator: CodePipelineEmulator) -> Any:
    return make_client(emulator.endpoint_url)


def poll(client: Any, batch: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
    return client.poll_for_jobs(actionTypeId=ACTION_TYPE, maxBatchSize=batch, **kwargs)["jobs"]


def claim(client: Any) -> dict[str, Any]:
    (job,) = poll(client)
    assert client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"] == "InProgress"
    return job


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


@pytest.mark.parametrize("protocol", ["json", "cbor"])
def test_full_lifecycle_with_continuation(
    emulator: CodePipelineEmulator, cbor_model: Path, protocol: str
) -> None:
    # Given an action run that a listener hears about, and a client on either wire protocol
    events: list[tuple[str, ActionRun]] = []
    emulator.add_action_listener(lambda state, run: events.append((state, run)))
    client = make_client(emulator.endpoint_url, protocol, cbor_model)
    first_id = emulator.create_job(
        ACTION_TYPE, CONFIG, input_revision=REVISION, encryption_key_id="alias/key"
    )

    # When the worker claims it and publishes the build link through a continuation token
    job = claim(client)
    details = client.get_job_details(jobId=first_id)["jobDetails"]
    client.put_job_success_result(
        jobId=first_id,
        continuationToken='{"build": 42}',
        executionDetails={
            "externalExecutionId": "42",
            "summary": "Build 42 started",
            "percentComplete": 0,
        },
    )
    # Then the run is still going and a new job of the same run carries the token
    run_id = job["data"]["pipelineContext"]["action"]["actionExecutionId"]
    assert emulator.action_run(run_id).status == "InProgress"
    second = claim(client)
    assert second["id"] != first_id
    assert second["data"]["continuationToken"] == '{"build": 42}'
    assert second["data"]["pipelineContext"] == job["data"]["pipelineContext"]
    assert second["data"]["actionConfiguration"] == job["data"]["actionConfiguration"]
    assert second["data"]["inputArtifacts"] == job["data"]["inputArtifacts"]

    # When it reports the final success
    client.put_job_success_result(
        jobId=second["id"],
        executionDetails={"externalExecutionId": "42", "summary": "passed", "percentComplete": 100},
        outputVariables={"BuildId": "42", "build-url@x": "u"},
    )

    # Then the job data looked like AWS's, and the run shows one claim and one result per job
    data = job["data"]
    assert job["accountId"] == "123456789012" and job["nonce"]
    assert uuid.UUID(job["id"]) and uuid.UUID(run_id)
    assert data["actionTypeId"] == ACTION_TYPE
    assert data["actionConfiguration"]["configuration"] == CONFIG
    assert data["pipelineContext"]["pipelineArn"].startswith("arn:aws:codepipeline:us-east-1:")
    assert uuid.UUID(data["pipelineContext"]["pipelineExecutionId"])
    (artifact,) = data["inputArtifacts"]
    assert artifact["revision"] == REVISION and artifact["location"]["type"] == "S3"
    assert set(artifact["location"]["s3Location"]) == {"bucketName", "objectKey"}
    assert data["encryptionKey"] == {"id": "alias/key", "type": "KMS"}
    assert "continuationToken" not in data
    assert data["artifactCredentials"]["accessKeyId"].startswith("ASIA")
    assert details["data"]["artifactCredentials"] != data["artifactCredentials"]
    run = emulator.action_run(run_id)
    assert run.status == "Succeeded"
    assert run.job_ids == [first_id, second["id"]]
    assert run.continuation_tokens == ['{"build": 42}']
    assert [d["percentComplete"] for d in run.execution_details] == [0, 100]
    assert run.output_variables == {"BuildId": "42", "build-url@x": "u"}
    assert [emulator.ack_count(j) for j in run.job_ids] == [1, 1]
    assert [emulator.job(j).status for j in run.job_ids] == ["Succeeded", "Succeeded"]
    assert {c.protocol for c in emulator.calls()} == {protocol}
    assert [(state, r.action_execution_id) for state, r in events] == [
        ("STARTED", run_id),
        ("SUCCEEDED", run_id),
    ]
    assert not emulator.listener_errors


def test_eventbridge_event_shape(emulator: CodePipelineEmulator) -> None:
    # Given a started action run
    run = emulator.run_for_job(emulator.create_job(ACTION_TYPE, CONFIG, input_revision=REVISION))

    # When the runner turns it into the EventBridge event
    event = emulator.eventbridge_event(run)

    # Then it has the documented shape
    assert event["source"] == "aws.codepipeline"
    assert event["detail-type"] == EVENT_DETAIL_TYPE
    detail = event["detail"]
    assert detail["state"] == "STARTED" and detail["region"] == "us-east-1"
    assert detail["execution-id"] == run.pipeline_execution_id
    assert (detail["pipeline"], detail["stage"], detail["action"]) == (
        "demo-pipeline",
        "Test",
        "Travis",
    )
    # Real events send type.version as a string (reference page); the number form of the user
    # guide's first sample is an option, per call or for the whole emulator
    assert detail["type"] == ACTION_TYPE
    numbered = emulator.eventbridge_event(run, version_as_number=True)["detail"]["type"]
    assert numbered == {**ACTION_TYPE, "version": 1}
    emulator.event_version_as_number = True
    assert emulator.eventbridge_event(run)["detail"]["type"]["version"] == 1
    assert "input-artifacts" in detail and run.job_ids[0] not in json.dumps(event)


def test_listener_can_drive_a_worker_and_errors_are_kept(
    emulator: CodePipelineEmulator, client: Any
) -> None:
    # Given a STARTED listener that works the job at once (as the demo runner's poller would)
    def worker(state: str, run: ActionRun) -> None:
        if state == "STARTED":
            job = claim(client)
            client.put_job_failure_result(
                jobId=job["id"], failureDetails={"type": "ConfigurationError", "message": "no"}
            )
        else:
            raise RuntimeError("listener bug")

    emulator.add_action_listener(worker)

    # When CodePipeline reaches the action
    job_id = emulator.create_job(ACTION_TYPE, CONFIG, input_artifact_name=None)

    # Then the run finished from inside the listener, and the listener's bug was only recorded
    run = emulator.wait_for_run(emulator.job(job_id).action_execution_id, timeout=2)
    assert run.failure_details == {"type": "ConfigurationError", "message": "no"}
    assert run.input_artifacts == []
    assert [str(e) for e in emulator.listener_errors] == ["listener bug"]
    details = client.get_job_details(jobId=job_id)["jobDetails"]["data"]
    assert details["inputArtifacts"] == [] and "encryptionKey" not in details
    assert len(emulator.job(job_id).issued_credentials) == 2  # poll + GetJobDetails


def test_create_job_refuses_what_aws_could_not_send(emulator: CodePipelineEmulator) -> None:
    with pytest.raises(ValueError, match="less than or equal to 1000"):
        emulator.create_job(ACTION_TYPE, {"Owner": "o" * 1001})
    with pytest.raises(ValueError, match="Custom"):
        emulator.create_job({**ACTION_TYPE, "owner": "AWS"}, CONFIG)
    assert emulator.action_runs() == []


@pytest.mark.parametrize("mode", ["new", "same"])
def test_unacknowledged_job_is_handed_out_again(mode: NonceMode) -> None:
    clock = ManualClock()
    with CodePipelineEmulator(
        redelivery_timeout_seconds=0.5, nonce_on_redelivery=mode, clock=clock
    ) as emu:
        client = make_client(emu.endpoint_url)
        job_id = emu.create_job(ACTION_TYPE, CONFIG)
        (first,) = poll(client)
        clock.advance(0.49)
        assert poll(client) == []  # inside the window: nobody else gets it

        clock.advance(0.01)
        (again,) = poll(client)

        assert again["id"] == job_id
        assert (again["nonce"] == first["nonce"]) is (mode == "same")
        if mode == "new":
            with pytest.raises(ClientError) as stale:
                client.acknowledge_job(jobId=job_id, nonce=first["nonce"])
            assert error_code(stale) == "InvalidNonceException"
        client.acknowledge_job(jobId=job_id, nonce=again["nonce"])
        # A duplicate acknowledgement of the same hand-out is idempotent
        assert client.acknowledge_job(jobId=job_id, nonce=again["nonce"])["status"] == "InProgress"
        job = emu.job(job_id)
        assert job.handouts == 2 and job.acknowledgements == 2
        assert len(job.nonces) == (2 if mode == "new" else 1)
        clock.advance(10)
        assert poll(client) == []  # acknowledged jobs are never redelivered


def test_invalid_nonce(emulator: CodePipelineEmulator, client: Any) -> None:
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)
    with pytest.raises(ClientError) as before_handout:
        client.acknowledge_job(jobId=job_id, nonce="1")
    (job,) = poll(client)
    with pytest.raises(ClientError) as wrong:
        client.acknowledge_job(jobId=job_id, nonce=job["nonce"] + "0")
    client.acknowledge_job(jobId=job_id, nonce=job["nonce"])
    client.put_job_failure_result(
        jobId=job_id, failureDetails={"type": "JobFailed", "message": "red"}
    )
    with pytest.raises(ClientError) as finished:
        client.acknowledge_job(jobId=job_id, nonce=job["nonce"])

    assert {error_code(e) for e in (before_handout, wrong, finished)} == {"InvalidNonceException"}
    run = emulator.run_for_job(job_id)
    assert run.status == "Failed" and run.failure_details == {"type": "JobFailed", "message": "red"}


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        ("acknowledge_job", {"nonce": "1"}),
        ("get_job_details", {}),
        ("put_job_success_result", {}),
        ("put_job_failure_result", {"failureDetails": {"type": "JobFailed", "message": "m"}}),
    ],
)
def test_unknown_job(client: Any, operation: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as excinfo:
        getattr(client, operation)(jobId=str(uuid.uuid4()), **kwargs)
    assert error_code(excinfo) == "JobNotFoundException"


def test_result_needs_an_acknowledged_unfinished_job(
    emulator: CodePipelineEmulator, client: Any
) -> None:
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)
    (job,) = poll(client)
    with pytest.raises(ClientError) as not_acked:
        client.put_job_success_result(jobId=job_id)
    client.acknowledge_job(jobId=job_id, nonce=job["nonce"])
    client.put_job_success_result(jobId=job_id)
    with pytest.raises(ClientError) as second_success:
        client.put_job_success_result(jobId=job_id)
    with pytest.raises(ClientError) as then_failure:
        client.put_job_failure_result(
            jobId=job_id, failureDetails={"type": "JobFailed", "message": "late"}
        )

    codes = {error_code(e) for e in (not_acked, second_success, then_failure)}
    assert codes == {"InvalidJobStateException"}
    assert len(emulator.action_run(emulator.job(job_id).action_execution_id).results) == 1


SUCCESS, FAILURE = "put_job_success_result", "put_job_failure_result"


@pytest.mark.parametrize(
    ("operation", "kwargs", "needle"),
    [
        (SUCCESS, {"executionDetails": {"summary": "s" * 2049}}, "summary"),
        (SUCCESS, {"executionDetails": {"externalExecutionId": "i" * 1501}}, "externalExecution"),
        (SUCCESS, {"executionDetails": {"percentComplete": 101}}, "percentComplete"),
        (SUCCESS, {"continuationToken": "t" * 2049}, "continuationToken"),
        (SUCCESS, {"continuationToken": "t", "outputVariables": {"a": "b"}}, "outputVariables"),
        (SUCCESS, {"outputVariables": {"bad key!": "v"}}, "outputVariables"),
        (FAILURE, {"failureDetails": {"type": "Oops", "message": "m"}}, "enum"),
        (FAILURE, {"failureDetails": {"type": "JobFailed", "message": "m" * 5001}}, "message"),
    ],
)
def test_validation_errors(
    emulator: CodePipelineEmulator, client: Any, operation: str, kwargs: dict[str, Any], needle: str
) -> None:
    # Given a claimed job (validation is checked before the job state)
    emulator.create_job(ACTION_TYPE, CONFIG)
    job = claim(client)

    with pytest.raises(ClientError) as excinfo:
        getattr(client, operation)(jobId=job["id"], **kwargs)

    assert error_code(excinfo) == "ValidationException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert needle in excinfo.value.response["Error"]["Message"]
    assert emulator.job(job["id"]).status == "InProgress"  # nothing happened to the job


def test_poll_validation_and_unknown_action_type(
    emulator: CodePipelineEmulator, client: Any
) -> None:
    emulator.register_action_type(ACTION_TYPE)
    with pytest.raises(ClientError) as not_custom:
        client.poll_for_jobs(actionTypeId={**ACTION_TYPE, "owner": "AWS"})
    with pytest.raises(ClientError) as too_many:
        poll(client, batch=101)
    with pytest.raises(ClientError) as two_params:
        poll(client, queryParam={"Owner": "a", "Branch": "b"})
    with pytest.raises(ClientError) as unknown:
        client.poll_for_jobs(actionTypeId={**ACTION_TYPE, "version": "9"})

    assert [error_code(e) for e in (not_custom, too_many, two_params)] == [
        "ValidationException"
    ] * 3
    assert error_code(unknown) == "ActionTypeNotFoundException"
    assert poll(client, batch=100) == []


def test_query_param_filters_on_configuration(emulator: CodePipelineEmulator, client: Any) -> None:
    wanted = emulator.create_job(ACTION_TYPE, {**CONFIG, "ProjectName": "wanted"})
    emulator.create_job(ACTION_TYPE, {**CONFIG, "ProjectName": "other"})

    jobs = poll(client, queryParam={"ProjectName": "wanted"})

    assert [j["id"] for j in jobs] == [wanted]
    assert len(poll(client)) == 1  # the other one is still there for unfiltered pollers


def test_throttling_is_retried_by_botocore(emulator: CodePipelineEmulator, client: Any) -> None:
    emulator.create_job(ACTION_TYPE, CONFIG)
    emulator.throttle_next("PollForJobs", 2)

    assert len(poll(client)) == 1

    codes = [c.error_code for c in emulator.calls("PollForJobs")]
    assert codes == ["ThrottlingException", "ThrottlingException", None]
    emulator.throttle_next("GetJobDetails", 3)
    with pytest.raises(ClientError) as excinfo:
        client.get_job_details(jobId=str(uuid.uuid4()))
    assert error_code(excinfo) == "ThrottlingException"
    assert excinfo.value.response["ResponseMetadata"]["RetryAttempts"] == 2


def test_random_throttling_and_server_errors(emulator: CodePipelineEmulator) -> None:
    client = make_client(emulator.endpoint_url, total_max_attempts=10)
    emulator.throttle_rate = 0.5
    emulator.fail_next("GetJobDetails", 1)  # InternalFailure, HTTP 500
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)

    for _ in range(10):
        assert client.get_job_details(jobId=job_id)["jobDetails"]["id"] == job_id

    codes = Counter(c.error_code for c in emulator.calls())
    assert codes[None] == 10 and codes["ThrottlingException"] > 0 and codes["InternalFailure"] == 1


def test_latency_is_added() -> None:
    with CodePipelineEmulator(latency_seconds=0.05) as emu:
        client = make_client(emu.endpoint_url)
        emu.register_action_type(ACTION_TYPE)
        started = time.monotonic()
        poll(client)
        assert time.monotonic() - started >= 0.05


def test_concurrent_polls_never_share_a_hand_out(emulator: CodePipelineEmulator) -> None:
    job_ids = {emulator.create_job(ACTION_TYPE, CONFIG) for _ in range(40)}
    received: list[str] = []
    lock = threading.Lock()

    def poller(client: Any) -> None:
        while jobs := poll(client, batch=3):
            with lock:
                received.extend(j["id"] for j in jobs)

    clients = [make_client(emulator.endpoint_url) for _ in range(8)]  # sessions are not threadsafe
    threads = [threading.Thread(target=poller, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(received) == sorted(job_ids)  # each job exactly once
    assert all(job.handouts == 1 for job in emulator.jobs())


def test_action_timeout_fails_the_run() -> None:
    clock = ManualClock()
    with CodePipelineEmulator(action_timeout_seconds=3600, clock=clock) as emu:
        client = make_client(emu.endpoint_url)
        states: list[str] = []
        emu.add_action_listener(lambda state, run: states.append(state))
        emu.create_job(ACTION_TYPE, CONFIG)
        job = claim(client)
        clock.advance(3600)

        with pytest.raises(ClientError) as excinfo:
            client.put_job_success_result(jobId=job["id"])

        assert error_code(excinfo) == "InvalidJobStateException"
        assert emu.job(job["id"]).status == "TimedOut"
        run = emu.run_for_job(job["id"])
        assert run.status == "Failed" and run.timed_out
        assert states == ["STARTED", "FAILED"]


def test_endpoint_from_environment(
    emulator: CodePipelineEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CODEPIPELINE", emulator.endpoint_url)
    client = boto3.client(
        "codepipeline",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    emulator.create_job(ACTION_TYPE, CONFIG)
    assert len(poll(client)) == 1


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    response = requests.post(url, data=body, headers=headers, timeout=5)
    return response.status_code, dict(response.headers), response.content


def test_legacy_json_protocol_over_raw_http(emulator: CodePipelineEmulator) -> None:
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)

    def call(operation: str, params: dict[str, Any], auth: str = SIGNED) -> tuple[int, Any]:
        status, headers, body = raw_post(
            emulator.endpoint_url + "/",
            json.dumps(params).encode(),
            {
                "X-Amz-Target": f"CodePipeline_20150709.{operation}",
                "Content-Type": "application/x-amz-json-1.1",
                "Authorization": auth,
            },
        )
        assert headers["Content-Type"] == "application/x-amz-json-1.1"
        return status, json.loads(body) if body else None

    status, polled = call("PollForJobs", {"actionTypeId": ACTION_TYPE})
    assert status == 200 and polled["jobs"][0]["id"] == job_id
    assert call("AcknowledgeJob", {"jobId": job_id, "nonce": "x"}) == (
        400,
        {
            "__type": "InvalidNonceException",
            "message": "The nonce was specified in an invalid format",
        },
    )
    nonce = polled["jobs"][0]["nonce"]
    assert call("AcknowledgeJob", {"jobId": job_id, "nonce": nonce}) == (
        200,
        {"status": "InProgress"},
    )
    assert call("PutJobSuccessResult", {"jobId": job_id}) == (200, None)
    status, unsigned = call("GetJobDetails", {"jobId": job_id}, auth="")
    assert (status, unsigned["__type"]) == (403, "MissingAuthenticationTokenException")
    other_region = SIGNED.replace("us-east-1", "eu-west-1")
    status, wrong = call("GetJobDetails", {"jobId": job_id}, auth=other_region)
    assert (status, wrong["__type"]) == (403, "InvalidSignatureException")
    status, unknown = call("CreatePipeline", {})
    assert (status, unknown["__type"]) == (400, "UnknownOperationException")


def test_cbor_protocol_over_raw_http(emulator: CodePipelineEmulator) -> None:
    emulator.register_action_type(ACTION_TYPE)
    headers = {
        "smithy-protocol": "rpc-v2-cbor",
        "Content-Type": "application/cbor",
        "Accept": "application/cbor",
        "Authorization": SIGNED,
    }
    url = emulator.endpoint_url + "/service/CodePipeline_20150709/operation/"

    status, out, body = raw_post(
        url + "PollForJobs", cbor2.dumps({"actionTypeId": ACTION_TYPE}), headers
    )
    assert (status, cbor2.loads(body)) == (200, {"jobs": []})
    assert out["smithy-protocol"] == "rpc-v2-cbor" and out["Content-Type"] == "application/cbor"
    assert out["x-amzn-RequestId"]

    missing = str(uuid.uuid4())
    status, out, body = raw_post(url + "GetJobDetails", cbor2.dumps({"jobId": missing}), headers)
    assert status == 400
    assert cbor2.loads(body)["__type"] == "com.amazonaws.codepipeline#JobNotFoundException"
    status, out, body = raw_post(url + "GetJobDetails", b"\xff\x00", headers)
    assert (status, cbor2.loads(body)["__type"].split("#")[1]) == (400, "SerializationException")


# --------------------------------------------------------------------------- events and delays


def test_events_for_started_and_succeeded_carry_no_job_id(
    emulator: CodePipelineEmulator, client: Any
) -> None:
    # Given an event listener and an action type with an execution URL template
    events: list[dict[str, Any]] = []
    emulator.add_event_listener(events.append)
    emulator.register_action_type(
        ACTION_TYPE,
        execution_url_template="https://travis.example/{Config:Owner}/builds/{ExternalExecutionId}",
    )

    # When an action run starts and the worker finishes it with an output artifact
    job_id = emulator.create_job(ACTION_TYPE, CONFIG, output_artifact_name="BuildOutput")
    claim(client)
    client.put_job_success_result(
        jobId=job_id, executionDetails={"externalExecutionId": "42", "summary": "passed"}
    )

    # Then STARTED came at creation and SUCCEEDED at the result, as EventBridge would send them
    assert [e["detail"]["state"] for e in events] == ["STARTED", "SUCCEEDED"]
    started, succeeded = (e["detail"] for e in events)
    assert started["type"]["version"] == "1" and started["input-artifacts"]
    assert succeeded["execution-result"] == {
        "external-execution-id": "42",
        "external-execution-summary": "passed",
        "external-execution-url": "https://travis.example/octo/builds/42",
    }
    assert [a["name"] for a in succeeded["output-artifacts"]] == ["BuildOutput"]
    assert all(job_id not in json.dumps(e) for e in events)
    assert {e["time"][-1] for e in events} == {"Z"}


@pytest.mark.parametrize("continuation_delay", [None, 0.0])
def test_jobs_are_pollable_only_after_the_pollable_delay(continuation_delay: float | None) -> None:
    # Given a 5 s delay between the STARTED event and the job being pollable (AWS's own samples
    # keep polling for ~50 s after the event); continuation jobs have the same or their own
    clock = ManualClock()
    with CodePipelineEmulator(
        pollable_delay_seconds=5,
        continuation_pollable_delay_seconds=continuation_delay,
        clock=clock,
    ) as emu:
        client = make_client(emu.endpoint_url)
        states: list[str] = []
        emu.add_action_listener(lambda state, run: states.append(state))

        job_id = emu.create_job(ACTION_TYPE, CONFIG)

        # Then the event is out at once but the job only after the delay
        assert states == ["STARTED"]
        assert poll(client) == []
        clock.advance(4.99)
        assert poll(client) == []
        clock.advance(0.01)
        (job,) = poll(client)
        assert job["id"] == job_id

        # And a continuation job waits as long as configured
        client.acknowledge_job(jobId=job_id, nonce=job["nonce"])
        client.put_job_success_result(jobId=job_id, continuationToken="t")
        if continuation_delay is None:
            assert poll(client) == []
            clock.advance(5)
        assert len(poll(client)) == 1


def test_virtual_clock_drives_every_timeout_delay_and_timestamp() -> None:
    # Given a clock that runs 1000 times faster than real time, starting in 2001
    vc = VirtualClock(scale=0.001, start=1_000_000_000.0)
    with CodePipelineEmulator(
        clock=vc, redelivery_timeout_seconds=40, pollable_delay_seconds=20, latency_seconds=20
    ) as emu:
        client = make_client(emu.endpoint_url)
        events: list[dict[str, Any]] = []
        emu.add_event_listener(events.append)
        job_id = emu.create_job(ACTION_TYPE, CONFIG)

        # When the worker polls until it gets the job, then again until it is handed out again
        started = time.monotonic()
        first = poll_until(client, deadline=2.0)
        again = poll_until(client, deadline=2.0)
        real = time.monotonic() - started

        # Then the delays were virtual seconds (20 + 40 virtual s = 60 real ms, plus latency)
        assert first["id"] == again["id"] == job_id
        assert real < 1.5
        calls = emu.calls("PollForJobs")
        assert all(c.finished - c.started >= 19.9 for c in calls)  # latency: virtual seconds
        assert events[0]["time"].startswith("2001-09-09T01:4")
        detail = client.list_action_executions(pipelineName="demo-pipeline")
        start_time = detail["actionExecutionDetails"][0]["startTime"]
        assert abs(start_time.timestamp() - 1_000_000_000) < 120


def test_a_bound_virtual_monotonic_is_accepted() -> None:
    vc = VirtualClock(scale=0.001)
    with CodePipelineEmulator(clock=vc.monotonic, redelivery_timeout_seconds=30) as emu:
        client = make_client(emu.endpoint_url)
        emu.create_job(ACTION_TYPE, CONFIG)
        first = poll_until(client, deadline=2.0)
        assert poll_until(client, deadline=2.0)["nonce"] != first["nonce"]  # 30 ms later


def test_a_clock_must_be_a_clock() -> None:
    with pytest.raises(TypeError, match="not a clock"):
        CodePipelineEmulator(clock=42)  # type: ignore[arg-type]


def poll_until(client: Any, deadline: float) -> dict[str, Any]:
    """Poll (real-time deadline) until one job is handed out."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        jobs = poll(client)
        if jobs:
            (job,) = jobs
            return job
        time.sleep(0.002)
    raise AssertionError("no job handed out before the deadline")


# --------------------------------------------------------------------------- AcknowledgeJob


@pytest.mark.parametrize("mode", ["accept", "refuse"])
def test_reacknowledge_with_the_same_nonce(mode: str) -> None:
    with CodePipelineEmulator(same_nonce_reacknowledge=mode) as emu:  # type: ignore[arg-type]
        client = make_client(emu.endpoint_url)
        job_id = emu.create_job(ACTION_TYPE, CONFIG)
        job = claim(client)

        if mode == "accept":  # presumed: every SDK retries the call by itself
            answer = client.acknowledge_job(jobId=job_id, nonce=job["nonce"])
            assert answer["status"] == "InProgress" and emu.ack_count(job_id) == 2
        else:
            with pytest.raises(ClientError) as refused:
                client.acknowledge_job(jobId=job_id, nonce=job["nonce"])
            assert error_code(refused) == "InvalidNonceException" and emu.ack_count(job_id) == 1
        assert emu.job(job_id).status == "InProgress"


@pytest.mark.parametrize("mode", ["InvalidNonceException", "status"])
def test_acknowledge_of_a_finished_job(mode: str) -> None:
    with CodePipelineEmulator(acknowledge_finished=mode) as emu:  # type: ignore[arg-type]
        client = make_client(emu.endpoint_url)
        timed_out_id = emu.create_job(ACTION_TYPE, CONFIG)
        (timed_out,) = poll(client)
        emu.time_out(emu.job(timed_out_id).action_execution_id)
        succeeded_id = emu.create_job(ACTION_TYPE, CONFIG)
        succeeded = claim(client)
        client.put_job_success_result(jobId=succeeded_id)

        def acknowledge(job: dict[str, Any]) -> str:
            try:
                return str(client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])["status"])
            except ClientError as error:
                return str(error.response["Error"]["Code"])

        answers = [acknowledge(timed_out), acknowledge(succeeded)]
        if mode == "status":
            assert answers == ["TimedOut", "Succeeded"]
        else:
            assert answers == ["InvalidNonceException"] * 2
        assert emu.job(timed_out_id).status == "TimedOut"


@pytest.mark.parametrize(
    "status", ["Created", "Queued", "Dispatched", "TimedOut", "Succeeded", "Failed"]
)
def test_acknowledge_can_be_made_to_answer_any_status(
    emulator: CodePipelineEmulator, client: Any, status: str
) -> None:
    # Given a handed-out job whose next acknowledge is scripted to answer another status
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)
    (job,) = poll(client)
    emulator.force_acknowledge_status(job_id, status)

    # Then the worker sees that status and the job is not claimed; the next call is normal
    assert client.acknowledge_job(jobId=job_id, nonce=job["nonce"])["status"] == status
    assert emulator.job(job_id).status == "Dispatched" and emulator.ack_count(job_id) == 0
    assert client.acknowledge_job(jobId=job_id, nonce=job["nonce"])["status"] == "InProgress"
    with pytest.raises(ValueError, match="JobStatus"):
        emulator.force_acknowledge_status(job_id, "Abandoned")


# --------------------------------------------------------------------------- gone action types


def test_deleted_action_type_is_not_found_by_poll(
    emulator: CodePipelineEmulator, client: Any
) -> None:
    # Given an open job of an action type that is then deleted
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)
    emulator.delete_action_type(ACTION_TYPE)

    # Then PollForJobs fails (model: DeleteCustomActionType; PollForJobs' modeled error)
    with pytest.raises(ClientError) as excinfo:
        poll(client)
    assert error_code(excinfo) == "ActionTypeNotFoundException"
    with pytest.raises(ValueError, match="deleted"):
        emulator.create_job(ACTION_TYPE, CONFIG)

    # And restoring the identical definition brings the job back
    emulator.register_action_type(ACTION_TYPE)
    assert [j["id"] for j in poll(client)] == [job_id]


# --------------------------------------------------------------------------- artifacts


def artifact_s3(credentials: dict[str, str]) -> Any:
    """An S3 client as a worker builds it from the job's artifactCredentials."""
    return boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id=credentials["accessKeyId"],
        aws_secret_access_key=credentials["secretAccessKey"],
        aws_session_token=credentials["sessionToken"],
    )


def test_output_artifact_written_with_job_credentials_is_readable(
    emulator: CodePipelineEmulator, client: Any
) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with mock_aws():
        # Given the artifact bucket in moto and a job that promises an output artifact
        assert emulator.create_artifact_bucket() == emulator.artifact_bucket
        job_id = emulator.create_job(
            ACTION_TYPE, CONFIG, output_artifact_name="BuildOutput", encryption_key_id=key_id
        )
        emulator.put_input_artifact(job_id, b"source zip")
        claim(client)

        # When the worker reads its input and writes its output with fresh credentials, SSE-KMS
        data = client.get_job_details(jobId=job_id)["jobDetails"]["data"]
        s3 = artifact_s3(data["artifactCredentials"])
        source = data["inputArtifacts"][0]["location"]["s3Location"]
        read_back = s3.get_object(Bucket=source["bucketName"], Key=source["objectKey"])
        (output,) = data["outputArtifacts"]
        location = output["location"]["s3Location"]
        s3.put_object(
            Bucket=location["bucketName"],
            Key=location["objectKey"],
            Body=b"build log",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=data["encryptionKey"]["id"],
        )

        # Then the emulator reads what the worker wrote, where the job data pointed
        stored = emulator.read_output_artifact(job_id)
    assert read_back["Body"].read() == b"source zip"
    assert output["name"] == "BuildOutput" and output["location"]["type"] == "S3"
    assert "revision" not in output
    assert location["bucketName"] == emulator.artifact_bucket
    assert location["objectKey"].startswith("demo-pipeline/BuildOutput/")
    assert data["encryptionKey"] == {"id": key_id, "type": "KMS"}
    assert (stored.body, stored.server_side_encryption, stored.kms_key_id) == (
        b"build log",
        "aws:kms",
        key_id,
    )
    assert stored.key == location["objectKey"]
    issued = emulator.job(job_id).issued_credentials
    assert len({c["accessKeyId"] for c in issued}) == len(issued) == 2  # poll + GetJobDetails


def test_artifact_helpers_refuse_to_run_outside_moto(emulator: CodePipelineEmulator) -> None:
    job_id = emulator.create_job(ACTION_TYPE, CONFIG, output_artifact_name="Out")
    with pytest.raises(RuntimeError, match="mock_aws"):
        emulator.create_artifact_bucket()
    with pytest.raises(RuntimeError, match="mock_aws"):
        emulator.read_output_artifact(job_id, "Out")


def test_default_encryption_key_and_several_output_artifacts() -> None:
    with CodePipelineEmulator(default_encryption_key_id="alias/aws/s3") as emu:
        client = make_client(emu.endpoint_url)
        emu.create_job(ACTION_TYPE, CONFIG, output_artifact_name=["Logs", "Reports"])
        (job,) = poll(client)
    assert job["data"]["encryptionKey"] == {"id": "alias/aws/s3", "type": "KMS"}
    assert [a["name"] for a in job["data"]["outputArtifacts"]] == ["Logs", "Reports"]
