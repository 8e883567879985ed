"""End to end under faults: crashes after side effects, a dying poller, throttling, and a soak.

Each fault is injected where it happens in AWS (see local/faults.py), never inside the worker.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from local.codepipeline_emulator import CodePipelineEmulator
from local.faults import SimulatedLambdaTimeout, SimulatedPollerCrash
from local.runner import DeployedFunction
from local.soak import soak
from local.travis_fake import RepoScript, TravisFake
from tests.e2e.conftest import CONFIG, RUN_TIMEOUT, SLUG, run_action

pytestmark = pytest.mark.e2e


def crash_once_after(step_handler: str) -> Any:
    """A hook that makes the first invocation of one step time out after its side effect."""
    crashed = threading.Event()

    def hook(function: DeployedFunction, event: dict[str, Any], result: Any) -> None:
        if function.handler.endswith(step_handler) and not crashed.is_set():
            crashed.set()
            raise SimulatedLambdaTimeout("Task timed out after 90.00 seconds")

    hook.crashed = crashed  # type: ignore[attr-defined]
    return hook


@pytest.mark.parametrize(
    "step",
    [
        "steps.claim",
        "steps.submit",
        "steps.resolve",
        "steps.publish",
        "steps.watch",
        "steps.report",
    ],
)
def test_step_crashing_after_its_side_effect_is_retried_without_a_duplicate(
    worker_for: Any, step: str
) -> None:
    # Given a step that times out once right after doing its work
    travis = TravisFake(repos={SLUG: RepoScript(outcome="passed")})
    worker = worker_for(travis=travis)
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
        assert len(acks) == (2 if step == "steps.claim" and job_id == run.job_ids[0] else 1)


def test_report_failure_crashing_after_its_result_is_harmless(worker_for: Any) -> None:
    travis = TravisFake(repos={SLUG: RepoScript(reject=True)})
    worker = worker_for(travis=travis)
    hook = crash_once_after("steps.report_error")
    worker.after_invoke.append(hook)

    run = run_action(worker)

    assert hook.crashed.is_set()
    assert run.failure_details["type"] == "ConfigurationError"
    assert len(run.results) == 1
    assert {e["status"] for e in worker.executions()} == {"SUCCEEDED"}


def test_poller_dying_mid_batch_loses_no_job(worker_for: Any) -> None:
    # Given three jobs waiting and a poller that dies right after its first StartExecution
    emulator = CodePipelineEmulator(redelivery_timeout_seconds=0.5)
    travis = TravisFake(auto_repos=True)
    worker = worker_for(travis=travis, emulator=emulator, deliver_events=False, sweep=False)
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
    assert len(worker.executions()) == 1

    # When the schedule keeps sweeping
    worker.start_sweeper(0.05)
    finished = worker.wait_for_runs(runs, timeout=RUN_TIMEOUT)

    # Then the two jobs it never started were handed out again and every run succeeded once
    assert [r.status for r in finished] == ["Succeeded"] * 3
    assert travis.created_count() == 3


def test_codepipeline_throttling_on_every_call_kind_is_absorbed(worker_for: Any) -> None:
    # Given CodePipeline throttles the next calls of every job API
    emulator = CodePipelineEmulator()
    for operation in (
        "PollForJobs",
        "AcknowledgeJob",
        "GetJobDetails",
        "PutJobSuccessResult",
        "PutJobFailureResult",
    ):
        emulator.throttle_next(operation, 2)
    travis = TravisFake(repos={SLUG: RepoScript()})
    worker = worker_for(travis=travis, emulator=emulator)

    run = run_action(worker)

    assert run.status == "Succeeded"
    throttled = [c for c in emulator.calls() if c.error_code == "ThrottlingException"]
    assert len(throttled) >= 8
    assert travis.created_count(SLUG) == 1


def test_soak_of_100_runs_with_faults_keeps_every_invariant(template: dict[str, Any]) -> None:
    # Given 100 action runs of mixed outcomes with 10 % faults of every kind and duplicates
    report = soak(template, runs=100, fault_rate=0.1, seed=11)

    # Then nothing is duplicated, lost, misreported or leaked
    assert report.problems == []
    assert report.runs == 100
    assert report.duplicate_builds == 0
    assert report.claimed_jobs_without_result == 0
    assert report.wrong_results == 0
    assert report.unfinished_runs == 0
    assert report.secret_occurrences == 0
    # And the faults really happened
    assert report.travis_faults > 10
    assert report.codepipeline_throttled > 10
    assert report.injected.get("lambda_crash_after_side_effect", 0) > 10
    assert report.injected.get("duplicate_event", 0) > 10
