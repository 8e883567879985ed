"""`make demo`: watch the whole worker handle a handful of pipeline action runs, locally.

It synthesizes the real stack, runs the state machine from the template in moto's Step Functions
with the real handlers, and plays CodePipeline (job emulator) and Travis CI (API fake) over HTTP on
127.0.0.1, all on one virtual clock. Each line of the timeline is something CodePipeline or Travis
actually received, stamped with the run's virtual time (what the clocks of AWS and Travis would
say) and the real seconds since the start. The exit status is non-zero when any run ends
differently than expected.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.clock import VirtualClock
from local.codepipeline import CodePipelineEmulator
from local.runner import LocalWorker, synthesize
from local.travis import TERMINAL, RepoScript, TravisFake

SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"


@dataclass(frozen=True)
class Scenario:
    """One pipeline action run and what it should end as."""

    name: str
    slug: str
    script: RepoScript
    expected: str  # "Succeeded" or a failureDetails.type
    configuration: dict[str, str] | None = None
    faults: Callable[[TravisFake, str], None] | None = None

    def config(self) -> dict[str, str]:
        owner, project = self.slug.split("/")
        default = {"Owner": owner, "ProjectName": project, "Branch": "main"}
        return self.configuration if self.configuration is not None else default


def _flaky(travis: TravisFake, slug: str) -> None:
    travis.fail_next("create_request", 429, slug=slug)  # Rack::Attack: "Retry later"
    travis.process_then_fail_next("create_request", None, slug=slug)  # created, answer lost
    travis.fail_next("list_requests", 503, slug=slug)
    travis.fail_next("get_request", 500, slug=slug)
    travis.malformed_next("get_build", "html", slug=slug)
    travis.fail_next("get_build", 500, slug=slug)


def _quick(**overrides: Any) -> RepoScript:
    """Travis processes requests in 2 s and runs 20-second jobs (virtual seconds)."""
    return RepoScript(
        **{"processing_delay": 2.0, "queue_delay": 3.0, "job_duration": 20.0, **overrides}
    )


SCENARIOS = (
    Scenario(
        "passing build",
        "acme/storefront",
        _quick(outcome="passed", jobs=3),
        "Succeeded",
    ),
    Scenario(
        "failing tests",
        "acme/payments",
        _quick(outcome="failed", jobs=2),
        "JobFailed",
    ),
    Scenario(
        "missing Branch property",
        "acme/billing",
        _quick(),
        "ConfigurationError",
        configuration={"Owner": "acme", "ProjectName": "billing"},
    ),
    Scenario(
        "Travis flaky (429, lost answer, 5xx)",
        "acme/search",
        _quick(outcome="passed"),
        "Succeeded",
        faults=_flaky,
    ),
    Scenario(
        "request rejected by Travis",
        "acme/legacy",
        _quick(travis_yml=None, builds_only_with_travis_yml=True),
        "ConfigurationError",
    ),
)


# --------------------------------------------------------------------------- presentation


class Style:
    """ANSI colours when the terminal supports them, plain text otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text


PALETTE = ("36", "35", "33", "34", "32", "91", "96")


