"""Phase 1, second step: wait for Travis to turn the request into a build, check it is the build
the pipeline asked for, and learn how long such builds take."""

from __future__ import annotations

from typing import Any

from worker import clock
from worker.abandon import run_is_over
from worker.cancel import cancel_note, cancel_quietly
from worker.codepipeline import CodePipelineJobs
from worker.failures import BuildNotStarted, JobFailure, RevisionMismatch
from worker.job import same_commit
from worker.observability import logger, metrics
from worker.providers import BuildProvider, BuildRef, Submission
from worker.settings import Settings
from worker.step_event import StepEvent
from worker.wake import Signal


def resolve_build(
    step: StepEvent,
    provider: BuildProvider,
    settings: Settings,
    jobs: CodePipelineJobs,
) -> dict[str, Any]:
    """Look once for the build of our request; `$.resolution` (`next`: publish | park | cancel)."""
    submission = Submission.from_dict(step.section("submission"))
    previous = step.section("resolution")
    polls = int(previous.get("polls", 0)) + 1
    abandoned = bool(previous.get("abandoned")) or _abandoned(step, jobs)
    build = provider.resolve(step.job, submission.request_id)
    now = clock.now()
    if build is None:
        timed_out = now - submission.submitted_at > settings.resolve_timeout_seconds
        if abandoned and timed_out:
            return {"next": "cancel", "abandoned": True, "build": None, "polls": polls}
        if timed_out:
            raise BuildNotStarted(
                f"Travis CI accepted build request {submission.request_id} but created no build "
                f"within {settings.resolve_timeout_seconds // 60} minutes."
            )
        # Even an abandoned run waits for the build, to cancel it: no build left behind.
        return {
            "next": "park",
            "abandoned": abandoned,
            "build": None,
            "polls": polls,
            "waitSeconds": settings.resolve_wait.seconds(polls - 1),
            "lookedAt": now,
        }
    logger.thread_safe_append_keys(build_id=build.build_id)
    if abandoned:
        return {"next": "cancel", "abandoned": True, "build": build.as_dict(), "polls": polls}
    _check_revision(step, provider, submission, build)
    if submission.lost_answer:
        _cancel_duplicates(step, provider, submission)
    expectation = provider.expectation(step.job)
    logger.info(
        "Build created",
        extra={
            "build_url": build.url,
            "expected_seconds": expectation.seconds if expectation else None,
        },
    )
    return {
        "next": "publish",
        "abandoned": False,
        "build": build.as_dict(),
        "polls": polls,
        "expected": expectation.seconds if expectation else 0.0,
        "spread": expectation.spread if expectation else 0.0,
    }


def _abandoned(step: StepEvent, jobs: CodePipelineJobs) -> bool:
    woken = step.section("woken")
    if woken.get("signal") != Signal.ABANDONED.value:
        return False
    return run_is_over(jobs, step.job.pipeline)


def _check_revision(
    step: StepEvent, provider: BuildProvider, submission: Submission, build: BuildRef
) -> None:
    """Build what the pipeline carries: another commit is RevisionOutOfSync, and not left
    running."""
    wanted = step.job.revision
    if not (submission.sha_sent and wanted and build.commit):
        return
    if same_commit(wanted, build.commit):
        return
    result = cancel_quietly(
        step.job, provider, provider.continuation(step.job, submission, build, None), "revision"
    )
    raise RevisionMismatch(
        f"Travis CI built commit {build.commit} instead of the pipeline's revision {wanted} "
        f"(build #{build.number}; {cancel_note(result)}): {build.url}",
        build_id=build.build_id,
    )


def _cancel_duplicates(step: StepEvent, provider: BuildProvider, submission: Submission) -> None:
    try:
        canceled = provider.cancel_duplicates(step.job, submission, submission.window_start)
    except JobFailure as error:
        logger.warning(
            "Could not look for duplicate build requests", extra={"error": error.message}
        )
        return
    if canceled:
        metrics.add_metric(name="DuplicateBuildsCanceled", unit="Count", value=len(canceled))
        logger.error(
            "Canceled duplicate builds of this job (a lost build request landed late)",
            extra={"canceled_builds": canceled},
        )
