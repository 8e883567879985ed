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


def test_the_context_facts_are_read() -> None:
    # Given a retried parking task's payload: retry count, entered time, task token
    event = {
        **step_event(execution_input(), execution="job-1a2b3c4d"),
        "retries": 2,
        "enteredAt": "2026-12-01T10:00:00.250Z",
        "token": "task-token",
    }

    step = StepEvent.parse(event)

    assert step.retries == 2
    assert step.entered_at == pytest.approx(1_796_119_200.25)
    assert step.token == "task-token"


@pytest.mark.parametrize("retries", [None, "x", ""])
def test_odd_context_facts_read_as_a_first_attempt(retries: object) -> None:
    event = {**step_event(execution_input()), "retries": retries, "enteredAt": "not a time"}

    step = StepEvent.parse(event)

    assert (step.retries, step.entered_at, step.token) == (0, None, "")
