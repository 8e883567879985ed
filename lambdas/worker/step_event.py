"""What every state machine step receives: the execution state and facts from the context object.

`{"state": $, "execution": $$.Execution.Name, "retries": $$.State.RetryCount,
  "enteredAt": $$.State.EnteredTime}`; a parking task also gets `"token": $$.Task.Token`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.clock import parse_time
from worker.job import ExecutionInput


@dataclass(frozen=True)
class StepEvent:
    """One step's view of its execution."""

    job: ExecutionInput
    state: dict[str, Any]
    execution: str
    retries: int = 0  # Step Functions' retry count of this state (0 on the first attempt)
    entered_at: float | None = None  # when the execution entered this state (first attempt)
    token: str = ""  # the task token of a `.waitForTaskToken` task

    @classmethod
    def parse(cls, event: dict[str, Any]) -> StepEvent:
        state = event["state"]
        try:
            retries = int(event.get("retries") or 0)
        except (TypeError, ValueError):
            retries = 0
        return cls(
            job=ExecutionInput.from_state(state),
            state=state,
            execution=str(event.get("execution") or ""),
            retries=retries,
            entered_at=parse_time(event.get("enteredAt")),
            token=str(event.get("token") or ""),
        )

    def section(self, name: str) -> dict[str, Any]:
        """A previous step's result (`$.<name>`), empty when that step has not run."""
        value = self.state.get(name)
        return value if isinstance(value, dict) else {}
