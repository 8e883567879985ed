"""The API front of the emulator: faults, latency, the call log, and dispatch to the state.

One HTTP request becomes one ``serve`` call: signature check (``wire``), decoding, injected
faults (``fail_next``, ``throttle_rate``: ``ThrottlingException`` is a 400, which botocore's
legacy and standard retry modes both retry), model validation, then the operation on the job
store under the emulator's lock, and a ``CallRecord`` for tests to inspect.
"""

from __future__ import annotations

import copy
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from . import executions
from .executions import ListSettings, StopSettings
from .jobs import Emission, JobStore
from .model import ApiError, validate_input
from .records import CallRecord
from .timing import Timing
from .wire import check_signature, decode, respond, unknown_operation

OPERATIONS = (
    "PollForJobs",
    "AcknowledgeJob",
    "GetJobDetails",
    "PutJobSuccessResult",
    "PutJobFailureResult",
    "StopPipelineExecution",
    "ListActionExecutions",
)


class FrontSettings(ListSettings, StopSettings, Protocol):
    region: str
    throttle_rate: float
    latency_seconds: float | tuple[float, float]
    require_signature: bool


class ApiFront:
    """Serves the operations in ``OPERATIONS`` against a ``JobStore``."""

    def __init__(  # noqa: PLR0917 - the facade's parts, passed once
        self,
        settings: FrontSettings,
        store: JobStore,
        lock: threading.RLock,
        changed: threading.Condition,
        timing: Timing,
        fire: Callable[[list[Emission]], None],
        seed: int | None,
    ) -> None:
        self.settings, self.store, self.timing = settings, store, timing
        self._lock, self._changed, self._fire = lock, changed, fire
        self._rng = random.Random(seed)  # faults only: reproducible with a seed
        self._forced: dict[str, deque[ApiError]] = {}
        self._calls: list[CallRecord] = []

    def fail_next(self, operation: str, count: int, code: str, message: str, status: int) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        with self._lock:
            queue = self._forced.setdefault(operation, deque())
            queue.extend(ApiError(code, message, status) for _ in range(count))

    def calls(self, operation: str | None = None) -> list[CallRecord]:
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls if operation in (None, c.operation)]

    def _dispatch(self, operation: str, params: dict[str, Any], now: float) -> dict[str, Any]:
        store = self.store
        if operation == "StopPipelineExecution":
            return executions.stop_pipeline_execution(store, params, now, self.settings)
        if operation == "ListActionExecutions":
            return executions.list_action_executions(
                store, params, self.settings, self.timing.datetime
            )
        handler: Callable[[dict[str, Any], float], dict[str, Any]] = {
            "PollForJobs": store.poll_for_jobs,
            "AcknowledgeJob": store.acknowledge_job,
            "GetJobDetails": store.get_job_details,
            "PutJobSuccessResult": store.put_job_success_result,
            "PutJobFailureResult": store.put_job_failure_result,
        }[operation]
        return handler(params, now)

    def execute(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one API operation against the state; raises ApiError for AWS errors."""
        with self._lock:
            forced = self._forced.get(operation)
            if forced:
                raise forced.popleft()
            if self.settings.throttle_rate and self._rng.random() < self.settings.throttle_rate:
                raise ApiError("ThrottlingException", "Rate exceeded")
        validate_input(operation, params)  # needs no state: outside the lock
        failure: ApiError | None = None
        response: dict[str, Any] = {}
        with self._lock:
            now = self.timing.now()
            self.store.sweep(now)
            try:
                response = self._dispatch(operation, params, now)
            except ApiError as error:
                failure = error
            emissions = self.store.drain()
            self._changed.notify_all()
        self._fire(emissions)
        if failure is not None:
            raise failure
        return response

    def _sleep_latency(self) -> None:
        latency = self.settings.latency_seconds
        if isinstance(latency, tuple):
            with self._lock:
                latency = self._rng.uniform(*latency)
        self.timing.sleep(latency)  # in the emulator clock's seconds

    def serve(
        self, protocol: str, operation: str, body: bytes, authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one HTTP request (already split by protocol) and record it as a call."""
        request_id, started = str(uuid.uuid4()), self.timing.now()
        params: dict[str, Any] = {}
        response: dict[str, Any] | None = None
        error: ApiError | None = None
        self._sleep_latency()
        try:
            if self.settings.require_signature:
                check_signature(authorization, self.settings.region)
            if operation not in OPERATIONS:
                raise unknown_operation(protocol, operation)
            params = decode(protocol, body)
            response = self.execute(operation, params)
        except ApiError as caught:
            error = caught
        except Exception as caught:  # a bug here must reach the client as a 500
            error = ApiError("InternalFailure", f"{type(caught).__name__}: {caught}", 500)
        with self._lock:
            self._calls.append(
                CallRecord(
                    seq=len(self._calls) + 1,
                    operation=operation,
                    protocol=protocol,
                    params=copy.deepcopy(params),
                    response=copy.deepcopy(response),
                    error_code=error.code if error else None,
                    error_message=error.message if error else None,
                    status=error.status if error else 200,
                    started=started,
                    finished=self.timing.now(),
                    request_id=request_id,
                )
            )
        return respond(protocol, operation, response, error, request_id)
