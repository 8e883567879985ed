"""End to end under faults: crashes after side effects, a dying poller, throttling, and a soak.

Each fault is injected where it happens in AWS (see local/faults.py), never inside the worker.
Every run has one virtual clock shared by the Travis fake, the emulator and the worker.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from local.clock import VirtualClock
from local.codepipeline import CodePipelineEmulator
from local.faults import (
    CLIENT_READ_TIMEOUT,
    FaultPlan,
    SimulatedLambdaTimeout,
    SimulatedPollerCrash,
)
from local.runner import DeployedFunction
from local.soak import soak
from local.travis import Fault, RepoScript, TravisFake
from tests.e2e.conftest import (
    CONFIG,
    QUICK,
    RUN_TIMEOUT,
    SLUG,
    TIME_SCALE,
    quick_travis,
    run_action,
)

pytestmark = pytest.mark.e2e


def crash_once_after(step: str) -> Any:
    """A hook that makes the first invocation of one step time out after its side effect."""
    crashed = threading.Event()

    def hook(function: DeployedFunction, event: dict[str, Any], result: Any) -> None:
        if function.handler.endswith(f"handlers.{step}.handler") and not crashed.is_set():
            crashed.set()
            raise SimulatedLambdaTimeout("Task timed out after 90.00 seconds")

    hook.crashed = crashed  # type: ignore[attr-defined]
    return hook


def travis_with(clock: VirtualClock, script: RepoScript = QUICK) -> TravisFake:
    travis = quick_travis(clock)
    travis.add_repo(SLUG, script)
    return travis


@pytest.mark.parametrize("step", ["claim", "submit", "resolve", "publish", "watch", "report"])
def test_step_crashing_after_its_side_effect_is_retried_without_a_duplicate(
    worker_for: Any, clock: VirtualClock, step: str
) -> None:
    # Given a step that times out once right after doing its work
    travis = travis_with(clock)
    worker = worker_for(travis=travis, clock=clock)
    hook = crash_once_after(step)
    worker.after_invoke.append(hook)

    # When the action runs
    run = run_action(worker)

    # Then Step Functions retried it and the action still has one build and one result per job
    assert hook.crashed.is_set()
    assert run.status == "Succeeded", run.failure_details
    assert travis.created_count(SLUG) == 1
    assert len(run.results) == 2
    # every job claimed by one hand-out (a retried claim re-acknowledges the same nonce)
    for job_id in run.job_ids:
        acks = [
            c
            for c in worker.emulator.calls("AcknowledgeJob")
            if c.ok and c.params["jobId"] == job_id
        ]
        assert len({c.params["nonce"] for c in acks}) == 1
        assert len(acks) == (2 if step == "claim" and job_id == run.job_ids[0] else 1)


def test_report_failure_crashing_after_its_result_is_harmless(
    worker_for: Any, clock: VirtualClock
) -> None:
    travis = travis_with(clock, RepoScript(processing_delay=2.0, reject=True))
    worker = worker_for(travis=travis, clock=clock)
    hook = crash_once_after("report_failure")
    worker.after_invoke.append(hook)

    run = run_action(worker)

    assert hook.crashed.is_set()
    assert (run.failure_details or {}).get("type") == "ConfigurationError"
    assert len(run.results) == 1
    assert {e["status"] for e in worker.executions()} == {"SUCCEEDED"}


def test_poller_dying_mid_batch_loses_no_job(worker_for: Any, clock: VirtualClock) -> None:
    # Given three jobs waiting and a poller that dies right after its first StartExecution
    # (CodePipeline hands the rest out again after 5 virtual minutes: 3 s here)
    emulator = CodePipelineEmulator(redelivery_timeout_seconds=300.0, clock=clock)
    travis = quick_travis(clock)
    worker = worker_for(
        travis=travis, emulator=emulator, clock=clock, deliver_events=False, sweep=False
    )
    runs = [
        worker.start_action({**CONFIG, "ProjectName": f"app-{n}"}, revision="d" * 40)
        for n in range(3)
    ]
    from worker.poller import ExecutionStarter

    original = ExecutionStarter.start
    died = threading.Event()

    def start_then_die(starter: Any, *args: Any) -> bool:
        started = original(starter, *args)
        if not died.is_set():
            died.set()
            raise SimulatedPollerCrash("poller died after StartExecution")
        return started

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ExecutionStarter, "start", start_then_die)
        summary = worker.poll()
    assert summary == {"error": "SimulatedPollerCrash"}
    # one of the three first jobs got its execution (its continuation job may follow at once:
    # publishing the link wakes the poller)
    first_jobs = {worker.emulator.action_run(r).job_ids[0] for r in runs}
    assert len([e for e in worker.executions() if e["name"][:36] in first_jobs]) == 1

    # When the schedule keeps sweeping
    worker.start_sweeper(0.05)
    finished = worker.wait_for_runs(runs, timeout=RUN_TIMEOUT)

    # Then the two jobs it never started were handed out again and every run succeeded once
    assert [r.status for r in finished] == ["Succeeded"] * 3
    assert travis.created_count() == 3


def test_codepipeline_throttling_on_every_call_kind_is_absorbed(
    worker_for: Any, clock: VirtualClock
) -> None:
    # Given CodePipeline throttles the next calls of every job API
    emulator = CodePipelineEmulator(clock=clock)
    for operation in (
        "PollForJobs",
        "AcknowledgeJob",
        "GetJobDetails",
        "PutJobSuccessResult",
        "PutJobFailureResult",
    ):
        emulator.throttle_next(operation, 2)
    travis = travis_with(clock)
    worker = worker_for(travis=travis, emulator=emulator, clock=clock)

    run = run_action(worker)

    assert run.status == "Succeeded"
    throttled = [c for c in emulator.calls() if c.error_code == "ThrottlingException"]
    assert len(throttled) >= 8
    assert travis.created_count(SLUG) == 1


@pytest.mark.parametrize(
    ("processing", "fault"),
    [
        (2.0, Fault(drop=True, process_first=True)),
        (2.0, Fault(status=500, process_first=True)),
        (2.0, Fault(delay=CLIENT_READ_TIMEOUT + 5.0, process_first=True)),
        (150.0, Fault(drop=True, process_first=True)),
        (150.0, Fault(delay=CLIENT_READ_TIMEOUT + 5.0, drop=True, process_first=True)),
    ],
    ids=["lost-fast", "500-fast", "slow-fast", "lost-slow-processing", "slow-lost-slow-processing"],
)
def test_lost_create_answer_never_makes_a_second_build(
    worker_for: Any, clock: VirtualClock, processing: float, fault: Fault
) -> None:
    # Given Travis creates the request but the worker never reads the answer, and Travis
    # processes requests fast or slowly (the retried submit may find it still pending)
    travis = travis_with(
        clock, RepoScript(processing_delay=processing, queue_delay=3.0, job_duration=30.0)
    )
    travis.add_fault("create_request", fault, slug=SLUG)
    worker = worker_for(travis=travis, clock=clock)
    plan = FaultPlan(
        rate=0.0,
        travis=False,
        codepipeline_throttling=False,
        lambda_crashes=False,
        poller_crashes=False,
        duplicate_events=False,
    )

    with plan.applied(worker):  # the client's read timeout on the run's clock
        run = run_action(worker, timeout=RUN_TIMEOUT)

    # Then the action succeeded with the one build Travis made, and only one POST
    assert run.status == "Succeeded", run.failure_details
    assert travis.created_count(SLUG) == 1
    assert len(travis.calls_of("create_request")) == 1
    assert len(travis.builds_for(SLUG)) == 1


def test_soak_of_40_runs_with_faults_keeps_every_invariant(template: dict[str, Any]) -> None:
    # Given 40 action runs of mixed outcomes with 10 % faults of every kind and duplicates
    report = soak(template, runs=40, fault_rate=0.1, seed=11, time_scale=TIME_SCALE)

    # Then nothing is duplicated, lost, misreported or leaked
    assert report.problems == []
    assert report.runs == 40
    assert report.duplicate_builds == 0
    assert report.claimed_jobs_without_result == 0
    assert report.wrong_results == 0
    assert report.unfinished_runs == 0
    assert report.secret_occurrences == 0
    # And the faults really happened
    assert report.travis_faults > 10
    assert report.codepipeline_throttled > 10
    assert report.injected.get("lambda crash after side effect", 0) > 5
    assert report.injected.get("duplicate STARTED event", 0) > 5
    assert report.injected.get("travis slow request processing", 0) > 5
