"""The job state machine behind PollForJobs, AcknowledgeJob, GetJobDetails and PutJob*Result.

Sources, in one line each where the behaviour is implemented: the botocore model (shapes, error
lists, operation docs), the CodePipeline user guide and API reference, and the project's
reference page (/work/shared/reference/codepipeline-jobs.md, "reference" below). Where they are
silent the code says ``# assumed:`` and the alternative is a switch in ``Settings``.

A job goes Queued -> Dispatched (handed out) -> InProgress (acknowledged) -> Succeeded | Failed;
any unfinished job can become TimedOut (action timeout) or Abandoned (stop and abandon, or the
action canceled by a pipeline update). All methods expect the caller (the facade) to hold its
lock; changes that listeners hear about go to ``outbox``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .artifacts import artifact, fake_credentials
from .model import ApiError, raise_if_invalid
from .records import (
    FINISHED_JOB_STATES,
    ActionRun,
    ActionTypeEntry,
    Job,
    JobResult,
    NonceMode,
    Pipeline,
    PipelineExecution,
)

MAX_BATCH_SIZE = 100
OUTPUT_VARIABLES_MAX_BYTES = 122_880

AcknowledgeFinishedMode = Literal["InvalidNonceException", "status"]
ReacknowledgeMode = Literal["accept", "refuse"]
AbandonedResultMode = Literal["InvalidJobStateException", "JobNotFoundException"]
ActionTypeKey = tuple[str, str, str, str]


class Settings(Protocol):
    """The facade's live switches (tests change some while the server runs)."""

    region: str
    account_id: str
    redelivery_timeout_seconds: float
    nonce_on_redelivery: NonceMode
    action_timeout_seconds: float | None
    pollable_delay_seconds: float
    continuation_pollable_delay_seconds: float | None
    acknowledge_finished: AcknowledgeFinishedMode
    same_nonce_reacknowledge: ReacknowledgeMode
    result_on_abandoned: AbandonedResultMode


@dataclass
class Emission:
    """An action state change for listeners: the state, a snapshot of the run, when."""

    state: str
    run: ActionRun
    at: float


def action_type_key(action_type: Mapping[str, Any]) -> ActionTypeKey:
    return (
        str(action_type["category"]),
        str(action_type["owner"]),
        str(action_type["provider"]),
        str(action_type["version"]),
    )


def new_run(
    bucket: str,
    region: str,
    account_id: str,
    action_type: dict[str, str],
    configuration: Mapping[str, str],
    *,
    pipeline_name: str,
    stage_name: str,
    action_name: str,
    input_artifact: str | None,
    input_revision: str | None,
    outputs: list[str],
    encryption_key_id: str | None,
    pipeline_execution_id: str | None,
    now: float,
) -> ActionRun:
    """A new action run: ids (UUIDs, like AWS's), artifact locations, the encryption key."""
    return ActionRun(
        action_execution_id=str(uuid.uuid4()),
        pipeline_execution_id=pipeline_execution_id or str(uuid.uuid4()),
        action_type=action_type,
        configuration=dict(configuration),
        pipeline_name=pipeline_name,
        stage_name=stage_name,
        action_name=action_name,
        # user guide, event samples: arn:aws:codepipeline:REGION:ACCOUNT:PIPELINE
        pipeline_arn=f"arn:aws:codepipeline:{region}:{account_id}:{pipeline_name}",
        input_artifacts=(
            [artifact(bucket, pipeline_name, input_artifact, input_revision)]
            if input_artifact
            else []
        ),
        output_artifacts=[artifact(bucket, pipeline_name, name) for name in outputs],
        # model, EncryptionKey: type "KMS"; absent means the default key (reference)
        encryption_key={"id": encryption_key_id, "type": "KMS"} if encryption_key_id else None,
        started_at=now,
    )


def _invalid_nonce() -> ApiError:
    return ApiError("InvalidNonceException", "The nonce was specified in an invalid format")


