"""EventBridge "CodePipeline Action Execution State Change" events for emulated action runs.

Shape from the user guide (detect-state-changes-cloudwatch-events: the action event sample and
the action-level state table) and from real events quoted on the reference page:

* ``source: aws.codepipeline``; ``resources: [pipeline ARN]``; ``time`` to the second, UTC.
* ``detail{pipeline, version (pipeline structure version), execution-id, stage, action, state,
  region, type{owner, provider, category, version}}`` — and no job id, in any state (reference).
* ``type.version`` is a **string** in real events (reference page; the user guide's first sample
  shows a number, kept behind ``version_as_number=True`` to catch consumers that assume one).
* STARTED adds ``input-artifacts``; SUCCEEDED and FAILED add ``execution-result``
  (``external-execution-id``, ``-summary``, ``-url``, and ``error-code`` on failure, as in real
  notification samples); SUCCEEDED adds ``output-artifacts`` (event schema: the CDK's
  ``CodePipelineActionExecutionStateChange`` pattern has input_artifacts and output_artifacts).
* ABANDONED (stop and abandon, reference page) and CANCELED ("the action was canceled because the
  pipeline structure was updated", user guide's action-level states) carry only the common detail.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from .artifacts import event_artifact
from .jobs import Emission
from .records import ActionListener, ActionRun, EventListener
from .timing import Timing

EVENT_DETAIL_TYPE = "CodePipeline Action Execution State Change"
EVENT_SOURCE = "aws.codepipeline"


def _execution_result(run: ActionRun, execution_url: str | None) -> dict[str, Any]:
    final = run.results[-1] if run.results else None
    if final is None:
        return {}
    details = final.execution_details or final.failure_details or {}
    result: dict[str, Any] = {}
    if details.get("externalExecutionId"):
        result["external-execution-id"] = details["externalExecutionId"]
    summary = details.get("summary") or details.get("message")
    if summary:
        result["external-execution-summary"] = summary
    if execution_url:
        result["external-execution-url"] = execution_url
    if final.failure_details:
        result["error-code"] = final.failure_details["type"]
    return result


def action_execution_event(
    run: ActionRun,
    state: str = "STARTED",
    *,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    version_as_number: bool = False,
    time: str | None = None,
    execution_url: str | None = None,
) -> dict[str, Any]:
    """Build the EventBridge "CodePipeline Action Execution State Change" event for a run.

    ``type.version`` is a string, as real events send it; ``version_as_number=True`` gives the
    number form of the user guide's first sample. ``time`` defaults to the current real time.
    """
    version: str | int = str(run.action_type["version"])
    if version_as_number and str(version).isdigit():
        version = int(version)
    detail: dict[str, Any] = {
        "pipeline": run.pipeline_name,
        "version": run.pipeline_version,
        "execution-id": run.pipeline_execution_id,
        "stage": run.stage_name,
        "action": run.action_name,
        "state": state,
        "region": region,
        "type": {
            "owner": run.action_type["owner"],
            "provider": run.action_type["provider"],
            "category": run.action_type["category"],
            "version": version,
        },
    }
    if state == "STARTED":
        detail["input-artifacts"] = [event_artifact(a) for a in run.input_artifacts]
    elif state in ("SUCCEEDED", "FAILED"):
        detail["execution-result"] = _execution_result(run, execution_url)
        if state == "SUCCEEDED":
            detail["output-artifacts"] = [event_artifact(a) for a in run.output_artifacts]
    if time is None:
        time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": EVENT_DETAIL_TYPE,
        "source": EVENT_SOURCE,
        "account": account_id,
        "time": time,
        "region": region,
        "resources": [run.pipeline_arn],
        "detail": detail,
    }


class EventSettings(Protocol):
    region: str
    account_id: str
    event_version_as_number: bool


class Broadcaster:
    """Delivers action state changes to listeners, outside the emulator's lock.

    Action listeners get ``(state, run)`` (a snapshot of the run as of the change); event
    listeners get the EventBridge event. A listener's exception is kept in ``errors`` and does
    not fail the API call that caused the change (EventBridge does not wait for its targets).
    """

    def __init__(
        self,
        lock: threading.RLock,
        settings: EventSettings,
        timing: Timing,
        execution_url: Callable[[ActionRun], str | None],
    ) -> None:
        self._lock, self._settings, self._timing = lock, settings, timing
        self._execution_url = execution_url
        self.action_listeners: list[ActionListener] = []
        self.event_listeners: list[EventListener] = []
        self.errors: list[BaseException] = []

    def event(
        self,
        run: ActionRun,
        state: str,
        at: float | None = None,
        version_as_number: bool | None = None,
    ) -> dict[str, Any]:
        """The event for a run in a state, stamped with the emulator clock's time ``at``."""
        if version_as_number is None:
            version_as_number = self._settings.event_version_as_number
        with self._lock:
            url = self._execution_url(run)
        return action_execution_event(
            run,
            state,
            region=self._settings.region,
            account_id=self._settings.account_id,
            version_as_number=version_as_number,
            time=self._timing.event_time(at),
            execution_url=url,
        )

    def fire(self, emissions: list[Emission]) -> None:
        with self._lock:
            listeners, event_listeners = list(self.action_listeners), list(self.event_listeners)
        for emission in emissions:
            for listener in listeners:
                self._guarded(listener, emission.state, emission.run)
            if event_listeners:
                event = self.event(emission.run, emission.state, emission.at)
                for event_listener in event_listeners:
                    self._guarded(event_listener, copy.deepcopy(event))

    def _guarded(self, listener: Callable[..., None], *args: Any) -> None:
        try:
            listener(*args)
        except Exception as error:  # a listener bug must not fail the API call
            with self._lock:
                self.errors.append(error)
