"""`make soak`: many pipeline action runs with mixed outcomes, injected faults and duplicates.

Every run goes through the real worker (local runner). At the end it checks the invariants of
ARCHITECTURE.md across all runs and writes the figures to a JSON report:
  - duplicate builds (Travis requests per action run beyond one) — must be 0;
  - claimed jobs without a result — must be 0;
  - wrong results (an outcome other than the scripted one) — must be 0;
  - secret occurrences in execution inputs, outputs, histories and captured logs — must be 0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from local.codepipeline_emulator import CodePipelineEmulator
from local.faults import FaultPlan
from local.runner import LocalWorker, synthesize
from local.travis_fake import DEFAULT_TOKEN, RepoScript, TravisFake

API_TOKEN = "soak-api-token-3b9d0e7a51f4"  # the APIToken property of some actions
SHA = "c0ffee0000000000000000000000000000000001"


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


MIX = (
    Mix("passes", 40, "Succeeded", RepoScript(outcome="passed")),
    Mix("passes with APIToken", 5, "Succeeded", RepoScript(outcome="passed"), api_token=True),
    Mix("passes without revision", 5, "Succeeded", RepoScript(outcome="passed"), revision=None),
    Mix("fails", 15, "JobFailed", RepoScript(outcome="failed")),
    Mix("errors", 5, "JobFailed", RepoScript(outcome="errored")),
    Mix("canceled", 5, "JobFailed", RepoScript(outcome="canceled")),
    Mix("rejected", 5, "ConfigurationError", RepoScript(reject=True)),
    Mix("missing Branch", 5, "ConfigurationError", RepoScript(), drop=("Branch",)),
    Mix("unknown repository", 5, "ConfigurationError", RepoScript(exists=False)),
    Mix("token refused", 5, "PermissionError", RepoScript(auth_error=403)),
    Mix("unknown commit", 5, "RevisionUnavailable", RepoScript(known_commits={"0" * 40})),
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
    wall_seconds: float
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
    concurrency: int = 25,
    time_scale: float = 0.05,
    timeout: float = 1800.0,
) -> SoakReport:
    """Run `runs` action runs with faults and check every invariant."""
    began = time.monotonic()
    rng = random.Random(seed)
    travis = TravisFake(tokens={DEFAULT_TOKEN: "all", API_TOKEN: "all"})
    emulator = CodePipelineEmulator(
        redelivery_timeout_seconds=3.0, nonce_on_redelivery="new", seed=seed
    )
    worker = LocalWorker(template, travis=travis, emulator=emulator, time_scale=time_scale)
    plan = FaultPlan(rate=fault_rate, seed=seed)
    expected: dict[str, Mix] = {}
    with worker, plan.applied(worker):
        worker.emulator.add_action_listener(worker.on_action_started)
        for _ in range(plan.concurrent_sweepers):
            worker.start_sweeper(0.1)
        kinds = [m for m in MIX for _ in range(m.weight)]
        pending: list[str] = []
        deadline = time.monotonic() + timeout
        for number in range(runs):
            mix = rng.choice(kinds)
            slug = f"soak/run-{number:04d}"
            worker.travis.add_repo(
                slug,
                RepoScript(
                    **{
                        **asdict(mix.script),
                        "rate_limit": 1000,
                        "polls_until_done": rng.randint(1, 4),
                    }
                ),
            )
            config = {"Owner": "soak", "ProjectName": f"run-{number:04d}", "Branch": "main"}
            for name in mix.drop:
                config.pop(name)
            if mix.api_token:
                config["APIToken"] = API_TOKEN
            run_id = worker.start_action(
                config, revision=mix.revision, pipeline_name=f"soak-{number:04d}"
            )
            expected[run_id] = mix
            pending.append(run_id)
            while len(pending) >= concurrency and time.monotonic() < deadline:
                pending = [r for r in pending if not worker.emulator.action_run(r).finished]
                time.sleep(0.05)
        while pending and time.monotonic() < deadline:
            pending = [r for r in pending if not worker.emulator.action_run(r).finished]
            time.sleep(0.1)
        worker.stop_sweeper()
        worker.wait_idle(60)
        report = _check(
            worker=worker,
            plan=plan,
            expected=expected,
            fault_rate=fault_rate,
            seed=seed,
            began=began,
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
) -> SoakReport:
    problems: list[str] = []
    emulator, travis = worker.emulator, worker.travis
    duplicates = wrong = unfinished = 0
    outcomes: dict[str, int] = {}
    for run_id, mix in expected.items():
        run = emulator.action_run(run_id)
        first_job = run.job_ids[0]
        made = len(travis.requests_with(f"[codepipeline-job {first_job}]"))
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
    secrets = {DEFAULT_TOKEN, API_TOKEN}
    for job in emulator.jobs():
        for credentials in job.issued_credentials:
            secrets.update(v for v in credentials.values() if len(v) >= 8)
    seen_parts = [worker.logs]
    executions = worker.executions()
    for execution in executions:
        arn = execution["executionArn"]
        seen_parts.append(json.dumps(worker.describe(arn), default=str))
        seen_parts.append(json.dumps(worker.history(arn), default=str))
    seen = "\n".join(seen_parts)
    leaks = sum(seen.count(s) for s in secrets)
    if leaks:
        problems.append(f"{leaks} secret occurrences")
    cp_calls = emulator.calls()
    return SoakReport(
        runs=len(expected),
        fault_rate=fault_rate,
        seed=seed,
        travis_requests_created=travis.created_count(),
        duplicate_builds=duplicates,
        claimed_jobs_without_result=len(open_claims),
        wrong_results=wrong,
        unfinished_runs=unfinished,
        secret_occurrences=leaks,
        executions=len(executions),
        lambda_invocations=len(worker.observations.invocations),
        codepipeline_calls=len(cp_calls),
        codepipeline_throttled=sum(1 for c in cp_calls if c.error_code == "ThrottlingException"),
        travis_calls=len(travis.calls),
        travis_faults=sum(1 for c in travis.calls if c.fault),
        injected=dict(plan.counts),
        outcomes=outcomes,
        wall_seconds=round(time.monotonic() - began, 1),
        problems=problems[:50],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak the worker locally with faults.")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=25)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.05,
        help="fraction of real time for waits, retries and timeouts",
    )
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
    ):
        print(f"  {key:<30} {data[key]}")
    print(f"  {'injected':<30} {json.dumps(report.injected)}")
    print(f"  {'outcomes':<30} {json.dumps(report.outcomes)}")
    for problem in report.problems:
        print(f"  ! {problem}")
    print(f"Report written to {args.report}. {'CLEAN' if report.clean else 'INVARIANT BROKEN'}")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