class JobStore:
    """Pipelines, executions, action runs and jobs, and the five job-worker operations."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs: dict[str, Job] = {}
        self.runs: dict[str, ActionRun] = {}
        self.open: dict[str, Job] = {}  # Queued or Dispatched jobs, oldest first
        self.action_types: dict[ActionTypeKey, ActionTypeEntry] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.executions: dict[str, PipelineExecution] = {}
        self.outbox: list[Emission] = []

    # ----------------------------------------------------------------------- bookkeeping

    def emit(self, state: str, run: ActionRun, now: float) -> None:
        self.outbox.append(Emission(state, copy.deepcopy(run), now))

    def drain(self) -> list[Emission]:
        out, self.outbox = self.outbox, []
        return out

    def pipeline(self, name: str) -> Pipeline:
        found = self.pipelines.get(name)
        if found is None:
            arn = f"arn:aws:codepipeline:{self.settings.region}:{self.settings.account_id}:{name}"
            found = self.pipelines[name] = Pipeline(name=name, arn=arn)
        return found

    def runs_of(self, execution_id: str) -> list[ActionRun]:
        return [r for r in self.runs.values() if r.pipeline_execution_id == execution_id]

    def add_run(self, run: ActionRun, continuation_token: str | None) -> str:
        """A new action run (CodePipeline reached the action): its first job, a STARTED event."""
        execution = self.executions.get(run.pipeline_execution_id)
        if execution is not None and execution.pipeline_name != run.pipeline_name:
            raise ValueError(f"execution {execution.id} belongs to {execution.pipeline_name}")
        if execution is not None and execution.status == "Stopping":
            # user guide, pipelines-stop: stopping completes in-progress actions "without
            # starting subsequent actions"
            raise ValueError(f"execution {execution.id} is stopping: no new action starts")
        if execution is None:
            execution = PipelineExecution(
                id=run.pipeline_execution_id, pipeline_name=run.pipeline_name
            )
            self.executions[execution.id] = execution
        elif execution.status in ("Stopped", "Cancelled"):
            # user guide, pipelines-stop: "For a pipeline execution in a Stopped state, the
            # actions in the stage where the execution stopped can be retried" (same execution)
            execution.status, execution.stop_mode, execution.stop_reason = "InProgress", None, None
        pipeline = self.pipeline(run.pipeline_name)
        run.pipeline_arn = pipeline.arn
        run.pipeline_version = pipeline.version
        run.seq = len(self.runs) + 1
        run.last_update_at = run.started_at
        self.runs[run.action_execution_id] = run
        job_id = self.new_job(run, continuation_token, run.started_at, first=True)
        self.emit("STARTED", run, run.started_at)
        return job_id

    def new_job(self, run: ActionRun, token: str | None, now: float, *, first: bool) -> str:
        # reference, EventBridge: "the job may not be pollable the same instant" as its STARTED
        # event; AWS's third-party-source sample waits 5 s, then polls up to 10 x 5 s.
        delay = self.settings.pollable_delay_seconds
        if not first and self.settings.continuation_pollable_delay_seconds is not None:
            # assumed: continuation jobs go through the same queue (same delay); the switch
            # continuation_pollable_delay_seconds gives them their own.
            delay = self.settings.continuation_pollable_delay_seconds
        job = Job(
            id=str(uuid.uuid4()),
            action_execution_id=run.action_execution_id,
            created_at=now,
            continuation_token=token,
            pollable_at=now + delay,
        )
        self.jobs[job.id] = job
        self.open[job.id] = job
        run.job_ids.append(job.id)
        run.last_update_at = now
        return job.id

    def job_data(
        self, run: ActionRun, job: Job | None, credentials: dict[str, str]
    ) -> dict[str, Any]:
        """JobData as AWS sends it (botocore model: JobData; secrets included, reference)."""
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

    def render(self, job: Job) -> dict[str, Any]:
        # model, PollForJobs and GetJobDetails docs: both return temporary credentials for the
        # artifact bucket; fresh ones each time (reference: re-read them for long work).
        credentials = fake_credentials()
        job.issued_credentials.append(dict(credentials))
        return self.job_data(self.runs[job.action_execution_id], job, credentials)

    def job_or_404(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        abandoned_gone = (
            job is not None
            and job.status == "Abandoned"
            and self.settings.result_on_abandoned == "JobNotFoundException"
        )
        if job is None or job.gone or abandoned_gone:
            raise ApiError("JobNotFoundException", f"Job with id {job_id} was not found")
        return job

    # ----------------------------------------------------------------------- run endings

    def finish_run(self, run: ActionRun, status: str, now: float) -> None:
        run.status, run.finished_at, run.last_update_at = status, now, now
        self.emit("SUCCEEDED" if status == "Succeeded" else "FAILED", run, now)
        self.settle_execution(run.pipeline_execution_id)

    def settle_execution(self, execution_id: str) -> None:
        execution = self.executions.get(execution_id)
        if execution is None or execution.status != "Stopping":
            return
        if all(r.finished for r in self.runs_of(execution_id)):
            # user guide, pipelines-stop: stop and wait is Stopping until the in-progress
            # actions complete, then Stopped
            execution.status = "Stopped"

    def end_run(self, run: ActionRun, status: str, now: float, event: str | None) -> None:
        """Abandon, cancel or delete a run: its unfinished jobs end with it."""
        for job_id in run.job_ids:
            job = self.jobs[job_id]
            if job.status not in FINISHED_JOB_STATES:
                job.status, job.finished_at = "Abandoned", now
                self.open.pop(job.id, None)
            if status == "Deleted":
                # reference: result calls "can also fail with JobNotFoundException (the job is
                # gone, e.g. pipeline deleted)"
                job.gone = True
                self.open.pop(job.id, None)
        run.status, run.finished_at, run.last_update_at = status, now, now
        if event is not None:
            self.emit(event, run, now)

    def time_out(self, run: ActionRun, now: float) -> None:
        for job_id in run.job_ids:
            job = self.jobs[job_id]
            if job.status not in FINISHED_JOB_STATES:
                job.status, job.finished_at = "TimedOut", now
                self.open.pop(job.id, None)
        run.timed_out = True
        self.finish_run(run, "Failed", now)

    def sweep(self, now: float) -> bool:
        """Time out runs past ``action_timeout_seconds`` (checked lazily on access)."""
        # assumed: no timeout unless set (reference, Timeouts: 24 h for custom actions in the
        # 2022 user guide, not clearly listed any more)
        limit = self.settings.action_timeout_seconds
        if limit is None:
            return False
        expired = [r for r in self.runs.values() if not r.finished and now - r.started_at >= limit]
        for run in expired:
            self.time_out(run, now)
        return bool(expired)

    # ----------------------------------------------------------------------- operations

    def poll_for_jobs(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        action_type = params["actionTypeId"]
        if action_type["owner"] != "Custom":
            # model, PollForJobs: "valid only for action types with "Custom" in the owner field"
            raise ApiError(
                "ValidationException", "PollForJobs is only valid for action types owned by Custom"
            )
        batch = params.get("maxBatchSize", 1)  # assumed: omitted means 1
        if batch > MAX_BATCH_SIZE:  # the model only says min 1; assumed: AWS caps it at 100
            raise_if_invalid(
                [
                    f"Value '{batch}' at 'maxBatchSize' failed to satisfy constraint: "
                    f"Member must have value less than or equal to {MAX_BATCH_SIZE}"
                ]
            )
        key = action_type_key(action_type)
        entry = self.action_types.get(key)
        if entry is None or entry.deleted:
            # model, DeleteCustomActionType: "PollForJobs for the custom action fails after the
            # action is marked for deletion"; ActionTypeNotFoundException is PollForJobs' error
            raise ApiError("ActionTypeNotFoundException", f"Action type {'/'.join(key)} not found")
        query = params.get("queryParam") or {}
        jobs: list[dict[str, Any]] = []
        for job in list(self.open.values()):
            if len(jobs) >= batch:
                break
            run = self.runs[job.action_execution_id]
            if action_type_key(run.action_type) != key or now < job.pollable_at:
                continue
            # model, PollForJobsInput.queryParam: "Only jobs whose action configuration matches
            # the mapped value are returned"
            if any(run.configuration.get(k) != v for k, v in query.items()):
                continue
            dispatched_at = job.dispatched_at if job.status == "Dispatched" else None
            if (
                dispatched_at is not None
                and now - dispatched_at < self.settings.redelivery_timeout_seconds
            ):
                continue  # reference: handed out, not acknowledged -> handed out again later
            # assumed: a re-hand-out gets a new nonce (switch nonce_on_redelivery="same");
            # nonces are short numeric strings like the API reference's examples ("3")
            if job.nonce is None or self.settings.nonce_on_redelivery == "new":
                job.nonce = str(len(job.nonces) + 1)
                job.nonces.append(job.nonce)
            job.status, job.dispatched_at = "Dispatched", now
            job.handouts += 1
            jobs.append(
                {
                    "id": job.id,
                    "data": self.render(job),
                    "nonce": job.nonce,
                    "accountId": self.settings.account_id,
                }
            )
        return {"jobs": jobs}

    def acknowledge_job(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        job = self.job_or_404(params["jobId"])
        if job.forced_acknowledge:  # scripted by force_acknowledge_status: state unchanged
            return {"status": job.forced_acknowledge.pop(0)}
        nonce = params["nonce"]
        if job.nonce is None or nonce != job.nonce:
            # reference: another worker's claim makes yours fail with InvalidNonceException
            raise _invalid_nonce()
        if job.status in FINISHED_JOB_STATES:
            # assumed: a finished job answers InvalidNonceException, the only modeled refusal
            # of this call; switch acknowledge_finished="status" answers its JobStatus instead
            # (TimedOut, Succeeded, Failed; an abandoned job, which has no such status: Failed)
            if self.settings.acknowledge_finished == "status":
                return {"status": "Failed" if job.status == "Abandoned" else job.status}
            raise _invalid_nonce()
        if job.status == "InProgress":
            # assumed (reference): a second acknowledge with the same nonce is accepted, as
            # every SDK retries the call; switch same_nonce_reacknowledge="refuse"
            if self.settings.same_nonce_reacknowledge == "refuse":
                raise _invalid_nonce()
        else:
            job.status, job.acknowledged_at = "InProgress", now
            self.open.pop(job.id, None)
        job.acknowledgements += 1
        # model, AcknowledgeJobOutput.status: "Whether the job worker has received the job"
        return {"status": "InProgress"}

    def get_job_details(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        job = self.job_or_404(params["jobId"])
        data = self.render(job)
        return {"jobDetails": {"id": job.id, "data": data, "accountId": self.settings.account_id}}

    def _result_target(self, job_id: str) -> tuple[Job, ActionRun]:
        job = self.job_or_404(job_id)
        if job.status != "InProgress":
            # reference: a second result on a finished job fails with InvalidJobStateException;
            # assumed (reference: "presumably"): also for abandoned and timed-out jobs (switch
            # result_on_abandoned="JobNotFoundException" makes abandoned jobs vanish instead)
            raise ApiError(
                "InvalidJobStateException", f"Job {job_id} is in state {job.status}, not InProgress"
            )
        return job, self.runs[job.action_execution_id]

    def put_job_success_result(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        token = params.get("continuationToken")
        variables = params.get("outputVariables")
        if token is not None and variables is not None:
            # model, PutJobSuccessResultInput.outputVariables: only without a continuation token
            raise ApiError(
                "ValidationException",
                "outputVariables can only be specified when continuationToken is not provided",
            )
        if variables is not None:
            size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
            if size > OUTPUT_VARIABLES_MAX_BYTES:  # assumed: the limit is 122,880 bytes in all
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
        run.last_update_at = now
        if token is not None:
            # reference, Continuation tokens: the job is finished; a new job (new id, new
            # nonce) of the same action run carries the token
            self.new_job(run, token, now, first=False)
        else:
            self.finish_run(run, "Succeeded", now)
        return {}

    def put_job_failure_result(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        job, run = self._result_target(params["jobId"])
        result = JobResult(
            job_id=job.id, kind="failure", at=now, failure_details=params["failureDetails"]
        )
        job.status, job.finished_at, job.result = "Failed", now, result
        run.results.append(result)
        self.finish_run(run, "Failed", now)
        return {}
