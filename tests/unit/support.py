"""Constants and small builders shared by the unit tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.config import Config

from worker.job import ActionType, ExecutionInput, PipelineRef
from worker.settings import RegisteredActionType, Settings, WaitSchedule

OWNER = "octo-org"
PROJECT = "hello.world"
SLUG = f"{OWNER}/{PROJECT}"
ENCODED_SLUG = f"{OWNER}%2F{PROJECT}"
BRANCH = "main"
REVISION = "0123456789abcdef0123456789abcdef01234567"
JOB_TOKEN = "job-api-token-5d1f0c9e"  # the APIToken property of the action
WORKER_TOKEN = "worker-secret-token-a83b27"  # the worker's Secrets Manager token
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:travis-token-AbCdEf"
STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:TravisWorker"
PIPELINE = "release-pipeline"

ACTION_TYPE = ActionType(category="Test", provider="Travis", version="1")
ACTION_TYPE_API = ACTION_TYPE.as_api()
REGISTERED = RegisteredActionType(
    action_type=ACTION_TYPE, provider="travis", secret_properties=frozenset({"APIToken"})
)
CONFIGURATION = {"Owner": OWNER, "ProjectName": PROJECT, "Branch": BRANCH}
RESOLVE_WAIT = WaitSchedule(first=5, factor=1.5, cap=30)
WATCH_WAIT = WaitSchedule(first=15, factor=1.5, cap=120)

_BOTOCORE = botocore.session.get_session()  # one session: loading service models is the slow part


def botocore_client(service: str, endpoint_url: str | None = None, attempts: int = 3) -> Any:
    """A real botocore client with the standard retry mode (backoff made instant by a fixture)."""
    return _BOTOCORE.create_client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def make_settings(endpoint: str, **overrides: Any) -> Settings:
    """Settings as the stack would set them, with Travis at `endpoint`."""
    values: dict[str, Any] = {
        "action_types": (REGISTERED,),
        "token_secret_arn": SECRET_ARN,
        "default_endpoint": endpoint,
        "trusted_endpoints": frozenset({endpoint}),
        "watch_timeout_seconds": 7200,
        "resolve_timeout_seconds": 900,
        "watch_wait": WATCH_WAIT,
        "resolve_wait": RESOLVE_WAIT,
    }
    values.update(overrides)
    return Settings(**values)


def worker_env(travis_endpoint: str, codepipeline_endpoint: str) -> dict[str, str]:
    """The Lambda environment the stack sets, pointed at the local fakes."""
    return {
        "POWERTOOLS_SERVICE_NAME": "codepipeline-travis-worker",
        "POWERTOOLS_METRICS_NAMESPACE": "CodePipelineTravisWorker",
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",  # the handlers must not log events even so
        "AWS_ENDPOINT_URL_CODEPIPELINE": codepipeline_endpoint,
        "ACTION_TYPES": json.dumps(
            [
                {
                    "category": "Test",
                    "provider": "Travis",
                    "version": "1",
                    "implementation": "travis",
                    "secretProperties": ["APIToken"],
                }
            ]
        ),
        "TRAVIS_TOKEN_SECRET_ARN": SECRET_ARN,
        "TRAVIS_DEFAULT_ENDPOINT": travis_endpoint,
        "TRAVIS_TRUSTED_ENDPOINTS": "",
        "WATCH_TIMEOUT_SECONDS": "7200",
        "RESOLVE_TIMEOUT_SECONDS": "900",
        "WATCH_WAIT_SECONDS": "15,1.5,120",
        "RESOLVE_WAIT_SECONDS": "5,1.5,30",
        "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
        "POLL_BATCH_SIZE": "10",
        "POLL_TIME_BUDGET_SECONDS": "40",
    }


def execution_input(
    job_id: str | None = None,
    *,
    configuration: dict[str, str] | None = None,
    revision: str | None = REVISION,
    continuation: dict[str, Any] | None = None,
    nonce: str = "1",
) -> ExecutionInput:
    """A sanitized job as the poller would hand it to an execution."""
    return ExecutionInput(
        job_id=job_id or str(uuid.uuid4()),
        nonce=nonce,
        action_type=ACTION_TYPE,
        pipeline=PipelineRef(
            name=PIPELINE,
            stage="Test",
            action="Travis",
            execution_id="11111111-2222-3333-4444-555555555555",
            action_execution_id="66666666-7777-8888-9999-000000000000",
        ),
        configuration=dict(CONFIGURATION if configuration is None else configuration),
        revision=revision,
        continuation=continuation,
    )


def step_event(job: ExecutionInput, execution: str = "exec-1", **sections: Any) -> dict[str, Any]:
    """The payload the state machine sends a step: the state so far and the execution name."""
    return {"state": {**job.as_dict(), **sections}, "execution": execution}


class Sleeps:
    """An injected sleep that records what it was asked to wait, and waits not at all."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


class ManualClock:
    """A clock moved by hand: timeouts without waiting."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SecretStore:
    """The worker's token secret as the token source reads it (records every read)."""

    def __init__(self, value: str = json.dumps({"token": WORKER_TOKEN})) -> None:
        self.value = value
        self.reads: list[str] = []

    def __call__(self, arn: str) -> str:
        self.reads.append(arn)
        return self.value


@dataclass
class LambdaContext:
    """The parts of the Lambda context the handlers and Powertools read; time runs for real."""

    function_name: str = "worker-step"
    timeout_seconds: float = 60.0
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000)


def run_phase_one(job: Any, provider: Any, settings: Any, clock: Any) -> dict[str, Any]:
    """Run phase 1 up to a resolved build; returns the state sections so far."""
    from worker.build import resolve_build, submit_build
    from worker.step_event import StepEvent

    submission = submit_build(StepEvent.parse(step_event(job)), provider)
    resolution: dict[str, Any] = {}
    while not resolution.get("ready"):
        state = step_event(job, submission=submission, resolution=resolution)
        resolution = resolve_build(StepEvent.parse(state), provider, settings, clock)
    return {"submission": submission, "resolution": resolution}
