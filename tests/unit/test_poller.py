"""The poller: every handed-out job becomes one execution, sanitized, named by job id and nonce."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from local.codepipeline import CodePipelineEmulator
from tests.unit.support import (
    JOB_TOKEN,
    REGISTERED,
    REVISION,
    botocore_client,
)
from worker.codepipeline import CodePipelineJobs
from worker.job import ActionType, execution_name, sanitize_job
from worker.poller import (
    ExecutionStarter,
    PollSummary,
    action_types_to_poll,
    poll_and_dispatch,
)
from worker.settings import RegisteredActionType

SCHEDULE = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
OTHER = RegisteredActionType(ActionType("Build", "Jenkins", "1"), "jenkins", frozenset())


# One botocore session, created after moto's import: boto3.client() builds a new session each
# time moto resets boto3's default one, and loading the models is the slow part.
_SESSION = botocore.session.get_session()


@pytest.fixture
def sfn() -> Iterator[Any]:
    with mock_aws():
        yield _SESSION.create_client(
            "stepfunctions",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture
def state_machine_arn(sfn: Any) -> str:
    return str(
        sfn.create_state_machine(
            name="TravisWorker",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/TravisWorkerStateMachine",
            type="STANDARD",
        )["stateMachineArn"]
    )


@pytest.fixture
def starter(sfn: Any, state_machine_arn: str) -> ExecutionStarter:
    return ExecutionStarter(sfn, state_machine_arn)


def _poll(
    jobs: CodePipelineJobs,
    starter: ExecutionStarter,
    *,
    batch_size: int = 10,
    time_left: Callable[[], float] = lambda: 30.0,
    registered: list[RegisteredActionType] | None = None,
) -> PollSummary:
    return poll_and_dispatch(
        [REGISTERED] if registered is None else registered,
        jobs,
        starter,
        batch_size=batch_size,
        time_left=time_left,
    )


def _executions(sfn: Any, state_machine_arn: str) -> dict[str, dict[str, Any]]:
    """Every execution by name, with its input parsed."""
    listed = sfn.list_executions(stateMachineArn=state_machine_arn)["executions"]
    found = {}
    for execution in listed:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        found[execution["name"]] = {**described, "input": json.loads(described["input"])}
    return found


def test_each_job_starts_one_sanitized_execution(
    sfn: Any,
    state_machine_arn: str,
    starter: ExecutionStarter,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    emulator: CodePipelineEmulator,
) -> None:
    # Given two jobs carrying an APIToken and S3 credentials
    job_ids = [create_job(encryption_key_id="alias/key"), create_job()]

    # When the poller runs
    summary = _poll(jobs, starter)

    # Then each job has one execution named by job id and nonce
    assert (summary.jobs_received, summary.executions_started) == (2, 2)
    executions = _executions(sfn, state_machine_arn)
    nonces = {job_id: emulator.job(job_id).nonce for job_id in job_ids}
    assert set(executions) == {execution_name(j, str(n)) for j, n in nonces.items()}
    for job_id in job_ids:
        execution = executions[execution_name(job_id, str(nonces[job_id]))]
        # and its input is the sanitized job: the steps' data, not one secret value
        assert execution["input"]["jobId"] == job_id
        assert execution["input"]["revision"] == REVISION
        assert execution["input"]["configuration"] == {
            "Owner": "octo-org",
            "ProjectName": "hello.world",
            "Branch": "main",
        }
        raw = json.dumps(execution["input"])
        secrets = [JOB_TOKEN, "alias/key"]
        for credentials in emulator.job(job_id).issued_credentials:
            secrets.extend(credentials.values())
        assert [s for s in secrets if s in raw] == []
    # and the poller claimed nothing itself: the executions do
    assert emulator.calls("AcknowledgeJob") == []


def test_the_execution_input_is_exactly_the_sanitized_job(
    sfn: Any,
    state_machine_arn: str,
    starter: ExecutionStarter,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    codepipeline_client: Any,
    emulator: CodePipelineEmulator,
) -> None:
    job_id = create_job()
    _poll(jobs, starter)

    (execution,) = _executions(sfn, state_machine_arn).values()
    details = codepipeline_client.get_job_details(jobId=job_id)["jobDetails"]
    expected = sanitize_job(
        {**details, "nonce": emulator.job(job_id).nonce}, frozenset({"APIToken"})
    )
    assert execution["input"] == expected.as_dict()


def test_a_hand_out_already_running_is_not_started_again(
    sfn: Any,
    state_machine_arn: str,
    starter: ExecutionStarter,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
) -> None:
    # Given an execution already running for this hand-out (the emulator's first nonce is "1")
    job_id = create_job()
    name = execution_name(job_id, "1")
    sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input="{}")

    # When the poller gets the same hand-out (another poller, the event and the schedule)
    summary = _poll(jobs, starter)

    # Then it counts it as handled and starts nothing
    assert (summary.already_handled, summary.executions_started) == (1, 0)
    assert list(_executions(sfn, state_machine_arn)) == [name]


def test_starting_the_same_hand_out_twice_is_idempotent(
    sfn: Any, state_machine_arn: str, starter: ExecutionStarter
) -> None:
    # Given the same hand-out delivered twice with the same input
    execution_input = {"jobId": "5f0c6a3e-8b1d-4e2f-9a7c-1b2d3e4f5a6b", "nonce": "1"}
    starter.start(execution_input["jobId"], "1", execution_input)
    starter.start(execution_input["jobId"], "1", execution_input)

    # Then there is one execution
    assert len(_executions(sfn, state_machine_arn)) == 1


def test_a_hand_out_whose_execution_ended_unclaimed_gets_a_second_attempt(
    sfn: Any,
    state_machine_arn: str,
    starter: ExecutionStarter,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
) -> None:
    # Given this hand-out's execution was aborted before it could claim the job
    job_id = create_job()
    name = execution_name(job_id, "1")
    arn = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input="{}")[
        "executionArn"
    ]
    sfn.stop_execution(executionArn=arn)

    # When the poller gets the hand-out again
    summary = _poll(jobs, starter)

    # Then a "-2" attempt carries the job
    assert summary.executions_started == 1
    executions = _executions(sfn, state_machine_arn)
    assert set(executions) == {name, f"{name}-2"}
    assert executions[f"{name}-2"]["input"]["jobId"] == job_id


def test_a_failed_execution_leads_to_an_attempt_named_dash_2() -> None:
    # Given Step Functions (stubbed on a real client, which validates every request) answers
    # that the name is taken by an execution that FAILED
    client = botocore_client("stepfunctions")
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:TravisWorker"
    job_id = "5f0c6a3e-8b1d-4e2f-9a7c-1b2d3e4f5a6b"
    name = execution_name(job_id, "7")
    body = json.dumps({"jobId": job_id}, separators=(",", ":"))
    execution_arn = f"arn:aws:states:us-east-1:123456789012:execution:TravisWorker:{name}"
    started = datetime(2026, 1, 1, tzinfo=UTC)
    with Stubber(client) as stub:
        stub.add_client_error(
            "start_execution",
            "ExecutionAlreadyExists",
            expected_params={"stateMachineArn": arn, "name": name, "input": body},
        )
        stub.add_response(
            "describe_execution",
            {
                "executionArn": execution_arn,
                "stateMachineArn": arn,
                "status": "FAILED",
                "startDate": started,
            },
            expected_params={"executionArn": execution_arn},
        )
        stub.add_response(
            "start_execution",
            {"executionArn": execution_arn + "-2", "startDate": started},
            expected_params={"stateMachineArn": arn, "name": f"{name}-2", "input": body},
        )

        # When the hand-out is started
        started_new = ExecutionStarter(client, arn).start(job_id, "7", {"jobId": job_id})

        # Then exactly those calls were made, ending with the second attempt
        assert started_new is True
        stub.assert_no_pending_responses()


def test_attempts_per_hand_out_are_bounded(
    sfn: Any, state_machine_arn: str, starter: ExecutionStarter
) -> None:
    # Given three attempts for this hand-out all ended without claiming
    job_id = "5f0c6a3e-8b1d-4e2f-9a7c-1b2d3e4f5a6b"
    for attempt in (1, 2, 3):
        name = execution_name(job_id, "1", attempt)
        arn = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input="{}")
        sfn.stop_execution(executionArn=arn["executionArn"])

    # When it is seen again
    # Then no fourth execution is started (CodePipeline hands the job out again later)
    assert starter.start(job_id, "1", {"jobId": job_id}) is False
    assert len(_executions(sfn, state_machine_arn)) == 3


def test_a_failed_start_leaves_the_job_for_the_next_poll(
    sfn: Any,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    emulator: CodePipelineEmulator,
) -> None:
    # Given a state machine that cannot be started (e.g. deleted)
    starter = ExecutionStarter(sfn, "arn:aws:states:us-east-1:123456789012:stateMachine:Missing")
    job_ids = [create_job(), create_job()]

    # When the poller runs
    summary = _poll(jobs, starter)

    # Then every job was tried, none claimed: CodePipeline hands them out again
    assert (summary.jobs_received, summary.start_failures, summary.executions_started) == (2, 2, 0)
    assert emulator.calls("AcknowledgeJob") == []
    assert {emulator.job(j).status for j in job_ids} == {"Dispatched"}


def test_polls_until_no_job_is_left(
    sfn: Any,
    state_machine_arn: str,
    starter: ExecutionStarter,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
) -> None:
    for _ in range(3):
        create_job()

    summary = _poll(jobs, starter, batch_size=2)

    assert (summary.polls, summary.jobs_received, summary.executions_started) == (3, 3, 3)
    assert summary.action_types == ["Custom/Test/Travis/1"]


def test_the_time_budget_is_respected(
    sfn: Any,
    state_machine_arn: str,
    starter: ExecutionStarter,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    emulator: CodePipelineEmulator,
) -> None:
    # Given three waiting jobs and a budget that runs out after the first poll
    job_ids = [create_job() for _ in range(3)]
    budget = iter([1.0, 0.0])

    # When the poller runs with a batch of one
    summary = _poll(jobs, starter, batch_size=1, time_left=lambda: next(budget, 0.0))

    # Then it polled once; the other jobs wait for the next run, untouched
    assert (summary.polls, summary.executions_started) == (1, 1)
    assert sorted(emulator.job(j).status for j in job_ids) == ["Dispatched", "Queued", "Queued"]


def test_no_time_left_polls_nothing(
    jobs: CodePipelineJobs, starter: ExecutionStarter, emulator: CodePipelineEmulator
) -> None:
    summary = _poll(jobs, starter, time_left=lambda: -5.0)
    assert summary.polls == 0
    assert emulator.calls("PollForJobs") == []


def test_an_event_for_another_provider_polls_nothing(
    jobs: CodePipelineJobs, starter: ExecutionStarter, emulator: CodePipelineEmulator
) -> None:
    # Given CodePipeline announces an action of a type this worker does not serve
    event = {
        "detail-type": "CodePipeline Action Execution State Change",
        "detail": {
            "state": "STARTED",
            "type": {"owner": "AWS", "category": "Build", "provider": "CodeBuild", "version": "1"},
        },
    }

    # When the poller handles it
    summary = _poll(jobs, starter, registered=action_types_to_poll(event, [REGISTERED]))

    # Then CodePipeline was not even asked
    assert summary.polls == 0
    assert emulator.calls("PollForJobs") == []


@pytest.mark.parametrize("version_as_number", [True, False])
def test_an_event_for_our_action_polls_our_type(
    create_job: Callable[..., str], emulator: CodePipelineEmulator, version_as_number: bool
) -> None:
    # Given CodePipeline's event for our action (its version sometimes a number)
    job_id = create_job()
    event = emulator.eventbridge_event(
        emulator.run_for_job(job_id), version_as_number=version_as_number
    )

    # Then only our action type is polled
    assert action_types_to_poll(event, [REGISTERED, OTHER]) == [REGISTERED]


@pytest.mark.parametrize(
    "event",
    [
        SCHEDULE,
        {},
        {"detail": "not a dict"},
        {"detail": {"type": "not a dict"}},
    ],
)
def test_a_schedule_polls_every_registered_type(event: dict[str, Any]) -> None:
    assert action_types_to_poll(event, [REGISTERED, OTHER]) == [REGISTERED, OTHER]


def test_an_event_of_another_owner_polls_nothing() -> None:
    event = {
        "detail": {
            "type": {"owner": "ThirdParty", "category": "Test", "provider": "Travis", "version": 1}
        }
    }
    assert action_types_to_poll(event, [REGISTERED]) == []


def test_event_poll_looks_again_until_the_job_is_pollable(
    jobs: CodePipelineJobs,
    starter: ExecutionStarter,
    create_job: Callable[..., str],
) -> None:
    # Given an "action started" event that arrives before CodePipeline makes the job pollable
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            create_job()  # the job becomes pollable during the second pause

    # When the poller polls with patience
    summary = poll_and_dispatch(
        [REGISTERED],
        jobs,
        starter,
        batch_size=10,
        time_left=lambda: 30.0,
        patience=(1.0, 2.0, 4.0),
        sleep=sleep,
    )

    # Then it paused twice, found the job on the third poll, and stopped at the next empty poll
    assert pauses == [1.0, 2.0]
    assert summary.jobs_received == 1
    assert summary.executions_started == 1
    assert summary.polls == 4


def test_patience_is_spent_only_when_nothing_came(
    jobs: CodePipelineJobs,
    starter: ExecutionStarter,
    create_job: Callable[..., str],
) -> None:
    # Given a job that is pollable at once
    create_job()
    pauses: list[float] = []

    summary = poll_and_dispatch(
        [REGISTERED],
        jobs,
        starter,
        batch_size=10,
        time_left=lambda: 30.0,
        patience=(1.0, 2.0),
        sleep=pauses.append,
    )

    # Then no pause: the empty poll after a job means the queue is drained
    assert pauses == []
    assert summary.jobs_received == 1


def test_patience_never_outlasts_the_time_budget(
    jobs: CodePipelineJobs, starter: ExecutionStarter
) -> None:
    pauses: list[float] = []

    summary = poll_and_dispatch(
        [REGISTERED],
        jobs,
        starter,
        batch_size=10,
        time_left=lambda: 3.0,
        patience=(1.0, 4.0),
        sleep=pauses.append,
    )

    assert pauses == [1.0]  # a 4 s pause does not fit in the 3 s left
    assert summary.polls == 2


class _ScriptedJobs:
    """An in-memory stand-in for CodePipelineJobs: hands out scripted batches, then nothing."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches

    def poll(self, action_type: ActionType, max_batch_size: int) -> list[dict[str, Any]]:
        if not self.batches:
            return []
        batch = self.batches.pop(0)
        if isinstance(batch, Exception):
            raise batch
        return list(batch)


