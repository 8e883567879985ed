"""Emulator of the CodePipeline job-worker API on 127.0.0.1, for tests and the local demo.

Neither moto nor LocalStack implements PollForJobs and friends, so this module serves them to an
*unmodified* boto3 ``codepipeline`` client (``endpoint_url=`` or
``AWS_ENDPOINT_URL_CODEPIPELINE``). Both wire protocols of the 2015-07-09 model are served:

* awsJson1_1: ``POST /`` with ``X-Amz-Target: CodePipeline_20150709.<Op>``. botocore 1.44.5 picks
  this one for CodePipeline (``json`` comes first in its protocol priority list).
* Smithy RPC v2 CBOR: ``POST /service/CodePipeline_20150709/operation/<Op>`` with a CBOR body and
  ``smithy-protocol: rpc-v2-cbor``, for SDKs that prefer it.

Faithful (checked against the installed botocore model and the CodePipeline docs):

* Input validation against the model's shapes, server-side as AWS does: required members, string
  lengths, enums, patterns (full match, like AWS's Java validators), integer ranges. Errors are
  ``ValidationException`` (400) with AWS's "N validation errors detected: ..." wording.
* ``PollForJobs`` only for owner ``Custom``; ``ActionTypeNotFoundException`` for a type nobody
  registered (``create_job`` registers its type; ``register_action_type`` registers one up front).
* Job lifecycle Queued -> Dispatched -> InProgress -> Succeeded|Failed (or TimedOut), nonce checks,
  ``InvalidJobStateException`` for a result on a job that is not InProgress, continuation tokens
  creating a *new* job (new id, new nonce) of the same action run, ``outputVariables`` refused with
  a continuation token, fresh artifact credentials on every hand-out and GetJobDetails.
* Errors: awsJson bodies ``{"__type": Code, "message": ...}``; CBOR bodies carry a shape id
  (``namespace#Code``). ``ThrottlingException`` is a 400, which botocore's legacy and standard
  retry modes both retry.
* A SigV4 ``Authorization`` header must be present and scoped to this region and service
  (the signature itself is not checked: there are no real keys).

Assumed where AWS documents nothing (each switchable or noted at its use):

* Re-hand-out of an unacknowledged job keeps or changes the nonce: ``nonce_on_redelivery``.
* Nonces are short numeric strings like the API reference's examples (``"3"``): unique per job,
  *not* across jobs.
* AcknowledgeJob on a finished or never-handed-out job: ``InvalidNonceException`` (the only
  modeled refusal of that call). Re-acknowledging with the current nonce returns InProgress.
* ``maxBatchSize`` above 100 is a ValidationException; omitted means 1.
* Output variables larger than 122,880 bytes in total: ``OutputVariablesSizeExceededException``.
* Action runs time out only if ``action_timeout_seconds`` is set (AWS: 24 h for custom actions).
* Authentication errors use status 403.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import random
import re
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import botocore.session
import cbor2
from botocore.model import ListShape, MapShape, Shape, StructureShape

TARGET_PREFIX = "CodePipeline_20150709"
CBOR_PATH_PREFIX = f"/service/{TARGET_PREFIX}/operation/"
MODEL_NAMESPACE = "com.amazonaws.codepipeline"
# AWS front-door errors (not in the CodePipeline model) come from Coral namespaces.
CORAL_NAMESPACES = {
    "ThrottlingException": "com.amazonaws.coral.availability",
    "SerializationException": "com.amazonaws.coral.service",
    "UnknownOperationException": "com.amazonaws.coral.service",
    "InternalFailure": "com.amazonaws.coral.service",
    "ServiceUnavailableException": "com.amazonaws.coral.availability",
    "MissingAuthenticationTokenException": "com.amazon.coral.service",
    "InvalidSignatureException": "com.amazon.coral.service",
}
OPERATIONS = (
    "PollForJobs",
    "AcknowledgeJob",
    "GetJobDetails",
    "PutJobSuccessResult",
    "PutJobFailureResult",
)
MAX_BATCH_SIZE = 100
OUTPUT_VARIABLES_MAX_BYTES = 122_880
FINISHED_JOB_STATES = frozenset({"Succeeded", "Failed", "TimedOut"})
EVENT_DETAIL_TYPE = "CodePipeline Action Execution State Change"

NonceMode = Literal["new", "same"]
ActionState = Literal["STARTED", "SUCCEEDED", "FAILED"]
ActionListener = Callable[[str, "ActionRun"], None]


class ApiError(Exception):
    """An AWS error answer: error code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass
