"""Run the whole worker on one machine: the synthesized state machine, the real handlers, emulators.

Nothing inside the worker is faked. The state machine definition comes from the synthesized
template and runs in moto's Step Functions interpreter; each Lambda invocation is routed
in-process to the real handler named in the template, with that function's environment from the
template; the handlers reach CodePipeline through the job-API emulator over HTTP (real botocore
serialization), Travis through the Travis fake over HTTP, and Secrets Manager, DynamoDB, Lambda and
S3 through moto. EventBridge is played by the runner: schedule ticks and CodePipeline's action
events go to the poller and the abandon handler, Step Functions status changes to the reaper, and
the webhook receiver's function URL is an HTTP server on 127.0.0.1.

The run has one virtual clock (`local.clock`): Travis's build timelines, the emulator's timeouts,
the state machine's waits and the worker's own clock all read it, compressed by `time_scale`. The
seconds the state machine asked for are recorded.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws

from local.clock import VirtualClock
from local.codepipeline import ActionRun, CodePipelineEmulator
from local.deployment import ROOT, DeployedFunction, Deployment, synthesize
from local.function_url import FunctionUrl
from local.moto_patches import atomic_start_execution, compressed_time, routed_lambda
from local.template import DEFAULT_REGION, placeholder_function_arn
from local.travis import DEFAULT_TOKEN, TravisFake

__all__ = ["DeployedFunction", "LambdaContext", "LocalWorker", "synthesize"]

# The handlers import `worker` from the code asset's root, as in Lambda's /var/task.
if str(ROOT / "lambdas") not in sys.path:
    sys.path.insert(0, str(ROOT / "lambdas"))
SCHEDULE_EVENT = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
DEFAULT_TIME_SCALE = 0.01  # a 15 s wait takes 0.15 s; a 10-minute build 6 s
# CodePipeline hands an unacknowledged job out again after a while it does not document; minutes
# here, so a claim that takes a few real milliseconds (seconds of compressed time) is not raced.
REDELIVERY_SECONDS = 300.0
ENDED_WITHOUT_RESULT = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


@dataclass
class Invocation:
    """One Lambda invocation routed to a real handler."""

    function: str  # logical id
    handler: str
    started: float
    duration: float
    error: str | None
    virtual_started: float = 0.0  # on the run's virtual clock


@dataclass
class Observations:
    """What the runner saw, for tests, the demo, the soak and the bench."""

    invocations: list[Invocation] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # Wait state seconds requested
    parks: list[float] = field(default_factory=list)  # park timeouts requested (seconds)
    retry_intervals: list[float] = field(default_factory=list)  # Retry seconds requested
    client_backoffs: list[float] = field(default_factory=list)  # in-Lambda retry waits
    poller_summaries: list[dict[str, Any]] = field(default_factory=list)
    reaped: list[dict[str, Any]] = field(default_factory=list)  # reaper answers
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, value: Any) -> None:
        with self.lock:
            getattr(self, kind).append(value)


@dataclass
class LambdaContext:
    """The parts of the Lambda context object the handlers (and Powertools) read."""

    function_name: str
    timeout_seconds: int
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return placeholder_function_arn(self.function_name)

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000)


# Hooks for fault injection: called around every routed invocation.
InvocationHook = Callable[[DeployedFunction, dict[str, Any]], None]
ResultHook = Callable[[DeployedFunction, dict[str, Any], Any], None]


class LocalWorker:
    """The deployed worker, locally. Use as a context manager; see `local.demo` for a tour."""

    def __init__(
        self,
        template: dict[str, Any],
        *,
        emulator: CodePipelineEmulator | None = None,
        travis: TravisFake | None = None,
        default_token: str = DEFAULT_TOKEN,
        time_scale: float = DEFAULT_TIME_SCALE,
        clock: VirtualClock | None = None,
        env_overrides: Mapping[str, str] | None = None,
        deliver_action_events: bool = True,
    ) -> None:
        """`clock`: the run's virtual clock; give the same one to a Travis fake or an emulator
        you make yourself (the defaults made here use it)."""
        self.template = template
        self.clock = clock or VirtualClock(time_scale)
        self.time_scale = self.clock.scale
        self.emulator = emulator or CodePipelineEmulator(
            redelivery_timeout_seconds=REDELIVERY_SECONDS, clock=self.clock
        )
        self.travis = travis or TravisFake(auto_repos=True, clock=self.clock)
        self.default_token = default_token
        self.env_overrides = dict(env_overrides or {})
        self.deliver_action_events = deliver_action_events
        self.deployment = Deployment(template)
        self.functions = self.deployment.functions
        self.observations = Observations()
        self.log_buffer = io.StringIO()
        self.before_invoke: list[InvocationHook] = []
        self.after_invoke: list[ResultHook] = []
        self._stack = ExitStack()
        self._sweepers: list[threading.Thread] = []
        self._deliveries: list[threading.Thread] = []
        self._sweeping = threading.Event()
        self._running = threading.Event()
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._reaped: set[str] = set()
        self.function_url: FunctionUrl | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalWorker:
        stack = self._stack
        stack.enter_context(self.emulator)
        self.travis.start()
        stack.callback(self.travis.stop)
        stack.enter_context(_patched_env(self._base_environment()))
        stack.enter_context(
            mock_aws(
                config={
                    "stepfunctions": {"execute_state_machine": True},
                    "lambda": {"use_docker": False},
                }
            )
        )
        stack.enter_context(routed_lambda(self._route))
        stack.enter_context(atomic_start_execution())
        stack.enter_context(compressed_time(self.time_scale, self.observations.add))
        stack.enter_context(self._worker_clock())
        self.deployment.create_in_moto(self.default_token)
        self.emulator.create_artifact_bucket()
        webhook = self.deployment.function("webhook")
        if webhook is not None:
            self.function_url = stack.enter_context(
                FunctionUrl(lambda event: self._call(webhook, event))
            )
        environment = self.deployment.environment(
            self.function_url.url if self.function_url else "", self.travis.base_url
        )
        environment.update(self.env_overrides)
        stack.enter_context(_patched_env(environment))
        stack.enter_context(self._capture_logs())
        self._running.set()
        self._start_status_watch()
        stack.callback(self.stop_sweeper)
        self.emulator.register_action_type(self.action_type)
        if self.deliver_action_events:
            self.emulator.add_action_listener(self._on_action_event)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_sweeper()
        self._stop_running_executions()
        self._running.clear()
        self.clock.release()
        self._stack.close()

    def _stop_running_executions(self) -> None:
        """Stop what is still running (e.g. a case that waits forever) before the mocks go."""
        try:
            sfn = boto3.client("stepfunctions", region_name=DEFAULT_REGION)
            for execution in self.executions():
                if execution["status"] == "RUNNING":
                    with self._lock:
                        self._reaped.add(execution["executionArn"])  # not a case for the reaper
                    sfn.stop_execution(
                        executionArn=execution["executionArn"], error="LocalRunnerStopped"
                    )
        except Exception:  # noqa: S110 - best effort at teardown
            pass

    # --- what the stack deployed --------------------------------------------------------------

    @property
    def action_type(self) -> dict[str, str]:
        return self.deployment.action_type

    @property
    def state_machine_arn(self) -> str:
        return self.deployment.state_machine_arn

    @property
    def secret_arn(self) -> str:
        return self.deployment.secret_arn

    @property
    def poller(self) -> DeployedFunction:
        poller = self.deployment.function("poller")
        assert poller is not None  # noqa: S101 - every template has one
        return poller

    def _base_environment(self) -> dict[str, str]:
        return {
            "AWS_DEFAULT_REGION": DEFAULT_REGION,
            "AWS_REGION": DEFAULT_REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL_CODEPIPELINE": self.emulator.endpoint_url,
            "POWERTOOLS_METRICS_DISABLED": "false",  # EMF lines go to the captured logs
        }

    # --- invocations -----------------------------------------------------------------------

    def _route(
        self,
        logical_id: str,
        event: dict[str, Any],
        response_headers: dict[str, str],
        asynchronous: bool,
    ) -> bytes:
        function = self.functions[logical_id]
        if asynchronous:
            # Lambda queues an Event invocation and answers 202 at once.
            self._deliver(lambda: self._call(function, event, swallow=True))
            return b""
        return self._invoke(function, event, response_headers)

    def _call(
        self, function: DeployedFunction, event: dict[str, Any], swallow: bool = False
    ) -> Any:
        headers: dict[str, str] = {}
        body = json.loads(self._invoke(function, event, headers) or b"null")
        if "x-amz-function-error" in headers and not swallow:
            raise RuntimeError(f"{function.logical_id} failed: {body}")
        return body

    def _invoke(
        self, function: DeployedFunction, event: dict[str, Any], response_headers: dict[str, str]
    ) -> bytes:
        started = time.monotonic()
        virtual = self.clock.now()
        context = LambdaContext(function.logical_id, function.timeout_seconds)
        error: str | None = None
        try:
            for hook in self.before_invoke:
                hook(function, event)
            result = function.load()(event, context)
            for after in self.after_invoke:
                after(function, event, result)
            return json.dumps(result).encode()
        except Exception as exc:
            # Simulated platform errors (e.g. a Lambda timeout) name themselves like Lambda does.
            error = str(getattr(exc, "error_type", type(exc).__name__))
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {
                    "errorType": error,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                }
            ).encode()
        finally:
            self.observations.add(
                "invocations",
                Invocation(
                    function.logical_id,
                    function.handler,
                    started,
                    time.monotonic() - started,
                    error,
                    virtual,
                ),
            )

    def _deliver(self, work: Callable[[], Any]) -> None:
        thread = threading.Thread(target=work, name="delivery", daemon=True)
        with self._lock:
            self._deliveries.append(thread)
        thread.start()

    # --- time and logs ---------------------------------------------------------------------------

    @contextmanager
    def _worker_clock(self) -> Iterator[None]:
        """The worker's `worker.clock` reads the run's virtual clock; in-Lambda retry waits are
        recorded."""
        from worker import clock as worker_clock

        def sleep(seconds: float) -> None:
            self.observations.add("client_backoffs", float(seconds))
            self.clock.sleep(seconds)

        worker_clock.use(self.clock.now, sleep)
        worker_time = mock.Mock(wraps=time)
        worker_time.sleep = self.clock.sleep
        try:
            with mock.patch("worker.poller.time", worker_time):
                yield
        finally:
            worker_clock.reset()

    @contextmanager
    def _capture_logs(self) -> Iterator[None]:
        """Send the handlers' Powertools log lines to a buffer (scanned for secrets by tests)."""
        from worker.observability import logger, metrics

        # In Lambda the environment exists before the first import; in one test process the
        # singletons may have been imported earlier, so give them the template's names now.
        metrics.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
        metrics.service = os.environ.get("POWERTOOLS_SERVICE_NAME")
        logger.append_keys(service=os.environ.get("POWERTOOLS_SERVICE_NAME"))
        handler = logger.registered_handler
        if not isinstance(handler, logging.StreamHandler):
            raise TypeError("Powertools Logger is expected to log through a StreamHandler")
        sink = _LockedWriter(self.log_buffer, self._log_lock)
        previous = handler.setStream(sink)

        def emf_print(line: str) -> None:
            # Powertools prints EMF metrics to stdout, which Lambda ships to CloudWatch Logs
            sink.write(line + "\n")

        emf_module = "aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch"
        single_metric_module = "aws_lambda_powertools.metrics.base"  # single_metric prints here
        try:
            with (
                mock.patch(f"{emf_module}.print", emf_print, create=True),
                mock.patch(f"{single_metric_module}.print", emf_print, create=True),
            ):
                yield
        finally:
            handler.setStream(previous)

    @property
    def logs(self) -> str:
        with self._log_lock:
            return self.log_buffer.getvalue()

    def log_records(self) -> list[dict[str, Any]]:
        """The captured JSON log lines (EMF metric lines included), parsed."""
        records = []
        for line in self.logs.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def metric_total(self, name: str, **dimensions: str) -> float:
        """The sum of an EMF metric over the run (optionally for some dimension values)."""
        total = 0.0
        for record in self.log_records():
            if name not in record or "_aws" not in record:
                continue
            if any(record.get(k) != v for k, v in dimensions.items()):
                continue
            value = record[name]
            total += sum(value) if isinstance(value, list) else float(value)
        return total

    # --- EventBridge's part ----------------------------------------------------------------------

    def poll(self, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Invoke the poller once, as EventBridge would (default: a schedule tick)."""
        response_headers: dict[str, str] = {}
        body = self._invoke(self.poller, dict(event or SCHEDULE_EVENT), response_headers)
        summary = json.loads(body)
        if "x-amz-function-error" in response_headers:
            summary = {"error": summary.get("errorType")}
        self.observations.add("poller_summaries", summary)
        return dict(summary)

    def on_action_started(self, state: str, run: ActionRun) -> None:
        """Emulator listener: deliver CodePipeline's STARTED event to the poller, asynchronously
        as EventBridge does (the pipeline does not wait for its consumers)."""
        if state == "STARTED":
            event = self.emulator.eventbridge_event(run, "STARTED")
            self._deliver(lambda: self.poll(event))

    def _on_action_event(self, state: str, run: ActionRun) -> None:
        """ABANDONED and CANCELED action events go to the abandon handler (the stack's
        ActionAbandoned rule)."""
        abandon = self.deployment.function("abandon")
        if state in ("ABANDONED", "CANCELED") and abandon is not None:
            event = self.emulator.eventbridge_event(run, state)
            self._deliver(lambda: self._call(abandon, event, swallow=True))

    def _start_status_watch(self) -> None:
        """Step Functions' "Execution Status Change" events for FAILED, TIMED_OUT and ABORTED
        executions go to the reaper (the stack's ExecutionEnded rule)."""
        reaper = self.deployment.function("reaper")
        if reaper is None:
            return

        def watch() -> None:
            while self._running.is_set():
                try:
                    executions = self.executions()
                except Exception:
                    return
                for execution in executions:
                    arn = execution["executionArn"]
                    if execution["status"] not in ENDED_WITHOUT_RESULT:
                        continue
                    with self._lock:
                        if arn in self._reaped:
                            continue
                        self._reaped.add(arn)
                    event = {
                        "source": "aws.states",
                        "detail-type": "Step Functions Execution Status Change",
                        "detail": {
                            "executionArn": arn,
                            "stateMachineArn": self.state_machine_arn,
                            "name": execution["name"],
                            "status": execution["status"],
                        },
                    }
                    answer = self._call(reaper, event, swallow=True)
                    self.observations.add("reaped", {"execution": arn, "answer": answer})
                time.sleep(0.05)

        thread = threading.Thread(target=watch, name="status-watch", daemon=True)
        thread.start()
        self._stack.callback(thread.join, 5)

    def start_sweeper(self, interval: float) -> None:
        """Schedule ticks every `interval` real seconds in the background (the rate(1 minute)
        rule). Call it twice for two pollers sweeping at once."""
        self._sweeping.set()

        def sweep() -> None:
            while self._sweeping.is_set():
                self.poll()
                time.sleep(interval)

        thread = threading.Thread(target=sweep, name="sweeper", daemon=True)
        self._sweepers.append(thread)
        thread.start()

    def stop_sweeper(self) -> None:
        """Stop the schedule and wait for event deliveries still running."""
        self._sweeping.clear()
        while self._sweepers:
            self._sweepers.pop().join(timeout=30)
        with self._lock:
            deliveries, self._deliveries = self._deliveries, []
        for delivery in deliveries:
            delivery.join(timeout=30)

    # --- inspection --------------------------------------------------------------------------

    def executions(self) -> list[dict[str, Any]]:
        sfn = boto3.client("stepfunctions", region_name=DEFAULT_REGION)
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.state_machine_arn
        )
        return [e for page in pages for e in page["executions"]]

    def describe(self, execution_arn: str) -> dict[str, Any]:
        sfn = boto3.client("stepfunctions", region_name=DEFAULT_REGION)
        return dict(sfn.describe_execution(executionArn=execution_arn))

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = boto3.client("stepfunctions", region_name=DEFAULT_REGION)
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        return [e for page in pages for e in page["events"]]

    def end_state(self, execution_arn: str) -> str | None:
        """The name of the last state an execution entered (its end state once it ended)."""
        for event in reversed(self.history(execution_arn)):
            details = event.get("stateEnteredEventDetails")
            if details:
                return str(details["name"])
        return None

    def running(self) -> int:
        return sum(1 for e in self.executions() if e["status"] == "RUNNING")

    def wait_for_runs(self, run_ids: list[str], timeout: float) -> list[ActionRun]:
        """Wait (schedule ticks drive progress) until every action run has its final result."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [self.emulator.action_run(r) for r in run_ids]
            if all(r.finished for r in runs):
                return runs
            time.sleep(0.05)
        unfinished = [r for r in run_ids if not self.emulator.action_run(r).finished]
        raise TimeoutError(f"action runs still open after {timeout}s: {unfinished}")

    def wait_idle(self, timeout: float) -> None:
        """Wait until no execution is running (so histories are complete)."""
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)

    def start_action(
        self,
        configuration: Mapping[str, str],
        *,
        revision: str | None = None,
        pipeline_name: str = "demo-pipeline",
        **kwargs: Any,
    ) -> str:
        """CodePipeline reaches the Travis action: a new action run. Returns its id."""
        job_id = self.emulator.create_job(
            self.action_type,
            configuration,
            pipeline_name=pipeline_name,
            input_revision=revision,
            **kwargs,
        )
        return self.emulator.job(job_id).action_execution_id


class _LockedWriter(io.TextIOBase):
    """A thread-safe text sink for log lines from concurrent handlers."""

    def __init__(self, buffer: io.StringIO, lock: threading.Lock) -> None:
        self._buffer = buffer
        self._lock = lock

    def write(self, text: str) -> int:
        with self._lock:
            return self._buffer.write(text)


@contextmanager
def _patched_env(values: Mapping[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ, dict(values)):
        yield
