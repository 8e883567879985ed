"""`make bench`: measure the worker locally in polling and push mode, price it, write the report.

Writes `bench/report.json` and the chart `bench/cost.png`; prints the report.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

from bench import analysis, chart, prices
from bench.measure import (
    HISTORY_FACTORS,
    Batch,
    RunRecord,
    Throughput,
    median,
    merge,
    run_batch,
    throughput,
)

ROOT = Path(__file__).resolve().parent.parent
MINUTES = (2, 10, 60)
# Assumed AWS duration of one invocation (seconds): each step calls CodePipeline, Travis or
# DynamoDB across the network; locally they answer in milliseconds, so the local time is a floor.
ASSUMED_AWS_S = {"step": 0.30, "park": 0.15, "poller": 0.30, "poller_idle": 0.15, "webhook": 0.30}
# The original daemon (../shared/seed/original-worker-README.txt says only "polls CodePipeline
# intermittently"): assumed one PollForJobs every 30 s for one job (maxBatchSize 1), each job
# dispatched to its own goroutine at once.
DAEMON_POLL_SECONDS = 30.0
DAEMON_BATCH = 1
RUNS_PER_MONTH_FOR_DAEMON_LINE = 1000
TARGETS = {
    "polling_delay_s": 30.0,
    "push_delay_s": 5.0,
    "transitions_10min": 40.0,
    "usd_10min": 0.001,
    "push_60_over_10": 1.5,
    "idle_usd_per_month": 0.05,
    "cold_import": 1.5,  # every handler's cold import over `import boto3` (issue 9)
}


def billed_s(role: str, local: float) -> float:
    assumed = ASSUMED_AWS_S.get(role, ASSUMED_AWS_S["step"])
    return prices.billed_duration(local, assumed)


LOOP_TRANSITIONS = 3  # WatchBuild, Next?, WaitForProgress: one more look while parked


def missing_looks(push: bool, run: RunRecord) -> int:
    """Looks the schedule plans that the compressed run did not make (local processing made
    each loop longer in virtual time)."""
    rule, expectation = schedule_for(push, run)
    if not run.looks:
        return 0
    promised = analysis.promised_looks(
        run.duration,
        run.looks[0].at - run.started,
        lambda elapsed, n: float(rule.next_wait(elapsed, expectation, n)),
    )
    return max(0, promised - len(run.looks))


def per_run_cost(batch: Batch, run: RunRecord) -> dict[str, float]:
    """Transitions, invocations, GB-seconds and dollars of one action run: as measured, and
    `*_at_schedule` with the looks the schedule plans that the compressed run skipped."""
    extra = missing_looks(batch.push, run)
    durations: list[float] = []
    watch = next((f for f, r in batch.roles.items() if r == "watch"), "")
    park = next((f for f, r in batch.roles.items() if r == "park"), "")
    for function, count in run.invocations.items():
        role = batch.roles.get(function, "step")
        local = median(batch.durations_s.get(function, []))
        durations += [billed_s("park" if role == "park" else "step", local)] * count
    poller = next(f for f, r in batch.roles.items() if r == "poller")
    durations.append(billed_s("poller", median(batch.durations_s.get(poller, []))))  # STARTED
    webhook = next((f for f, r in batch.roles.items() if r == "webhook"), None)
    if webhook:
        local = median(batch.durations_s.get(webhook, []))
        durations += [billed_s("webhook", local)] * run.webhook_invocations
    gb_s = prices.gb_seconds(durations)
    invocations = len(durations)
    loop = [
        billed_s("step", median(batch.durations_s.get(watch, []))),
        billed_s("park", median(batch.durations_s.get(park, []))),
    ] * extra
    all_gb_s = prices.gb_seconds(durations + loop)
    all_transitions = run.transitions + LOOP_TRANSITIONS * extra
    return {
        "transitions": run.transitions,
        "invocations": invocations,
        "gb_seconds": gb_s,
        "usd": prices.action_run_usd(run.transitions, invocations, gb_s),
        "transitions_at_schedule": all_transitions,
        "invocations_at_schedule": invocations + len(loop),
        "gb_seconds_at_schedule": all_gb_s,
        "usd_at_schedule": prices.action_run_usd(
            all_transitions, invocations + len(loop), all_gb_s
        ),
    }


def schedule_for(push: bool, run: RunRecord) -> tuple[Any, Any]:
    from worker.schedule import Expectation, policy

    expectation = Expectation.from_durations([round(run.expected * f) for f in HISTORY_FACTORS])
    return policy(push), expectation


def delays(batch: Batch) -> tuple[list[analysis.Delay], list[dict[str, Any]]]:
    found: list[analysis.Delay] = []
    notes: list[dict[str, Any]] = []
    for run in batch.runs:
        rule, expectation = schedule_for(batch.push, run)

        def wait_at(elapsed: float, looks: int = 1, r: Any = rule, e: Any = expectation) -> float:
            return float(r.next_wait(elapsed, e, looks))

        delay = analysis.result_delay(
            run.finished,
            run.result_at,
            run.looks,
            run.scale,
            webhook_at=run.webhook_at if batch.push else None,
            started=run.started,
            next_wait=wait_at,
        )
        found.append(delay)
        promised = analysis.promised_looks(
            run.duration,
            run.looks[0].at - run.started if run.looks else 0.0,
            wait_at,
        )
        notes.append(
            {
                "slug": run.slug,
                "build_s": round(run.duration),
                "looks": len(run.looks),
                "looks_promised_by_schedule": promised,
                "executions": run.executions,
                "result": run.result_kind,
                "trigger": delay.trigger,
                "delay_raw_s": round(delay.raw, 1),
                "delay_s": round(delay.corrected, 1),
                "local_overrun_before_look_virtual_s": round(delay.excess_virtual, 1),
            }
        )
    return found, notes


def by_length(batch: Batch, key: str, digits: int = 6) -> dict[str, float]:
    out = {}
    for length in sorted({r.minutes for r in batch.runs}):
        runs = [r for r in batch.runs if r.minutes == length]
        out[str(length)] = round(analysis.mean(per_run_cost(batch, r)[key] for r in runs), digits)
    return out


def asset_bytes() -> dict[str, int]:
    """The code asset and the layer as shipped (with the runtime's pycs), unzipped and zipped,
    and the same without the pycs."""
    from stacks.dependency_layer import REQUIREMENTS, build_layer
    from stacks.function_code import build_code

    code_dir = build_code(ROOT / "lambdas", "3.14")
    layer_dir = build_layer(REQUIREMENTS, "manylinux2014_aarch64", "3.14")
    code = [p for p in code_dir.rglob("*") if p.is_file()]
    layer = [p for p in layer_dir.rglob("*") if p.is_file() and p.name != ".complete"]
    figures: dict[str, int] = {}
    for name, files, base in (("code", code, code_dir), ("layer", layer, layer_dir)):
        sources = [p for p in files if p.suffix != ".pyc"]
        figures[name] = sum(p.stat().st_size for p in files)
        figures[f"{name}_zipped"] = _zipped(files, base)
        figures[f"{name}_sources"] = sum(p.stat().st_size for p in sources)
        figures[f"{name}_sources_zipped"] = _zipped(sources, base)
    return figures


def _zipped(files: list[Path], base: Path) -> int:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            archive.write(path, path.relative_to(base).as_posix())
    return len(buffer.getvalue())


def count_resources(template: dict[str, Any], kind: str) -> int:
    return sum(1 for r in template.get("Resources", {}).values() if r.get("Type") == kind)


def build_report(
    polling: Batch,
    push: Batch,
    *,
    queued: Throughput,
    imports: dict[str, Any] | None,
    assets: dict[str, int],
    imports_from_source: dict[str, Any] | None = None,
    imports_cpu: dict[str, Any] | None = None,
    template: dict[str, Any],
) -> dict[str, Any]:
    poll_delays, poll_notes = delays(polling)
    push_delays, push_notes = delays(push)
    poll_summary = analysis.summary([d.corrected for d in poll_delays])
    push_summary = analysis.summary([d.corrected for d in push_delays])
    idle_poll = billed_s("poller_idle", median(polling.idle_poll_s))
    idle = prices.idle_usd_per_month(idle_poll)
    transitions = {
        "polling": by_length(polling, "transitions", 1),
        "push": by_length(push, "transitions", 1),
    }
    usd = {"polling": by_length(polling, "usd", 7), "push": by_length(push, "usd", 7)}
    transitions_s = {
        "polling": by_length(polling, "transitions_at_schedule", 1),
        "push": by_length(push, "transitions_at_schedule", 1),
    }
    usd_s = {
        "polling": by_length(polling, "usd_at_schedule", 7),
        "push": by_length(push, "usd_at_schedule", 7),
    }
    codebuild = {str(m): round(prices.codebuild_wrapper_usd(m), 4) for m in MINUTES}
    daemon_month = prices.daemon_usd_per_month()
    daemon_wall = (math.ceil(queued.jobs / DAEMON_BATCH) - 1) * DAEMON_POLL_SECONDS
    ratio = transitions_s["push"]["60"] / transitions_s["push"]["10"]
    targets = {
        "polling_result_delay_max_s": analysis.against(
            poll_summary["max"], TARGETS["polling_delay_s"], " s"
        ),
        "push_result_delay_max_s": analysis.against(
            push_summary["max"], TARGETS["push_delay_s"], " s"
        ),
        "transitions_10min_polling": analysis.against(
            transitions_s["polling"]["10"], TARGETS["transitions_10min"]
        ),
        "transitions_10min_push": analysis.against(
            transitions_s["push"]["10"], TARGETS["transitions_10min"]
        ),
        "usd_10min_polling": analysis.against(usd_s["polling"]["10"], TARGETS["usd_10min"], " $"),
        "usd_10min_push": analysis.against(usd_s["push"]["10"], TARGETS["usd_10min"], " $"),
        "push_transitions_60_over_10": analysis.against(
            round(ratio, 2), TARGETS["push_60_over_10"], "x"
        ),
        "idle_usd_per_month": analysis.against(round(idle, 4), TARGETS["idle_usd_per_month"], " $"),
    }
    if imports:
        worst = max(v["ratio"] for v in imports["handlers"].values())
        targets["cold_import_ratio_max"] = analysis.against(worst, TARGETS["cold_import"], "x")
    report: dict[str, Any] = {
        "transitions_per_build": transitions,
        "lambda_invocations_per_build": {
            "polling": by_length(polling, "invocations", 1),
            "push": by_length(push, "invocations", 1),
        },
        "gb_seconds_per_build": {
            "polling": by_length(polling, "gb_seconds", 3),
            "push": by_length(push, "gb_seconds", 3),
        },
        "usd_per_build": usd,
        "transitions_per_build_at_schedule": transitions_s,
        "usd_per_build_at_schedule": usd_s,
        "lambda_invocations_per_build_at_schedule": {
            "polling": by_length(polling, "invocations_at_schedule", 1),
            "push": by_length(push, "invocations_at_schedule", 1),
        },
        "result_delay_s": {"polling": poll_summary, "push": push_summary},
        "result_delay_uncorrected_s": {
            "polling": analysis.summary([d.raw for d in poll_delays]),
            "push": analysis.summary([d.raw for d in push_delays]),
        },
        "idle_usd_per_month": round(idle, 4),
        "fixed_usd_per_month": prices.fixed_usd_per_month(
            alarms=count_resources(template, "AWS::CloudWatch::Alarm"),
            dashboards=count_resources(template, "AWS::CloudWatch::Dashboard"),
        ),
        "cold_import_ratio": (
            {name.rsplit(".", 1)[-1]: v["ratio"] for name, v in imports["handlers"].items()}
            if imports
            else {}
        ),
        "cold_import": imports or {"skipped": True},
        "cold_import_cpu_ratio": (
            {name.rsplit(".", 1)[-1]: v["ratio"] for name, v in imports_cpu["handlers"].items()}
            if imports_cpu
            else {}
        ),
        "cold_import_cpu": imports_cpu or {"skipped": True},
        "cold_import_ratio_from_source": (
            {
                name.rsplit(".", 1)[-1]: v["ratio"]
                for name, v in imports_from_source["handlers"].items()
            }
            if imports_from_source
            else {}
        ),
        "asset_bytes": assets,
        "throughput": {
            "jobs": queued.jobs,
            "poller_invocations": queued.poller_invocations,
            "poller_invocations_that_got_jobs": queued.poller_invocations_with_jobs,
            "executions_started": queued.executions_started,
            "wall_s": round(queued.wall_s, 2),
            "daemon_wall_s": daemon_wall,
            "daemon_assumption": f"one PollForJobs every {DAEMON_POLL_SECONDS:g} s, maxBatchSize "
            f"{DAEMON_BATCH}, each job started at once (with maxBatchSize 10: "
            f"{(math.ceil(queued.jobs / 10) - 1) * DAEMON_POLL_SECONDS:g} s)",
        },
        "alternatives_usd_per_build": {
            "codebuild_wrapper": codebuild,
            "daemon_monthly": round(daemon_month, 2),
            f"daemon_per_build_at_{RUNS_PER_MONTH_FOR_DAEMON_LINE}_runs_per_month": round(
                daemon_month / RUNS_PER_MONTH_FOR_DAEMON_LINE, 5
            ),
        },
        "targets": targets,
        "runs": {"polling": poll_notes, "push": push_notes},
        "prices": {"as_of": prices.PRICES_AS_OF, "region": prices.REGION, **prices.PRICES},
        "setup": {
            "time_scale": polling.scale,
            "runs_per_length": len(polling.runs) // len(MINUTES),
            "build_lengths_min": list(MINUTES),
            "real_seconds": {
                "polling": round(polling.real_seconds, 1),
                "push": round(push.real_seconds, 1),
            },
            "assumed_aws_invocation_s": ASSUMED_AWS_S,
            "lambda_memory_mb": prices.LAMBDA_MEMORY_MB,
        },
        "method": METHOD,
    }
    return report


METHOD = {
    "runs": "Per mode (polling: the default synth; push: context webhooks=true) one local worker "
    "runs 4 action runs of one build length at once (started 0.3 s apart) on one virtual "
    "clock: scale 0.05 for 2-minute builds, 0.02 for 10, 0.01 for 60 (~36 real seconds), so "
    "local processing stays small next to the build; with CodePipeline's STARTED events and the "
    "one-minute sweeper (every 60 virtual s). Each build is one Travis job.",
    "builds_near_expected": "Each repository's history holds 7 finished builds of the branch at "
    "0.88, 0.90, 0.95, 1.00, 1.05, 1.10, 1.12 x the expected length; the schedule drops the two "
    "extremes, so it expects the length ±10 %. The build itself lasts the expected length x "
    "uniform(0.9, 1.1) (seeded), i.e. it ends where the branch's builds usually end.",
    "transitions": "Counted from every execution history of the action run (first job and "
    "continuations): every *StateEntered event, so retries count.",
    "at_schedule": "Under compression each watch loop lasts park + processing/scale, so a run "
    "makes fewer looks than the schedule plans; *_at_schedule adds the looks worker.schedule "
    "plans for that build (from its first look, with no processing time) that the run did not "
    "make, 3 transitions and 2 invocations (watch, park) each. Targets are judged on these.",
    "invocations": "Lambda invocations the executions made (Lambda tasks and waitForTaskToken "
    "park tasks, from the histories), plus one poller invocation for the run's STARTED event, "
    "plus the webhook receiver's invocations for its build (push). Sweeper ticks that pick up "
    "continuation jobs are counted in the idle cost, which they are part of.",
    "gb_seconds": "Per invocation max(local median duration of that function, an assumed AWS "
    "duration: 300 ms per step, webhook and event-driven poll, 150 ms per park and idle sweep), "
    "rounded up to the millisecond, x 256 MB.",
    "result_delay": "From Travis's finish (the fake's virtual finish time) to the final "
    "PutJob*Result at the emulator. Trigger = the webhook delivery that woke the watch (push) or "
    "the first look at or after the finish. finish -> trigger is virtual time (parks, schedule, "
    "webhook lag: what the design spends); trigger -> result is local processing, counted in "
    "real seconds ((virtual difference) x scale), because the compressed clock inflates it by "
    "1/scale. result_delay_uncorrected_s stops there. result_delay_s also removes the local "
    "processing of the loop before the seeing look (that look came park + processing/scale "
    "after the previous one; AWS: park + processing): if the finish falls before the corrected "
    "look, the delay is from there; if it falls in the inflated stretch, AWS's look would have "
    "come too early and the schedule's next wait (worker.schedule, same expectation) is added.",
    "idle": "43,200 sweeper ticks a month (rate 1 minute) finding no job: requests plus "
    "max(local idle poll, 150 ms) x 256 MB. The token secret, alarms and dashboard are fixed "
    "charges listed in fixed_usd_per_month, outside the idle target.",
    "throughput": "100 action runs reach the action at once in real time (scale 1); their "
    "STARTED events invoke the poller; counted: poller invocations and seconds until all 100 "
    "executions started. The steps after the poller are held meanwhile (locally 100 executions "
    "would compete with the poller for two cores; in AWS each Lambda has its own).",
    "cold_import": "local.importtime.measure_instructions(): machine instructions (callgrind) "
    "of a cold start's imports of each handler (the module, and the Travis provider its first "
    "invocation imports) over those of `import boto3`, in fresh isolated interpreters, less the "
    "interpreter's start: repeatable to ~0.2 %, whatever the machine's load. The assets ship the "
    "runtime's pycs (Python 3.14, compiled with Pyodide): this machine's Python imports the same "
    "files from its own pycs (cached_bytecode). cold_import_ratio_from_source: the same without "
    "pycs, as assets built where no Pyodide is at hand would run. cold_import_cpu_ratio: CPU "
    "time instead (local.importtime.measure(), with pycs, median of rounds; varies by about "
    "±0.2 from run to run on this machine).",
    "assets": "code: the function code asset as shipped (lambdas/ without requirements.txt, with "
    "the runtime's pycs); layer: the pruned manylinux2014_aarch64 / 3.14 layer build, with its "
    "pycs; unzipped and zipped (deflate) bytes; *_sources: the same without the pycs.",
    "alternatives": "CodeBuild wrapper: general1.small, billed per started minute, build length "
    "+ 1 min (provisioning, submit). Daemon: t4g.nano on demand 730 h + 8 GB gp3, no operations "
    "cost; per build at 1,000 runs a month for the chart.",
    "free_tiers": "ignored",
}


def scale_for(minutes: int, scale: float) -> float:
    """Shorter builds run at a larger scale: the local processing (seconds of real CPU on a small
    machine) must stay small next to the build, or it stretches into minutes of virtual time."""
    return min(0.05, scale * 60 / max(minutes, 1) / 3) if minutes < 60 else scale


def measure_mode(template: dict[str, Any], push: bool, runs: int, scale: float) -> Batch:
    batches = [
        run_batch(template, push=push, minutes=(m,), per_length=runs, scale=scale_for(m, scale))
        for m in MINUTES
    ]
    return merge(batches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--report", type=Path, default=ROOT / "bench" / "report.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "bench" / "cost.png")
    parser.add_argument("--runs", type=int, default=4, help="action runs per build length")
    parser.add_argument("--scale", type=float, default=0.01, help="real s per virtual s")
    parser.add_argument("--import-runs", type=int, default=7, help="0 skips the import probe")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from local.runner import synthesize

    began = time.monotonic()
    poll_template = synthesize()
    polling = measure_mode(poll_template, False, args.runs, args.scale)
    print(f"polling measured ({time.monotonic() - began:.0f} s)", file=sys.stderr)
    push_template = synthesize({"webhooks": True})
    push = measure_mode(push_template, True, args.runs, args.scale)
    print(f"push measured ({time.monotonic() - began:.0f} s)", file=sys.stderr)
    queued = throughput(poll_template)
    imports = from_source = cpu = None
    if args.import_runs:
        from local import importtime

        imports = importtime.measure_instructions(cached_bytecode=True)
        from_source = importtime.measure_instructions()
        cpu = importtime.measure(runs=args.import_runs, cached_bytecode=True)
    report = build_report(
        polling,
        push,
        queued=queued,
        imports=imports,
        imports_from_source=from_source,
        imports_cpu=cpu,
        assets=asset_bytes(),
        template=push_template,
    )
    report["setup"]["total_real_seconds"] = round(time.monotonic() - began, 1)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    chart.write_cost_chart(args.chart, report)
    print(json.dumps(report, indent=2))
    return 0
