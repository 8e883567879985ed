"""Seeded, switchable fault injection for local runs (soak and fault tests).

Faults act where they would in AWS, never inside the worker's own logic:
  - Travis: what the real Travis (or a proxy in front of it) does when it goes wrong, drawn from the
    Travis fake's `REAL_FAILURE_MODES` (500 from the error handler, plain-text 429 "Retry later",
    a router's 503 page, connection resets, POSTs that create the request but lose the answer,
    answers slower than the client's 20 s read timeout, truncated bodies), all in virtual seconds
    of the run's clock;
  - Travis's request processing: each repository processes its requests fast (seconds) or slowly
    (minutes), so a lost create answer meets a request that is still pending when the retried
    submit looks for it;
  - CodePipeline: ThrottlingException on any call (the job emulator's throttle rate);
  - Lambda: a step that crashes or times out *after* its side effect, so Step Functions retries it
    (once per job and step: a step that always crashed would be a bug, not a fault);
  - the poller dying between StartExecution calls (the rest of its batch is handed out again);
  - EventBridge delivering the STARTED event twice, and two pollers sweeping at once.

Time: the fake's `Fault.delay` is virtual. The one real-time figure left is the client's read
timeout (requests counts real seconds): it is set to `CLIENT_READ_TIMEOUT` virtual seconds on the
run's clock, so a 25-second answer still outlasts a 20-second timeout.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from unittest import mock

from local.codepipeline import ActionRun
from local.runner import DeployedFunction, LocalWorker
from local.travis import KINDS, REAL_FAILURE_MODES, Fault, RepoScript, TravisFake

CLIENT_READ_TIMEOUT = 20.0  # virtual seconds: worker.providers.travis.client.READ_TIMEOUT
SLOW_ANSWER = CLIENT_READ_TIMEOUT + 5.0  # virtual seconds
# Request processing (gatekeeper) delays, virtual seconds: fast, and slow enough that a submit
# retried 30 s after a lost answer finds the request still pending (several looks).
FAST_PROCESSING = (1.0, 5.0)
SLOW_PROCESSING = (60.0, 240.0)
# The Travis menu: the fake's real failure modes, plus lost create answers once more (the fault
# that can make a duplicate build; it meets fast and slow processing alike).
TRAVIS_FAULTS: tuple[Fault, ...] = (
    *REAL_FAILURE_MODES,
    Fault(drop=True, process_first=True),
    Fault(delay=SLOW_ANSWER, drop=True, process_first=True),  # acted, then silence past timeout
)


class SimulatedLambdaTimeout(Exception):
    """Raised after a step's side effect; the runner reports it as Lambda's timeout error."""

    error_type = "Sandbox.Timedout"


class SimulatedPollerCrash(RuntimeError):
    """The poller died after starting an execution, before finishing its batch."""


def fault_kind(label: str, kind: str) -> str:
    """A readable name for a Travis fault as the fake recorded it (`RecordedCall.fault`)."""
    lost = "process_first" in label
    if "drop" in label:
        name = "lost answer" if lost else "connection reset"
    elif "malformed" in label:
        name = label.split("malformed=")[1].split(",", maxsplit=1)[0] + " body"
    elif "status=" in label:
        name = "HTTP " + label.split("status=")[1].split(",", maxsplit=1)[0]
        name += " after acting" if lost else ""
    else:
        name = "slow answer" + (" after acting" if lost else "")
    if "delay=" in label and "drop" in label:
        name = "slow " + name
    return f"travis {name} ({kind})"


def travis_faults(travis: TravisFake) -> dict[str, int]:
    """The faults a Travis fake injected, by kind."""
    return dict(Counter(fault_kind(c.fault, c.kind) for c in travis.calls if c.fault))


@dataclass
class FaultPlan:
    """Which faults to inject, at what rate, from which seed."""

    rate: float = 0.1
    seed: int = 7
    travis: bool = True
    slow_processing: float = 0.25  # share of repositories that process requests slowly
    codepipeline_throttling: bool = True
    lambda_crashes: bool = True
    poller_crashes: bool = True
    duplicate_events: bool = True
    concurrent_sweepers: int = 2
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _crashed: set[tuple[str, str]] = field(default_factory=set, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def count(self, kind: str, times: int = 1) -> None:
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + times

    def script(self, script: RepoScript) -> RepoScript:
        """A repository's script with its request processing delay drawn (fast or slow)."""
        if script.processing_delay is None:
            return script
        with self._lock:
            slow = self._rng.random() < self.slow_processing
            low, high = SLOW_PROCESSING if slow else FAST_PROCESSING
            delay = round(self._rng.uniform(low, high), 1)
        self.count("travis slow request processing" if slow else "travis fast request processing")
        return replace(script, processing_delay=delay)

    def injected(self, travis: TravisFake | None = None) -> dict[str, int]:
        """What was injected, by kind (Travis faults as the fake recorded them)."""
        counts = Counter(self.counts)
        if travis is not None:
            counts.update(travis_faults(travis))
        return dict(sorted(counts.items()))

    @contextmanager
    def applied(self, worker: LocalWorker) -> Iterator[None]:
        """Install the plan on a running local worker; removed on exit."""
        rng = random.Random(self.seed)
        if self.travis:
            worker.travis.random_faults(
                self.rate, kinds=KINDS, seed=self.seed, faults=TRAVIS_FAULTS
            )
        if self.codepipeline_throttling:
            worker.emulator.throttle_rate = self.rate
        if self.lambda_crashes:
            worker.after_invoke.append(self._crash_after_side_effect(rng))
        if self.duplicate_events:
            worker.emulator.add_action_listener(self._deliver_twice(worker, rng))
        with ExitStack() as stack:
            # requests' read timeout is real seconds: 20 virtual seconds of the run's clock
            stack.enter_context(
                mock.patch(
                    "worker.providers.travis.client.READ_TIMEOUT",
                    worker.clock.real_seconds(CLIENT_READ_TIMEOUT),
                )
            )
            if self.poller_crashes:
                stack.enter_context(self._crashing_poller(rng))
            try:
                yield
            finally:
                worker.travis.random_faults(0)
                worker.emulator.throttle_rate = 0.0

    def _crash_after_side_effect(self, rng: random.Random) -> Any:
        def hook(function: DeployedFunction, event: dict[str, Any], result: Any) -> None:
            if not isinstance(event.get("state"), dict):
                return  # the poller, the reaper, the abandon handler: not a step
            key = (str(event["state"].get("jobId")), function.logical_id)
            with self._lock:
                crash = key not in self._crashed and rng.random() < self.rate
                if crash:
                    self._crashed.add(key)
            if crash:
                self.count("lambda crash after side effect")
                raise SimulatedLambdaTimeout(
                    f"Task timed out after {function.timeout_seconds}.00 seconds"
                )

        return hook

    def _deliver_twice(self, worker: LocalWorker, rng: random.Random) -> Any:
        def listener(state: str, run: ActionRun) -> None:
            with self._lock:
                twice = state == "STARTED" and rng.random() < 0.5
            if twice:
                self.count("duplicate STARTED event")
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
                plan.count("poller crash")
                raise SimulatedPollerCrash("poller died after StartExecution")
            return started

        return mock.patch.object(ExecutionStarter, "start", start)
