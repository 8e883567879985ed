"""Run the whole worker on one machine: the synthesized state machine, the real handlers, emulators.

Nothing inside the worker is faked. The state machine definition comes from the synthesized
template and runs in moto's Step Functions interpreter; each Lambda task is routed in-process to the
real handler named in the template, with that function's environment from the template; the
handlers reach CodePipeline through the job-API emulator over HTTP (real botocore serialization),
Travis through the Travis fake over HTTP, and Secrets Manager through moto. The poller is driven the
way EventBridge would: schedule ticks and "action started" events.

Waits and retry intervals can be compressed (`time_scale`), but the seconds the state machine asked
for are recorded so the poll schedule can be checked.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws

from local.codepipeline_emulator import ActionRun, CodePipelineEmulator
from local.template import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    lambda_functions,
    placeholder_function_arn,
    resolve,
    resources_of_type,
    state_machine_definition,
)
from local.travis_fake import DEFAULT_TOKEN, TravisFake

ROOT = Path(__file__).resolve().parent.parent
# The handlers import `worker` from the code asset's root, as in Lambda's /var/task.
if str(ROOT / "lambdas") not in sys.path:
    sys.path.insert(0, str(ROOT / "lambdas"))
BUILD_DIR = ROOT / ".build"
SCHEDULE_EVENT = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


# --------------------------------------------------------------------------- synthesis


def synthesize(context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Synthesize the CDK app (cdk-nag included) and return the stack's template.

    The cloud assembly goes to a temporary folder that is removed: only the template is needed.
    """
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from app import build_app  # imported late: jsii starts a node process

    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="synth-", dir=BUILD_DIR) as outdir:
        app = build_app(outdir=outdir, context=dict(context or {}))
        (stack,) = app.synth().stacks
        return dict(stack.template)


# --------------------------------------------------------------------------- observations


@dataclass
class Invocation:
    """One Lambda invocation routed to a real handler."""

    function: str  # logical id
    handler: str
    started: float
    duration: float
    error: str | None


@dataclass
class Observations:
    """What the runner saw, for tests, the demo and the soak report."""

    invocations: list[Invocation] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # Wait state seconds requested
    retry_intervals: list[float] = field(default_factory=list)  # Retry seconds requested
    client_backoffs: list[float] = field(default_factory=list)  # in-Lambda retry waits
    poller_summaries: list[dict[str, Any]] = field(default_factory=list)
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


@dataclass(frozen=True)
class DeployedFunction:
    logical_id: str
    handler: str
    timeout_seconds: int
    environment: dict[str, Any]

    def load(self) -> Callable[[dict[str, Any], Any], Any]:
        module, _, name = self.handler.rpartition(".")
        handler: Callable[[dict[str, Any], Any], Any] = getattr(
            importlib.import_module(module), name
        )
        return handler


# Hooks for fault injection: called around every routed invocation.
InvocationHook = Callable[[DeployedFunction, dict[str, Any]], None]
ResultHook = Callable[[DeployedFunction, dict[str, Any], Any], None]


# --------------------------------------------------------------------------- the runner


