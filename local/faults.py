"""Seeded, switchable fault injection for local runs (soak and fault tests).

Faults act where they would in AWS, never inside the worker's own logic:
  - Travis: 5xx, 429, dropped connections, timeouts, malformed bodies, and POSTs that create the
    request but lose the answer (the Travis fake's seeded random mode);
  - CodePipeline: ThrottlingException on any call (the job emulator's throttle rate);
  - Lambda: a step that crashes or times out *after* its side effect, so Step Functions retries it
    (once per job and step: a step that always crashed would be a bug, not a fault);
  - the poller dying between StartExecution calls (the rest of its batch is handed out again);
  - EventBridge delivering the STARTED event twice, and two pollers sweeping at once.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from local.codepipeline_emulator import ActionRun
from local.runner import DeployedFunction, LocalWorker
from local.travis_fake import RANDOM_FAULTS, Fault

# Real-time figures, compressed by the run's time scale like every other wait: an answer slower
# than the client's read timeout (the client gives up, Travis still creates the request) but
# faster than the state machine's first submit retry (30 s), as in AWS.
CLIENT_READ_TIMEOUT_SECONDS = 20.0
SLOW_ANSWER_SECONDS = 25.0


class SimulatedLambdaTimeout(Exception):
    """Raised after a step's side effect; the runner reports it as Lambda's timeout error."""

    error_type = "Sandbox.Timedout"


class SimulatedPollerCrash(RuntimeError):
    """The poller died after starting an execution, before finishing its batch."""


@dataclass
class FaultPlan:
    """Which faults to inject, at what rate, from which seed."""

    rate: float = 0.1
    seed: int = 7
    travis: bool = True
    codepipeline_throttling: bool = True
    lambda_crashes: bool = True
    poller_crashes: bool = True
    duplicate_events: bool = True
    concurrent_sweepers: int = 2
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _crashed: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    @contextmanager
    def applied(self, worker: LocalWorker) -> Iterator[None]:
        """Install the plan on a running local worker; removed on exit."""
        rng = random.Random(self.seed)
        scale = worker.time_scale
        if self.travis and scale <= 0:
            raise ValueError("Travis timeouts need a time scale > 0 to keep their real ordering")
        if self.travis:
            # plus answers slower than the client waits for (timeouts)
            menu = [*RANDOM_FAULTS, Fault(delay=SLOW_ANSWER_SECONDS * scale)]
            worker.travis.random_faults(self.rate, seed=self.seed, faults=menu)
        if self.codepipeline_throttling:
            worker.emulator.throttle_rate = self.rate
        if self.lambda_crashes:
            worker.after_invoke.append(self._crash_after_side_effect(rng))
        if self.duplicate_events:
            worker.emulator.add_action_listener(self._deliver_twice(worker, rng))
        patches = [
            mock.patch(
                "worker.providers.travis.client.READ_TIMEOUT", CLIENT_READ_TIMEOUT_SECONDS * scale
            )
        ]
        if self.poller_crashes:
            patches.append(self._crashing_poller(rng))
        with ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            yield
        worker.travis.random_faults(0)
        worker.emulator.throttle_rate = 0.0

    def _crash_after_side_effect(self, rng: random.Random) -> Any:
        def hook(function: DeployedFunction, event: dict[str, Any], result: Any) -> None:
            if function.handler.endswith("poller.handler"):
                return
            key = (str(event.get("state", {}).get("jobId")), function.logical_id)
            with self._lock:
                crash = key not in self._crashed and rng.random() < self.rate
                if crash:
                    self._crashed.add(key)
            if crash:
                self.count("lambda_crash_after_side_effect")
                raise SimulatedLambdaTimeout(
                    f"Task timed out after {function.timeout_seconds}.00 seconds"
                )

        return hook

    def _deliver_twice(self, worker: LocalWorker, rng: random.Random) -> Any:
        def listener(state: str, run: ActionRun) -> None:
            if state == "STARTED" and rng.random() < 0.5:
                self.count("duplicate_event")
                worker.poll(worker.emulator.eventbridge_event(run, "STARTED"))

        return listener

    def _crashing_poller(self, rng: random.Random) -> Any:
        from worker.poller import ExecutionStarter

        original = ExecutionStarter.start
        plan = self

        def start(starter: Any, job_id: str, nonce: str, execution_input: dict[str, Any]) -> bool:
            started = original(starter, job_id, nonce, execution_input)
            with plan._lock:
                crash = rng.random() < plan.rate
            if crash:
                plan.count("poller_crash")
                raise SimulatedPollerCrash("poller died after StartExecution")
            return started

        return mock.patch.object(ExecutionStarter, "start", start)
