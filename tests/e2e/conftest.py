"""Fixtures for the end-to-end suite: the synthesized stack run locally on the emulators."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from local.codepipeline_emulator import ActionRun, CodePipelineEmulator
from local.runner import LocalWorker, synthesize
from local.travis_fake import DEFAULT_TOKEN, TravisFake

RUN_TIMEOUT = 30.0
SWEEP_INTERVAL = 0.05
CONFIG = {"Owner": "octo-org", "ProjectName": "web-app", "Branch": "main"}
SLUG = "octo-org/web-app"
REVISION = "3f2a9c1d0b7e4a6f8c5d2e1f0a9b8c7d6e5f4a3b"


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """The stack, synthesized once per test process (cdk-nag included)."""
    return synthesize()


@contextmanager
def running_worker(
    template: dict[str, Any],
    *,
    travis: TravisFake | None = None,
    emulator: CodePipelineEmulator | None = None,
    deliver_events: bool = True,
    sweep: bool = True,
) -> Iterator[LocalWorker]:
    worker = LocalWorker(template, travis=travis or TravisFake(auto_repos=True), emulator=emulator)
    with worker:
        if deliver_events:
            worker.emulator.add_action_listener(worker.on_action_started)
        if sweep:
            worker.start_sweeper(SWEEP_INTERVAL)
        yield worker


@pytest.fixture
def worker_for(template: dict[str, Any]) -> Iterator[Callable[..., LocalWorker]]:
    """Start a local worker with the given fakes; stopped at the end of the test."""
    stack: list[Any] = []

    def start(**kwargs: Any) -> LocalWorker:
        context = running_worker(template, **kwargs)
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
    **kwargs: Any,
) -> ActionRun:
    """One pipeline action run, start to final result."""
    run_id = worker.start_action(configuration or CONFIG, revision=revision, **kwargs)
    (run,) = worker.wait_for_runs([run_id], timeout=RUN_TIMEOUT)
    worker.wait_idle(timeout=10)
    return run


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
    "REVISION",
    "SLUG",
    "everything_an_operator_sees",
    "run_action",
]
