"""What every state machine step receives: the execution state and the execution's name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.job import ExecutionInput


@dataclass(frozen=True)
class StepEvent:
    """`{"state": <execution state>, "execution": <execution name>}`, built by the state machine."""

    job: ExecutionInput
    state: dict[str, Any]
    execution: str

    @classmethod
    def parse(cls, event: dict[str, Any]) -> StepEvent:
        state = event["state"]
        return cls(
            job=ExecutionInput.from_state(state),
            state=state,
            execution=str(event.get("execution", "")),
        )

    def section(self, name: str) -> dict[str, Any]:
        """A previous step's result (`$.<name>`), empty when that step has not run."""
        value = self.state.get(name)
        return value if isinstance(value, dict) else {}
