"""The test harness half of the emulator: observe it, perturb it, wait for it.

``CodePipelineEmulator`` (``emulator.py``) inherits this: listeners for action state changes,
the call log and deep-copied views of jobs and runs, scripted faults and AcknowledgeJob answers,
and real-time waits. Nothing here is CodePipeline behaviour; it is how tests watch it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from .events import Broadcaster
from .jobs import JobStore
from .model import enum_values
from .records import ActionListener, ActionRun, CallRecord, EventListener, Job, PipelineExecution
from .service import ApiFront
from .timing import Timing


class Harness:
    """Observation and fault injection over the emulator's state (see the module docstring)."""

    timing: Timing
    listener_errors: list[BaseException]
    _lock: threading.RLock
    _changed: threading.Condition
    _store: JobStore
    _front: ApiFront
    _broadcaster: Broadcaster

    # ----------------------------------------------------------------------- faults

    def throttle_next(self, operation: str, count: int = 1) -> None:
        """Answer the next ``count`` calls of ``operation`` with ThrottlingException."""
        self.fail_next(operation, count, "ThrottlingException", "Rate exceeded", 400)

    def fail_next(
        self,
        operation: str,
        count: int = 1,
        code: str = "InternalFailure",
        message: str = "An internal error occurred",
        status: int = 500,
    ) -> None:
        """Answer the next ``count`` calls of ``operation`` with an arbitrary AWS error."""
        self._front.fail_next(operation, count, code, message, status)

    def force_acknowledge_status(self, job_id: str, status: str, count: int = 1) -> None:
        """Answer the next ``count`` AcknowledgeJob calls for a job with ``status`` (a JobStatus),
        whatever the nonce, without changing the job (assumed shape: ``{"status": ...}``)."""
        if status not in enum_values("JobStatus"):  # model, JobStatus
            raise ValueError(f"not a JobStatus: {status!r}")
        with self._lock:
            self._store.jobs[job_id].forced_acknowledge.extend([status] * count)

    # ----------------------------------------------------------------------- listeners

    def add_action_listener(self, listener: ActionListener) -> None:
        """Call ``listener(state, run)`` on every action state change (STARTED, SUCCEEDED,
        FAILED, ABANDONED, CANCELED), outside the lock, on the thread that caused it; exceptions
        go to ``listener_errors``. ``eventbridge_event`` turns the pair into the event."""
        with self._lock:
            self._broadcaster.action_listeners.append(listener)

    def remove_action_listener(self, listener: ActionListener) -> None:
        with self._lock:
            self._broadcaster.action_listeners.remove(listener)

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` with the EventBridge event of every action state change."""
        with self._lock:
            self._broadcaster.event_listeners.append(listener)

    def eventbridge_event(
        self, run: ActionRun | str, state: str = "STARTED", *, version_as_number: bool | None = None
    ) -> dict[str, Any]:
        """The "CodePipeline Action Execution State Change" event for a run (object or id);
        ``type.version`` a string unless ``version_as_number`` (or event_version_as_number)."""
        found = self.action_run(run) if isinstance(run, str) else run
        return self._broadcaster.event(found, state, version_as_number=version_as_number)

    # ----------------------------------------------------------------------- inspection

    def calls(self, operation: str | None = None) -> list[CallRecord]:
        """Every API call so far (throttled and failed ones too), oldest first."""
        return self._front.calls(operation)

    def job(self, job_id: str) -> Job:
        self._settle()
        with self._lock:
            return copy.deepcopy(self._store.jobs[job_id])

    def jobs(self, action_execution_id: str | None = None) -> list[Job]:
        """All jobs (optionally of one action run), oldest first."""
        self._settle()
        with self._lock:
            return [
                copy.deepcopy(j)
                for j in self._store.jobs.values()
                if action_execution_id in (None, j.action_execution_id)
            ]

    def action_run(self, action_execution_id: str) -> ActionRun:
        self._settle()
        with self._lock:
            return copy.deepcopy(self._store.runs[action_execution_id])

    def action_runs(self) -> list[ActionRun]:
        self._settle()
        with self._lock:
            return [copy.deepcopy(r) for r in self._store.runs.values()]

    def run_for_job(self, job_id: str) -> ActionRun:
        with self._lock:
            action_execution_id = self._store.jobs[job_id].action_execution_id
        return self.action_run(action_execution_id)

    def pipeline_execution(self, pipeline_execution_id: str) -> PipelineExecution:
        with self._lock:
            return copy.deepcopy(self._store.executions[pipeline_execution_id])

    def ack_count(self, job_id: str) -> int:
        """Successful AcknowledgeJob calls for a job (idempotent re-acks included)."""
        with self._lock:
            return self._store.jobs[job_id].acknowledgements

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds (checked under the lock) or ``timeout`` *real*
        seconds pass: a harness deadline, so a hand-moved clock cannot hang a test."""
        deadline = time.monotonic() + timeout
        while True:
            self._settle()
            with self._changed:
                if predicate():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Wake up now and then too: timeouts change state without any call.
                self._changed.wait(min(remaining, 0.05))

    def wait_for_run(self, action_execution_id: str, timeout: float) -> ActionRun:
        """Wait (real seconds) until an action run has finished; TimeoutError otherwise."""
        if not self.wait_until(lambda: self._store.runs[action_execution_id].finished, timeout):
            raise TimeoutError(f"action run {action_execution_id} still in progress")
        return self.action_run(action_execution_id)

    # ----------------------------------------------------------------------- internals

    def _change(self, change: Callable[[float], Any]) -> Any:
        """Apply an admin change under the lock, then tell the listeners (outside it)."""
        failure: Exception | None = None
        result: Any = None
        with self._lock:
            now = self.timing.now()
            self._store.sweep(now)
            try:
                result = change(now)
            except Exception as error:  # re-raised once the listeners heard what did change
                failure = error
            emissions = self._store.drain()
            self._changed.notify_all()
        self._broadcaster.fire(emissions)
        if failure is not None:
            raise failure
        return result

    def _settle(self) -> None:
        """Sweep timeouts and deliver whatever changed (outside the lock)."""
        with self._lock:
            self._store.sweep(self.timing.now())
            emissions = self._store.drain()
            if emissions:
                self._changed.notify_all()
        self._broadcaster.fire(emissions)
