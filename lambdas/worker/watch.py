"""Phase 2: follow the build, hand the watch to a fresh continuation job now and then, and say
what comes next: report, park until the next look, hand over, or cancel (abandoned)."""

from __future__ import annotations

from typing import Any

from worker import clock
from worker.abandon import run_is_over
from worker.cancel import cancel_note, cancel_quietly
from worker.codepipeline import CodePipelineJobs
from worker.continuation import Continuation
from worker.failures import BuildUnsuccessful, RevisionMismatch
from worker.job import same_commit
from worker.observability import logger, metrics
from worker.providers import BuildProvider, BuildStatus
from worker.schedule import Expectation, policy
from worker.settings import Settings
from worker.step_event import StepEvent
from worker.wake import Signal, WatchRegistry


def watch_build(
    step: StepEvent,
    provider: BuildProvider,
    settings: Settings,
    jobs: CodePipelineJobs,
    registry: WatchRegistry,
) -> dict[str, Any]:
    """Look once at the build; `$.watch` (`next`: report | park | handover | cancel)."""
    continuation = Continuation.from_dict(step.job.continuation)
    logger.thread_safe_append_keys(build_id=continuation.build_id)
    previous = step.section("watch")
    looks = int(previous.get("looks", 0)) + 1
    if step.section("woken").get("signal") == Signal.ABANDONED.value:
        if run_is_over(jobs, step.job.pipeline):
            return {"next": "cancel", "reason": "abandoned", "looks": looks}
        registry.clear_abandoned(step.job.pipeline.run_key)  # a mark left by an earlier run
    # A webhook noted after this instant may tell of a change the answer below predates (Travis
    # answered, then the build finished): the next park wakes on any webhook from here on.
    asked = clock.now()
    status = provider.status(step.job, continuation)
    now = clock.now()
    logger.info(
        "Build status",
        extra={"state": status.state, "jobs_done": status.jobs_done, "jobs": len(status.jobs)},
    )
    _check_commit(step, provider, continuation, status)
    result: dict[str, Any] = {"status": status.as_dict(), "looks": looks, "lookedAt": asked}
    if status.finished:
        return {**result, "next": "report"}
    if now - continuation.started > settings.watch_timeout_seconds:
        cancel = cancel_quietly(step.job, provider, continuation, "watch timeout")
        metrics.add_metric(name="BuildsTimedOut", unit="Count", value=1)
        raise BuildUnsuccessful(
            f"Travis build #{status.number} did not finish within "
            f"{settings.watch_timeout_seconds // 60} minutes ({cancel_note(cancel)}): {status.url}",
            build_id=status.build_id,
        )
    published = continuation.published_at or continuation.started
    held = now - published
    changed = status.jobs_done != max(0, continuation.jobs_done)
    if held >= settings.hand_over_max_seconds or (changed and held >= settings.progress_seconds):
        return {**result, "next": "handover"}
    expectation = (
        Expectation(continuation.expected, continuation.spread, 1)
        if continuation.expected > 0
        else None
    )
    elapsed = now - status.started_at if status.started_at else None
    schedule = policy(settings.push, settings.watch_wait)
    wait: float = schedule.next_wait(elapsed, expectation, looks - 1)
    if not settings.push and _hand_over_before_the_window(
        now,
        now + wait + schedule.near,  # a park to the window's opening may land a second short
        published=published,
        started_at=status.started_at,
        expectation=expectation,
        settings=settings,
    ):
        logger.info("Handing over before the build's end window", extra={"looks": looks})
        return {**result, "next": "handover"}
    # Look again in time for the hand-over and the watch timeout.
    wait = min(
        wait,
        published + settings.hand_over_max_seconds - now,
        continuation.started + settings.watch_timeout_seconds - now + 1,
    )
    return {**result, "next": "park", "waitSeconds": max(1, int(wait))}


def _hand_over_before_the_window(
    now: float,
    next_look: float,
    *,
    published: float,
    started_at: float | None,
    expectation: Expectation | None,
    settings: Settings,
) -> bool:
    """Whether to hand over now rather than when the hold limit falls due inside the end window.

    A hand-over costs a chain of steps (result, new job, poll, claim) during which nobody looks:
    due inside the window where the build may end, it would add its length to the result delay.
    Handing over at the last look before the window (`next_look`: when the one after it comes,
    give or take a look's interval) lets one fresh job cover all of it. Once: the fresh job's
    limit falls after the window, and a window longer than the limit is left alone.
    """
    if expectation is None or started_at is None:
        return False
    opens, closes = (started_at + bound for bound in expectation.window)
    due = published + settings.hand_over_max_seconds
    return next_look >= opens and due < closes <= now + settings.hand_over_max_seconds


def _check_commit(
    step: StepEvent, provider: BuildProvider, continuation: Continuation, status: BuildStatus
) -> None:
    wanted = continuation.revision
    if not (wanted and status.commit):
        return
    if same_commit(wanted, status.commit):
        return
    cancel = (
        None if status.finished else cancel_quietly(step.job, provider, continuation, "revision")
    )
    raise RevisionMismatch(
        f"Travis CI built commit {status.commit} instead of the pipeline's revision {wanted} "
        f"(build #{status.number}; {cancel_note(cancel) if cancel else 'it finished'}): "
        f"{status.url}",
        build_id=status.build_id,
    )
