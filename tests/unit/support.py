"""Constants and small builders shared by the unit tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.config import Config

from worker.job import ActionType, ExecutionInput, PipelineRef
from worker.settings import RegisteredActionType, Settings, WaitSchedule
from worker.wake import WatchRegistry

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
WATCH_TABLE = "travis-worker-watches"

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
        "TRAVIS_WEB_URL": "https://app.travis-ci.com/github",
        "WATCH_TABLE": WATCH_TABLE,
        "PROGRESS_SECONDS": "300",
        "HAND_OVER_MAX_SECONDS": "1800",
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


def iso_time(epoch: float) -> str:
    """Epoch seconds as Step Functions writes `$$.State.EnteredTime` (ISO 8601, milliseconds)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def step_event(
    job: ExecutionInput,
    execution: str = "exec-1",
    *,
    retries: int | None = None,
    entered_at: float | None = None,
    token: str | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The payload the state machine sends a step: the state so far and the execution name, and
    (when given) `$$.State.RetryCount`, `$$.State.EnteredTime` and the task token."""
    event: dict[str, Any] = {"state": {**job.as_dict(), **sections}, "execution": execution}
    if retries is not None:
        event["retries"] = retries
    if entered_at is not None:
        event["enteredAt"] = iso_time(entered_at)
    if token is not None:
        event["token"] = token
    return event


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


class VirtualClockView:
    """A `local.clock.VirtualClock` seen as a ManualClock: `clock.now` (a float), `clock()`,
    `clock.advance(seconds)`; the Travis fake and `worker.clock` read the same clock."""

    def __init__(self, virtual: Any) -> None:
        self.virtual = virtual

    @property
    def now(self) -> float:
        return float(self.virtual.now())

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.virtual.advance(seconds)


class SecretStore:
    """The worker's token secret as the token source reads it (records every read).

    Called as `reader(arn)` (cached) or `reader(arn, fresh=True)`; `fresh_value` is what a fresh
    read returns (None: the same `value`), e.g. a token stored a moment ago while the cache still
    holds the empty secret.
    """

    def __init__(
        self, value: str = json.dumps({"token": WORKER_TOKEN}), fresh_value: str | None = None
    ) -> None:
        self.value = value
        self.fresh_value = fresh_value
        self.reads: list[str] = []
        self.calls: list[tuple[str, bool]] = []  # (arn, fresh) per read

    def __call__(self, arn: str, *, fresh: bool = False) -> str:
        self.reads.append(arn)
        self.calls.append((arn, fresh))
        if fresh and self.fresh_value is not None:
            return self.fresh_value
        return self.value


class StubRegistry(WatchRegistry):
    """The watch table as submit and watch use it: abandon marks per action run, recorded
    (no DynamoDB; the other operations are not stubbed)."""

    def __init__(self) -> None:  # no table, no clients
        self.marked: set[str] = set()
        self.cleared: list[str] = []
        self.asked: list[str] = []

    def mark(self, run_key: str) -> None:
        self.marked.add(run_key)

    def abandoned(self, run_key: str) -> bool:
        self.asked.append(run_key)
        return run_key in self.marked

    def clear_abandoned(self, run_key: str) -> None:
        self.cleared.append(run_key)
        self.marked.discard(run_key)


class ActionStatus:
    """`CodePipelineJobs.action_status` stubbed: what ListActionExecutions would say."""

    def __init__(self, status: str | None = "InProgress") -> None:
        self.status = status
        self.asked: list[Any] = []

    def __call__(self, pipeline: Any) -> str | None:
        self.asked.append(pipeline)
        return self.status


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


def run_phase_one(
    job: Any,
    provider: Any,
    settings: Any,
    clock: Any,
    *,
    jobs: Any = None,
    registry: Any = None,
    max_looks: int = 50,
) -> dict[str, Any]:
    """Run phase 1 (submit, then resolve until `next` is not park, advancing `clock` by each
    wait); returns the state sections so far. `jobs`/`registry` default to stubs that say the
    run is in progress and not abandoned."""
    from worker.resolve import resolve_build
    from worker.step_event import StepEvent
    from worker.submit import submit_build

    jobs = jobs if jobs is not None else _InProgressJobs()
    registry = registry if registry is not None else StubRegistry()
    submission = submit_build(StepEvent.parse(step_event(job)), provider, registry, jobs)
    resolution: dict[str, Any] = {}
    for _ in range(max_looks):
        state = step_event(job, submission=submission, resolution=resolution)
        resolution = resolve_build(StepEvent.parse(state), provider, settings, jobs)
        if resolution["next"] != "park":
            return {"submission": submission, "resolution": resolution}
        clock.advance(resolution["waitSeconds"])
    raise AssertionError(f"no build after {max_looks} looks: {resolution}")


class _InProgressJobs:
    """CodePipelineJobs where only `action_status` is asked: the run is in progress."""

    action_status: Callable[[Any], str | None] = staticmethod(lambda pipeline: "InProgress")