class CallRecord:
    """One API call as the emulator saw it (params and response are deep copies)."""

    seq: int
    operation: str
    protocol: str  # "json" | "cbor"
    params: dict[str, Any]
    response: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    status: int
    started: float  # emulator clock (monotonic by default)
    finished: float
    request_id: str

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass
class JobResult:
    """A PutJobSuccessResult or PutJobFailureResult accepted for a job."""

    job_id: str
    kind: Literal["success", "failure"]
    at: float
    execution_details: dict[str, Any] | None = None
    continuation_token: str | None = None
    output_variables: dict[str, str] | None = None
    current_revision: dict[str, Any] | None = None
    failure_details: dict[str, Any] | None = None


@dataclass
class Job:
    """A CodePipeline job: one unit of work of an action run (the first, or a continuation)."""

    id: str
    action_execution_id: str
    created_at: float
    status: str = "Queued"
    continuation_token: str | None = None
    nonce: str | None = None  # current nonce; None until first handed out
    nonces: list[str] = field(default_factory=list)  # every nonce ever handed out, in order
    handouts: int = 0
    acknowledgements: int = 0  # successful AcknowledgeJob calls
    dispatched_at: float | None = None
    acknowledged_at: float | None = None
    finished_at: float | None = None
    result: JobResult | None = None
    issued_credentials: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ActionRun:
    """One execution of the custom action in a pipeline execution, with its ordered jobs."""

    action_execution_id: str
    pipeline_execution_id: str
    action_type: dict[str, str]
    configuration: dict[str, str]
    pipeline_name: str
    stage_name: str
    action_name: str
    pipeline_arn: str
    input_artifacts: list[dict[str, Any]]
    output_artifacts: list[dict[str, Any]]
    encryption_key: dict[str, str] | None
    started_at: float
    status: str = "InProgress"  # InProgress | Succeeded | Failed
    job_ids: list[str] = field(default_factory=list)
    results: list[JobResult] = field(default_factory=list)
    finished_at: float | None = None
    timed_out: bool = False

    @property
    def finished(self) -> bool:
        return self.status != "InProgress"

    @property
    def continuation_tokens(self) -> list[str]:
        return [r.continuation_token for r in self.results if r.continuation_token]

    @property
    def execution_details(self) -> list[dict[str, Any]]:
        """executionDetails of every result that had them, in order."""
        return [r.execution_details for r in self.results if r.execution_details is not None]

    @property
    def output_variables(self) -> dict[str, str] | None:
        final = self.results[-1] if self.results else None
        return final.output_variables if final else None

    @property
    def failure_details(self) -> dict[str, Any] | None:
        final = self.results[-1] if self.results else None
        return final.failure_details if final else None


# --------------------------------------------------------------------------- model validation


@lru_cache(maxsize=1)
def _service_model() -> Any:
    return botocore.session.get_session().get_service_model("codepipeline")


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # a Java-only construct: skip rather than reject valid input
        return None


def _shown(value: Any, shape: Shape) -> str:
    if shape.metadata.get("sensitive"):
        return ""
    text = str(value)
    # AWS echoes the whole value; cut it so a 5,000-character message stays readable in a test.
    return f" '{text[:200]}...'" if len(text) > 200 else f" '{text}'"


def _violation(value: Any, path: str, shape: Shape, constraint: str) -> str:
    return f"Value{_shown(value, shape)} at '{path}' failed to satisfy constraint: {constraint}"


