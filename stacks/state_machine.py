"""The two-phase state machine definition (see ARCHITECTURE.md, "Flow").

Claim → (lost: end quietly) → phase 1 (no continuation): Submit → Resolve ⇄ Wait → PublishLink
                              phase 2 (continuation):    Watch ⇄ Wait → Report
Every step after Claim has a catch-all to ReportFailure, so a claimed job always gets a result.
Claim has none: before the claim the execution owns nothing, and must not touch the job.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

# Our failure class that means "a dependency is unavailable, try the step again later"
# (worker.failures.ServiceUnavailable); the step is idempotent, so retrying is safe.
RETRYABLE_ERROR = "ServiceUnavailable"
# A step that timed out or crashed may have done its side effect; steps are idempotent.
CRASH_ERRORS = ["States.Timeout", "Sandbox.Timedout", "Lambda.Unknown"]
# Lambda throttling is not in CDK's default service-exception retry.
THROTTLED_ERRORS = ["Lambda.TooManyRequestsException"]


@dataclass(frozen=True)
class StepFunctions:
    """The Lambda function behind each step."""

    claim: lambda_.IFunction
    submit: lambda_.IFunction
    resolve: lambda_.IFunction
    publish: lambda_.IFunction
    watch: lambda_.IFunction
    report: lambda_.IFunction
    report_failure: lambda_.IFunction


@dataclass(frozen=True)
class HandOver:
    """After the link is published, wake the poller for the continuation job CodePipeline
    creates, instead of leaving it to the next sweep (up to a minute later)."""

    poller: lambda_.IFunction
    action_type: dict[str, str]


def build_definition(scope: Construct, steps: StepFunctions, hand_over: HandOver) -> sfn.IChainable:
    """The state machine's states, wired together."""
    report_failure = _invoke(
        scope, "ReportFailure", steps.report_failure, "$.reported", attempts=8, max_delay_minutes=10
    )
    report_failure.next(sfn.Succeed(scope, "FailureReported"))

    def guarded(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
        task.add_catch(report_failure, errors=["States.ALL"], result_path="$.error")
        return task

    # Phase 1: request the build and publish its link.
    # A submit whose POST got no readable answer, or that was cut off by its timeout mid-POST,
    # looks for its request before posting again: both retries wait longer than the client's
    # read timeout (20 s), without jitter, so a POST still in flight has landed.
    submit = guarded(
        _invoke(
            scope,
            "SubmitBuild",
            steps.submit,
            "$.submission",
            first_retry_seconds=30,
            jitter=False,
            crash_retry_seconds=30,
        )
    )
    # Looks at Travis ride out an outage of about 40 minutes (30 s doubling to 5 min, 10 tries)
    # before the job fails; the build keeps running in Travis meanwhile.
    resolve = guarded(
        _invoke(
            scope,
            "ResolveBuild",
            steps.resolve,
            "$.resolution",
            attempts=10,
            first_retry_seconds=30,
        )
    )
    publish = guarded(_invoke(scope, "PublishLink", steps.publish, "$.publication"))
    wait_for_build = sfn.Wait(
        scope, "WaitForBuild", time=sfn.WaitTime.seconds_path("$.resolution.waitSeconds")
    )
    build_ready = (
        sfn.Choice(scope, "BuildCreated?")
        .when(
            sfn.Condition.boolean_equals("$.resolution.ready", True),
            publish.next(_hand_over(scope, hand_over)),
        )
        .otherwise(wait_for_build.next(resolve))
    )
    phase_start = submit.next(resolve).next(build_ready)

    # Phase 2: follow the build and report its outcome.
    watch = guarded(
        _invoke(scope, "WatchBuild", steps.watch, "$.watch", attempts=10, first_retry_seconds=30)
    )
    report = guarded(_invoke(scope, "ReportResult", steps.report, "$.reported"))
    wait_for_progress = sfn.Wait(
        scope, "WaitForProgress", time=sfn.WaitTime.seconds_path("$.watch.waitSeconds")
    )
    finished = (
        sfn.Choice(scope, "BuildFinished?")
        .when(
            sfn.Condition.boolean_equals("$.watch.finished", True),
            report.next(sfn.Succeed(scope, "ResultReported")),
        )
        .otherwise(wait_for_progress.next(watch))
    )
    phase_watch = watch.next(finished)

    claim = _invoke(scope, "Claim", steps.claim, "$.claim")
    route = (
        sfn.Choice(scope, "Phase?")
        .when(sfn.Condition.is_null("$.continuation"), phase_start)
        .otherwise(phase_watch)
    )
    claimed = (
        sfn.Choice(scope, "Claimed?")
        .when(
            sfn.Condition.boolean_equals("$.claim.claimed", False),
            sfn.Succeed(
                scope,
                "ClaimedElsewhere",
                comment="Another hand-out of this job was acknowledged first.",
            ),
        )
        .otherwise(route)
    )
    return claim.next(claimed)


def _hand_over(scope: Construct, hand_over: HandOver) -> sfn.IChainable:
    """Invoke the poller asynchronously with an event naming our action type; the job already
    has its result, so a failure here only means the sweeper picks the continuation job up."""
    done = sfn.Succeed(scope, "LinkPublished")
    wake_poller = tasks.LambdaInvoke(
        scope,
        "HandOverToWatch",
        lambda_function=hand_over.poller,
        invocation_type=tasks.LambdaInvocationType.EVENT,
        payload=sfn.TaskInput.from_object(
            {
                "source": "codepipeline-travis-worker",
                "detail-type": "Continuation Job Created",
                "detail": {"type": hand_over.action_type},
            }
        ),
        result_path=sfn.JsonPath.DISCARD,
        retry_on_service_exceptions=True,
    )
    wake_poller.add_catch(done, errors=["States.ALL"], result_path=sfn.JsonPath.DISCARD)
    return wake_poller.next(done)


def _invoke(
    scope: Construct,
    name: str,
    function: lambda_.IFunction,
    result_path: str,
    *,
    attempts: int = 5,
    max_delay_minutes: int = 5,
    first_retry_seconds: int = 10,
    jitter: bool = True,
    crash_retry_seconds: int = 5,
) -> tasks.LambdaInvoke:
    task = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(
            {
                "state": sfn.JsonPath.entire_payload,
                "execution": sfn.JsonPath.string_at("$$.Execution.Name"),
            }
        ),
        payload_response_only=True,
        result_path=result_path,
        retry_on_service_exceptions=True,
    )
    task.add_retry(
        errors=[RETRYABLE_ERROR],
        interval=Duration.seconds(first_retry_seconds),
        backoff_rate=2,
        max_attempts=attempts,
        max_delay=Duration.minutes(max_delay_minutes),
        jitter_strategy=sfn.JitterType.FULL if jitter else sfn.JitterType.NONE,
    )
    task.add_retry(
        errors=THROTTLED_ERRORS,
        interval=Duration.seconds(2),
        backoff_rate=2,
        max_attempts=8,
        jitter_strategy=sfn.JitterType.FULL,
    )
    task.add_retry(
        errors=CRASH_ERRORS,
        interval=Duration.seconds(crash_retry_seconds),
        backoff_rate=2,
        max_attempts=2,
    )
    return task
