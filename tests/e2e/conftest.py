"""Fixtures for the end-to-end suite: the synthesized stack run locally on the emulators.

Every run has one virtual clock (local.clock) shared by the Travis fake, the CodePipeline emulator,
the state machine's waits and the worker: `TIME_SCALE` real seconds per virtual second.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from local.clock import VirtualClock
from local.codepipeline import ActionRun, CodePipelineEmulator
from local.runner import REDELIVERY_SECONDS, LocalWorker, synthesize
from local.travis import DEFAULT_TOKEN, RepoScript, TravisFake

TIME_SCALE = 0.01
RUN_TIMEOUT = 60.0  # real seconds
SWEEP_INTERVAL = 0.05
CONFIG = {"Owner": "octo-org", "ProjectName": "web-app", "Branch": "main"}
SLUG = "octo-org/web-app"
REVISION = "3f2a9c1d0b7e4a6f8c5d2e1f0a9b8c7d6e5f4a3b"
# A quick Travis: requests processed in 2 s, builds of two 30-second jobs (virtual seconds).
QUICK = RepoScript(processing_delay=2.0, queue_delay=3.0, job_duration=30.0)


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """The stack, synthesized once per test process (cdk-nag included)."""
    return synthesize()


@pytest.fixture(scope="session")
def push_template() -> dict[str, Any]:
    """The stack with push completion (Travis webhooks) enabled."""
    return synthesize({"webhooks": True})


def quick_travis(clock: VirtualClock, **kwargs: Any) -> TravisFake:
    travis = TravisFake(auto_repos=True, clock=clock, **kwargs)
    travis.auto_template = QUICK
    return travis


@contextmanager
def running_worker(
    template: dict[str, Any],
    *,
    travis: TravisFake | None = None,
    emulator: CodePipelineEmulator | None = None,
    clock: VirtualClock | None = None,
    deliver_events: bool = True,
    sweep: bool = True,
    **worker_options: Any,
) -> Iterator[LocalWorker]:
    clock = clock or VirtualClock(TIME_SCALE)
    worker = LocalWorker(
        template,
        clock=clock,
        travis=travis or quick_travis(clock),
        emulator=emulator
        or CodePipelineEmulator(redelivery_timeout_seconds=REDELIVERY_SECONDS, clock=clock),
        **worker_options,
    )
    with worker:
        if deliver_events:
            worker.emulator.add_action_listener(worker.on_action_started)
        if sweep:
            worker.start_sweeper(SWEEP_INTERVAL)
        yield worker


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(TIME_SCALE)


@pytest.fixture
def worker_for(template: dict[str, Any]) -> Iterator[Callable[..., LocalWorker]]:
    """Start a local worker with the given fakes; stopped at the end of the test."""
    stack: list[Any] = []

    def start(**kwargs: Any) -> LocalWorker:
        context = running_worker(kwargs.pop("template", template), **kwargs)
        worker = context.__enter__()
        stack.append(context)
        return worker

    yield start
    while stack:
        stack.pop().__exit__(None, None, None)


def run_action(
    worker: LocalWorker,
    configuration: dict[str, str] | None = None,
    revision: str | None = REVISION,
    timeout: float = RUN_TIMEOUT,
    **kwargs: Any,
) -> ActionRun:
    """One pipeline action run, start to final result."""
    run_id = worker.start_action(configuration or CONFIG, revision=revision, **kwargs)
    (run,) = worker.wait_for_runs([run_id], timeout=timeout)
    worker.wait_idle(timeout=10)
    return run


def end_states(worker: LocalWorker, run: ActionRun) -> list[str]:
    """The end state of each execution of an action run, in job order."""
    states = []
    for job_id in run.job_ids:
        for execution in worker.executions():
            if execution["name"].startswith(job_id) and execution["status"] != "RUNNING":
                states.append(
                    f"{execution['status']}:{worker.end_state(execution['executionArn'])}"
                )
    return states


def everything_an_operator_sees(worker: LocalWorker) -> str:
    """Execution inputs, outputs and histories, plus captured logs, as one text to scan."""
    parts = [worker.logs]
    for execution in worker.executions():
        arn = execution["executionArn"]
        parts.append(json.dumps(worker.describe(arn), default=str))
        parts.append(json.dumps(worker.history(arn), default=str))
    return "\n".join(parts)


__all__ = [
    "CONFIG",
    "DEFAULT_TOKEN",
    "QUICK",
    "REVISION",
    "SLUG",
    "TIME_SCALE",
    "end_states",
    "everything_an_operator_sees",
    "quick_travis",
    "run_action",
]
