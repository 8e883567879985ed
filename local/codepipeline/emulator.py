"""The CodePipeline emulator's facade: settings, one lock, the HTTP endpoint and the admin API.

Serves PollForJobs, AcknowledgeJob, GetJobDetails, PutJobSuccessResult, PutJobFailureResult,
StopPipelineExecution and ListActionExecutions to an *unmodified* boto3 ``codepipeline`` client
(``endpoint_url=`` or ``AWS_ENDPOINT_URL_CODEPIPELINE``), validating every request against the
installed botocore model. Tests and local runs drive the pipeline side with the admin methods
(``create_job``, ``stop_pipeline_execution``, ``delete_pipeline``, ...) and hear about action
state changes through listeners. Behaviour and sources: ``jobs.py``, ``executions.py``,
``events.py``, ``artifacts.py``, ``wire.py``; the ``# assumed:`` choices there that a worker
or a test can tell apart have a switch here (``_SWITCHES`` and the boolean options).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args

from . import artifacts, executions
from .artifacts import StoredArtifact
from .events import Broadcaster
from .executions import CanceledListStatus, ListOrder, SecretMode
from .harness import Harness
from .jobs import (
    AbandonedResultMode,
    AcknowledgeFinishedMode,
    JobStore,
    ReacknowledgeMode,
    action_type_key,
    new_run,
)
from .model import shape_violations, validate_input
from .records import ActionTypeEntry, NonceMode
from .service import ApiFront
from .timing import ClockSource, Timing
from .wire import Server, make_server

# Every "assumed" behaviour's switch and its choices (the first is the default).
_SWITCHES: dict[str, tuple[str, ...]] = {
    "nonce_on_redelivery": get_args(NonceMode),
    "acknowledge_finished": get_args(AcknowledgeFinishedMode),
    "same_nonce_reacknowledge": get_args(ReacknowledgeMode),
    "result_on_abandoned": get_args(AbandonedResultMode),
    "list_order": get_args(ListOrder),
    "list_secret_configuration": get_args(SecretMode),
    "canceled_list_status": get_args(CanceledListStatus),
}


def _one_of(name: str, value: str, allowed: Iterable[str]) -> None:
    if value not in tuple(allowed):
        raise ValueError(f"{name} must be one of {tuple(allowed)}, not {value!r}")


class CodePipelineEmulator(Harness):
    """In-memory CodePipeline behind a local HTTP endpoint (see the module docstring).

    All state sits behind one lock, so concurrent callers see the atomic transitions AWS gives
    them; accessors return deep copies. Every option is also a plain attribute that may be
    changed while the server runs. Durations are in seconds of ``clock``: ``time.monotonic``,
    a ``local.clock.VirtualClock`` or its bound ``monotonic`` (see ``timing.py``).

    Timing: ``redelivery_timeout_seconds`` (an unacknowledged job is handed out again after it),
    ``action_timeout_seconds`` (None: runs never time out), ``pollable_delay_seconds`` (STARTED
    event -> job pollable), ``continuation_pollable_delay_seconds`` (None: the same),
    ``latency_seconds`` (per call; a (low, high) tuple draws uniformly).
    Switches for what AWS leaves undocumented (first value is the default):
    ``nonce_on_redelivery`` new|same; ``acknowledge_finished`` InvalidNonceException|status;
    ``same_nonce_reacknowledge`` accept|refuse; ``result_on_abandoned``
    InvalidJobStateException|JobNotFoundException; ``list_order`` newest_first|oldest_first;
    ``list_secret_configuration`` mask|include; ``canceled_list_status`` Abandoned|Failed;
    ``executions_end_with_their_runs`` True|False (False: stoppable until stopped).
    Events: ``event_version_as_number`` (False: ``type.version`` a string, as real events).
    Faults: ``throttle_rate`` (share of calls throttled), ``seed``, ``require_signature``.
    Artifacts: ``artifact_bucket``, ``default_encryption_key_id`` (None: no encryptionKey).
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
        pollable_delay_seconds: float = 0.0,
        continuation_pollable_delay_seconds: float | None = None,
        acknowledge_finished: AcknowledgeFinishedMode = "InvalidNonceException",
        same_nonce_reacknowledge: ReacknowledgeMode = "accept",
        result_on_abandoned: AbandonedResultMode = "InvalidJobStateException",
        list_order: ListOrder = "newest_first",
        list_secret_configuration: SecretMode = "mask",  # noqa: S107 - a mode, not a secret
        canceled_list_status: CanceledListStatus = "Abandoned",
        executions_end_with_their_runs: bool = True,
        event_version_as_number: bool = False,
        throttle_rate: float = 0.0,
        latency_seconds: float | tuple[float, float] = 0.0,
        seed: int | None = None,
        require_signature: bool = True,
        artifact_bucket: str = "codepipeline-us-east-1-000000000000",
        default_encryption_key_id: str | None = None,
        clock: ClockSource = time.monotonic,
    ) -> None:
        self.host, self.port = host, port
        self.region, self.account_id = region, account_id
        self.redelivery_timeout_seconds = redelivery_timeout_seconds
        self.nonce_on_redelivery: NonceMode = nonce_on_redelivery
        self.action_timeout_seconds = action_timeout_seconds
        self.pollable_delay_seconds = pollable_delay_seconds
        self.continuation_pollable_delay_seconds = continuation_pollable_delay_seconds
        self.acknowledge_finished: AcknowledgeFinishedMode = acknowledge_finished
        self.same_nonce_reacknowledge: ReacknowledgeMode = same_nonce_reacknowledge
        self.result_on_abandoned: AbandonedResultMode = result_on_abandoned
        self.list_order: ListOrder = list_order
        self.list_secret_configuration: SecretMode = list_secret_configuration
        self.canceled_list_status: CanceledListStatus = canceled_list_status
        self.executions_end_with_their_runs = executions_end_with_their_runs
        self.event_version_as_number = event_version_as_number
        self.throttle_rate = throttle_rate
        self.latency_seconds = latency_seconds
        self.require_signature = require_signature
        self.artifact_bucket = artifact_bucket
        self.default_encryption_key_id = default_encryption_key_id
        for name, allowed in _SWITCHES.items():
            _one_of(name, getattr(self, name), allowed)
        self.timing = Timing(clock)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._store = JobStore(self)
        self._broadcaster = Broadcaster(
            self._lock, self, self.timing, lambda run: executions.execution_url(self._store, run)
        )
        self.listener_errors = self._broadcaster.errors  # the same list: read it any time
        self._front = ApiFront(
            self, self._store, self._lock, self._changed, self.timing, self._broadcaster.fire, seed
        )
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------- lifecycle

    def start(self) -> CodePipelineEmulator:
        """Bind (port 0 = any free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = make_server(self.host, self.port, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
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

    # ----------------------------------------------------------------------- admin: pipeline side

    def register_action_type(
        self,
        action_type: Mapping[str, str],
        *,
        secret_keys: Iterable[str] = (),
        execution_url_template: str | None = None,
    ) -> None:
        """Make a custom action type exist, or restore a deleted one (CustomActionType).

        ``secret_keys`` are its Secret configuration properties (masked in ListActionExecutions);
        ``execution_url_template`` its ExecutionUrlTemplate (``externalExecutionUrl`` there).
        """
        key = self._checked_type(action_type)
        with self._lock:
            self._store.action_types[key] = ActionTypeEntry(
                key, frozenset(secret_keys), execution_url_template
            )

    def delete_action_type(self, action_type: Mapping[str, str]) -> None:
        """DeleteCustomActionType: PollForJobs for it answers ActionTypeNotFoundException."""
        key = self._checked_type(action_type)
        with self._lock:
            self._store.action_types[key].deleted = True

    def _checked_type(self, action_type: Mapping[str, str]) -> tuple[str, str, str, str]:
        full = {"owner": "Custom", **dict(action_type)}
        errors = shape_violations("JobData", {"actionTypeId": full})
        if errors:
            raise ValueError("; ".join(errors))
        return action_type_key(full)

    def create_pipeline(self, name: str) -> str:
        """Make a pipeline exist without running it (``create_job`` does it too); its ARN."""
        with self._lock:
            return self._store.pipeline(name).arn

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
        output_artifact_name: str | Sequence[str] | None = None,
        encryption_key_id: str | None = None,
        pipeline_execution_id: str | None = None,
        continuation_token: str | None = None,
    ) -> str:
        """Start a new action run (CodePipeline reached the action) and return its first job id.

        Listeners hear ``STARTED`` now; PollForJobs hands the job out after
        ``pollable_delay_seconds``. ``pipeline_execution_id`` joins an existing execution (a
        second action, or a retry of a stopped one). ``continuation_token`` makes the first job
        a continuation job, for bad-input tests. ``input_artifact_name=None``: no input artifact;
        ``encryption_key_id`` (default ``default_encryption_key_id``) gives ``encryptionKey``.
        """
        action_type = {"owner": "Custom", **dict(action_type)}
        if action_type["owner"] != "Custom":
            raise ValueError("only Custom action types have jobs for workers")
        key = self._checked_type(action_type)
        run = new_run(
            self.artifact_bucket,
            self.region,
            self.account_id,
            action_type,
            configuration,
            pipeline_name=pipeline_name,
            stage_name=stage_name,
            action_name=action_name,
            input_artifact=input_artifact_name,
            input_revision=input_revision,
            outputs=(
                [output_artifact_name]
                if isinstance(output_artifact_name, str)
                else list(output_artifact_name or [])
            ),
            encryption_key_id=encryption_key_id or self.default_encryption_key_id,
            pipeline_execution_id=pipeline_execution_id,
            now=self.timing.now(),
        )
        # The job data must be something AWS could send: same model limits as requests.
        data = self._store.job_data(run, None, artifacts.fake_credentials())
        errors = shape_violations("JobData", data)
        if errors:
            raise ValueError("; ".join(errors))
        with self._lock:
            entry = self._store.action_types.setdefault(key, ActionTypeEntry(key))
            if entry.deleted:
                raise ValueError(f"action type {'/'.join(key)} is deleted")
            job_id = self._store.add_run(run, continuation_token)
        self._settle()
        return job_id

    def stop_pipeline_execution(
        self,
        pipeline_name: str,
        pipeline_execution_id: str,
        *,
        abandon: bool = False,
        reason: str | None = None,
    ) -> str:
        """StopPipelineExecution as a user would call it; ApiError as the API answers."""
        params: dict[str, Any] = {
            "pipelineName": pipeline_name,
            "pipelineExecutionId": pipeline_execution_id,
            "abandon": abandon,
        }
        if reason is not None:
            params["reason"] = reason
        validate_input("StopPipelineExecution", params)
        answer = self._change(
            lambda now: executions.stop_pipeline_execution(self._store, params, now, self)
        )
        return str(answer["pipelineExecutionId"])

    def update_pipeline(self, pipeline_name: str) -> list[str]:
        """UpdatePipeline: version + 1, running actions CANCELED; the canceled run ids."""
        canceled = self._change(
            lambda now: executions.update_pipeline(self._store, pipeline_name, now)
        )
        return list(canceled)

    def cancel_action_run(self, action_execution_id: str) -> None:
        """Cancel one running action (what a pipeline update does to it): a CANCELED event."""

        def cancel(now: float) -> None:
            run = self._store.runs[action_execution_id]
            if run.finished:
                raise ValueError(f"action run {action_execution_id} has finished")
            self._store.end_run(run, "Canceled", now, "CANCELED")

        self._change(cancel)

    def delete_pipeline(self, pipeline_name: str, *, emit_canceled: bool = False) -> None:
        """DeletePipeline: its jobs vanish (JobNotFoundException on every job call).

        ``emit_canceled`` sends CANCELED for its running actions (assumed: no event by default).
        """
        event = "CANCELED" if emit_canceled else None
        self._change(lambda now: executions.delete_pipeline(self._store, pipeline_name, now, event))

    def time_out(self, action_execution_id: str) -> None:
        """Time an action run out now (as ``action_timeout_seconds`` would): its jobs TimedOut."""
        self._change(lambda now: self._store.time_out(self._store.runs[action_execution_id], now))

    # ----------------------------------------------------------------------- admin: artifacts

    def create_artifact_bucket(self) -> str:
        """Create ``artifact_bucket`` in the active moto world (inside ``mock_aws()``)."""
        artifacts.create_bucket(self.artifact_bucket, self.region)
        return self.artifact_bucket

    def _artifact(
        self, job_or_run_id: str, name: str | None, output: bool
    ) -> tuple[dict[str, Any], str | None]:
        """The one (or the named) artifact of a run, and the run's KMS key id."""
        with self._lock:
            job = self._store.jobs.get(job_or_run_id)
            run = self._store.runs[job.action_execution_id if job else job_or_run_id]
            found = run.output_artifacts if output else run.input_artifacts
            matching = [a for a in found if name is None or a["name"] == name]
            if len(matching) != 1:
                raise KeyError(f"no single artifact {name!r} in {[a['name'] for a in found]}")
            key_id = run.encryption_key["id"] if run.encryption_key else None
            return copy.deepcopy(matching[0]), key_id

    def read_output_artifact(self, job_or_run_id: str, name: str | None = None) -> StoredArtifact:
        """What a worker wrote to an output artifact location (job or run id), via moto's S3."""
        entry, _ = self._artifact(job_or_run_id, name, output=True)
        return artifacts.read(entry, self.region)

    def put_input_artifact(self, job_or_run_id: str, body: bytes, name: str | None = None) -> None:
        """Write an input artifact where its job data points (SSE-KMS, as CodePipeline does)."""
        entry, key_id = self._artifact(job_or_run_id, name, output=False)
        artifacts.write(entry, body, self.region, key_id)

    def serve(
        self, protocol: str, operation: str, body: bytes, authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one HTTP request (already split by protocol) and record it as a call."""
        return self._front.serve(protocol, operation, body, authorization)
