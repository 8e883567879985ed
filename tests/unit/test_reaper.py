"""The reaper: a job whose execution died after claiming it still gets a result."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from local.codepipeline import CodePipelineEmulator
from tests.unit.support import ACTION_TYPE_API, SLUG, STATE_MACHINE_ARN
from worker import reaper
from worker.codepipeline import CodePipelineJobs
from worker.continuation import Continuation
from worker.failures import FailureType
from worker.job import ExecutionInput, execution_name, sanitize_job
from worker.providers import BuildRef, CancelResult, Submission
from worker.reaper import reap

SECRETS = frozenset({"APIToken"})
ENDPOINT = "https://api.travis-ci.com"


class FakeProvider:
    """The provider parts the reaper uses: the build's continuation and cancel."""

    def __init__(self) -> None:
        self.canceled: list[str] = []

    def continuation(
        self, job: ExecutionInput, submission: Submission, build: BuildRef, expectation: Any
    ) -> Continuation:
        return Continuation(
            "travis", build.build_id, submission.request_id, ENDPOINT, SLUG, submission.submitted_at
        )

    def cancel(self, job: ExecutionInput, continuation: Continuation) -> CancelResult:
        self.canceled.append(continuation.build_id)
        return CancelResult.REQUESTED


class FakeStates:
    """DescribeExecution and GetExecutionHistory pages of one execution, as Step Functions
    answers them (history events carry `stateExitedEventDetails.name/output`)."""

    def __init__(self, name: str, execution_input: dict[str, Any], pages: list[list[dict]]):
        self.name = name
        self.input = execution_input
        self.pages = pages
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def describe_execution(self, **params: Any) -> dict[str, Any]:
        self.asked.append(("describe_execution", params))
        return {
            "executionArn": params["executionArn"],
            "stateMachineArn": STATE_MACHINE_ARN,
            "name": self.name,
            "status": "TIMED_OUT",
            "input": json.dumps(self.input),
            "startDate": datetime(2026, 12, 1, tzinfo=UTC),
        }

    def get_paginator(self, operation: str) -> FakeStates:
        assert operation == "get_execution_history"
        return self

    def paginate(self, **params: Any) -> list[dict[str, Any]]:
        self.asked.append(("get_execution_history", params))
        return [{"events": events} for events in self.pages]


def _entered(name: str, state: dict[str, Any], event_id: int) -> dict[str, Any]:
    return {
        "timestamp": datetime(2026, 12, 1, tzinfo=UTC),
        "type": "TaskStateEntered",
        "id": event_id,
        "previousEventId": event_id - 1,
        "stateEnteredEventDetails": {"name": name, "input": json.dumps(state)},
    }


def _exited(name: str, state: dict[str, Any], event_id: int) -> dict[str, Any]:
    return {
        "timestamp": datetime(2026, 12, 1, tzinfo=UTC),
        "type": "TaskStateExited",
        "id": event_id,
        "previousEventId": event_id - 1,
        "stateExitedEventDetails": {"name": name, "output": json.dumps(state)},
    }


def _history(execution_input: dict[str, Any], *steps: tuple[str, dict[str, Any]]) -> list[list]:
    """Pages of two events per state: entered with the state so far, exited with its result."""
    state = dict(execution_input)
    pages = [[{"type": "ExecutionStarted", "id": 1, "executionStartedEventDetails": {}}]]
    event_id = 2
    for name, result in steps:
        entered = _entered(name, state, event_id)
        state = {**state, **result}
        pages.append([entered, _exited(name, state, event_id + 1)])
        event_id += 2
    return pages


def _event(status: str = "TIMED_OUT", arn: str = "arn:execution") -> dict[str, Any]:
    return {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"status": status, "executionArn": arn, "stateMachineArn": STATE_MACHINE_ARN},
    }


