"""`make bench`: what one action run costs and how fast the worker reacts — measured, then priced.

Measured locally through the real worker (synthesized state machine, real handlers, emulators):
state transitions per action run as a function of how long the Travis build runs, Lambda
invocations and their durations, and the time from "pipeline reached the action" to the Travis
request and to the link in the console. Priced with the public us-east-1 list prices below, and
compared with the original design: a daemon on an always-on instance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from local.runner import LocalWorker, synthesize
from local.travis_fake import RepoScript, TravisFake

# Public list prices, us-east-1 (late 2026), as in shared/reference.
PRICE_PER_TRANSITION = 0.025 / 1000  # Step Functions STANDARD
PRICE_PER_LAMBDA_REQUEST = 0.20 / 1_000_000
PRICE_PER_GB_SECOND_ARM = 0.0000133334
LAMBDA_MEMORY_GB = 256 / 1024
# The original worker: a Go daemon on the smallest always-on instance (t4g.nano on demand).
DAEMON_INSTANCE_PER_HOUR = 0.0042
HOURS_PER_MONTH = 730
SCHEDULE_TICKS_PER_MONTH = 60 * 24 * 30
WATCH_WAITS = (15, 1.5, 120)  # first, factor, cap: the stack's WATCH_WAIT
ASSUMED_STEP_MS = 300.0
ASSUMED_IDLE_POLL_MS = 150.0


def watch_polls_for(build_minutes: float) -> int:
    """How many looks at Travis the watch loop takes for a build of this length."""
    first, factor, cap = WATCH_WAITS
    waited, polls = 0.0, 1  # the first look happens right away
    while waited < build_minutes * 60:
        waited += min(cap, first * factor ** (polls - 1))
        polls += 1
    return polls


def _transitions(worker: LocalWorker, job_ids: list[str]) -> int:
    """Billed state transitions of an action run's executions (every state entered)."""
    count = 0
    for execution in worker.executions():
        if execution["name"][:36] in job_ids:
            history = worker.history(execution["executionArn"])
            count += sum(1 for e in history if e["type"].endswith("StateEntered"))
    return count


def measure(template: dict[str, Any], samples: int) -> dict[str, Any]:
    """Run passing builds of 1..4 watch polls; fit transitions = base + per_poll × polls."""
    travis = TravisFake()
    worker = LocalWorker(template, travis=travis)
    points: list[tuple[int, int]] = []
    to_request: list[float] = []
    to_link: list[float] = []
    with worker:
        worker.emulator.add_action_listener(worker.on_action_started)
        worker.start_sweeper(1.0)  # slow sweeper: the event path is what is timed
        for number in range(samples):
            polls = 1 + number % 4
            slug = f"bench/run-{number}"
            travis.add_repo(slug, RepoScript(polls_until_done=polls))
            started = time.monotonic()
            run_id = worker.start_action(
                {"Owner": "bench", "ProjectName": f"run-{number}", "Branch": "main"},
                revision="b" * 40,
            )
            while not travis.requests_for(slug):
                time.sleep(0.005)
            to_request.append(time.monotonic() - started)
            while not worker.emulator.action_run(run_id).results:
                time.sleep(0.005)
            to_link.append(time.monotonic() - started)
            (run,) = worker.wait_for_runs([run_id], timeout=60)
            worker.wait_idle(10)
            watch_calls = [c for c in travis.calls_of("get_build") if c.slug == slug]
            points.append((len(watch_calls), _transitions(worker, run.job_ids)))
        invocations = list(worker.observations.invocations)
        idle_started = time.monotonic()
        for _ in range(10):
            worker.poll()
        idle_poll = (time.monotonic() - idle_started) / 10
    by_polls: dict[int, list[int]] = {}
    for polls, transitions in points:
        by_polls.setdefault(polls, []).append(transitions)
    xs = sorted(by_polls)
    per_poll = (statistics.mean(by_polls[xs[-1]]) - statistics.mean(by_polls[xs[0]])) / (
        xs[-1] - xs[0]
    )
    base = statistics.mean(by_polls[xs[0]]) - per_poll * xs[0]
    steps = [i for i in invocations if not i.handler.endswith("poller.handler")]
    return {
        "samples": samples,
        "transitions_by_watch_polls": {str(k): by_polls[k] for k in xs},
        "transitions_base": round(base, 1),
        "transitions_per_watch_poll": round(per_poll, 2),
        "step_invocations_per_run": round(len(steps) / samples, 1),
        "step_duration_ms_median": round(statistics.median(i.duration for i in steps) * 1000, 1),
        "step_duration_ms_p95": round(
            sorted(i.duration for i in steps)[int(0.95 * len(steps))] * 1000, 1
        ),
        "idle_poll_ms": round(idle_poll * 1000, 1),
        "local_seconds_to_travis_request_median": round(statistics.median(to_request), 3),
        "local_seconds_to_console_link_median": round(statistics.median(to_link), 3),
    }


