"""End to end: one build per action run when Travis loses the answer to the build request, on
Travis's real semantics (the request is pending, without the marker, until Travis processes it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from local.clock import VirtualClock
from local.travis import Fault
from tests.e2e.conftest import QUICK, SLUG, quick_travis, run_action

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("processing_delay", "lost"),
    [
        (2.0, "502 after creating"),  # Travis processes the request at once
        (120.0, "502 after creating"),  # Travis takes two minutes: the retry waits for it
        (2.0, "connection dropped after creating"),
    ],
)
def test_a_lost_answer_makes_no_second_build(
    worker_for: Any, clock: VirtualClock, processing_delay: float, lost: str
) -> None:
    # Given Travis creates the request but the worker never hears the answer
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, processing_delay=processing_delay))
    status = 502 if lost.startswith("502") else None
    travis.process_then_fail_next("create_request", status, slug=SLUG)
    worker = worker_for(travis=travis, clock=clock)

    # When the action runs
    run = run_action(worker, timeout=90)

    # Then the retried submit found the request by its marker once Travis processed it, and
    # posted no second one: one request, one build, and the pipeline got the build's result
    assert run.status == "Succeeded", run.failure_details
    assert len(travis.requests_for(SLUG)) == 1
    assert len(travis.builds_for(SLUG)) == 1
    assert len(travis.calls_of("create_request")) == 1
    assert travis.calls_of("list_requests")  # it looked before it could post again


def test_a_request_travis_never_processes_fails_without_a_second_post(
    worker_for: Any, clock: VirtualClock
) -> None:
    # Given the answer is lost and Travis never processes the request (it stays pending)
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, processing_delay=None))
    travis.process_then_fail_next("create_request", 502, slug=SLUG)
    worker = worker_for(travis=travis, clock=clock)

    # When the action runs
    run = run_action(worker, timeout=120)

    # Then the job fails as SystemUnavailable saying why it did not ask again, after one POST
    assert run.failure_details["type"] == "SystemUnavailable"
    assert "does not ask for another build" in run.failure_details["message"]
    assert len(travis.calls_of("create_request")) == 1


def test_a_post_that_lands_after_the_client_gave_up_makes_no_second_build(
    worker_for: Any, clock: VirtualClock
) -> None:
    # Given Travis creates the request only 25 s after it arrived: longer than the client's
    # 20 s read timeout, shorter than the state machine's 30 s submit retry
    travis = quick_travis(clock)
    travis.add_fault("create_request", Fault(delay=25.0, process_first=False), slug=SLUG)
    worker = worker_for(travis=travis, clock=clock)

    run = run_action(worker, timeout=90)

    assert run.status == "Succeeded", run.failure_details
    assert len(travis.requests_for(SLUG)) == 1
