"""Cancel step: stop the Travis build of a run that was abandoned or whose job is gone."""

from __future__ import annotations

from typing import Any

from worker.cancel import cancel_build
from worker.continuation import Continuation
from worker.handlers.entry import provider_for, step_handler
from worker.providers import BuildRef, Submission
from worker.settings import Settings
from worker.step_event import StepEvent


@step_handler
def handler(step: StepEvent, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    provider = provider_for(step, settings)
    reason = "abandoned" if step.section("error").get("Error") != "JobGone" else "job gone"
    if step.job.continuation:
        continuation = Continuation.from_dict(step.job.continuation)
    else:
        build = step.section("resolution").get("build")
        if not isinstance(build, dict) or not build.get("buildId"):
            return {"canceled": None, "reason": reason, "buildId": None}
        continuation = provider.continuation(
            step.job,
            Submission.from_dict(step.section("submission")),
            BuildRef.from_dict(build),
            None,
        )
    result = cancel_build(step.job, provider, continuation, reason)
    return {"canceled": result.value, "reason": reason, "buildId": continuation.build_id}
