"""`make soak`: many pipeline action runs with mixed outcomes, injected faults and duplicates.

Every run goes through the real worker (local runner, one virtual clock) against the Travis fake
answering as Travis does, with the faults of `local.faults` (Travis's real failure modes, lost
create answers meeting fast and slow request processing, CodePipeline throttling, crashes after
side effects, a dying poller, duplicate events, two sweepers). It prints a progress line every
`--progress` runs and, at the end, checks the invariants of ARCHITECTURE.md across all runs and
writes the figures to a JSON report:
  - duplicate builds (Travis requests per action run beyond one) — must be 0;
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
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from local.clock import VirtualClock
from local.codepipeline_emulator import CodePipelineEmulator
from local.faults import FaultPlan
from local.runner import LocalWorker, synthesize
from local.travis_fake import DEFAULT_TOKEN, RepoScript, TravisFake

API_TOKEN = "soak-api-token-3b9d0e7a51f4"  # the APIToken property of some actions
UNKNOWN_TOKEN = "soak-token-travis-never-issued"  # noqa: S105 - refused: 403 access denied
SHA = "c0ffee0000000000000000000000000000000001"
OTHER_SHA = "c0ffee00000000000000000000000000000000ff"
S3_VERSION_ID = "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
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
) -> SoakReport:
    """Run `runs` action runs with faults and check every invariant. `progress` > 0 prints a line
    every that many finished runs."""
    began = time.monotonic()
    rng = random.Random(seed)
    clock = VirtualClock(time_scale)
    travis = TravisFake(tokens={DEFAULT_TOKEN: "all", API_TOKEN: "all"}, clock=clock)
    emulator = CodePipelineEmulator(
        redelivery_timeout_seconds=300.0, nonce_on_redelivery="new", seed=seed, clock=clock
    )
    worker = LocalWorker(template, travis=travis, emulator=emulator, clock=clock)
    plan = FaultPlan(rate=fault_rate, seed=seed)
    expected: dict[str, Mix] = {}
    with worker, plan.applied(worker):
        started_at = clock.now()
        worker.emulator.add_action_listener(worker.on_action_started)
        for _ in range(plan.concurrent_sweepers):
            worker.start_sweeper(0.1)
        kinds = [m for m in MIX for _ in range(m.weight)]
        pending: list[str] = []
        deadline = time.monotonic() + timeout
        reported = 0

        def settle(limit: int) -> None:
            nonlocal pending, reported
            while len(pending) > limit and time.monotonic() < deadline:
                pending = [r for r in pending if not worker.emulator.action_run(r).finished]
                done = len(expected) - len(pending)
                if progress and done >= reported + progress:
                    reported = done - done % progress
                    print(
                        f"  {done:>5}/{runs} runs done, {len(pending)} in flight, "
                        f"{time.monotonic() - began:6.1f}s",
                        flush=True,
                    )
                if len(pending) > limit:
                    time.sleep(0.05)

        for number in range(runs):
            mix = rng.choice(kinds)
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
        worker.stop_sweeper()
        worker.wait_idle(60)
        report = _check(
            worker=worker,
            plan=plan,
            expected=expected,
            fault_rate=fault_rate,
            seed=seed,
            began=began,
            virtual=clock.now() - started_at,
        )
    return report


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
    travis_calls = travis.calls
    for run_id, mix in expected.items():
        run = emulator.action_run(run_id)
        marker = f"[codepipeline-job {run.job_ids[0]}]"
        made = sum(1 for r in requests if marker in (r.message or ""))
        if made > 1:
            duplicates += made - 1
            problems.append(f"{run.pipeline_name}: {made} Travis requests")
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
        injected=plan.injected(travis),
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