class LocalWorker:
    """The deployed worker, locally. Use as a context manager; see `local.demo` for a tour."""

    def __init__(
        self,
        template: dict[str, Any],
        *,
        emulator: CodePipelineEmulator | None = None,
        travis: TravisFake | None = None,
        default_token: str = DEFAULT_TOKEN,
        time_scale: float = 0.0,
        env_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.emulator = emulator or CodePipelineEmulator(redelivery_timeout_seconds=30.0)
        self.travis = travis or TravisFake(auto_repos=True)
        self.default_token = default_token
        self.time_scale = time_scale
        self.env_overrides = dict(env_overrides or {})
        self.observations = Observations()
        self.log_buffer = io.StringIO()
        self.before_invoke: list[InvocationHook] = []
        self.after_invoke: list[ResultHook] = []
        self.functions = self._deployed_functions()
        self.state_machine_arn = ""
        self.secret_arn = ""
        self._stack = ExitStack()
        self._sweepers: list[threading.Thread] = []
        self._deliveries: list[threading.Thread] = []
        self._sweeping = threading.Event()
        self._log_lock = threading.Lock()

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
        stack.enter_context(self._route_lambda_invocations())
        stack.enter_context(_atomic_start_execution())
        stack.enter_context(self._compress_waits())
        self._deploy()
        stack.enter_context(_patched_env(self._function_environment()))
        stack.enter_context(self._capture_logs())
        stack.callback(self.stop_sweeper)
        self.emulator.register_action_type(self.action_type)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_sweeper()
        self._stop_running_executions()
        self._stack.close()

    def _stop_running_executions(self) -> None:
        """Stop what is still running (e.g. a case that waits forever) before the mocks go."""
        try:
            sfn = boto3.client("stepfunctions", region_name=DEFAULT_REGION)
            for execution in self.executions():
                if execution["status"] == "RUNNING":
                    sfn.stop_execution(
                        executionArn=execution["executionArn"], error="LocalRunnerStopped"
                    )
        except Exception:  # noqa: S110 - best effort at teardown
            pass

    # --- what the stack deployed --------------------------------------------------------------

    @property
    def action_type(self) -> dict[str, str]:
        (resource,) = resources_of_type(
            self.template, "AWS::CodePipeline::CustomActionType"
        ).values()
        props = resource["Properties"]
        return {
            "owner": "Custom",
            "category": props["Category"],
            "provider": props["Provider"],
            "version": props["Version"],
        }

    def _deployed_functions(self) -> dict[str, DeployedFunction]:
        return {
            logical_id: DeployedFunction(
                logical_id=logical_id,
                handler=str(props["Handler"]),
                timeout_seconds=int(props.get("Timeout", 3)),
                environment=dict((props.get("Environment") or {}).get("Variables") or {}),
            )
            for logical_id, props in lambda_functions(self.template).items()
        }

    @property
    def poller(self) -> DeployedFunction:
        (poller,) = [f for f in self.functions.values() if f.handler.endswith("poller.handler")]
        return poller

    def _deploy(self) -> None:
        """Create in moto what the template declares and the local run needs."""
        secrets = boto3.client("secretsmanager", region_name=DEFAULT_REGION)
        self.secret_arn = secrets.create_secret(
            Name="travis-worker-token", SecretString=json.dumps({"token": self.default_token})
        )["ARN"]
        sfn = boto3.client("stepfunctions", region_name=DEFAULT_REGION)
        definition = state_machine_definition(self.template)
        machine_id = next(
            iter(resources_of_type(self.template, "AWS::StepFunctions::StateMachine"))
        )
        name = self.template["Resources"][machine_id]["Properties"].get("StateMachineName")
        self.state_machine_arn = sfn.create_state_machine(
            name=str(name or "TravisWorker"),
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/TravisWorkerStateMachine",
            type="STANDARD",
        )["stateMachineArn"]

    def _base_environment(self) -> dict[str, str]:
        return {
            "AWS_DEFAULT_REGION": DEFAULT_REGION,
            "AWS_REGION": DEFAULT_REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL_CODEPIPELINE": self.emulator.endpoint_url,
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_METRICS_DISABLED": "false",  # EMF lines go to the captured logs
        }

    def _function_environment(self) -> dict[str, str]:
        """The functions' environment from the template, with tokens resolved for this run.

        All step functions share one environment and the poller's is a superset (checked here),
        so one process environment serves every in-process invocation faithfully.
        """
        merged: dict[str, Any] = {}
        for function in self.functions.values():
            for key, value in function.environment.items():
                if key in merged and merged[key] != value:
                    raise RuntimeError(
                        f"functions disagree on {key}: cannot run them in one process"
                    )
                merged[key] = value
        state_machine_id = next(
            iter(resources_of_type(self.template, "AWS::StepFunctions::StateMachine"))
        )
        secrets = resources_of_type(self.template, "AWS::SecretsManager::Secret")

        def resolve_ref(logical_id: str, attribute: str | None) -> str:
            if logical_id == state_machine_id and attribute is None:
                return self.state_machine_arn
            if logical_id in secrets and attribute is None:
                return self.secret_arn
            pseudo = {
                "AWS::Partition": "aws",
                "AWS::Region": DEFAULT_REGION,
                "AWS::AccountId": DEFAULT_ACCOUNT,
            }
            if logical_id in pseudo:
                return pseudo[logical_id]
            raise RuntimeError(f"cannot resolve {logical_id}.{attribute} locally")

        resolved = {key: str(resolve(value, resolve_ref)) for key, value in merged.items()}
        if resolved.get("STATE_MACHINE_ARN", self.state_machine_arn) != self.state_machine_arn:
            raise RuntimeError("the poller's STATE_MACHINE_ARN does not name the state machine")
        # Travis lives on 127.0.0.1 here: make the fake the default (and trusted) endpoint.
        resolved["TRAVIS_DEFAULT_ENDPOINT"] = self.travis.base_url
        resolved.update(self.env_overrides)
        return resolved

    # --- routing Lambda invocations -------------------------------------------------------------

    @contextmanager
    def _route_lambda_invocations(self) -> Iterator[None]:
        runner = self

        def invoke(  # noqa: PLR0917 - moto's signature
            backend: Any,
            function_name: str,
            qualifier: Any,
            body: Any,
            headers: Any,
            response_headers: dict[str, str],
        ) -> bytes:
            logical_id = function_name.rsplit(":", 1)[-1]
            function = runner.functions[logical_id]
            payload = json.loads(body) if body else {}
            return runner._invoke(function, payload, response_headers)

        with mock.patch("moto.awslambda_simple.models.LambdaSimpleBackend.invoke", invoke):
            yield

    def _invoke(
        self, function: DeployedFunction, event: dict[str, Any], response_headers: dict[str, str]
    ) -> bytes:
        started = time.monotonic()
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
                ),
            )

    # --- time --------------------------------------------------------------------------------

    @contextmanager
    def _compress_waits(self) -> Iterator[None]:
        runner = self

        def wait_interval(wait_function: Any, env: Any, wait_seconds: int) -> None:
            runner.observations.add("waits", float(wait_seconds))
            time.sleep(max(0.0, wait_seconds * runner.time_scale))

        real_sleep = time.sleep

        def retry_sleep(seconds: float) -> None:
            runner.observations.add("retry_intervals", float(seconds))
            real_sleep(max(0.0, seconds * runner.time_scale))

        def client_sleep(seconds: float) -> None:
            runner.observations.add("client_backoffs", float(seconds))
            real_sleep(max(0.0, seconds * runner.time_scale))

        worker_time = mock.Mock(wraps=time)
        worker_time.sleep = client_sleep
        wait_path = (
            "moto.stepfunctions.parser.asl.component.state.wait.wait_function."
            "wait_function.WaitFunction._wait_interval"
        )
        retry_module = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"
        retry_time = mock.Mock(wraps=time)
        retry_time.sleep = retry_sleep
        with (
            mock.patch(wait_path, wait_interval),
            mock.patch(f"{retry_module}.time", retry_time),
            mock.patch("worker.retry.time", worker_time),
            mock.patch("worker.poller.time", worker_time),
        ):
            yield

    # --- logs ------------------------------------------------------------------------------

    @contextmanager
    def _capture_logs(self) -> Iterator[None]:
        """Send the handlers' Powertools log lines to a buffer (scanned for secrets by tests)."""
        from worker.observability import logger, metrics

        # In Lambda the environment exists before the first import; in one test process the
        # singletons may have been imported earlier, so give them the template's names now.
        metrics.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
        metrics.service = os.environ.get("POWERTOOLS_SERVICE_NAME")
        handler = logger.registered_handler
        if not isinstance(handler, logging.StreamHandler):
            raise TypeError("Powertools Logger is expected to log through a StreamHandler")
        sink = _LockedWriter(self.log_buffer, self._log_lock)
        previous = handler.setStream(sink)

        def emf_print(line: str) -> None:
            # Powertools prints EMF metrics to stdout, which Lambda ships to CloudWatch Logs
            sink.write(line + "\n")

        emf_module = "aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch"
        try:
            with mock.patch(f"{emf_module}.print", emf_print, create=True):
                yield
        finally:
            handler.setStream(previous)

    @property
    def logs(self) -> str:
        with self._log_lock:
            return self.log_buffer.getvalue()

    # --- driving the poller ---------------------------------------------------------------------

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
            delivery = threading.Thread(target=self.poll, args=(event,), name="eventbridge")
            with self._log_lock:
                self._deliveries.append(delivery)
            delivery.start()

    def start_sweeper(self, interval: float) -> None:
        """Schedule ticks every `interval` seconds in the background (the rate(1 minute) rule).

        Call it twice for two pollers sweeping at once.
        """
        self._sweeping.set()

        def sweep() -> None:
            while self._sweeping.is_set():
                self.poll()
                time.sleep(interval)

        thread = threading.Thread(target=sweep, name="sweeper", daemon=True)
        self._sweepers.append(thread)
        thread.start()

    def stop_sweeper(self) -> None:
        """Stop the schedule and wait for event deliveries still polling."""
        self._sweeping.clear()
        while self._sweepers:
            self._sweepers.pop().join(timeout=30)
        with self._log_lock:
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
def _atomic_start_execution() -> Iterator[None]:
    """Make moto's StartExecution atomic, as AWS's is.

    moto checks for an execution of the same name and then appends the new one without a lock, so
    two concurrent pollers could both start "the same" execution; AWS never lets that happen.
    """
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution
    lock = threading.Lock()

    def start_execution(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    with mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution):
        yield


@contextmanager
def _patched_env(values: Mapping[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ, dict(values)):
        yield
