"""`make soak`: many pipeline action runs with mixed outcomes, injected faults and duplicates.

Every run goes through the real worker (local runner, one virtual clock) against the Travis fake
answering as Travis does, with the faults of `local.faults` (Travis's real failure modes, lost
create answers meeting fast and slow request processing, CodePipeline throttling, crashes after
side effects, a dying poller, duplicate events, two sweepers). It prints a progress line every
`--progress` runs and, at the end, checks the invariants of ARCHITECTURE.md across all runs and
writes the figures to a JSON report:
  - duplicate builds (Travis builds per action run beyond one) — must be 0 (requests beyond one
    are counted too: a request rejected before it had a commit is re-posted, it has no build);
  - claimed jobs without a result — must be 0;
  - wrong results (an outcome other than the scripted one) — must be 0;
  - unfinished runs (no final result before the deadline) — must be 0;
  - secret occurrences in execution inputs, outputs, histories and captured logs — must be 0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from local.clock import VirtualClock
from local.codepipeline import CodePipelineEmulator
from local.faults import FaultPlan, travis_faults
from local.runner import LocalWorker, synthesize
from local.travis import DEFAULT_TOKEN, RepoScript, TravisFake

API_TOKEN = "soak-api-token-3b9d0e7a51f4"  # the APIToken property of some actions
UNKNOWN_TOKEN = "soak-token-travis-never-issued"
SHA = "c0ffee0000000000000000000000000000000001"
OTHER_SHA = "c0ffee00000000000000000000000000000000ff"
S3_VERSION_ID = "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
# Runs per freshly deployed local worker (see `soak`).
ROUND_SIZE = 100
SWEEP_SECONDS = 60.0  # the schedule's rate(1 minute), on the run's clock
# A quick Travis (virtual seconds): builds of one or two short jobs.
QUICK = RepoScript(queue_delay=3.0, job_duration=20.0, jobs=2, rate_limit=1000)


@dataclass(frozen=True)
class Mix:
    """One kind of action run in the soak, with its weight and expected result."""

    name: str
    weight: int
    expected: str
    script: RepoScript
    drop: tuple[str, ...] = ()  # configuration properties the action leaves out
    revision: str | None = SHA
    api_token: bool = False
    token: str = API_TOKEN  # the APIToken, when `api_token`


def _quick(**overrides: Any) -> RepoScript:
    return replace(QUICK, **overrides)


MIX = (
    Mix("passes", 40, "Succeeded", _quick(outcome="passed")),
    Mix("passes with APIToken", 5, "Succeeded", _quick(), api_token=True),
    Mix("passes without revision", 4, "Succeeded", _quick(), revision=None),
    Mix("passes, S3 revision", 3, "Succeeded", _quick(), revision=S3_VERSION_ID),
    Mix("fails", 12, "JobFailed", _quick(outcome="failed")),
    Mix("errors", 4, "JobFailed", _quick(outcome="errored")),
    Mix("canceled", 4, "JobFailed", _quick(outcome="canceled")),
    Mix("rejected", 5, "ConfigurationError", _quick(reject=True)),
    Mix("missing Branch", 4, "ConfigurationError", _quick(), drop=("Branch",)),
    Mix("unknown repository", 4, "ConfigurationError", _quick(exists=False)),
    Mix("inactive repository", 2, "ConfigurationError", _quick(active=False)),
    Mix("token refused", 4, "PermissionError", _quick(), api_token=True, token=UNKNOWN_TOKEN),
    Mix("unknown commit", 5, "RevisionUnavailable", _quick(known_commits={"0" * 40})),
    Mix("another commit built", 4, "RevisionOutOfSync", _quick(build_sha=OTHER_SHA)),
)


@dataclass
class SoakReport:
    runs: int
    fault_rate: float
    seed: int
    travis_requests_created: int
    requests_beyond_one_per_run: int  # re-posted after a rejected request (no build): harmless
    duplicate_builds: int
    claimed_jobs_without_result: int
    wrong_results: int
    unfinished_runs: int
    secret_occurrences: int
    executions: int
    lambda_invocations: int
    codepipeline_calls: int
    codepipeline_throttled: int
    travis_calls: int
    travis_faults: int
    injected: dict[str, int]
    outcomes: dict[str, int]
    end_states: dict[str, int]
    wall_seconds: float
    virtual_seconds: float
    problems: list[str]

    @property
    def clean(self) -> bool:
        return not (
            self.duplicate_builds
            or self.claimed_jobs_without_result
            or self.wrong_results
            or self.unfinished_runs
            or self.secret_occurrences
        )


def soak(
    template: dict[str, Any],
    *,
    runs: int,
    fault_rate: float,
    seed: int,
    concurrency: int = 30,
    time_scale: float = 0.01,
    timeout: float = 1800.0,
    progress: int = 0,
    round_size: int = ROUND_SIZE,
) -> SoakReport:
    """Run `runs` action runs with faults and check every invariant. `progress` > 0 prints a line
    every that many finished runs.

    Runs go in rounds of `round_size`, each on a freshly deployed local worker (its own clock,
    Travis fake and emulator): the local Step Functions lists every execution it ever had on each
    status sweep, so one worker for 500 runs would spend the soak listing executions."""
    began = time.monotonic()
    rng = random.Random(seed)
    plan = FaultPlan(rate=fault_rate, seed=seed)
    kinds = [m for m in MIX for _ in range(m.weight)]
    mixes = [rng.choice(kinds) for _ in range(runs)]
    deadline = time.monotonic() + timeout
    tracker = _Progress(runs, progress, began)
    reports = []
    for first in range(0, runs, round_size):
        numbers = range(first, min(runs, first + round_size))
        reports.append(
            _round(
                template,
                [(n, mixes[n]) for n in numbers],
                plan=plan,
                seed=seed + first,
                concurrency=concurrency,
                time_scale=time_scale,
                deadline=deadline,
                tracker=tracker,
            )
        )
    return _combine(reports, plan=plan, fault_rate=fault_rate, seed=seed, began=began)


@dataclass
class _Progress:
    total: int
    every: int
    began: float
    done_before: int = 0  # runs finished in earlier rounds
    reported: int = 0

    def show(self, done_in_round: int, in_flight: int) -> None:
        done = self.done_before + done_in_round
        if self.every and done >= self.reported + self.every:
            self.reported = done - done % self.every
            print(
                f"  {done:>5}/{self.total} runs done, {in_flight:>3} in flight, "
                f"{time.monotonic() - self.began:6.1f}s elapsed",
                flush=True,
            )


def _round(
    template: dict[str, Any],
    runs: list[tuple[int, Mix]],
    *,
    plan: FaultPlan,
    seed: int,
    concurrency: int,
    time_scale: float,
    deadline: float,
    tracker: _Progress,
) -> SoakReport:
    began = time.monotonic()
    clock = VirtualClock(time_scale)
    travis = TravisFake(tokens={DEFAULT_TOKEN: "all", API_TOKEN: "all"}, clock=clock)
    emulator = CodePipelineEmulator(
        redelivery_timeout_seconds=300.0, nonce_on_redelivery="new", seed=seed, clock=clock
    )
    worker = LocalWorker(template, travis=travis, emulator=emulator, clock=clock)
    expected: dict[str, Mix] = {}
    with worker, plan.applied(worker):
        started_at = clock.now()
        worker.emulator.add_action_listener(worker.on_action_started)
        for _ in range(plan.concurrent_sweepers):
            worker.start_sweeper(clock.real_seconds(SWEEP_SECONDS))
        pending: list[str] = []
        # Runs that may have ended, heard from the emulator: reading a run copies it under the
        # emulator's lock, so only these are read.
        changed: set[str] = set()
        lock = threading.Lock()

        def heard(state: str, run: Any) -> None:
            if state != "STARTED":
                with lock:
                    changed.add(run.action_execution_id)

        worker.emulator.add_action_listener(heard)

        def settle(limit: int) -> None:
            nonlocal pending
            while len(pending) > limit and time.monotonic() < deadline:
                with lock:
                    candidates = changed & set(pending)
                    changed.difference_update(candidates)
                ended = {r for r in candidates if worker.emulator.action_run(r).finished}
                pending = [r for r in pending if r not in ended]
                tracker.show(len(expected) - len(pending), len(pending))
                if len(pending) > limit:
                    time.sleep(0.05)

        for number, mix in runs:
            slug = f"soak/run-{number:04d}"
            worker.travis.add_repo(slug, plan.script(mix.script))
            config = {"Owner": "soak", "ProjectName": f"run-{number:04d}", "Branch": "main"}
            for name in mix.drop:
                config.pop(name)
            if mix.api_token:
                config["APIToken"] = mix.token
            run_id = worker.start_action(
                config, revision=mix.revision, pipeline_name=f"soak-{number:04d}"
            )
            expected[run_id] = mix
            pending.append(run_id)
            settle(concurrency - 1)
        settle(0)
        tracker.done_before += len(expected)
        worker.stop_sweeper()
        worker.wait_idle(60)
        return _check(
            worker=worker,
            plan=plan,
            expected=expected,
            fault_rate=plan.rate,
            seed=seed,
            began=began,
            virtual=clock.now() - started_at,
        )


def _combine(
    reports: list[SoakReport], *, plan: FaultPlan, fault_rate: float, seed: int, began: float
) -> SoakReport:
    """One report for all rounds: figures summed, problems concatenated."""

    def total(name: str) -> Any:
        return sum(getattr(r, name) for r in reports)

    def merged(name: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for report in reports:
            for key, value in getattr(report, name).items():
                out[key] = out.get(key, 0) + value
        return dict(sorted(out.items()))

    counted = {
        f.name
        for f in fields(SoakReport)
        if f.type in ("int", "float") and f.name not in ("fault_rate", "seed")
    }
    figures = {name: total(name) for name in counted}
    figures["virtual_seconds"] = round(figures["virtual_seconds"])
    figures["wall_seconds"] = round(time.monotonic() - began, 1)
    return SoakReport(
        **figures,
        fault_rate=fault_rate,
        seed=seed,
        injected=dict(sorted((Counter(merged("injected")) + Counter(plan.counts)).items())),
        outcomes=merged("outcomes"),
        end_states=merged("end_states"),
        problems=[p for r in reports for p in r.problems][:50],
    )


def _check(
    *,
    worker: LocalWorker,
    plan: FaultPlan,
    expected: dict[str, Any],
    fault_rate: float,
    seed: int,
    began: float,
    virtual: float,
) -> SoakReport:
    problems: list[str] = []
    emulator, travis = worker.emulator, worker.travis
    duplicates = wrong = unfinished = 0
    outcomes: dict[str, int] = {}
    executions = worker.executions()
    ends: dict[str, int] = {}
    seen_parts = [worker.logs]
    for execution in executions:
        arn = execution["executionArn"]
        history = worker.history(arn)
        seen_parts.append(json.dumps(worker.describe(arn), default=str))
        seen_parts.append(json.dumps(history, default=str))
        if execution["status"] != "RUNNING":
            entered = [
                str(e["stateEnteredEventDetails"]["name"])
                for e in history
                if e.get("stateEnteredEventDetails")
            ]
            end = f"{execution['status']}:{entered[-1] if entered else '-'}"
            ends[end] = ends.get(end, 0) + 1
    requests = travis.requests_for()
    builds: dict[str, int] = {}
    for build in travis.builds_for():
        builds[build.slug] = builds.get(build.slug, 0) + 1
    travis_calls = travis.calls
    extra_requests = 0
    for run_id, mix in expected.items():
        run = emulator.action_run(run_id)
        marker = f"[codepipeline-job {run.job_ids[0]}]"
        # Requests beyond one are harmless when they have no build (a rejected request is
        # re-posted: it has no build and never will); a second *build* is the invariant.
        extra_requests += max(0, sum(1 for r in requests if marker in (r.message or "")) - 1)
        made = builds.get(f"soak/{run.configuration['ProjectName']}", 0)
        if made > 1:
            duplicates += made - 1
            problems.append(f"{run.pipeline_name}: {made} Travis builds")
        if not run.finished:
            unfinished += 1
            problems.append(f"{run.pipeline_name}: unfinished")
            continue
        got = run.status if run.status == "Succeeded" else (run.failure_details or {}).get("type")
        outcomes[str(got)] = outcomes.get(str(got), 0) + 1
        if got != mix.expected:
            wrong += 1
            problems.append(
                f"{run.pipeline_name} ({mix.name}): {got}, expected {mix.expected}: "
                f"{(run.failure_details or {}).get('message', '')}"
            )
    open_claims = [j for j in emulator.jobs() if j.acknowledgements and j.result is None]
    problems.extend(f"job {j.id} claimed without a result" for j in open_claims)
    secrets = {DEFAULT_TOKEN, API_TOKEN, UNKNOWN_TOKEN}
    for job in emulator.jobs():
        for credentials in job.issued_credentials:
            secrets.update(v for v in credentials.values() if len(v) >= 8)
    seen = "\n".join(seen_parts)
    leaks = sum(seen.count(s) for s in secrets)
    if leaks:
        problems.append(f"{leaks} secret occurrences")
    cp_calls = emulator.calls()
    return SoakReport(
        runs=len(expected),
        fault_rate=fault_rate,
        seed=seed,
        travis_requests_created=len(requests),
        requests_beyond_one_per_run=extra_requests,
        duplicate_builds=duplicates,
        claimed_jobs_without_result=len(open_claims),
        wrong_results=wrong,
        unfinished_runs=unfinished,
        secret_occurrences=leaks,
        executions=len(executions),
        lambda_invocations=len(worker.observations.invocations),
        codepipeline_calls=len(cp_calls),
        codepipeline_throttled=sum(1 for c in cp_calls if c.error_code == "ThrottlingException"),
        travis_calls=len(travis_calls),
        travis_faults=sum(1 for c in travis_calls if c.fault),
        injected=travis_faults(travis),
        outcomes=dict(sorted(outcomes.items())),
        end_states=dict(sorted(ends.items())),
        wall_seconds=round(time.monotonic() - began, 1),
        virtual_seconds=round(virtual),
        problems=problems[:50],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak the worker locally with faults.")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        help="real seconds per virtual second (the run's one clock)",
    )
    parser.add_argument("--progress", type=int, default=25, help="a line every N runs")
    parser.add_argument("--report", type=Path, default=Path("soak-report.json"))
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print(
        f"Soak: {args.runs} action runs, fault rate {args.fault_rate:.0%}, seed {args.seed}…",
        flush=True,
    )
    report = soak(
        synthesize(),
        runs=args.runs,
        fault_rate=args.fault_rate,
        seed=args.seed,
        concurrency=args.concurrency,
        time_scale=args.time_scale,
        progress=args.progress,
    )
    data = asdict(report) | {"clean": report.clean}
    args.report.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    for key in (
        "runs",
        "travis_requests_created",
        "requests_beyond_one_per_run",
        "duplicate_builds",
        "claimed_jobs_without_result",
        "wrong_results",
        "unfinished_runs",
        "secret_occurrences",
        "executions",
        "lambda_invocations",
        "codepipeline_calls",
        "codepipeline_throttled",
        "travis_calls",
        "travis_faults",
        "wall_seconds",
        "virtual_seconds",
    ):
        print(f"  {key:<30} {data[key]}")
    for title, figures in (
        ("injected", report.injected),
        ("outcomes", report.outcomes),
        ("end states", report.end_states),
    ):
        print(f"  {title}:")
        for name, value in figures.items():
            print(f"    {name:<50} {value}")
    for problem in report.problems:
        print(f"  ! {problem}")
    print(f"Report written to {args.report}. {'CLEAN' if report.clean else 'INVARIANT BROKEN'}")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