@dataclass
class Timeline:
    """Turns what CodePipeline and Travis received into readable lines, as it happens."""

    worker: LocalWorker
    scenarios: dict[str, Scenario]  # action run id -> scenario
    style: Style
    started: float = field(default_factory=time.monotonic)
    virtual_start: float = 0.0  # virtual epoch seconds when the tour began
    _at: float | None = None  # when the event being shown happened (virtual epoch)
    _cp_seen: int = 0
    _travis_seen: int = 0
    _build_states: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def label(self, scenario: Scenario) -> str:
        index = list(self.scenarios.values()).index(scenario)
        return self.style(f"{scenario.name:<36}", PALETTE[index % len(PALETTE)])

    def say(self, scenario: Scenario | None, text: str, at: float | None = None) -> None:
        """One line; `at` is the virtual epoch time it happened (default: now)."""
        if scenario is None:
            return
        clock = self.worker.clock
        virtual = (clock.now() if at is None else at) - self.virtual_start
        minutes, seconds = divmod(max(0.0, virtual), 60)
        stamp = self.style(
            f"T+{int(minutes):02d}:{seconds:04.1f} ({time.monotonic() - self.started:5.2f}s)", "2"
        )
        print(f"{stamp}  {self.label(scenario)} {text}", flush=True)

    def by_slug(self, slug: str | None) -> Scenario | None:
        return next((s for s in self.scenarios.values() if s.slug == slug), None)

    def by_job(self, job_id: str) -> Scenario | None:
        try:
            run = self.worker.emulator.run_for_job(job_id)
        except KeyError:
            return None
        return self.scenarios.get(run.action_execution_id)

    def refresh(self) -> None:
        """Print what happened since the last refresh, CodePipeline and Travis in time order."""
        with self._lock:
            clock = self.worker.clock
            # emulator calls are stamped with the clock's monotonic reading, Travis's with epoch
            offset = clock.now() - clock.monotonic()
            calls = self.worker.emulator.calls()
            travis_calls = self.worker.travis.calls
            happened: list[tuple[float, Callable[[Any], None], Any]] = [
                (c.started + offset, self._codepipeline, c) for c in calls[self._cp_seen :]
            ] + [(c.timestamp, self._travis, c) for c in travis_calls[self._travis_seen :]]
            self._cp_seen, self._travis_seen = len(calls), len(travis_calls)
            for at, show, call in sorted(happened, key=lambda item: item[0]):
                self._at = at
                show(call)
            self._at = None

    def _say(self, scenario: Scenario | None, text: str) -> None:
        self.say(scenario, text, self._at)

    def _codepipeline(self, call: Any) -> None:
        job_id = call.params.get("jobId")
        if not job_id:
            return
        scenario = self.by_job(job_id)
        ok, s = call.ok, self.style
        if call.operation == "AcknowledgeJob":
            if ok:
                run = self.worker.emulator.run_for_job(job_id)
                phase = "start" if run.job_ids.index(job_id) == 0 else "watch"
                self._say(scenario, f"claimed job {job_id[:8]} (phase: {phase})")
            elif call.error_code == "InvalidNonceException":
                self._say(scenario, s("duplicate hand-out lost the claim and ended quietly", "2"))
        elif call.operation == "PutJobSuccessResult" and ok:
            details = call.params.get("executionDetails", {})
            if call.params.get("continuationToken"):
                self._say(scenario, f"link published to the console: {details.get('summary')}")
            else:
                self._say(
                    scenario, s(f"✔ CodePipeline: succeeded — {details.get('summary')}", "32;1")
                )
        elif call.operation == "PutJobFailureResult" and ok:
            failure = call.params.get("failureDetails", {})
            self._say(
                scenario,
                s(f"✘ CodePipeline: {failure.get('type')} — {failure.get('message')}", "31;1"),
            )
        elif not ok and call.error_code == "ThrottlingException":
            self._say(scenario, s(f"CodePipeline throttled {call.operation}; retrying", "2"))

    def _travis(self, call: Any) -> None:
        scenario = self.by_slug(call.slug)
        s = self.style
        if call.status is None or call.status >= 500 or call.status == 429:
            answer = "dropped the connection" if call.status is None else f"answered {call.status}"
            self._say(scenario, s(f"Travis {answer} to {call.kind.replace('_', ' ')}", "33"))
            if call.kind == "create_request" and call.fault and "process_first" in call.fault:
                self._say(scenario, s("  (but created the request: the worker must find it)", "2"))
            return
        if call.kind == "list_requests":
            self._say(scenario, "worker looks for a request it may have made before")
            return
        if call.fault:
            self._say(
                scenario,
                s(f"Travis sent a malformed answer to {call.kind.replace('_', ' ')}", "33"),
            )
            return
        if call.kind == "create_request" and call.status == 202:
            body = call.body.get("request", {}) if isinstance(call.body, dict) else {}
            sha = str(body.get("sha") or "branch head")[:7]
            self._say(scenario, f"Travis build requested for {body.get('branch')}@{sha}")
        elif call.kind == "create_request":
            self._say(scenario, f"Travis refused the build request (HTTP {call.status})")
        elif call.kind == "get_request":
            for request in self.worker.travis.requests_for(call.slug):
                if request.result == "rejected" and -request.id not in self._build_states:
                    self._build_states[-request.id] = "rejected"
                    self._say(scenario, f"Travis rejected the request: {request.status_message}")
                if request.build_id is not None and request.build_id not in self._build_states:
                    build = self.worker.travis.get_build(request.build_id)
                    self._build_states[request.build_id] = ""
                    url = f"{self.worker.travis.base_url}/{call.slug}/builds/{build.id}"
                    self._say(scenario, f"Travis created build #{build.number}: {url}")
        elif call.kind == "get_build":
            build_id = int(call.path.rstrip("/").rsplit("/", 1)[-1])
            build = self.worker.travis.get_build(build_id)
            at = self._at if self._at is not None else self.worker.clock.now()
            jobs = [j.state_at(at) for j in build.jobs]
            state = build.state_at(at)
            if self._build_states.get(build_id) != state:
                self._build_states[build_id] = state
                done = sum(1 for j in jobs if j in TERMINAL)
                self._say(scenario, f"build is {state} ({done}/{len(jobs)} jobs finished)")