def test_an_unreadable_job_does_not_block_the_rest_of_the_batch(
    jobs: CodePipelineJobs, starter: ExecutionStarter, create_job: Callable[..., str]
) -> None:
    # Given a batch whose first job lacks its data, followed by a real job
    create_job()
    (good,) = jobs.poll(REGISTERED.action_type, 1)
    scripted = _ScriptedJobs([[{"id": "broken", "nonce": "1"}, good]])

    summary = poll_and_dispatch(
        [REGISTERED],
        scripted,
        starter,
        batch_size=10,
        time_left=lambda: 30.0,  # type: ignore[arg-type]
    )

    # Then the good job still got its execution
    assert (summary.jobs_received, summary.start_failures, summary.executions_started) == (2, 1, 1)


def test_codepipeline_unavailable_for_one_action_type_does_not_stop_the_others(
    starter: ExecutionStarter, create_job: Callable[..., str], jobs: CodePipelineJobs
) -> None:
    from worker.failures import ServiceUnavailable

    create_job()
    (good,) = jobs.poll(REGISTERED.action_type, 1)
    other = RegisteredActionType(
        action_type=ActionType(category="Build", provider="Travis", version="1"),
        provider="travis",
        secret_properties=frozenset({"APIToken"}),
    )
    scripted = _ScriptedJobs([ServiceUnavailable("throttled"), [good]])

    summary = poll_and_dispatch(
        [other, REGISTERED],
        scripted,
        starter,
        batch_size=10,
        time_left=lambda: 30.0,  # type: ignore[arg-type]
    )

    assert summary.poll_failures == 1
    assert summary.executions_started == 1


