"""Drive the local worker (synthesized state machine, real handlers, emulators) and record runs.

Each batch runs several action runs per build length at once on one worker and one virtual clock;
the Travis fake is seeded with each branch's recent builds so the watch schedule knows what to
expect.
"""

from __future__ import annotations

import gc
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import analysis
from local.clock import VirtualClock
from local.codepipeline import CodePipelineEmulator
from local.runner import REDELIVERY_SECONDS, DeployedFunction, LocalWorker
from local.travis import RepoScript, SeedBuild, TravisFake

REVISION = "b" * 40
# The branch's recent builds, as fractions of the expected duration: the schedule drops the two
# extremes, so its window spans ±10 %; each bench build lasts the expected duration ±10 %
# (uniform), so it ends where its branch's builds usually end.
HISTORY_FACTORS = (0.88, 0.9, 0.95, 1.0, 1.05, 1.1, 1.12)
ACTUAL_SPREAD = 0.10
QUEUE_DELAY = 10.0  # virtual seconds from request to the job running
PROCESSING_DELAY = 3.0
TRAVIS_TICK = 0.005  # real seconds between the fake's ticks (webhooks fire on a tick)
STAGGER_S = 0.3  # real seconds between two action runs reaching the action


@dataclass
class RunRecord:
    """One action run, as the bench analyses it."""

    minutes: int
    slug: str
    expected: float
    duration: float  # the build's run time (virtual seconds)
    started: float  # the Travis job started (virtual epoch)
    finished: float  # Travis finished (virtual epoch)
    result_at: float  # the final result reached CodePipeline (virtual epoch)
    result_kind: str
    transitions: int
    invocations: Counter[str]
    looks: list[analysis.Look]
    webhook_at: float | None
    webhook_invocations: int
    executions: int
    scale: float = 0.01


@dataclass
class Batch:
    push: bool
    scale: float
    runs: list[RunRecord] = field(default_factory=list)
    durations_s: dict[str, list[float]] = field(default_factory=dict)  # local, per function
    roles: dict[str, str] = field(default_factory=dict)  # logical id -> role
    idle_poll_s: list[float] = field(default_factory=list)
    real_seconds: float = 0.0
    sweeps: int = 0


def history_for(expected: float) -> list[SeedBuild]:
    return [
        SeedBuild(duration=round(expected * f), finished_ago=3600.0 * (k + 1))
        for k, f in enumerate(HISTORY_FACTORS)
    ]


def run_batch(
    template: dict[str, Any],
    *,
    push: bool,
    minutes: tuple[int, ...],
    per_length: int,
    scale: float,
    seed: int = 7,
    timeout: float = 240.0,
) -> Batch:
    """`per_length` concurrent action runs for each build length, on one worker."""
    rng = random.Random(seed)
    clock = VirtualClock(scale)
    travis = TravisFake(auto_repos=True, clock=clock, tick_seconds=TRAVIS_TICK)
    emulator = CodePipelineEmulator(redelivery_timeout_seconds=REDELIVERY_SECONDS, clock=clock)
    worker = LocalWorker(template, clock=clock, travis=travis, emulator=emulator)
    batch = Batch(push=push, scale=scale)
    planned: dict[str, tuple[int, str, float, float]] = {}
    # What earlier batches and the synth left on the heap is kept out of the collector's full
    # passes: one took 0.4-0.6 s here, which on a compressed clock is 10-30 virtual seconds of
    # standstill (a webhook sent late, a look delayed) that no Lambda, each in its own small
    # process, would see.
    gc.collect()
    gc.freeze()
    began = time.monotonic()
    with worker:
        worker.emulator.add_action_listener(worker.on_action_started)
        worker.start_sweeper(60 * scale)  # the rate(1 minute) rule, on the virtual clock
        for length in sorted(minutes, reverse=True):
            for index in range(per_length):
                expected = length * 60.0
                duration = expected * rng.uniform(1 - ACTUAL_SPREAD, 1 + ACTUAL_SPREAD)
                slug = f"bench/{'push' if push else 'poll'}-{length}m-{index}"
                travis.add_repo(
                    slug,
                    RepoScript(
                        jobs=1,
                        job_duration=duration,
                        queue_delay=QUEUE_DELAY,
                        processing_delay=PROCESSING_DELAY,
                        history=history_for(expected),
                    ),
                )
                owner, name = slug.split("/")
                run_id = worker.start_action(
                    {"Owner": owner, "ProjectName": name, "Branch": "main"}, revision=REVISION
                )
                planned[run_id] = (length, slug, expected, duration)
                time.sleep(STAGGER_S)  # not every submit at once on a small machine
        finished_runs = worker.wait_for_runs(list(planned), timeout=timeout)
        worker.wait_idle(30)
        travis.webhooks_idle(5)
        batch.real_seconds = time.monotonic() - began
        offset = clock.now() - clock.monotonic()  # the emulator stamps results on monotonic()
        executions = worker.executions()
        for run in finished_runs:
            length, slug, expected, duration = planned[run.action_execution_id]
            batch.runs.append(
                _record(
                    worker,
                    travis,
                    run,
                    executions=executions,
                    offset=offset,
                    length=length,
                    slug=slug,
                    expected=expected,
                    duration=duration,
                )
            )
            batch.runs[-1].scale = scale
        with worker.observations.lock:
            invocations = list(worker.observations.invocations)
        batch.sweeps = sum(1 for i in invocations if i.function == worker.poller.logical_id)
        for fn in worker.functions.values():
            batch.roles[fn.logical_id] = fn.role
        for inv in invocations:
            batch.durations_s.setdefault(inv.function, []).append(inv.duration)
        for _ in range(10):
            started = time.monotonic()
            worker.poll()
            batch.idle_poll_s.append(time.monotonic() - started)
    gc.unfreeze()
    return batch