def _summary(
    worker: LocalWorker, runs: dict[str, Scenario], style: Style, durations: dict[str, float]
) -> bool:
    print()
    header = (
        f"{'scenario':<36} {'expected':<19} {'result':<19} {'build':<7} {'requests':<9} "
        "virtual time"
    )
    print(style(header, "1"))
    all_ok = True
    for run_id, scenario in runs.items():
        run = worker.emulator.action_run(run_id)
        got = run.status if run.status != "Failed" else (run.failure_details or {}).get("type", "?")
        builds = worker.travis.builds_for(scenario.slug)
        requests = worker.travis.created_count(scenario.slug)
        ok = got == scenario.expected and requests <= 1
        all_ok &= ok
        mark = style("✔", "32") if ok else style("✘", "31")
        build = f"#{builds[0].number}" if builds else "-"
        print(
            f"{scenario.name:<36} {scenario.expected:<19} {got:<19} {build:<7} {requests:<9} "
            f"{durations.get(run_id, 0) / 60:4.1f} min {mark}"
        )
    executions = worker.executions()
    statuses = sorted({e["status"] for e in executions})
    print(
        f"\n{len(executions)} state machine executions ({', '.join(statuses)}), "
        f"{len(worker.observations.invocations)} Lambda invocations, "
        f"{len(worker.emulator.calls())} CodePipeline calls, "
        f"{len(worker.travis.calls)} Travis calls."
    )
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        help="real seconds per virtual second of the run's clock (default 0.01)",
    )
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    # Powertools warns when a step had nothing to count (resolve/watch looks): expected here.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    style = Style(
        sys.stdout.isatty()
        and os.environ.get("NO_COLOR") is None
        and os.environ.get("TERM") != "dumb"
    )

    print(style("CodePipeline ⇄ Travis CI worker — local demo", "1"))
    print("Synthesizing the stack (cdk-nag checks included)…", flush=True)
    began = time.monotonic()
    template = synthesize()
    print(
        f"Synthesized in {time.monotonic() - began:.1f}s. Starting the CodePipeline job emulator, "
        "the Travis fake and the state machine from the template.\n",
        flush=True,
    )

    clock = VirtualClock(args.time_scale)
    travis = TravisFake(repos={s.slug: s.script for s in SCENARIOS}, clock=clock)
    worker = LocalWorker(
        template,
        travis=travis,
        clock=clock,
        emulator=CodePipelineEmulator(redelivery_timeout_seconds=300.0, clock=clock),
    )
    with worker:
        worker.emulator.add_action_listener(worker.on_action_started)
        runs: dict[str, Scenario] = {}
        timeline = Timeline(worker, runs, style, virtual_start=clock.now())
        for scenario in SCENARIOS:
            if scenario.faults:
                scenario.faults(travis, scenario.slug)
        starts: dict[str, float] = {}
        for scenario in SCENARIOS:
            run_id = worker.start_action(
                scenario.config(), revision=SHA, pipeline_name=scenario.slug.split("/")[1]
            )
            runs[run_id] = scenario
            starts[run_id] = clock.now()
            timeline.say(scenario, "pipeline reached the Travis action (STARTED event → poller)")
        worker.start_sweeper(clock.real_seconds(60))  # the rate(1 minute) schedule
        deadline = time.monotonic() + args.timeout
        durations: dict[str, float] = {}
        while time.monotonic() < deadline and len(durations) < len(runs):
            timeline.refresh()
            for run_id in runs:
                if run_id not in durations and worker.emulator.action_run(run_id).finished:
                    durations[run_id] = clock.now() - starts[run_id]
            time.sleep(0.05)
        worker.stop_sweeper()
        worker.wait_idle(10)
        timeline.refresh()
        ok = _summary(worker, runs, style, durations) and len(durations) == len(runs)
        waits = worker.observations.waits
        if waits:
            print(
                f"Step Functions waits requested: {json.dumps(sorted(set(waits)))} seconds "
                f"(shown here at {args.time_scale:g}× speed)."
            )
        parks = worker.observations.parks
        if parks:
            print(
                f"Parked waits (until the next look or a wake-up): "
                f"{json.dumps(sorted({round(p) for p in parks}))} seconds."
            )
        print(
            f"Virtual time: {(clock.now() - timeline.virtual_start) / 60:.1f} minutes in "
            f"{time.monotonic() - timeline.started:.1f} real seconds."
        )
    print(
        style(
            "All runs ended as expected." if ok else "Some runs ended unexpectedly.",
            "32;1" if ok else "31;1",
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
