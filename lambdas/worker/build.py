"""Submitting a build, waiting for Travis to create it, and following it to the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from worker.continuation import Continuation
from worker.failures import BuildNotStarted, BuildUnsuccessful
from worker.observability import logger, metrics
from worker.providers import BuildProvider, BuildRef, Submission
from worker.settings import Settings
from worker.step_event import StepEvent


def submit_build(step: StepEvent, provider: BuildProvider) -> dict[str, Any]:
    """Request the build of the job's commit (idempotent: a retry finds the request it made)."""
    provider.validate(step.job.configuration)
    submission = provider.submit(step.job)
    logger.info(
        "Build requested" if submission.created else "Found the build request made earlier",
        extra={"request_id": submission.request_id, "revision": step.job.revision},
    )
    if submission.created:
        metrics.add_metric(name="BuildsRequested", unit="Count", value=1)
    return submission.as_dict()


def resolve_build(
    step: StepEvent,
    provider: BuildProvider,
    settings: Settings,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Look once for the build Travis created for our request; say how long to wait if not yet."""
    submission = step.section("submission")
    previous = step.section("resolution")
    polls = int(previous.get("polls", 0)) + 1
    build = provider.resolve(step.job, str(submission["requestId"]))
    if build is not None:
        logger.info("Build created", extra={"build_id": build.build_id, "build_url": build.url})
        return {"ready": True, "build": build.as_dict(), "polls": polls, "waitSeconds": 0}
    waited = clock() - float(submission["submittedAt"])
    if waited > settings.resolve_timeout_seconds:
        raise BuildNotStarted(
            f"Travis CI accepted build request {submission['requestId']} but created no build "
            f"within {settings.resolve_timeout_seconds // 60} minutes."
        )
    return {
        "ready": False,
        "build": None,
        "polls": polls,
        "waitSeconds": settings.resolve_wait.seconds(polls - 1),
    }


def continuation_for(step: StepEvent, provider: BuildProvider) -> Continuation:
    """The continuation token of a resolved build (phase 1 → phase 2)."""
    submission = step.section("submission")
    build = step.section("resolution")["build"]
    return provider.continuation(
        step.job,
        Submission(
            request_id=str(submission["requestId"]),
            created=bool(submission.get("created", True)),
            submitted_at=float(submission["submittedAt"]),
        ),
        BuildRef(
            build_id=str(build["buildId"]), number=str(build["number"]), url=str(build["url"])
        ),
    )


def watch_build(
    step: StepEvent,
    provider: BuildProvider,
    settings: Settings,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Look once at the build; when it runs past the watch timeout, cancel it and fail the job."""
    continuation = Continuation.from_dict(step.job.continuation)
    previous = step.section("watch")
    polls = int(previous.get("polls", 0)) + 1
    status = provider.status(step.job, continuation)
    logger.info(
        "Build status",
        extra={"build_id": status.build_id, "state": status.state, "progress": status.progress},
    )
    if not status.finished and clock() - continuation.started > settings.watch_timeout_seconds:
        provider.cancel(step.job, continuation)
        metrics.add_metric(name="BuildsTimedOut", unit="Count", value=1)
        raise BuildUnsuccessful(
            f"Travis build #{status.number} did not finish within "
            f"{settings.watch_timeout_seconds // 60} minutes and was canceled: {status.url}",
            build_id=status.build_id,
        )
    return {
        "finished": status.finished,
        "status": status.as_dict(),
        "polls": polls,
        "waitSeconds": 0 if status.finished else settings.watch_wait.seconds(polls - 1),
    }