def _length_problems(meta: Mapping[str, Any], size: int) -> list[str]:
    found = []
    if "min" in meta and size < meta["min"]:
        found.append(f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and size > meta["max"]:
        found.append(f"Member must have length less than or equal to {meta['max']}")
    return found


def _scalar_problems(shape: Shape, value: Any) -> list[str]:
    meta = shape.metadata
    found: list[str] = []
    if shape.type_name == "string":
        if "enum" in meta and value not in meta["enum"]:
            found.append(f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]")
        found += _length_problems(meta, len(value))
        pattern = _compiled(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            found.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    elif shape.type_name in ("integer", "long"):
        if "min" in meta and value < meta["min"]:
            found.append(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            found.append(f"Member must have value less than or equal to {meta['max']}")
    return found


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "structure": (dict,),
    "map": (dict,),
    "list": (list,),
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "timestamp": (datetime, int, float),  # CBOR tag 1 decodes to datetime, JSON sends epoch
}


def _check_type(shape: Shape, value: Any, path: str) -> None:
    expected = _PYTHON_TYPES.get(shape.type_name)
    wrong_bool = isinstance(value, bool) and shape.type_name != "boolean"
    if expected is not None and (not isinstance(value, expected) or wrong_bool):
        raise ApiError("SerializationException", f"Unexpected value type at '{path}'")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _validate(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    """Collect AWS-style constraint violations of ``value`` against a botocore shape."""
    _check_type(shape, value, path)
    if isinstance(shape, StructureShape):
        for name in shape.metadata.get("required", []):
            if value.get(name) is None:
                errors.append(
                    f"Value null at '{_join(path, name)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _validate(member, value[name], _join(path, name), errors)
    elif isinstance(shape, ListShape):
        errors += [
            _violation(value, path, shape, c) for c in _length_problems(shape.metadata, len(value))
        ]
        for index, item in enumerate(value, start=1):
            _validate(shape.member, item, _join(path, f"{index}.member"), errors)
    elif isinstance(shape, MapShape):
        errors += [
            _violation(value, path, shape, c) for c in _length_problems(shape.metadata, len(value))
        ]
        key_problems: list[str] = []
        for key, item in value.items():
            _check_type(shape.key, key, path)
            key_problems += [c for c in _scalar_problems(shape.key, key) if c not in key_problems]
            _validate(shape.value, item, _join(path, key), errors)
        if key_problems:
            constraint = f"Map keys must satisfy constraint: [{', '.join(key_problems)}]"
            errors.append(_violation(value, path, shape, constraint))
    else:
        errors += [_violation(value, path, shape, c) for c in _scalar_problems(shape, value)]


def _raise_if_invalid(errors: list[str]) -> None:
    if errors:
        noun = "error" if len(errors) == 1 else "errors"
        detail = "; ".join(errors)
        raise ApiError("ValidationException", f"{len(errors)} validation {noun} detected: {detail}")


def validate_input(operation: str, params: Mapping[str, Any]) -> None:
    """Validate request parameters against the installed botocore model, as AWS does."""
    shape = _service_model().operation_model(operation).input_shape
    errors: list[str] = []
    _validate(shape, params, "", errors)
    _raise_if_invalid(errors)


# --------------------------------------------------------------------------- fakes and helpers


def _fake_credentials() -> dict[str, str]:
    """Temporary-credential look-alikes (ASIA prefix: session keys); never valid anywhere."""
    upper = string.ascii_uppercase + string.digits
    b64 = string.ascii_letters + string.digits + "+/"
    return {
        "accessKeyId": "ASIA" + "".join(secrets.choice(upper) for _ in range(16)),
        "secretAccessKey": "".join(secrets.choice(b64) for _ in range(40)),
        "sessionToken": "IQoJb3JpZ2luX2Vj" + "".join(secrets.choice(b64) for _ in range(300)),
    }


def _object_key(pipeline_name: str, artifact_name: str) -> str:
    # CodePipeline's layout: <pipeline[:20]>/<artifact[:20]>/<7 random characters>.
    suffix = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(7))
    return f"{pipeline_name[:20]}/{artifact_name[:20]}/{suffix}"


def _action_type_key(action_type: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (
        str(action_type["category"]),
        str(action_type["owner"]),
        str(action_type["provider"]),
        str(action_type["version"]),
    )


def action_execution_event(
    run: ActionRun,
    state: str = "STARTED",
    *,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    version_as_number: bool = True,
) -> dict[str, Any]:
    """Build the EventBridge "CodePipeline Action Execution State Change" event for a run.

    ``type.version`` is a number by default, as in the user guide's sample event, so consumers
    that assume a string are caught; pass ``version_as_number=False`` for the string form.
    """
    version: str | int = run.action_type["version"]
    if version_as_number and str(version).isdigit():
        version = int(version)
    detail: dict[str, Any] = {
        "pipeline": run.pipeline_name,
        "version": 1,  # pipeline structure version
        "execution-id": run.pipeline_execution_id,
        "stage": run.stage_name,
        "action": run.action_name,
        "state": state,
        "region": region,
        "type": {
            "owner": run.action_type["owner"],
            "provider": run.action_type["provider"],
            "category": run.action_type["category"],
            "version": version,
        },
    }
    if state == "STARTED":
        detail["input-artifacts"] = [
            {
                "name": a["name"],
                "s3location": {
                    "bucket": a["location"]["s3Location"]["bucketName"],
                    "key": a["location"]["s3Location"]["objectKey"],
                },
            }
            for a in run.input_artifacts
        ]
    elif run.results:
        final = run.results[-1]
        details = final.execution_details or final.failure_details or {}
        result: dict[str, Any] = {}
        if details.get("externalExecutionId"):
            result["external-execution-id"] = details["externalExecutionId"]
        summary = details.get("summary") or details.get("message")
        if summary:
            result["external-execution-summary"] = summary
        if final.failure_details:
            result["error-code"] = final.failure_details["type"]
        detail["execution-result"] = result
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": EVENT_DETAIL_TYPE,
        "source": "aws.codepipeline",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [run.pipeline_arn],
        "detail": detail,
    }


# --------------------------------------------------------------------------- the emulator


class CodePipelineEmulator:
    """In-memory CodePipeline job-worker service behind a local HTTP endpoint.

    All state sits behind one lock, so concurrent callers (many Lambda handlers) see the same
    atomic transitions AWS gives them. Accessors return deep copies: safe to keep and compare.
    ``throttle_rate`` and ``latency_seconds`` may be changed while the server runs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        redelivery_timeout_seconds: float = 30.0,
        nonce_on_redelivery: NonceMode = "new",
        action_timeout_seconds: float | None = None,
        throttle_rate: float = 0.0,
        latency_seconds: float | tuple[float, float] = 0.0,
        seed: int | None = None,
        require_signature: bool = True,
        artifact_bucket: str = "codepipeline-us-east-1-000000000000",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if nonce_on_redelivery not in ("new", "same"):
            raise ValueError("nonce_on_redelivery must be 'new' or 'same'")
        self.host = host
        self.port = port
        self.region = region
        self.account_id = account_id
        self.redelivery_timeout_seconds = redelivery_timeout_seconds
        self.nonce_on_redelivery: NonceMode = nonce_on_redelivery
        self.action_timeout_seconds = action_timeout_seconds
        self.throttle_rate = throttle_rate
        self.latency_seconds = latency_seconds
        self.require_signature = require_signature
        self.artifact_bucket = artifact_bucket
        self._clock = clock
        self._rng = random.Random(seed)  # faults only: reproducible with a seed
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._runs: dict[str, ActionRun] = {}
        self._open: dict[str, Job] = {}  # Queued or Dispatched jobs, oldest first
        self._action_types: set[tuple[str, str, str, str]] = set()
        self._calls: list[CallRecord] = []
        self._forced: dict[str, deque[ApiError]] = {}
        self._listeners: list[ActionListener] = []
        self.listener_errors: list[BaseException] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------- lifecycle

    def start(self) -> CodePipelineEmulator:
        """Bind (port 0 = any free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.emulator = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="codepipeline-emulator",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CodePipelineEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://{self.host}:{self.port}"

    # ----------------------------------------------------------------------- admin API

    def register_action_type(self, action_type: Mapping[str, str]) -> None:
        """Make an action type exist (what the CDK stack's CustomActionType does)."""
        data = {"actionTypeId": dict(action_type)}
        errors: list[str] = []
        _validate(_service_model().shape_for("JobData"), data, "", errors)
        if errors:
            raise ValueError("; ".join(errors))
        with self._lock:
            self._action_types.add(_action_type_key(action_type))

    def create_job(
        self,
        action_type: Mapping[str, str],
        configuration: Mapping[str, str],
        *,
        pipeline_name: str = "demo-pipeline",
        stage_name: str = "Test",
        action_name: str = "Travis",
        input_revision: str | None = None,
        input_artifact_name: str | None = "SourceArtifact",
        output_artifact_name: str | None = None,
        encryption_key_id: str | None = None,
        pipeline_execution_id: str | None = None,
        continuation_token: str | None = None,
    ) -> str:
        """Start a new action run (CodePipeline reached the action) and return its first job id.

        ``continuation_token`` makes that first job a continuation job, as if an earlier job of the
        run (e.g. by another worker version) had returned that token: for bad-input tests.

        ``input_artifact_name=None`` gives an action with no input artifact; ``input_revision``
        None gives an input artifact without a revision. Listeners get ``("STARTED", run)``.
        """
        action_type = {"owner": "Custom", **dict(action_type)}
        if action_type["owner"] != "Custom":
            raise ValueError("only Custom action types have jobs for workers")
        self.register_action_type(action_type)

        def artifact(name: str, revision: str | None) -> dict[str, Any]:
            s3_location = {
                "bucketName": self.artifact_bucket,
                "objectKey": _object_key(pipeline_name, name),
            }
            found: dict[str, Any] = {
                "name": name,
                "location": {"type": "S3", "s3Location": s3_location},
            }
            if revision is not None:
                found["revision"] = revision
            return found

        run = ActionRun(
            action_execution_id=str(uuid.uuid4()),
            pipeline_execution_id=pipeline_execution_id or str(uuid.uuid4()),
            action_type=action_type,
            configuration=dict(configuration),
            pipeline_name=pipeline_name,
            stage_name=stage_name,
            action_name=action_name,
            pipeline_arn=f"arn:aws:codepipeline:{self.region}:{self.account_id}:{pipeline_name}",
            input_artifacts=(
                [artifact(input_artifact_name, input_revision)] if input_artifact_name else []
            ),
            output_artifacts=[artifact(output_artifact_name, None)] if output_artifact_name else [],
            encryption_key={"id": encryption_key_id, "type": "KMS"} if encryption_key_id else None,
            started_at=self._clock(),
        )
        # The job data must be something AWS could send: same model limits as requests.
        errors: list[str] = []
        data = self._job_data(run, None, credentials=_fake_credentials())
        _validate(_service_model().shape_for("JobData"), data, "", errors)
        if errors:
            raise ValueError("; ".join(errors))
        with self._lock:
            self._runs[run.action_execution_id] = run
            job_id = self._new_job(run, continuation_token=continuation_token, now=run.started_at)
            snapshot = copy.deepcopy(run)
            self._changed.notify_all()
        self._fire([("STARTED", snapshot)])
        return job_id

    def add_action_listener(self, listener: ActionListener) -> None:
        """Call ``listener(state, run)`` on STARTED, SUCCEEDED and FAILED of every action run.

        Called outside the lock, on the thread that caused the change; exceptions are kept in
        ``listener_errors`` instead of breaking the API call. Use ``eventbridge_event`` to turn
        the arguments into the event CodePipeline would send.
        """
        with self._lock:
            self._listeners.append(listener)

    def remove_action_listener(self, listener: ActionListener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def eventbridge_event(
        self, run: ActionRun | str, state: str = "STARTED", *, version_as_number: bool = True
    ) -> dict[str, Any]:
        """The "CodePipeline Action Execution State Change" event for a run (object or id)."""
        found = self.action_run(run) if isinstance(run, str) else run
        return action_execution_event(
            found,
            state,
            region=self.region,
            account_id=self.account_id,
            version_as_number=version_as_number,
        )

    def throttle_next(self, operation: str, count: int = 1) -> None:
        """Answer the next ``count`` calls of ``operation`` with ThrottlingException."""
        self.fail_next(operation, count, "ThrottlingException", "Rate exceeded", 400)

    def fail_next(
        self,
        operation: str,
        count: int = 1,
        code: str = "InternalFailure",
        message: str = "An internal error occurred",
        status: int = 500,
    ) -> None:
        """Answer the next ``count`` calls of ``operation`` with an arbitrary AWS error."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        with self._lock:
            queue = self._forced.setdefault(operation, deque())
            queue.extend(ApiError(code, message, status) for _ in range(count))

    # ----------------------------------------------------------------------- inspection

    def calls(self, operation: str | None = None) -> list[CallRecord]:
        """Every API call so far (throttled and failed ones too), oldest first."""
        with self._lock:
            return [
                copy.deepcopy(c)
                for c in self._calls
                if operation is None or c.operation == operation
            ]

    def job(self, job_id: str) -> Job:
        self._tick()
        with self._lock:
            return copy.deepcopy(self._jobs[job_id])

    def jobs(self, action_execution_id: str | None = None) -> list[Job]:
        """All jobs (optionally of one action run), oldest first."""
        self._tick()
        with self._lock:
            return [
                copy.deepcopy(j)
                for j in self._jobs.values()
                if action_execution_id is None or j.action_execution_id == action_execution_id
            ]

    def action_run(self, action_execution_id: str) -> ActionRun:
        self._tick()
        with self._lock:
            return copy.deepcopy(self._runs[action_execution_id])

    def action_runs(self) -> list[ActionRun]:
        self._tick()
        with self._lock:
            return [copy.deepcopy(r) for r in self._runs.values()]

    def run_for_job(self, job_id: str) -> ActionRun:
        with self._lock:
            action_execution_id = self._jobs[job_id].action_execution_id
        return self.action_run(action_execution_id)

    def ack_count(self, job_id: str) -> int:
        """Successful AcknowledgeJob calls for a job (idempotent re-acks included)."""
        with self._lock:
            return self._jobs[job_id].acknowledgements

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds (checked under the lock) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            self._tick()
            with self._changed:
                if predicate():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Wake up now and then too: timeouts change state without any call.
                self._changed.wait(min(remaining, 0.05))

    def wait_for_run(self, action_execution_id: str, timeout: float) -> ActionRun:
        """Wait until an action run has finished; TimeoutError otherwise."""
        if not self.wait_until(lambda: self._runs[action_execution_id].finished, timeout):
            raise TimeoutError(f"action run {action_execution_id} still in progress")
        return self.action_run(action_execution_id)

    # ----------------------------------------------------------------------- internals: state

    def _new_job(self, run: ActionRun, continuation_token: str | None, now: float) -> str:
        job = Job(
            id=str(uuid.uuid4()),
            action_execution_id=run.action_execution_id,
            created_at=now,
            continuation_token=continuation_token,
        )
        self._jobs[job.id] = job
        self._open[job.id] = job
        run.job_ids.append(job.id)
        return job.id

    def _job_data(
        self, run: ActionRun, job: Job | None, credentials: dict[str, str]
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "actionTypeId": dict(run.action_type),
            "actionConfiguration": {"configuration": dict(run.configuration)},
            "pipelineContext": {
                "pipelineName": run.pipeline_name,
                "stage": {"name": run.stage_name},
                "action": {"name": run.action_name, "actionExecutionId": run.action_execution_id},
                "pipelineArn": run.pipeline_arn,
                "pipelineExecutionId": run.pipeline_execution_id,
            },
            "inputArtifacts": copy.deepcopy(run.input_artifacts),
            "outputArtifacts": copy.deepcopy(run.output_artifacts),
            "artifactCredentials": credentials,
        }
        if run.encryption_key:
            data["encryptionKey"] = dict(run.encryption_key)
        if job is not None and job.continuation_token is not None:
            data["continuationToken"] = job.continuation_token
        return data

    def _render(self, job: Job) -> dict[str, Any]:
        credentials = _fake_credentials()  # fresh per hand-out / GetJobDetails, like AWS
        job.issued_credentials.append(dict(credentials))
        return self._job_data(self._runs[job.action_execution_id], job, credentials)

    def _finish_run(
        self, run: ActionRun, status: str, now: float, events: list[tuple[str, ActionRun]]
    ) -> None:
        run.status = status
        run.finished_at = now
        events.append(("SUCCEEDED" if status == "Succeeded" else "FAILED", copy.deepcopy(run)))

    def _sweep(self, events: list[tuple[str, ActionRun]]) -> None:
        """Time out action runs past ``action_timeout_seconds`` (checked lazily on access)."""
        if self.action_timeout_seconds is None:
            return
        now = self._clock()
        for run in self._runs.values():
            if run.finished or now - run.started_at < self.action_timeout_seconds:
                continue
            for job_id in run.job_ids:
                job = self._jobs[job_id]
                if job.status not in FINISHED_JOB_STATES:
                    job.status = "TimedOut"
                    job.finished_at = now
                    self._open.pop(job.id, None)
            run.timed_out = True
            self._finish_run(run, "Failed", now, events)
            self._changed.notify_all()

    def _tick(self) -> None:
        events: list[tuple[str, ActionRun]] = []
        with self._lock:
            self._sweep(events)
        self._fire(events)

    def _fire(self, events: list[tuple[str, ActionRun]]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for state, run in events:
            for listener in listeners:
                try:
                    listener(state, run)
                except Exception as error:  # a listener bug must not fail the API call
                    with self._lock:
                        self.listener_errors.append(error)

    # ----------------------------------------------------------------------- internals: API

    def _job_or_404(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError("JobNotFoundException", f"Job with id {job_id} was not found")
        return job

    def _poll_for_jobs(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        action_type = params["actionTypeId"]
        if action_type["owner"] != "Custom":
            raise ApiError(
                "ValidationException", "PollForJobs is only valid for action types owned by Custom"
            )
        batch = params.get("maxBatchSize", 1)
        if batch > MAX_BATCH_SIZE:  # the model only says min 1; AWS caps the batch (assumed 100)
            _raise_if_invalid(
                [
                    f"Value '{batch}' at 'maxBatchSize' failed to satisfy constraint: "
                    f"Member must have value less than or equal to {MAX_BATCH_SIZE}"
                ]
            )
        key = _action_type_key(action_type)
        if key not in self._action_types:
            raise ApiError("ActionTypeNotFoundException", f"Action type {'/'.join(key)} not found")
        query = params.get("queryParam") or {}
        jobs: list[dict[str, Any]] = []
        for job in list(self._open.values()):
            if len(jobs) >= batch:
                break
            run = self._runs[job.action_execution_id]
            if _action_type_key(run.action_type) != key:
                continue
            if any(run.configuration.get(k) != v for k, v in query.items()):
                continue
            dispatched_at = job.dispatched_at if job.status == "Dispatched" else None
            if dispatched_at is not None and now - dispatched_at < self.redelivery_timeout_seconds:
                continue  # handed out and not yet given up on
            if job.nonce is None or self.nonce_on_redelivery == "new":
                job.nonce = str(len(job.nonces) + 1)
                job.nonces.append(job.nonce)
            job.status = "Dispatched"
            job.dispatched_at = now
            job.handouts += 1
            jobs.append(
                {
                    "id": job.id,
                    "data": self._render(job),
                    "nonce": job.nonce,
                    "accountId": self.account_id,
                }
            )
        return {"jobs": jobs}

    def _acknowledge_job(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        job = self._job_or_404(params["jobId"])
        # A finished job answers InvalidNonce too: it is the only modeled refusal of this call.
        if job.status in FINISHED_JOB_STATES or job.nonce is None or params["nonce"] != job.nonce:
            raise ApiError("InvalidNonceException", "The nonce was specified in an invalid format")
        if job.status == "Dispatched":
            job.status = "InProgress"
            job.acknowledged_at = now
            self._open.pop(job.id, None)
        job.acknowledgements += 1
        return {"status": "InProgress"}

    def _get_job_details(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        job = self._job_or_404(params["jobId"])
        return {
            "jobDetails": {"id": job.id, "data": self._render(job), "accountId": self.account_id}
        }

    def _result_target(self, job_id: str) -> tuple[Job, ActionRun]:
        job = self._job_or_404(job_id)
        if job.status != "InProgress":
            raise ApiError(
                "InvalidJobStateException", f"Job {job_id} is in state {job.status}, not InProgress"
            )
        return job, self._runs[job.action_execution_id]

    def _put_job_success_result(
        self, params: dict[str, Any], now: float, events: list[tuple[str, ActionRun]]
    ) -> dict[str, Any]:
        token = params.get("continuationToken")
        variables = params.get("outputVariables")
        if token is not None and variables is not None:
            raise ApiError(
                "ValidationException",
                "outputVariables can only be specified when continuationToken is not provided",
            )
        if variables is not None:
            size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
            if size > OUTPUT_VARIABLES_MAX_BYTES:
                raise ApiError(
                    "OutputVariablesSizeExceededException",
                    f"Output variables exceed {OUTPUT_VARIABLES_MAX_BYTES} bytes",
                )
        job, run = self._result_target(params["jobId"])
        result = JobResult(
            job_id=job.id,
            kind="success",
            at=now,
            execution_details=params.get("executionDetails"),
            continuation_token=token,
            output_variables=variables,
            current_revision=params.get("currentRevision"),
        )
        job.status, job.finished_at, job.result = "Succeeded", now, result
        run.results.append(result)
        if token is not None:
            self._new_job(run, continuation_token=token, now=now)
        else:
            self._finish_run(run, "Succeeded", now, events)
        return {}

    def _put_job_failure_result(
        self, params: dict[str, Any], now: float, events: list[tuple[str, ActionRun]]
    ) -> dict[str, Any]:
        job, run = self._result_target(params["jobId"])
        result = JobResult(
            job_id=job.id, kind="failure", at=now, failure_details=params["failureDetails"]
        )
        job.status, job.finished_at, job.result = "Failed", now, result
        run.results.append(result)
        self._finish_run(run, "Failed", now, events)
        return {}

    def _execute(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one API operation against the state; raises ApiError for AWS errors."""
        events: list[tuple[str, ActionRun]] = []
        with self._lock:
            forced = self._forced.get(operation)
            if forced:
                raise forced.popleft()
            if self.throttle_rate and self._rng.random() < self.throttle_rate:
                raise ApiError("ThrottlingException", "Rate exceeded")
        # Validation needs no state: keep it outside the lock.
        validate_input(operation, params)
        failure: ApiError | None = None
        response: dict[str, Any] = {}
        with self._lock:
            now = self._clock()
            self._sweep(events)
            try:
                if operation == "PollForJobs":
                    response = self._poll_for_jobs(params, now)
                elif operation == "AcknowledgeJob":
                    response = self._acknowledge_job(params, now)
                elif operation == "GetJobDetails":
                    response = self._get_job_details(params, now)
                elif operation == "PutJobSuccessResult":
                    response = self._put_job_success_result(params, now, events)
                else:
                    response = self._put_job_failure_result(params, now, events)
            except ApiError as error:
                failure = error
            self._changed.notify_all()
        self._fire(events)
        if failure is not None:
            raise failure
        return response

    def _sleep_latency(self) -> None:
        latency = self.latency_seconds
        if isinstance(latency, tuple):
            with self._lock:
                latency = self._rng.uniform(*latency)
        if latency > 0:
            time.sleep(latency)

    def _check_signature(self, authorization: str | None) -> None:
        if not self.require_signature:
            return
        if not authorization or not authorization.startswith("AWS4-HMAC-SHA256 "):
            raise ApiError(
                "MissingAuthenticationTokenException", "Missing Authentication Token", 403
            )
        scope = re.search(r"Credential=[^/,]+/\d{8}/([^/]+)/([^/]+)/aws4_request", authorization)
        if scope is None:
            raise ApiError("InvalidSignatureException", "Malformed credential scope", 403)
        region, service = scope.groups()
        if service != "codepipeline" or region != self.region:
            raise ApiError(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region and service, not "
                f"'{region}/{service}'",
                403,
            )

    def serve(
        self, protocol: str, operation: str, body: bytes, authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one HTTP request (already split by protocol) and record it as a call."""
        request_id = str(uuid.uuid4())
        started = self._clock()
        params: dict[str, Any] = {}
        response: dict[str, Any] | None = None
        error: ApiError | None = None
        self._sleep_latency()
        try:
            self._check_signature(authorization)
            if operation not in OPERATIONS:
                raise ApiError(
                    "UnknownOperationException",
                    f"Operation {operation!r} is not emulated",
                    404 if protocol == "cbor" else 400,
                )
            params = _decode(protocol, body)
            response = self._execute(operation, params)
        except ApiError as caught:
            error = caught
        except Exception as caught:  # a bug here must reach the client as a 500
            error = ApiError("InternalFailure", f"{type(caught).__name__}: {caught}", 500)
        with self._lock:
            self._calls.append(
                CallRecord(
                    seq=len(self._calls) + 1,
                    operation=operation,
                    protocol=protocol,
                    params=copy.deepcopy(params),
                    response=copy.deepcopy(response),
                    error_code=error.code if error else None,
                    error_message=error.message if error else None,
                    status=error.status if error else 200,
                    started=started,
                    finished=self._clock(),
                    request_id=request_id,
                )
            )
        out_headers = {"x-amzn-RequestId": request_id}
        if error is not None:
            return (
                error.status,
                out_headers | _content_type(protocol),
                _encode_error(protocol, error),
            )
        if response is None or _service_model().operation_model(operation).output_shape is None:
            # Operations without output answer with an empty body (Smithy: no Content-Type).
            extra = (
                {"smithy-protocol": "rpc-v2-cbor"}
                if protocol == "cbor"
                else _content_type(protocol)
            )
            return 200, out_headers | extra, b""
        return 200, out_headers | _content_type(protocol), _encode(protocol, response)


# --------------------------------------------------------------------------- wire formats


def _content_type(protocol: str) -> dict[str, str]:
    if protocol == "cbor":
        return {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    return {"Content-Type": "application/x-amz-json-1.1"}


def _decode(protocol: str, body: bytes) -> dict[str, Any]:
    try:
        if protocol == "cbor":
            params = cbor2.loads(body) if body else {}
        else:
            params = json.loads(body) if body else {}
    except Exception as error:  # any decoder failure is the client's fault
        raise ApiError("SerializationException", f"Malformed request body: {error}") from error
    if not isinstance(params, dict):
        raise ApiError("SerializationException", "Request body must be an object")
    return params


def _encode(protocol: str, payload: Mapping[str, Any]) -> bytes:
    if protocol == "cbor":
        return bytes(cbor2.dumps(payload))
    return json.dumps(payload).encode()


def _encode_error(protocol: str, error: ApiError) -> bytes:
    if protocol == "cbor":
        namespace = CORAL_NAMESPACES.get(error.code, MODEL_NAMESPACE)
        return _encode(protocol, {"__type": f"{namespace}#{error.code}", "message": error.message})
    return _encode(protocol, {"__type": error.code, "message": error.message})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    emulator: CodePipelineEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms a call.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        if path.startswith(CBOR_PATH_PREFIX):
            protocol, operation = "cbor", path[len(CBOR_PATH_PREFIX) :]
        elif path == "/":
            protocol = "json"
            target = self.headers.get("X-Amz-Target") or ""
            prefix, _, operation = target.partition(".")
            if prefix != TARGET_PREFIX:
                operation = target or "<missing X-Amz-Target>"
        else:
            self._reply(404, {"Content-Type": "application/json"}, b'{"message": "Not Found"}')
            return
        status, headers, payload = self.server.emulator.serve(
            protocol, operation, body, self.headers.get("Authorization")
        )
        self._reply(status, headers, payload)

    def do_GET(self) -> None:
        self._reply(405, {"Content-Type": "application/json"}, b'{"message": "Use POST"}')

    def _reply(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Keep test output quiet: the call log is ``CodePipelineEmulator.calls()``."""


def main(argv: Iterable[str] | None = None) -> None:
    """Serve until interrupted: ``python -m local.codepipeline_emulator --port 4599``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redelivery-timeout", type=float, default=30.0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    with CodePipelineEmulator(
        port=args.port, redelivery_timeout_seconds=args.redelivery_timeout
    ) as emulator:
        print(f"AWS_ENDPOINT_URL_CODEPIPELINE={emulator.endpoint_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
