"""Pipeline executions: StopPipelineExecution, ListActionExecutions, pipeline update and delete.

Sources: the botocore model (StopPipelineExecution, ListActionExecutions: shapes, errors, docs),
the user guide's "Stop a pipeline execution" page (pipelines-stop) and its event state tables,
and the reference page. The emulator knows no stages beyond its action runs, so:

* assumed: an execution is over (not stoppable) once all its action runs have finished (switch
  ``executions_end_with_their_runs=False``: it stays in progress, as if later stages followed,
  until stopped);
* assumed: a stop for an execution id the pipeline never ran answers
  PipelineExecutionNotStoppableException (of the call's modeled errors, the only one that fits:
  the model lists no not-found error for StopPipelineExecution).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Callable
from typing import Any, Literal, Protocol

from .artifacts import event_artifact
from .jobs import JobStore, action_type_key
from .model import ApiError
from .records import ActionRun, PipelineExecution

ListOrder = Literal["newest_first", "oldest_first"]
SecretMode = Literal["mask", "include"]
CanceledListStatus = Literal["Abandoned", "Failed"]
SECRET_MASK = "****"


class ListSettings(Protocol):
    list_order: ListOrder
    list_secret_configuration: SecretMode
    canceled_list_status: CanceledListStatus


class StopSettings(Protocol):
    executions_end_with_their_runs: bool


def is_over(store: JobStore, execution: PipelineExecution, settings: StopSettings) -> bool:
    if not settings.executions_end_with_their_runs:
        return False
    return all(r.finished for r in store.runs_of(execution.id))


def _known_pipeline(store: JobStore, name: str) -> None:
    if name not in store.pipelines:
        # model: PipelineNotFoundException, "the pipeline ... cannot be found"
        raise ApiError("PipelineNotFoundException", f"Pipeline {name} not found")


def stop_pipeline_execution(
    store: JobStore, params: dict[str, Any], now: float, settings: StopSettings
) -> dict[str, Any]:
    name, execution_id = params["pipelineName"], params["pipelineExecutionId"]
    abandon, reason = bool(params.get("abandon", False)), params.get("reason")
    _known_pipeline(store, name)
    execution = store.executions.get(execution_id)
    not_stoppable = ApiError(
        "PipelineExecutionNotStoppableException",
        f"Pipeline execution {execution_id} is not in progress and cannot be stopped",
    )
    if execution is None or execution.pipeline_name != name:
        raise not_stoppable  # assumed (module docstring)
    if execution.status == "Stopping":
        # model, DuplicatedStopRequestException: "If you already chose to stop and wait, you
        # cannot make that request again. You can choose to stop and abandon now"
        if not abandon:
            raise ApiError(
                "DuplicatedStopRequestException",
                f"Pipeline execution {execution_id} is already stopping",
            )
    elif execution.status != "InProgress" or is_over(store, execution, settings):
        # model, PipelineExecutionNotStoppableException: "might already be in a Stopped state,
        # or it might no longer be in progress" (stop and abandon ends in Stopped at once)
        raise not_stoppable
    execution.stop_reason = reason if reason is not None else execution.stop_reason
    if abandon:
        # user guide, pipelines-stop: in-progress actions change to Abandoned, the execution
        # is Stopping "for a very short time", then Stopped; reference: an action event with
        # state ABANDONED is emitted
        execution.stop_mode = "abandon"
        for run in store.runs_of(execution_id):
            if not run.finished:
                run.stop_reason = reason
                store.end_run(run, "Abandoned", now, "ABANDONED")
        execution.status = "Stopped"
    else:
        # user guide, pipelines-stop: stop and wait lets in-progress actions finish
        execution.stop_mode, execution.status = "wait", "Stopping"
        store.settle_execution(execution_id)  # nothing running: Stopped at once
    return {"pipelineExecutionId": execution_id}


def update_pipeline(store: JobStore, name: str, now: float) -> list[str]:
    """A structure update: the version goes up by one and running actions are canceled."""
    pipeline = store.pipelines[name]
    pipeline.version += 1  # model, UpdatePipeline: "increases the version number ... by 1"
    canceled = []
    for run in list(store.runs.values()):
        if run.pipeline_name == name and not run.finished:
            # user guide, action-level states: "CANCELED: The action was canceled because the
            # pipeline structure was updated"; assumed: its jobs end like abandoned ones
            store.end_run(run, "Canceled", now, "CANCELED")
            canceled.append(run.action_execution_id)
            execution = store.executions.get(run.pipeline_execution_id)
            if execution is not None:
                # user guide, pipeline-level states: "CANCELED: The pipeline execution was
                # canceled because the pipeline structure was updated" (model word: Cancelled)
                execution.status = "Cancelled"
    return canceled


def delete_pipeline(store: JobStore, name: str, now: float, event: str | None) -> None:
    """The pipeline and its jobs vanish (reference: JobNotFoundException, "the job is gone")."""
    store.pipelines.pop(name)
    for run in list(store.runs.values()):
        if run.pipeline_name == name and run.status != "Deleted":
            # assumed: no event for a deleted pipeline's running actions (switch: the
            # emit_canceled argument of delete_pipeline sends CANCELED)
            store.end_run(run, "Deleted", now, event if not run.finished else None)
    for execution_id in [e.id for e in store.executions.values() if e.pipeline_name == name]:
        del store.executions[execution_id]


# --------------------------------------------------------------------------- ListActionExecutions


def list_status(run: ActionRun, settings: ListSettings) -> str:
    """A run's status in the model's ActionExecutionStatus enum."""
    if run.status == "Canceled":
        # assumed: the enum has no Canceled; a canceled action shows as Abandoned (switch
        # canceled_list_status="Failed")
        return settings.canceled_list_status
    return run.status


def _configuration(
    run: ActionRun, secret_keys: frozenset[str], settings: ListSettings
) -> dict[str, str]:
    if settings.list_secret_configuration == "include":
        return dict(run.configuration)
    # assumed: secret property values are masked, as the console and GetPipeline show them
    # (switch list_secret_configuration="include" echoes them)
    return {k: SECRET_MASK if k in secret_keys else v for k, v in run.configuration.items()}


def execution_url(store: JobStore, run: ActionRun) -> str | None:
    """The ExecutionUrlTemplate with {Config:Name} and {ExternalExecutionId} filled in."""
    entry = store.action_types.get(action_type_key(run.action_type))
    template = entry.execution_url_template if entry else None
    details = run.execution_details
    external_id = details[-1].get("externalExecutionId") if details else None
    if template is None or external_id is None:
        return None
    # reference, Custom action type: templates may use {Config:Name} and {ExternalExecutionId}
    url = template.replace("{ExternalExecutionId}", str(external_id))
    for key, value in run.configuration.items():
        url = url.replace(f"{{Config:{key}}}", value)
    return url


def action_execution_detail(
    store: JobStore,
    run: ActionRun,
    settings: ListSettings,
    to_datetime: Callable[[float], Any],
) -> dict[str, Any]:
    """One ActionExecutionDetail (model) from an action run and its results."""
    entry = store.action_types.get(action_type_key(run.action_type))
    secret_keys = entry.secret_keys if entry else frozenset()
    configuration = _configuration(run, secret_keys, settings)
    detail: dict[str, Any] = {
        "pipelineExecutionId": run.pipeline_execution_id,
        "actionExecutionId": run.action_execution_id,
        "pipelineVersion": run.pipeline_version,
        "stageName": run.stage_name,
        "actionName": run.action_name,
        "startTime": to_datetime(run.started_at),
        "lastUpdateTime": to_datetime(run.last_update_at),
        "status": list_status(run, settings),
        "input": {
            "actionTypeId": dict(run.action_type),
            "configuration": configuration,
            "resolvedConfiguration": dict(configuration),  # no variables in emulated runs
            "region": store.settings.region,
            "inputArtifacts": [event_artifact(a) for a in run.input_artifacts],
        },
    }
    output: dict[str, Any] = {}
    if run.status == "Succeeded":
        output["outputArtifacts"] = [event_artifact(a) for a in run.output_artifacts]
        if run.output_variables:
            output["outputVariables"] = dict(run.output_variables)
    result: dict[str, Any] = {}
    # assumed: an action still in progress shows the executionDetails of its latest result
    # (a continuation), as the console shows the build link early (reference)
    details = run.execution_details
    if details:
        latest = details[-1]
        if latest.get("externalExecutionId"):
            result["externalExecutionId"] = latest["externalExecutionId"]
        if latest.get("summary"):
            result["externalExecutionSummary"] = latest["summary"]
    url = execution_url(store, run)
    if url:
        result["externalExecutionUrl"] = url
    failure = run.failure_details
    if failure:
        if failure.get("externalExecutionId"):
            result["externalExecutionId"] = failure["externalExecutionId"]
        result["errorDetails"] = {"code": failure["type"], "message": failure["message"]}
    if result:
        output["executionResult"] = result
    if output:
        detail["output"] = output
    return detail


def _token(pipeline: str, after_seq: int) -> str:
    raw = json.dumps({"p": pipeline, "s": after_seq}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _read_token(token: str, pipeline: str) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if decoded["p"] == pipeline and isinstance(decoded["s"], int):
            return int(decoded["s"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    # model: InvalidNextTokenException, "Make sure that the next token you provide is the
    # token returned by a previous call"
    raise ApiError("InvalidNextTokenException", "The next token was specified in an invalid format")


def list_action_executions(
    store: JobStore,
    params: dict[str, Any],
    settings: ListSettings,
    to_datetime: Callable[[float], Any],
) -> dict[str, Any]:
    name = params["pipelineName"]
    _known_pipeline(store, name)
    runs = [r for r in store.runs.values() if r.pipeline_name == name and r.status != "Deleted"]
    filters = params.get("filter") or {}
    latest = filters.get("latestInPipelineExecution")
    # assumed: both filters, when given, apply together
    for execution_id in {
        filters.get("pipelineExecutionId"),
        (latest or {}).get("pipelineExecutionId"),
    }:
        if execution_id is None:
            continue
        execution = store.executions.get(execution_id)
        if execution is None or execution.pipeline_name != name:
            # model: PipelineExecutionNotFoundException, "an execution ID does not belong to
            # the specified pipeline"
            raise ApiError(
                "PipelineExecutionNotFoundException",
                f"Pipeline execution {execution_id} not found in pipeline {name}",
            )
        runs = [r for r in runs if r.pipeline_execution_id == execution_id]
    if latest and latest["startTimeRange"] == "Latest":
        # model, LatestInPipelineExecutionFilter: the latest execution of each action (a retry
        # runs the same action again in the same pipeline execution)
        newest: dict[tuple[str, str], ActionRun] = {}
        for run in runs:
            key = (run.stage_name, run.action_name)
            if key not in newest or run.seq > newest[key].seq:
                newest[key] = run
        runs = list(newest.values())
    # assumed: newest first, like ListPipelineExecutions ("most recent executions"); switch
    # list_order="oldest_first"
    newest_first = settings.list_order == "newest_first"
    runs.sort(key=lambda r: r.seq, reverse=newest_first)
    if params.get("nextToken") is not None:
        after = _read_token(params["nextToken"], name)
        runs = [r for r in runs if (r.seq < after if newest_first else r.seq > after)]
    limit = params.get("maxResults", 100)  # model, maxResults: "Default value is 100"
    page, rest = runs[:limit], runs[limit:]
    answer: dict[str, Any] = {
        "actionExecutionDetails": [
            action_execution_detail(store, copy.deepcopy(r), settings, to_datetime) for r in page
        ]
    }
    if rest:
        answer["nextToken"] = _token(name, page[-1].seq)
    return answer