@pytest.fixture
def job(
    create_job: Callable[..., str], claim_job: Callable[[str], dict[str, Any]]
) -> ExecutionInput:
    return sanitize_job(claim_job(create_job()), SECRETS)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Metrics the reaper adds (JobsReaped and the JobsFailed failure types)."""
    seen: list[str] = []
    monkeypatch.setattr(reaper.metrics, "add_metric", lambda name, **_: seen.append(name))
    monkeypatch.setattr(reaper, "count_failure", lambda t: seen.append(f"JobsFailed/{t.value}"))
    return seen


PHASE_ONE = (
    ("Claim", {"claim": {"claimed": True, "outcome": "claimed", "status": "InProgress"}}),
    ("Submit", {"submission": {"requestId": "205001", "submittedAt": 1_700_000_000.0}}),
    (
        "Resolve",
        {
            "resolution": {
                "ready": True,
                "build": {"buildId": "900001", "number": "7", "url": "https://travis/b/900001"},
            }
        },
    ),
)


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_a_claimed_job_gets_a_failure_naming_the_execution_and_its_build_is_canceled(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    job: ExecutionInput,
    counted: list[str],
    status: str,
) -> None:
    # Given an execution that claimed its job, resolved a build and then died
    name = execution_name(job.job_id, job.nonce)
    states = FakeStates(name, job.as_dict(), _history(job.as_dict(), *PHASE_ONE))
    provider = FakeProvider()

    # When its status change reaches the reaper
    result = reap(_event(status), states, jobs, lambda _: provider)

    # Then CodePipeline got a failure naming the execution, with the build's id
    assert result == {"reaped": True, "buildId": "900001"}
    (call,) = emulator.calls("PutJobFailureResult")
    details = call.params["failureDetails"]
    assert call.params["jobId"] == job.job_id
    assert details["type"] == FailureType.JOB_FAILED.value
    assert name in details["message"]
    assert status in details["message"]
    assert details["externalExecutionId"] == "900001"
    assert emulator.run_for_job(job.job_id).status == "Failed"
    # and the build no longer runs unwatched
    assert provider.canceled == ["900001"]
    assert counted == ["BuildsCanceled", "JobsReaped", "JobsFailed/JobFailed"]
    # and the whole history was read with its data
    assert (
        "get_execution_history",
        {"executionArn": "arn:execution", "includeExecutionData": True},
    ) in states.asked


def test_a_phase_two_execution_knows_its_build_from_the_continuation(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, job: ExecutionInput, counted: list[str]
) -> None:
    token = Continuation("travis", "900042", "205042", ENDPOINT, SLUG, 1_700_000_000.0)
    watched = replace(job, continuation=token.as_dict())
    claim = PHASE_ONE[0]
    states = FakeStates("x", watched.as_dict(), _history(watched.as_dict(), claim))
    provider = FakeProvider()

    assert reap(_event(), states, jobs, lambda _: provider) == {"reaped": True, "buildId": "900042"}
    assert provider.canceled == ["900042"]
    failure = emulator.calls("PutJobFailureResult")[-1].params["failureDetails"]
    assert failure["externalExecutionId"] == "900042"


def test_a_claim_without_a_build_reports_without_canceling(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, job: ExecutionInput, counted: list[str]
) -> None:
    states = FakeStates("x", job.as_dict(), _history(job.as_dict(), PHASE_ONE[0]))
    provider = FakeProvider()

    assert reap(_event("ABORTED"), states, jobs, lambda _: provider) == {
        "reaped": True,
        "buildId": None,
    }
    assert (
        "externalExecutionId"
        not in emulator.calls("PutJobFailureResult")[-1].params["failureDetails"]
    )
    assert provider.canceled == []


def test_an_execution_that_never_claimed_is_left_alone(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs, job: ExecutionInput, counted: list[str]
) -> None:
    # Given an execution whose claim lost (another hand-out won) before it was stopped
    lost = ("Claim", {"claim": {"claimed": False, "outcome": "not_claimed", "status": "x"}})
    states = FakeStates("x", job.as_dict(), _history(job.as_dict(), lost))
    provider = FakeProvider()

    result = reap(_event("ABORTED"), states, jobs, lambda _: provider)

    # Then nothing is reported or canceled
    assert result == {"reaped": False, "reason": "not claimed"}
    assert emulator.calls("PutJobFailureResult") == []
    assert provider.canceled == []
    assert counted == []


def test_a_job_that_already_has_its_result_counts_nothing(
    emulator: CodePipelineEmulator,
    jobs: CodePipelineJobs,
    job: ExecutionInput,
    codepipeline_client: Any,
    counted: list[str],
) -> None:
    # Given the job was answered (ReportFailure succeeded, then the execution timed out)
    codepipeline_client.put_job_success_result(jobId=job.job_id)
    states = FakeStates("x", job.as_dict(), _history(job.as_dict(), *PHASE_ONE))
    provider = FakeProvider()

    result = reap(_event(), states, jobs, lambda _: provider)

    # Then CodePipeline's refusal is nothing to do: no metric, no cancel
    assert result == {"reaped": False, "reason": "not_in_progress"}
    assert emulator.calls("PutJobFailureResult")[-1].error_code == "InvalidJobStateException"
    assert emulator.run_for_job(job.job_id).status == "Succeeded"
    assert provider.canceled == []
    assert counted == []


@pytest.mark.parametrize("status", ["SUCCEEDED", "RUNNING", ""])
def test_other_statuses_are_ignored(jobs: CodePipelineJobs, status: str) -> None:
    states = FakeStates("x", {}, [])
    assert reap(_event(status), states, jobs, lambda _: FakeProvider())["reaped"] is False
    assert states.asked == []


def test_an_execution_of_something_else_is_ignored(
    emulator: CodePipelineEmulator, jobs: CodePipelineJobs
) -> None:
    states = FakeStates("x", {"unrelated": True}, [])
    assert reap(_event(), states, jobs, lambda _: FakeProvider()) == {
        "reaped": False,
        "reason": "not an execution of this worker",
    }
    assert emulator.calls() == []


def test_the_action_type_api_is_kept(job: ExecutionInput) -> None:
    # The reaper reads the execution input back exactly as the poller wrote it
    assert ExecutionInput.from_state(json.loads(json.dumps(job.as_dict()))) == job
    assert job.action_type.as_api() == {**ACTION_TYPE_API, "owner": "Custom"}
