"""Shared fixtures: the Travis fake, the CodePipeline job-API emulator, settings and fakes' wiring.

Unit tests reach nothing but 127.0.0.1: a guard refuses any other connection, so a test that would
talk to a real service fails loudly instead of hanging or leaking.

Time: the Travis fake and the worker (`worker.clock`) share one `local.clock.VirtualClock` that is
all but frozen (scale 1e6: a real second is a microsecond of virtual time); tests move it by hand
with `clock.advance(seconds)`, so "Travis processes the request 5 s later" is deterministic.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters
from botocore.retries import standard

from local.clock import VirtualClock
from local.codepipeline import CodePipelineEmulator
from local.travis import ALL, RepoScript, TravisFake
from tests.unit.support import (
    ACTION_TYPE_API,
    CONFIGURATION,
    JOB_TOKEN,
    REVISION,
    SLUG,
    WORKER_TOKEN,
    ActionStatus,
    SecretStore,
    Sleeps,
    StubRegistry,
    VirtualClockView,
    botocore_client,
    make_settings,
)
from worker import aws
from worker import clock as worker_clock
from worker.codepipeline import CodePipelineJobs
from worker.observability import logger
from worker.providers.travis.provider import TravisProvider
from worker.providers.travis.token import TokenSource
from worker.retry import RetryBudget
from worker.settings import Settings

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_real_connect = socket.socket.connect


def _loopback_only(sock: socket.socket, address: Any) -> Any:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
        raise ConnectionRefusedError(f"unit tests may not connect to {address[0]}")
    return _real_connect(sock, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True)
def _instant_botocore_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's retry decisions stay real; only its sleeps between attempts are skipped.
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # Clients and secrets are cached per container in production; tests must not share them.
    aws._cached_client.cache_clear()
    parameters.clear_caches()
    yield
    aws._cached_client.cache_clear()
    parameters.clear_caches()


def _stop_in_background(server: TravisFake | CodePipelineEmulator) -> None:
    # Stopping waits out the server's poll interval (tens of ms, every test); each test gets a
    # fresh server on its own port, so nothing needs to wait for the old one to go away.
    threading.Thread(target=server.stop, daemon=True).start()


@pytest.fixture
def vclock() -> Iterator[VirtualClock]:
    """The one virtual clock of a test, all but frozen, installed as the worker's clock."""
    virtual = VirtualClock(1e6, start=1_700_000_000.0)
    worker_clock.use(virtual.now, virtual.advance)
    yield virtual
    worker_clock.reset()


@pytest.fixture
def travis(vclock: VirtualClock) -> Iterator[TravisFake]:
    """Travis on 127.0.0.1 with our repository; both tokens may use it; on the test's clock."""
    fake = TravisFake(
        {SLUG: RepoScript()}, tokens={JOB_TOKEN: ALL, WORKER_TOKEN: ALL}, clock=vclock
    ).start()
    yield fake
    _stop_in_background(fake)


@pytest.fixture
def emulator() -> Iterator[CodePipelineEmulator]:
    emu = CodePipelineEmulator(redelivery_timeout_seconds=60, seed=3).start()
    emu.register_action_type(ACTION_TYPE_API)
    yield emu
    _stop_in_background(emu)


@pytest.fixture
def codepipeline_client(emulator: CodePipelineEmulator) -> Any:
    """A real boto3 CodePipeline client talking to the emulator over HTTP."""
    return botocore_client("codepipeline", emulator.endpoint_url)


@pytest.fixture
def jobs(codepipeline_client: Any) -> CodePipelineJobs:
    return CodePipelineJobs(codepipeline_client)


@pytest.fixture
def create_job(emulator: CodePipelineEmulator) -> Callable[..., str]:
    """Start an action run in CodePipeline; returns its first job id."""

    def create(
        configuration: dict[str, str] | None = None,
        *,
        api_token: str | None = JOB_TOKEN,
        revision: str | None = REVISION,
        **kwargs: Any,
    ) -> str:
        config = dict(CONFIGURATION if configuration is None else configuration)
        if api_token is not None:
            config["APIToken"] = api_token
        return emulator.create_job(
            ACTION_TYPE_API,
            config,
            pipeline_name="release-pipeline",
            input_revision=revision,
            **kwargs,
        )

    return create


@pytest.fixture
def claim_job(codepipeline_client: Any) -> Callable[[str], dict[str, Any]]:
    """Hand out and acknowledge a job, as a worker that owns it would; returns the job."""

    handed_out: dict[str, dict[str, Any]] = {}  # a poll may hand out more jobs than asked for

    def claim(job_id: str) -> dict[str, Any]:
        if job_id not in handed_out:
            polled = codepipeline_client.poll_for_jobs(
                actionTypeId=ACTION_TYPE_API, maxBatchSize=10
            )
            handed_out.update({j["id"]: dict(j) for j in polled["jobs"]})
        job = handed_out.pop(job_id)
        codepipeline_client.acknowledge_job(jobId=job_id, nonce=job["nonce"])
        return job

    return claim


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def budget(sleeps: Sleeps) -> Callable[[], RetryBudget]:
    """The production retry budget with its sleeps recorded instead of slept."""
    return lambda: RetryBudget(sleep=sleeps)


@pytest.fixture
def clock(vclock: VirtualClock) -> VirtualClockView:
    """The test's clock moved by hand (`clock.now`, `clock.advance(s)`): Travis and the worker
    see the same time."""
    return VirtualClockView(vclock)


@pytest.fixture
def registry() -> StubRegistry:
    """The watch table's abandon marks (no DynamoDB): `registry.mark(run_key)`."""
    return StubRegistry()


@pytest.fixture
def action_status(jobs: CodePipelineJobs, monkeypatch: pytest.MonkeyPatch) -> ActionStatus:
    """What CodePipeline says of the action run (ListActionExecutions), "InProgress" unless a
    test sets `action_status.status`."""
    stub = ActionStatus()
    monkeypatch.setattr(jobs, "action_status", stub)
    return stub


@pytest.fixture
def settings(travis: TravisFake) -> Settings:
    return make_settings(travis.base_url)


@pytest.fixture
def secret() -> SecretStore:
    return SecretStore()


@pytest.fixture
def tokens(jobs: CodePipelineJobs, settings: Settings, secret: SecretStore) -> TokenSource:
    return TokenSource(jobs, settings.token_secret_arn, settings.trusted_endpoints, secret)


@pytest.fixture
def provider(
    settings: Settings,
    tokens: TokenSource,
    budget: Callable[[], RetryBudget],
) -> TravisProvider:
    return TravisProvider(settings, tokens, budget=budget)


@pytest.fixture
def worker_logs() -> Iterator[io.StringIO]:
    """Everything the worker's Powertools logger writes, formatted as in Lambda, at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    std_logger = logging.getLogger(logger.service)
    level = std_logger.level
    std_logger.addHandler(handler)
    std_logger.setLevel(logging.DEBUG)
    yield stream
    std_logger.removeHandler(handler)
    std_logger.setLevel(level)