def test_a_deleted_action_type_is_counted_and_the_others_still_served(
    sfn: Any,
    state_machine_arn: str,
    starter: ExecutionStarter,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    emulator: CodePipelineEmulator,
) -> None:
    # Given a deployment serving two action types, one of them deleted in CodePipeline
    deleted = RegisteredActionType(
        ActionType("Build", "Travis", "1"), "travis", frozenset({"APIToken"})
    )
    emulator.register_action_type(deleted.action_type.as_api())
    emulator.delete_action_type(deleted.action_type.as_api())
    job_id = create_job()

    # When the poller runs
    summary = _poll(jobs, starter, registered=[deleted, REGISTERED])

    # Then the deleted type is counted once (not retried, not a poll failure) and ours is served
    assert summary.unknown_action_types == 1
    assert summary.poll_failures == 0
    assert summary.executions_started == 1
    codes = [c.error_code for c in emulator.calls("PollForJobs")]
    assert codes[0] == "ActionTypeNotFoundException"
    assert set(codes[1:]) == {None}
    (execution,) = _executions(sfn, state_machine_arn).values()
    assert execution["input"]["jobId"] == job_id


def test_an_event_poll_is_patient_for_about_thirty_seconds(
    jobs: CodePipelineJobs, starter: ExecutionStarter, emulator: CodePipelineEmulator
) -> None:
    # Given the handler's patience after an "action started" event, and a job that never appears
    from worker.handlers.poller import EVENT_PATIENCE_SECONDS

    pauses: list[float] = []

    summary = poll_and_dispatch(
        [REGISTERED],
        jobs,
        starter,
        batch_size=10,
        time_left=lambda: 40.0,
        patience=EVENT_PATIENCE_SECONDS,
        sleep=pauses.append,
    )

    # Then it paused through the whole patience (about 30 s), polling after each pause
    assert pauses == list(EVENT_PATIENCE_SECONDS)
    assert 25 <= sum(pauses) <= 35
    assert summary.polls == len(EVENT_PATIENCE_SECONDS) + 1
    assert len(emulator.calls("PollForJobs")) == summary.polls
    assert summary.jobs_received == 0


