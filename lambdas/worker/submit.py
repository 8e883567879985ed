"""Phase 1, first step: request the Travis build of the pipeline's commit — at most once per job.

Why no interleaving makes two requests (the full argument is in the README, "One build per action
run"):
  1. Only the execution that claimed the job submits, and Step Functions runs its attempts one
     after another (STANDARD workflows run each state once unless a Retry runs it again).
  2. The first attempt (RetryCount 0) posts at once: nothing of this job can exist yet.
  3. Every later attempt first reads Travis's requests created since the state was first entered
     (less a clock-skew margin) and posts only when none may be ours: a processed request with our
     marker in its commit message is ours (reused); a request Travis has not processed yet has no
     commit and may be ours, so the attempt waits (RequestPending, retried) and gives up with
     SystemUnavailable rather than post while it stays unprocessed (RequestAmbiguous).
  4. A POST whose answer is lost is never repeated in the same attempt; the state machine retries
     it no earlier than 30 s later, after the client's 20 s read timeout, so a POST Travis received
     has created its row (travis-api creates it before answering) before the retry looks.
  5. Should a lost POST still land after that (Travis holding a request for more than 30 s), the
     resolve step finds the extra request by its marker and cancels its build.
"""

from __future__ import annotations

from typing import Any

from worker import clock
from worker.abandon import run_is_over
from worker.codepipeline import CodePipelineJobs
from worker.failures import ActionAbandoned
from worker.observability import logger, metrics
from worker.providers import BuildProvider, SubmitAttempt
from worker.step_event import StepEvent
from worker.wake import WatchRegistry


def submit_build(
    step: StepEvent,
    provider: BuildProvider,
    registry: WatchRegistry,
    jobs: CodePipelineJobs,
) -> dict[str, Any]:
    """Request the build of the job's commit; `$.submission` of the execution."""
    provider.validate(step.job.configuration)
    now = clock.now()
    attempt = SubmitAttempt(
        first=step.retries == 0,
        window_start=min(now, step.entered_at or now),
    )

    def before_post() -> None:
        # Stop means stop: no build for a run that was abandoned while it waited for us.
        if registry.abandoned(step.job.pipeline.run_key) and run_is_over(jobs, step.job.pipeline):
            raise ActionAbandoned(
                "The pipeline run was stopped and abandoned before the build was requested."
            )

    submission = provider.submit(step.job, attempt, before_post)
    logger.info(
        "Build requested" if submission.created else "Found the build request made earlier",
        extra={
            "request_id": submission.request_id,
            "revision": step.job.revision,
            "sha_sent": submission.sha_sent,
            "attempt": step.retries + 1,
        },
    )
    if submission.created:
        metrics.add_metric(name="BuildsRequested", unit="Count", value=1)
    return submission.as_dict()
