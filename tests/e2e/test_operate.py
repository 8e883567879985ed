"""End to end: what an operator relies on — nothing stays open (the reaper), and every log line
of a job says where it comes from."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import boto3
import pytest

from local.clock import VirtualClock
from local.template import DEFAULT_REGION
from tests.e2e.conftest import CONFIG, QUICK, REVISION, SLUG, quick_travis, run_action
from tests.e2e.test_stop import watching

pytestmark = pytest.mark.e2e


def test_the_reaper_answers_a_job_whose_execution_was_stopped(
    worker_for: Any, clock: VirtualClock
) -> None:
    # Given a build being watched by an execution that has claimed its job
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, job_duration=1800.0))
    worker = worker_for(travis=travis, clock=clock)
    run_id = worker.start_action(CONFIG, revision=REVISION)
    deadline = time.monotonic() + 30
    while not watching(worker, run_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # let it look and park
    second_job = worker.emulator.action_run(run_id).job_ids[1]
    (execution,) = [
        e
        for e in worker.executions()
        if e["status"] == "RUNNING" and e["name"].startswith(second_job)
    ]

    # When an operator stops that execution (it ends ABORTED, leaving the job open)
    boto3.client("stepfunctions", region_name=DEFAULT_REGION).stop_execution(
        executionArn=execution["executionArn"], error="OperatorStopped"
    )

    # Then the reaper reports a failure naming the execution, and cancels the build
    (run,) = worker.wait_for_runs([run_id], timeout=30)
    assert run.status == "Failed"
    assert run.failure_details["type"] == "JobFailed"
    assert execution["name"] in run.failure_details["message"]
    # (moto reports a stopped execution FAILED where AWS says ABORTED: both are reaped)
    assert "ABORTED" in run.failure_details["message"] or "FAILED" in run.failure_details["message"]
    # (it cancels after CodePipeline took the failure: a job answered already keeps its build)
    deadline = time.monotonic() + 10
    while not worker.observations.reaped and time.monotonic() < deadline:
        time.sleep(0.02)
    (build,) = travis.builds_for(SLUG)
    assert build.cancel_requested_at is not None
    assert worker.metric_total("JobsReaped") == 1


def test_every_log_line_of_a_job_says_where_it_comes_from(worker_for: Any) -> None:
    worker = worker_for()
    run = run_action(worker, pipeline_name="release")

    records = [r for r in worker.log_records() if "message" in r and r.get("job_id")]
    steps = [r for r in records if "Poller" not in str(r.get("function_name"))]
    assert steps
    for record in steps:
        for key in ("pipeline", "pipeline_execution_id", "stage", "action", "job_id", "execution"):
            assert record.get(key), (key, json.dumps(record)[:300])
        assert record["pipeline"] == "release"
        assert record["job_id"] in run.job_ids
    # And once the build exists, its id too
    assert any(r.get("build_id") for r in steps if r["message"] == "Build status")