def test_a_job_pollable_after_a_delay_is_found_within_the_patience(
    jobs: CodePipelineJobs,
    starter: ExecutionStarter,
    create_job: Callable[..., str],
    emulator: CodePipelineEmulator,
) -> None:
    # Given CodePipeline makes the job pollable 7 s after its STARTED event (emulator clock
    # moved by the injected sleep)
    from worker.handlers.poller import EVENT_PATIENCE_SECONDS

    now = [0.0]
    emulator.timing.now = lambda: now[0]  # type: ignore[method-assign]
    emulator.pollable_delay_seconds = 7.0
    create_job()
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    summary = poll_and_dispatch(
        [REGISTERED],
        jobs,
        starter,
        batch_size=10,
        time_left=lambda: 40.0,
        patience=EVENT_PATIENCE_SECONDS,
        sleep=sleep,
    )

    # Then it paused 1 + 2 + 3 + 4 s, found the job, and stopped at the next empty poll
    assert pauses == [1.0, 2.0, 3.0, 4.0]
    assert summary.executions_started == 1


def _one_poll() -> Callable[[], float]:
    left = iter([30.0])
    return lambda: next(left, 0.0)


def test_each_hand_out_of_a_job_gets_its_own_execution(
    sfn: Any,
    state_machine_arn: str,
    starter: ExecutionStarter,
    jobs: CodePipelineJobs,
    create_job: Callable[..., str],
    emulator: CodePipelineEmulator,
) -> None:
    # Given a job handed out again (not acknowledged in time: a new nonce)
    emulator.redelivery_timeout_seconds = 0
    job_id = create_job()
    # (one poll each: with no redelivery timeout every poll hands the job out again)
    first = _poll(jobs, starter, time_left=_one_poll())
    second = _poll(jobs, starter, time_left=_one_poll())

    # Then both hand-outs have their execution, named by their nonce; the claim decides
    assert (first.executions_started, second.executions_started) == (1, 1)
    assert set(_executions(sfn, state_machine_arn)) == {
        execution_name(job_id, nonce) for nonce in emulator.job(job_id).nonces
    }
    assert len(emulator.job(job_id).nonces) == 2