def price(measured: dict[str, Any]) -> dict[str, Any]:
    """Cost per action run by build length, the idle cost, and the daemon comparison."""
    # Locally a step takes milliseconds; in AWS the calls to CodePipeline and Travis cross the
    # network, so price each step at the larger of the local p95 and an assumed 300 ms.
    step_seconds = max(measured["step_duration_ms_p95"], ASSUMED_STEP_MS) / 1000
    gb_seconds_per_step = step_seconds * LAMBDA_MEMORY_GB
    per_run: dict[str, Any] = {}
    for minutes in (5, 20, 60, 120):
        polls = watch_polls_for(minutes)
        transitions = measured["transitions_base"] + measured["transitions_per_watch_poll"] * polls
        invocations = measured["step_invocations_per_run"] - 4 + polls  # measured at ~2.5 polls
        cost = transitions * PRICE_PER_TRANSITION + invocations * (
            PRICE_PER_LAMBDA_REQUEST + gb_seconds_per_step * PRICE_PER_GB_SECOND_ARM
        )
        per_run[f"{minutes}min_build"] = {
            "watch_polls": polls,
            "state_transitions": round(transitions),
            "lambda_invocations": round(invocations),
            "usd": round(cost, 6),
        }
    idle_month = SCHEDULE_TICKS_PER_MONTH * (
        PRICE_PER_LAMBDA_REQUEST
        + max(measured["idle_poll_ms"], ASSUMED_IDLE_POLL_MS)
        / 1000
        * LAMBDA_MEMORY_GB
        * PRICE_PER_GB_SECOND_ARM
    )
    daemon_month = DAEMON_INSTANCE_PER_HOUR * HOURS_PER_MONTH
    typical = per_run["20min_build"]["usd"]
    volumes = {}
    for runs in (100, 1_000, 10_000):
        serverless = idle_month + runs * typical
        volumes[f"{runs}_runs_per_month"] = {
            "serverless_usd": round(serverless, 2),
            "daemon_usd": round(daemon_month, 2),
            "daemon_over_serverless": round(daemon_month / serverless, 1),
        }
    return {
        "per_action_run": per_run,
        "idle_usd_per_month": round(idle_month, 3),
        "daemon_usd_per_month": round(daemon_month, 2),
        "by_volume_20min_builds": volumes,
        "break_even_runs_per_month": int((daemon_month - idle_month) / typical),
        "assumptions": {
            "step_functions_usd_per_1000_transitions": 0.025,
            "lambda_usd_per_million_requests": 0.20,
            "lambda_arm_usd_per_gb_second": PRICE_PER_GB_SECOND_ARM,
            "lambda_memory_mb": 256,
            "lambda_duration": f"max(local p95, {ASSUMED_STEP_MS:.0f} ms) per step, "
            f"max(local, {ASSUMED_IDLE_POLL_MS:.0f} ms) per idle poll",
            "transitions": "measured per watch poll, extrapolated to the build length",
            "daemon": "t4g.nano on demand, 730 h/month, no storage or monitoring",
            "free_tiers": "ignored",
            "not_priced": "CloudWatch Logs ingestion, X-Ray traces, Secrets Manager ($0.40/month "
            "per secret), and for the daemon: operating it (patching, monitoring, restarts)",
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--report", type=Path, default=Path("bench-report.json"))
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    measured = measure(synthesize(), args.samples)
    priced = price(measured)
    report = {"measured": measured, "priced": priced}
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
