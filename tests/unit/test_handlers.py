"""The Lambda handlers as Lambda calls them: environment, context, event; secrets never logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.codepipeline_emulator import CodePipelineEmulator
from local.travis_fake import TravisFake, token_fingerprint
from tests.unit.support import (
    JOB_TOKEN,
    PIPELINE,
    SLUG,
    WORKER_TOKEN,
    LambdaContext,
    worker_env,
)
from worker.failures import ConfigurationInvalid
from worker.handlers import poller, steps
from worker.settings import SettingsError

SCHEDULE = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Step Functions and Secrets Manager in moto (CodePipeline is the emulator, not moto)."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture
def env(
    aws: None, travis: TravisFake, emulator: CodePipelineEmulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The stack's environment, with a real state machine and token secret (in moto)."""
    values = worker_env(travis.base_url, emulator.endpoint_url)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    values["STATE_MACHINE_ARN"] = sfn.create_state_machine(
        name="TravisWorker",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/TravisWorkerStateMachine",
    )["stateMachineArn"]
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    values["TRAVIS_TOKEN_SECRET_ARN"] = secrets.create_secret(
        Name="travis-token", SecretString=json.dumps({"token": WORKER_TOKEN})
    )["ARN"]
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def logs(
    worker_logs: io.StringIO, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Callable[[], str]:
    """Everything written to logs and standard streams during the test."""
    caplog.set_level(logging.INFO)  # the Lambda runtime's level for other libraries' loggers

    def text() -> str:
        captured = capsys.readouterr()
        return worker_logs.getvalue() + caplog.text + captured.out + captured.err

    return text


def _start_executions(env: dict[str, str]) -> list[dict[str, Any]]:
    """Run the poller once; return the inputs of the executions it started, oldest first."""
    summary = poller.handler(SCHEDULE, LambdaContext("poller"))
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    listed = sfn.list_executions(stateMachineArn=env["STATE_MACHINE_ARN"])["executions"]
    inputs = [
        json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
        for e in sorted(listed, key=lambda e: e["startDate"])
    ]
    return inputs[len(inputs) - summary["executions_started"] :]


def _run(handler: Callable[..., Any], state: dict[str, Any]) -> Any:
    return handler({"state": state, "execution": "exec-1"}, LambdaContext(handler.__name__))


def _phase_one(state: dict[str, Any]) -> dict[str, Any]:
    """Claim, Submit, Resolve ⇄ Wait, PublishLink, as the state machine runs them."""
    state = {**state, "claim": _run(steps.claim, state)}
    assert state["claim"] == {"claimed": True}
    state["submission"] = _run(steps.submit, state)
    state["resolution"] = {}
    while not state["resolution"].get("ready"):
        state["resolution"] = _run(steps.resolve, state)
    state["publication"] = _run(steps.publish, state)
    return state


def _phase_two(state: dict[str, Any]) -> dict[str, Any]:
    """Claim, Watch ⇄ Wait, ReportResult."""
    state = {**state, "claim": _run(steps.claim, state)}
    state["watch"] = {}
    while not state["watch"].get("finished"):
        state["watch"] = _run(steps.watch, state)
    state["reported"] = _run(steps.report, state)
    return state


def test_an_action_run_through_every_handler_never_logs_a_secret(
    env: dict[str, str],
    travis: TravisFake,
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    logs: Callable[[], str],
) -> None:
    # Given a pipeline action with its own APIToken
    job_id = create_job()

    # When the poller and every step handler run as EventBridge and the state machine call them
    (first,) = _start_executions(env)
    published = _phase_one(first)
    (second,) = _start_executions(env)
    reported = _phase_two(second)

    # Then the action run succeeded on one Travis build, requested with the job's token
    run = emulator.run_for_job(job_id)
    assert run.status == "Succeeded"
    assert reported["reported"]["result"] == "success"
    assert second["continuation"]["build_id"] == published["publication"]["buildId"]
    (request,) = travis.requests_for(SLUG)
    assert request.token_sha == token_fingerprint(JOB_TOKEN)
    # and no secret, credential or raw event reached any log line
    text = logs()
    assert "Claimed job" in text  # the capture works
    secrets = [JOB_TOKEN, WORKER_TOKEN]
    for job in emulator.jobs():
        for credentials in job.issued_credentials:
            secrets.extend(credentials.values())
    assert [s for s in secrets if s in text] == []
    assert PIPELINE not in text
    assert run.action_execution_id not in text
    assert '"nonce"' not in text


def test_the_workers_secret_is_read_when_the_action_has_no_token(
    env: dict[str, str],
    travis: TravisFake,
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    logs: Callable[[], str],
) -> None:
    # Given an action without APIToken: the token comes from Secrets Manager at call time
    job_id = create_job(api_token=None)

    # When phase 1 runs
    (state,) = _start_executions(env)
    _phase_one(state)

    # Then Travis got the worker's token, and no log has it
    assert {c.token_sha for c in travis.calls} == {token_fingerprint(WORKER_TOKEN)}
    assert len(emulator.run_for_job(job_id).continuation_tokens) == 1
    assert WORKER_TOKEN not in logs()


def test_report_error_handler_never_echoes_the_cause(
    env: dict[str, str],
    emulator: CodePipelineEmulator,
    create_job: Callable[..., str],
    logs: Callable[[], str],
) -> None:
    # Given a claimed job whose step crashed with a message holding the token
    job_id = create_job()
    (state,) = _start_executions(env)
    state["claim"] = _run(steps.claim, state)
    cause = {"errorMessage": f"boom {JOB_TOKEN}", "errorType": "RuntimeError"}
    state["error"] = {"Error": "RuntimeError", "Cause": json.dumps(cause)}

    # When the catch-all handler runs
    result = _run(steps.report_error, state)

    # Then the job failed without the message, and nothing logged it either
    assert result["type"] == "JobFailed"
    failure = emulator.run_for_job(job_id).failure_details
    assert failure is not None
    assert JOB_TOKEN not in failure["message"]
    assert "exec-1" in failure["message"]
    assert JOB_TOKEN not in logs()


def test_poller_handler_on_an_event_for_another_action_polls_nothing(
    env: dict[str, str], emulator: CodePipelineEmulator
) -> None:
    event = {
        "detail-type": "CodePipeline Action Execution State Change",
        "detail": {"type": {"owner": "AWS", "category": "Build", "provider": "CodeBuild"}},
    }

    summary = poller.handler(event, LambdaContext("poller"))

    assert summary["polls"] == 0
    assert emulator.calls("PollForJobs") == []


def test_poller_handler_keeps_a_safety_margin_before_its_timeout(
    env: dict[str, str], emulator: CodePipelineEmulator, create_job: Callable[..., str]
) -> None:
    # Given a job, and a poller invoked with less time left than its safety margin
    create_job()

    # When it runs
    summary = poller.handler(SCHEDULE, LambdaContext("poller", timeout_seconds=5))

    # Then it does not start polling work it could not finish
    assert summary["polls"] == 0
    assert emulator.calls("PollForJobs") == []


def test_a_step_for_an_action_type_not_served_is_a_configuration_error(
    env: dict[str, str], create_job: Callable[..., str]
) -> None:
    create_job()
    (state,) = _start_executions(env)
    state["actionType"] = {**state["actionType"], "version": "9"}

    with pytest.raises(ConfigurationInvalid, match="Test/Travis/9"):
        _run(steps.submit, state)


@pytest.mark.parametrize(
    "name", ["ACTION_TYPES", "TRAVIS_DEFAULT_ENDPOINT", "RESOLVE_WAIT_SECONDS"]
)
def test_a_handler_fails_fast_on_a_missing_variable(
    env: dict[str, str],
    create_job: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    travis: TravisFake,
    name: str,
) -> None:
    # Given a deployment without one variable
    create_job()
    (state,) = _start_executions(env)
    monkeypatch.delenv(name)

    # Then the step fails naming it, before anything reaches Travis
    with pytest.raises(SettingsError, match=name):
        _run(steps.resolve, {**state, "submission": {"requestId": "1", "submittedAt": 0}})
    assert travis.calls == []
