"""The failure classification: what CodePipeline is told for each error a step can end with."""

from __future__ import annotations

import pytest

from worker.failures import (
    MAX_MESSAGE_LENGTH,
    ActionAbandoned,
    ActionEnded,
    BuildNotStarted,
    BuildUnsuccessful,
    ConfigurationInvalid,
    FailureType,
    JobFailure,
    JobGone,
    PermissionDenied,
    RequestAmbiguous,
    RequestLimitReached,
    RequestPending,
    RevisionMismatch,
    RevisionNotFound,
    ServiceUnavailable,
    TravisBanned,
    UnreadableContinuation,
    clip,
    failure_type_for_error,
    is_known_failure,
    is_timeout,
)


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    return found.union(*(_all_subclasses(c) for c in found)) if found else found


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # The rows of ARCHITECTURE.md's failure classification table.
        (ConfigurationInvalid, FailureType.CONFIGURATION_ERROR),
        (PermissionDenied, FailureType.PERMISSION_ERROR),
        (RevisionNotFound, FailureType.REVISION_UNAVAILABLE),
        (BuildUnsuccessful, FailureType.JOB_FAILED),
        (ServiceUnavailable, FailureType.SYSTEM_UNAVAILABLE),
        (BuildNotStarted, FailureType.SYSTEM_UNAVAILABLE),
        (UnreadableContinuation, FailureType.JOB_FAILED),
        (RevisionMismatch, FailureType.REVISION_OUT_OF_SYNC),
        (RequestLimitReached, FailureType.SYSTEM_UNAVAILABLE),
        (TravisBanned, FailureType.SYSTEM_UNAVAILABLE),
        (RequestPending, FailureType.SYSTEM_UNAVAILABLE),
        (RequestAmbiguous, FailureType.SYSTEM_UNAVAILABLE),
        (JobFailure, FailureType.JOB_FAILED),
    ],
)
def test_our_failures_map_to_the_table(error: type[JobFailure], expected: FailureType) -> None:
    # Given the name Step Functions reports for one of our exceptions
    name = error.__name__

    # When it is classified
    # Then the failure type is the table's, and the message is ours to show
    assert failure_type_for_error(name) is expected
    assert error("x").failure_type is expected
    assert is_known_failure(name)


@pytest.mark.parametrize(
    ("error_name", "expected"),
    [
        ("Lambda.ServiceException", FailureType.SYSTEM_UNAVAILABLE),
        ("Lambda.TooManyRequestsException", FailureType.SYSTEM_UNAVAILABLE),
        ("Lambda.Unknown", FailureType.JOB_FAILED),
        ("States.Timeout", FailureType.JOB_FAILED),
        ("States.TaskFailed", FailureType.JOB_FAILED),
        ("KeyError", FailureType.JOB_FAILED),
        ("CodePipelineRejected", FailureType.JOB_FAILED),
        ("", FailureType.JOB_FAILED),
    ],
)
def test_anything_else_is_classified_without_trusting_its_message(
    error_name: str, expected: FailureType
) -> None:
    # Given an error our code did not raise on purpose
    # When it is classified
    # Then it gets a type but is never treated as carrying a user-facing message
    assert failure_type_for_error(error_name) is expected
    assert not is_known_failure(error_name)


def test_every_failure_class_is_known_by_name() -> None:
    # Given every JobFailure subclass in the worker (a new one must not be forgotten)
    classes = _all_subclasses(JobFailure)

    # Then each is recognised by the catch-all, so its message reaches the pipeline user
    assert classes
    assert all(is_known_failure(cls.__name__) for cls in classes)


@pytest.mark.parametrize("ended", [ActionEnded, ActionAbandoned, JobGone])
def test_end_states_are_not_failures_to_report(ended: type[ActionEnded]) -> None:
    # Given the quiet end states (the run was abandoned, or the job is gone)
    # Then they are no JobFailure: the catch-all never turns them into a failure result
    assert not issubclass(ended, JobFailure)
    assert not is_known_failure(ended.__name__)
    assert ended("gone", build_id="900001").build_id == "900001"


@pytest.mark.parametrize("name", ["States.Timeout", "Sandbox.Timedout"])
def test_step_timeouts_are_recognised(name: str) -> None:
    assert is_timeout(name)


def test_a_generic_task_failure_is_not_called_a_timeout() -> None:
    assert not is_timeout("States.TaskFailed")


def test_a_failure_carries_its_build_id() -> None:
    # Given a failure raised once the build is known
    failure = BuildUnsuccessful("Travis build #3 failed", build_id="900001")

    # Then the report can set externalExecutionId from it
    assert failure.build_id == "900001"
    assert failure.message == "Travis build #3 failed"
    assert str(failure) == "Travis build #3 failed"


def test_clip_collapses_whitespace_and_respects_the_limit() -> None:
    # Given a multi-line message longer than CodePipeline allows
    message = "line one\n\tline two  " + "x" * (MAX_MESSAGE_LENGTH * 2)

    # When it is clipped
    clipped = clip(message)

    # Then each line's whitespace is collapsed, its line breaks stay (a quoted log tail is
    # lines), and it is exactly at the limit, visibly shortened
    assert len(clipped) == MAX_MESSAGE_LENGTH
    assert clipped.startswith("line one\nline two x")
    assert clipped.endswith("…")


def test_clip_drops_blank_lines() -> None:
    assert clip("Build failed.\n\n   \n  $ make test  \n") == "Build failed.\n$ make test"


def test_clip_keeps_a_short_message() -> None:
    assert clip("Build passed.", 20) == "Build passed."
    assert clip("x" * 20, 20) == "x" * 20
