"""What a step receives: the execution state (sanitized job plus earlier results) and its name."""

from __future__ import annotations

import pytest

from tests.unit.support import execution_input, step_event
from worker.step_event import StepEvent


def test_a_step_reads_the_job_and_earlier_results() -> None:
    # Given the state after Submit, as the state machine passes it
    job = execution_input()
    event = step_event(job, execution="job-1a2b3c4d", submission={"requestId": "205001"})

    # When a step parses it
    step = StepEvent.parse(event)

    # Then it has the job, the execution name and the submit result
    assert step.job == job
    assert step.execution == "job-1a2b3c4d"
    assert step.section("submission") == {"requestId": "205001"}


@pytest.mark.parametrize("value", [None, "text", [1], 3])
def test_a_missing_or_odd_section_reads_as_empty(value: object) -> None:
    step = StepEvent.parse(step_event(execution_input(), resolution=value))
    assert step.section("resolution") == {}
    assert step.section("watch") == {}


def test_an_event_without_the_execution_name_still_parses() -> None:
    event = step_event(execution_input())
    del event["execution"]
    assert StepEvent.parse(event).execution == ""
