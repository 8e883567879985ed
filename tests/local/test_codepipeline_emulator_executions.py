"""Stop and abandon, pipeline updates and deletes, and ListActionExecutions, over real HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.retries import standard

from local.codepipeline import ApiError, CodePipelineEmulator
from local.codepipeline.model import modeled_errors
from local.codepipeline.wire import CORAL_NAMESPACES
from tests.local.test_codepipeline_emulator import (
    ACTION_TYPE,
    CONFIG,
    claim,
    make_client,
    poll,
    write_cbor_model,
)

PIPELINE = "demo-pipeline"


@pytest.fixture(autouse=True)
def instant_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep botocore's retry *decisions* real but skip its sleeps.
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)


@pytest.fixture(scope="module")
def cbor_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cbor_model(tmp_path_factory.mktemp("models"))


@pytest.fixture
def emulator() -> Iterator[CodePipelineEmulator]:
    with CodePipelineEmulator(redelivery_timeout_seconds=60, seed=7) as emu:
        yield emu


@pytest.fixture
def client(emulator: CodePipelineEmulator) -> Any:
    return make_client(emulator.endpoint_url)


def execution_of(emulator: CodePipelineEmulator, job_id: str) -> str:
    return emulator.run_for_job(job_id).pipeline_execution_id


def outcome(call: Any, **kwargs: Any) -> str:
    """The error code of a call, or "ok"."""
    try:
        call(**kwargs)
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "ok"


# --------------------------------------------------------------------------- stop and abandon


@pytest.mark.parametrize("protocol", ["json", "cbor"])
@pytest.mark.parametrize("result_mode", ["InvalidJobStateException", "JobNotFoundException"])
def test_stop_and_abandon(cbor_model: Path, protocol: str, result_mode: str) -> None:
    with CodePipelineEmulator(result_on_abandoned=result_mode) as emu:  # type: ignore[arg-type]
        client = make_client(emu.endpoint_url, protocol, cbor_model)
        events: list[dict[str, Any]] = []
        states: list[tuple[str, str]] = []
        emu.add_event_listener(events.append)
        emu.add_action_listener(lambda state, run: states.append((state, run.status)))
        # Given two running actions of one execution (one claimed, one not) and another execution
        claimed_id = emu.create_job(ACTION_TYPE, CONFIG, action_name="Travis")
        claimed = claim(client)
        execution_id = execution_of(emu, claimed_id)
        queued_id = emu.create_job(
            ACTION_TYPE, CONFIG, action_name="Travis2", pipeline_execution_id=execution_id
        )
        other_id = emu.create_job(ACTION_TYPE, CONFIG)

        # When the user stops the execution and abandons its in-progress actions
        answer = client.stop_pipeline_execution(
            pipelineName=PIPELINE, pipelineExecutionId=execution_id, abandon=True, reason="hotfix"
        )

        # Then both its actions are Abandoned, with an ABANDONED event each and no job id
        assert answer["pipelineExecutionId"] == execution_id
        abandoned = [e["detail"] for e in events if e["detail"]["state"] == "ABANDONED"]
        assert [(d["action"], d["execution-id"]) for d in abandoned] == [
            ("Travis", execution_id),
            ("Travis2", execution_id),
        ]
        assert set(abandoned[0]) == {
            "pipeline", "version", "execution-id", "stage", "action", "state", "region", "type",
        }  # fmt: skip
        assert abandoned[0]["type"] == ACTION_TYPE and abandoned[0]["stage"] == "Test"
        assert not any(j in json.dumps(events) for j in (claimed_id, queued_id))
        assert states[-2:] == [("ABANDONED", "Abandoned")] * 2
        assert emu.pipeline_execution(execution_id).status == "Stopped"
        assert emu.run_for_job(claimed_id).stop_reason == "hotfix"
        # And the worker's late result is refused the configured way; nothing is pollable but
        # the other execution's job
        late = outcome(client.put_job_success_result, jobId=claimed_id)
        failure = {"type": "JobFailed", "message": "late"}
        late_failure = outcome(
            client.put_job_failure_result, jobId=claimed_id, failureDetails=failure
        )
        details = outcome(client.get_job_details, jobId=claimed_id)
        assert late == late_failure == result_mode
        assert details == ("ok" if result_mode == "InvalidJobStateException" else result_mode)
        assert [j["id"] for j in poll(client)] == [other_id]
        assert emu.job(queued_id).status == emu.job(claimed_id).status == "Abandoned"
        assert emu.run_for_job(other_id).status == "InProgress"
        ack = outcome(client.acknowledge_job, jobId=claimed_id, nonce=claimed["nonce"])
        expected_ack = "InvalidNonceException"
        assert ack == (expected_ack if result_mode == "InvalidJobStateException" else result_mode)
        # And a second stop finds nothing to stop
        again = outcome(
            client.stop_pipeline_execution,
            pipelineName=PIPELINE,
            pipelineExecutionId=execution_id,
            abandon=True,
        )
        assert again == "PipelineExecutionNotStoppableException"


def test_stop_and_wait_lets_running_actions_finish(
    emulator: CodePipelineEmulator, client: Any
) -> None:
    # Given a claimed running action
    events: list[str] = []
    emulator.add_action_listener(lambda state, run: events.append(state))
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)
    claim(client)
    execution_id = execution_of(emulator, job_id)

    # When the user stops and waits
    client.stop_pipeline_execution(pipelineName=PIPELINE, pipelineExecutionId=execution_id)

    # Then the execution is Stopping, no second stop-and-wait is accepted, nothing new starts
    assert emulator.pipeline_execution(execution_id).status == "Stopping"
    duplicate = outcome(
        client.stop_pipeline_execution, pipelineName=PIPELINE, pipelineExecutionId=execution_id
    )
    assert duplicate == "DuplicatedStopRequestException"
    with pytest.raises(ValueError, match="stopping"):
        emulator.create_job(ACTION_TYPE, CONFIG, pipeline_execution_id=execution_id)
    # And the action may still report (a continuation keeps it in progress), then finish
    client.put_job_success_result(jobId=job_id, continuationToken="t")
    client.put_job_success_result(jobId=claim(client)["id"])
    assert emulator.pipeline_execution(execution_id).status == "Stopped"
    assert emulator.run_for_job(job_id).status == "Succeeded"
    assert events == ["STARTED", "SUCCEEDED"]
    # And a stopped execution's action can be retried in the same execution (user guide)
    emulator.create_job(ACTION_TYPE, CONFIG, pipeline_execution_id=execution_id)
    assert emulator.pipeline_execution(execution_id).status == "InProgress"


def test_stop_and_wait_then_abandon(emulator: CodePipelineEmulator, client: Any) -> None:
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)
    claim(client)
    execution_id = execution_of(emulator, job_id)
    emulator.stop_pipeline_execution(PIPELINE, execution_id)

    # model, DuplicatedStopRequestException: after stop and wait "you can choose to stop and
    # abandon now"
    assert emulator.stop_pipeline_execution(PIPELINE, execution_id, abandon=True) == execution_id

    assert emulator.run_for_job(job_id).status == "Abandoned"
    assert emulator.pipeline_execution(execution_id).status == "Stopped"


def test_stop_errors(emulator: CodePipelineEmulator, client: Any) -> None:
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)
    execution_id = execution_of(emulator, job_id)

    def stop(**kwargs: Any) -> str:
        params = {"pipelineName": PIPELINE, "pipelineExecutionId": execution_id, **kwargs}
        return outcome(client.stop_pipeline_execution, **params)

    assert stop(pipelineName="nope") == "PipelineNotFoundException"
    assert stop(pipelineExecutionId=str(uuid.uuid4())) == "PipelineExecutionNotStoppableException"
    assert stop(pipelineExecutionId="not-a-uuid") == "ValidationException"
    assert stop(reason="r" * 201) == "ValidationException"
    emulator.create_pipeline("other-pipeline")
    assert stop(pipelineName="other-pipeline") == "PipelineExecutionNotStoppableException"
    # An execution whose actions all finished is over (assumed: no later stages)
    claim(client)
    client.put_job_success_result(jobId=job_id)
    assert stop(abandon=True) == "PipelineExecutionNotStoppableException"
    with pytest.raises(ApiError) as admin:
        emulator.stop_pipeline_execution(PIPELINE, execution_id)
    assert admin.value.code == "PipelineExecutionNotStoppableException"


@pytest.mark.parametrize("ends_with_runs", [True, False])
def test_stop_after_the_last_action_finished(ends_with_runs: bool) -> None:
    # Given an execution whose only action has succeeded
    with CodePipelineEmulator(executions_end_with_their_runs=ends_with_runs) as emu:
        client = make_client(emu.endpoint_url)
        job_id = emu.create_job(ACTION_TYPE, CONFIG)
        claim(client)
        client.put_job_success_result(jobId=job_id)
        execution_id = execution_of(emu, job_id)

        # When the user stops it (and waits)
        answer = outcome(
            client.stop_pipeline_execution, pipelineName=PIPELINE, pipelineExecutionId=execution_id
        )

    # Then it was over already (default), or, if later stages are assumed, it stops at once
    if ends_with_runs:
        assert answer == "PipelineExecutionNotStoppableException"
    else:
        assert answer == "ok"
        assert emu.pipeline_execution(execution_id).status == "Stopped"
    assert emu.run_for_job(job_id).status == "Succeeded"


# --------------------------------------------------------------------------- canceled, deleted


@pytest.mark.parametrize("listed_as", ["Abandoned", "Failed"])
def test_pipeline_update_cancels_running_actions(listed_as: str) -> None:
    with CodePipelineEmulator(canceled_list_status=listed_as) as emu:  # type: ignore[arg-type]
        client = make_client(emu.endpoint_url)
        events: list[dict[str, Any]] = []
        emu.add_event_listener(events.append)
        job_id = emu.create_job(ACTION_TYPE, CONFIG)
        job = claim(client)

        # When the pipeline structure is updated while the action runs
        (canceled,) = emu.update_pipeline(PIPELINE)

        # Then the action is CANCELED (user guide, action-level states), the version went up
        assert canceled == job["data"]["pipelineContext"]["action"]["actionExecutionId"]
        assert [e["detail"]["state"] for e in events] == ["STARTED", "CANCELED"]
        assert events[1]["detail"]["version"] == 1  # the run's structure version
        assert outcome(client.put_job_success_result, jobId=job_id) == "InvalidJobStateException"
        (listed,) = client.list_action_executions(pipelineName=PIPELINE)["actionExecutionDetails"]
        assert listed["status"] == listed_as
        emu.create_job(ACTION_TYPE, CONFIG)
        assert events[-1]["detail"]["version"] == 2


def test_cancel_one_action_run(emulator: CodePipelineEmulator) -> None:
    states: list[str] = []
    emulator.add_action_listener(lambda state, run: states.append(state))
    run_id = emulator.run_for_job(emulator.create_job(ACTION_TYPE, CONFIG)).action_execution_id

    emulator.cancel_action_run(run_id)

    assert states == ["STARTED", "CANCELED"]
    assert emulator.action_run(run_id).status == "Canceled"
    with pytest.raises(ValueError, match="finished"):
        emulator.cancel_action_run(run_id)


@pytest.mark.parametrize("emit_canceled", [False, True])
def test_deleted_pipeline_jobs_are_gone(
    emulator: CodePipelineEmulator, client: Any, emit_canceled: bool
) -> None:
    # Given a claimed job and an unclaimed one of a pipeline, and one of another pipeline
    states: list[str] = []
    emulator.add_action_listener(lambda state, run: states.append(state))
    claimed_id = emulator.create_job(ACTION_TYPE, CONFIG)
    claimed = claim(client)
    emulator.create_job(ACTION_TYPE, CONFIG)
    kept = emulator.create_job(ACTION_TYPE, CONFIG, pipeline_name="other")

    # When the pipeline is deleted
    emulator.delete_pipeline(PIPELINE, emit_canceled=emit_canceled)

    # Then every job call answers JobNotFoundException (reference: "the job is gone")
    failure = {"type": "JobFailed", "message": "m"}
    answers = {
        outcome(client.put_job_success_result, jobId=claimed_id),
        outcome(client.put_job_failure_result, jobId=claimed_id, failureDetails=failure),
        outcome(client.acknowledge_job, jobId=claimed_id, nonce=claimed["nonce"]),
        outcome(client.get_job_details, jobId=claimed_id),
    }
    assert answers == {"JobNotFoundException"}
    assert [j["id"] for j in poll(client)] == [kept]
    assert outcome(client.list_action_executions, pipelineName=PIPELINE) == (
        "PipelineNotFoundException"
    )
    assert states.count("CANCELED") == (2 if emit_canceled else 0)
    assert emulator.run_for_job(claimed_id).status == "Deleted"


# --------------------------------------------------------------------------- ListActionExecutions


def test_list_action_executions_shows_each_state(emulator: CodePipelineEmulator) -> None:
    emulator.register_action_type(
        ACTION_TYPE,
        secret_keys={"APIToken"},
        execution_url_template="https://travis.example/builds/{ExternalExecutionId}",
    )
    client = make_client(emulator.endpoint_url)
    # Given one action run in each state, in separate executions
    running_id = emulator.create_job(ACTION_TYPE, CONFIG, action_name="Running")
    succeeded_id = emulator.create_job(
        ACTION_TYPE, CONFIG, action_name="Passing", output_artifact_name="Out"
    )
    failed_id = emulator.create_job(ACTION_TYPE, CONFIG, action_name="Failing")
    abandoned_id = emulator.create_job(ACTION_TYPE, CONFIG, action_name="Stopped")
    jobs = {j["id"]: j for j in poll(client)}
    for job in jobs.values():
        client.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
    details = {"externalExecutionId": "42", "summary": "Build 42 started"}
    client.put_job_success_result(jobId=running_id, continuationToken="t", executionDetails=details)
    client.put_job_success_result(jobId=succeeded_id, outputVariables={"BuildId": "7"})
    client.put_job_failure_result(
        jobId=failed_id,
        failureDetails={"type": "JobFailed", "message": "red", "externalExecutionId": "9"},
    )
    emulator.stop_pipeline_execution(PIPELINE, execution_of(emulator, abandoned_id), abandon=True)

    # When the worker lists the pipeline's action executions
    listed = client.list_action_executions(pipelineName=PIPELINE)["actionExecutionDetails"]

    # Then each shows as the model's ActionExecutionDetail, newest first
    by_action = {d["actionName"]: d for d in listed}
    assert [d["actionName"] for d in listed] == ["Stopped", "Failing", "Passing", "Running"]
    assert {a: d["status"] for a, d in by_action.items()} == {
        "Running": "InProgress",
        "Passing": "Succeeded",
        "Failing": "Failed",
        "Stopped": "Abandoned",
    }
    running = by_action["Running"]
    run = emulator.run_for_job(running_id)
    assert running["actionExecutionId"] == run.action_execution_id
    assert running["pipelineExecutionId"] == run.pipeline_execution_id
    assert (running["stageName"], running["pipelineVersion"]) == ("Test", 1)
    assert isinstance(running["startTime"], datetime)
    assert running["lastUpdateTime"] >= running["startTime"]
    assert running["input"]["configuration"] == {**CONFIG, "APIToken": "****"}
    assert running["input"]["actionTypeId"] == ACTION_TYPE
    assert running["input"]["inputArtifacts"][0]["name"] == "SourceArtifact"
    assert running["output"]["executionResult"] == {
        "externalExecutionId": "42",
        "externalExecutionSummary": "Build 42 started",
        "externalExecutionUrl": "https://travis.example/builds/42",
    }
    passing = by_action["Passing"]["output"]
    assert passing["outputVariables"] == {"BuildId": "7"}
    assert [a["name"] for a in passing["outputArtifacts"]] == ["Out"]
    assert by_action["Failing"]["output"]["executionResult"] == {
        "externalExecutionId": "9",
        "errorDetails": {"code": "JobFailed", "message": "red"},
    }
    assert "output" not in by_action["Stopped"]


def test_worker_confirms_its_own_execution_was_abandoned(
    emulator: CodePipelineEmulator, client: Any, cbor_model: Path
) -> None:
    # Given a claimed job, and a sibling action in the same execution that finished
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)
    job = claim(client)
    context = job["data"]["pipelineContext"]
    sibling = emulator.create_job(
        ACTION_TYPE,
        CONFIG,
        action_name="Other",
        pipeline_execution_id=context["pipelineExecutionId"],
    )
    client.acknowledge_job(jobId=sibling, nonce=poll(client)[0]["nonce"])
    client.put_job_success_result(jobId=sibling)
    emulator.create_job(ACTION_TYPE, CONFIG)  # another execution
    emulator.stop_pipeline_execution(PIPELINE, context["pipelineExecutionId"], abandon=True)

    # When the worker (refused a result) lists its execution's action executions, either wire
    assert outcome(client.put_job_success_result, jobId=job_id) == "InvalidJobStateException"
    for protocol in ("json", "cbor"):
        lister = make_client(emulator.endpoint_url, protocol, cbor_model)
        listed = lister.list_action_executions(
            pipelineName=context["pipelineName"],
            filter={"pipelineExecutionId": context["pipelineExecutionId"]},
        )["actionExecutionDetails"]

        # Then its own action execution is there, Abandoned
        mine = [
            d for d in listed if d["actionExecutionId"] == context["action"]["actionExecutionId"]
        ]
        assert [d["status"] for d in mine] == ["Abandoned"]
        assert {d["actionName"] for d in listed} == {"Travis", "Other"}
        assert isinstance(mine[0]["startTime"], datetime)


def test_list_paging_order_and_latest_filter() -> None:
    with CodePipelineEmulator(list_order="oldest_first") as emu:
        client = make_client(emu.endpoint_url)
        # Given an execution whose action ran twice (a retry) and two other executions
        first = emu.create_job(ACTION_TYPE, CONFIG)
        execution_id = execution_of(emu, first)
        emu.cancel_action_run(emu.run_for_job(first).action_execution_id)
        retry = emu.create_job(ACTION_TYPE, CONFIG, pipeline_execution_id=execution_id)
        others = [emu.create_job(ACTION_TYPE, CONFIG) for _ in range(2)]
        run_ids = [emu.run_for_job(j).action_execution_id for j in [first, retry, *others]]

        # When the list is read two at a time, oldest first (switch), with the paginator
        pages = client.get_paginator("list_action_executions").paginate(
            pipelineName=PIPELINE, PaginationConfig={"PageSize": 2}
        )
        paged = [[d["actionExecutionId"] for d in p["actionExecutionDetails"]] for p in pages]

        # Then every run appears once, in order, and the filters narrow it down
        assert paged == [run_ids[:2], run_ids[2:]]

        def listed(**kwargs: Any) -> list[str]:
            answer = client.list_action_executions(pipelineName=PIPELINE, **kwargs)
            return [d["actionExecutionId"] for d in answer["actionExecutionDetails"]]

        assert listed(filter={"pipelineExecutionId": execution_id}) == run_ids[:2]
        latest = {"pipelineExecutionId": execution_id, "startTimeRange": "Latest"}
        assert listed(filter={"latestInPipelineExecution": latest}) == [run_ids[1]]
        every = {**latest, "startTimeRange": "All"}
        assert listed(filter={"latestInPipelineExecution": every}) == run_ids[:2]
        emu.list_order = "newest_first"
        assert listed(maxResults=1) == [run_ids[-1]]


def test_list_errors_and_secret_values(emulator: CodePipelineEmulator, client: Any) -> None:
    emulator.register_action_type(ACTION_TYPE, secret_keys={"APIToken"})
    emulator.create_job(ACTION_TYPE, CONFIG)

    def listing(**kwargs: Any) -> str:
        return outcome(client.list_action_executions, **{"pipelineName": PIPELINE, **kwargs})

    assert listing(pipelineName="nope") == "PipelineNotFoundException"
    missing = {"pipelineExecutionId": str(uuid.uuid4())}
    assert listing(filter=missing) == "PipelineExecutionNotFoundException"
    assert listing(nextToken="garbage") == "InvalidNextTokenException"
    assert listing(maxResults=101) == "ValidationException"
    emulator.list_secret_configuration = "include"
    (detail,) = client.list_action_executions(pipelineName=PIPELINE)["actionExecutionDetails"]
    assert detail["input"]["configuration"]["APIToken"] == CONFIG["APIToken"]


def test_every_error_answered_is_modeled_or_front_door(
    emulator: CodePipelineEmulator, client: Any
) -> None:
    # Given the error paths of every operation
    job_id = emulator.create_job(ACTION_TYPE, CONFIG)
    execution_id = execution_of(emulator, job_id)
    outcome(client.acknowledge_job, jobId=job_id, nonce="9")
    outcome(client.put_job_success_result, jobId=job_id)
    outcome(
        client.put_job_failure_result, jobId=job_id, failureDetails={"type": "x", "message": "m"}
    )
    outcome(client.get_job_details, jobId=str(uuid.uuid4()))
    outcome(client.poll_for_jobs, actionTypeId={**ACTION_TYPE, "version": "8"})
    for name, execution in [("nope", execution_id), (PIPELINE, str(uuid.uuid4()))]:
        outcome(client.stop_pipeline_execution, pipelineName=name, pipelineExecutionId=execution)
        filters = {"pipelineExecutionId": execution}
        outcome(client.list_action_executions, pipelineName=name, filter=filters)
    outcome(client.list_action_executions, pipelineName=PIPELINE, nextToken="x")
    emulator.stop_pipeline_execution(PIPELINE, execution_id)
    outcome(client.stop_pipeline_execution, pipelineName=PIPELINE, pipelineExecutionId=execution_id)
    emulator.delete_pipeline(PIPELINE)
    outcome(client.get_job_details, jobId=job_id)

    # Then no error code was invented: each is in the model's list for its operation, or one of
    # AWS's front-door errors
    front_door = set(CORAL_NAMESPACES)
    errors = {(c.operation, c.error_code) for c in emulator.calls() if c.error_code}
    assert len({code for _, code in errors}) >= 8
    assert [e for e in errors if e[1] not in modeled_errors(e[0]) | front_door] == []