def _record(
    worker: LocalWorker,
    travis: TravisFake,
    run: Any,
    *,
    executions: list[dict[str, Any]],
    offset: float,
    length: int,
    slug: str,
    expected: float,
    duration: float,
) -> RunRecord:
    (build,) = [b for b in travis.builds_for(slug) if b.request_id is not None]
    finished = build.finished_as_of(worker.clock.now())
    started = build.started_as_of(worker.clock.now())
    if finished is None or started is None:
        raise RuntimeError(f"{slug}: the build did not finish")
    transitions = 0
    invocations: Counter[str] = Counter()
    outputs: list[Any] = []
    mine = [e for e in executions if e["name"][:36] in run.job_ids]
    for execution in mine:
        history = worker.history(execution["executionArn"])
        transitions += analysis.transitions(history)
        invocations += analysis.lambda_invocations(history)
        outputs += analysis.step_outputs(history)
    deliveries = [
        d for d in travis.deliveries_for(build.id) if d.status is not None and 200 <= d.status < 300
    ]
    ends = [d.timestamp for d in deliveries if d.event != "build:started"]
    final = run.results[-1]
    return RunRecord(
        minutes=length,
        slug=slug,
        expected=expected,
        duration=duration,
        started=started,
        finished=finished,
        result_at=final.at + offset,
        result_kind=final.kind,
        transitions=transitions,
        invocations=invocations,
        looks=analysis.looks_from(outputs),
        webhook_at=min(ends) if ends else None,
        webhook_invocations=len(deliveries),
        executions=len(mine),
    )


def merge(batches: list[Batch]) -> Batch:
    """One mode's batches (one per build length, each at its own time scale) as one."""
    merged = Batch(push=batches[0].push, scale=min(b.scale for b in batches))
    for batch in batches:
        merged.runs += batch.runs
        for function, durations in batch.durations_s.items():
            merged.durations_s.setdefault(function, []).extend(durations)
        merged.roles.update(batch.roles)
        merged.idle_poll_s += batch.idle_poll_s
        merged.real_seconds += batch.real_seconds
        merged.sweeps += batch.sweeps
    return merged


@dataclass
class Throughput:
    jobs: int
    poller_invocations: int
    poller_invocations_with_jobs: int
    wall_s: float
    executions_started: int


def throughput(template: dict[str, Any], jobs: int = 100, timeout: float = 120.0) -> Throughput:
    """`jobs` action runs reach the action at once; the poller (woken by their STARTED events)
    hands each to an execution. Real time (scale 1): the steps after the poller are held so that
    100 local executions do not compete with the poller for this machine's CPU (in AWS each
    runs in its own sandbox)."""
    clock = VirtualClock(1.0)
    travis = TravisFake(auto_repos=True, clock=clock)
    emulator = CodePipelineEmulator(redelivery_timeout_seconds=REDELIVERY_SECONDS, clock=clock)
    worker = LocalWorker(template, clock=clock, travis=travis, emulator=emulator)
    release = threading.Event()

    def hold(function: DeployedFunction, event: dict[str, Any]) -> None:
        if function.role != "poller":
            release.wait(timeout)
            raise RuntimeError("bench: held until the throughput measurement ended")

    worker.before_invoke.append(hold)
    with worker:
        worker.emulator.add_action_listener(worker.on_action_started)
        began = time.monotonic()
        for index in range(jobs):
            worker.start_action(
                {"Owner": "bench", "ProjectName": f"queued-{index}", "Branch": "main"},
                revision=REVISION,
            )
        deadline = began + timeout
        started = 0
        while time.monotonic() < deadline:
            started = _executions_started(worker)
            if started >= jobs:
                break
            time.sleep(0.01)
        wall = time.monotonic() - began
        with worker.observations.lock:
            pollers = [
                i
                for i in worker.observations.invocations
                if i.function == worker.poller.logical_id and i.started <= began + wall
            ]
            summaries = list(worker.observations.poller_summaries)
        release.set()
        worker.stop_sweeper()
    return Throughput(
        jobs=jobs,
        poller_invocations=len(pollers),
        poller_invocations_with_jobs=sum(1 for s in summaries if s.get("jobs_received")),
        wall_s=wall,
        executions_started=started,
    )


def _executions_started(worker: LocalWorker) -> int:
    with worker.observations.lock:
        return sum(
            int(s.get("executions_started", 0)) for s in worker.observations.poller_summaries
        )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
