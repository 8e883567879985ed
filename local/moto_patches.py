"""The few places where moto's Step Functions interpreter is bent to run a local worker.

moto (pinned exactly in requirements-dev.txt) executes the synthesized state machine with
LocalStack's ASL interpreter. Three things differ from AWS in ways a local run must correct:

  - time: Wait states, Retry intervals and task timeouts sleep in real time; here they run on the
    run's virtual clock (`time_scale` real seconds per virtual second), recording what the state
    machine asked for;
  - a `.waitForTaskToken` task's timeout covers the Lambda invocation as well, which in AWS takes
    milliseconds against a wait of seconds; compressed a hundredfold, the invocation alone would
    outlast the wait, so the timeout here starts once the task is waiting for its token;
  - StartExecution is not atomic (two pollers could both start one name; AWS never lets that
    happen).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

# Real seconds added to a task's outer timeout: it only guards a hanging Lambda invocation.
INVOKE_GRACE_SECONDS = 5.0

_WAIT = (
    "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function."
    "WaitFunction._wait_interval"
)
_RETRIER = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"
_TIMEOUT_PATH = "moto.stepfunctions.parser.asl.component.common.timeouts.timeout.TimeoutSecondsPath"
_CALLBACK = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_callback.StateTaskServiceCallback"
)

Record = Callable[[str, float], None]


@contextmanager
def compressed_time(scale: float, record: Record) -> Iterator[None]:
    """Waits, retry intervals and task-token timeouts on the virtual clock."""
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (
        TimeoutSecondsPath,
    )

    real_sleep = time.sleep
    original_seconds = TimeoutSecondsPath._eval_seconds

    def wait_interval(wait_function: Any, env: Any, wait_seconds: int) -> None:
        record("waits", float(wait_seconds))
        real_sleep(max(0.0, wait_seconds * scale))

    def retry_sleep(seconds: float) -> None:
        record("retry_intervals", float(seconds))
        real_sleep(max(0.0, seconds * scale))

    def timeout_seconds(self: Any, env: Any) -> float:
        return float(original_seconds(self, env)) * scale + INVOKE_GRACE_SECONDS

    def wait_for_token(self: Any, timeout_seconds: float, callback_endpoint: Any) -> Any:
        wait = max(0.0, timeout_seconds - INVOKE_GRACE_SECONDS)
        record("parks", wait / scale)
        return callback_endpoint.wait(timeout=wait)

    retry_time = mock.Mock(wraps=time)
    retry_time.sleep = retry_sleep
    with ExitStack() as stack:
        stack.enter_context(mock.patch(_WAIT, wait_interval))
        stack.enter_context(mock.patch(f"{_RETRIER}.time", retry_time))
        stack.enter_context(mock.patch(f"{_TIMEOUT_PATH}._eval_seconds", timeout_seconds))
        stack.enter_context(mock.patch(f"{_CALLBACK}._wait_for_task_token_timeout", wait_for_token))
        yield


@contextmanager
def atomic_start_execution() -> Iterator[None]:
    """Make moto's StartExecution atomic, as AWS's is."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution
    lock = threading.Lock()

    def start_execution(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    with mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution):
        yield


Invoke = Callable[[str, dict[str, Any], dict[str, str], bool], bytes]


@contextmanager
def routed_lambda(invoke: Invoke) -> Iterator[None]:
    """Send every Lambda invocation moto receives to `invoke(logical id, event, response
    headers, asynchronous)`. Function names are the template's logical ids."""

    def moto_invoke(  # noqa: PLR0917 - moto's signature
        backend: Any,
        function_name: str,
        qualifier: Any,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        import json

        logical_id = function_name.rsplit(":", 1)[-1]
        payload = json.loads(body) if body else {}
        invocation_type = ""
        for key, value in dict(headers or {}).items():
            if key.lower() == "x-amz-invocation-type":
                invocation_type = str(value)
        return invoke(logical_id, payload, response_headers, invocation_type == "Event")

    with mock.patch("moto.awslambda_simple.models.LambdaSimpleBackend.invoke", moto_invoke):
        yield
