"""The two-phase state machine definition (see ARCHITECTURE.md, "Flow").

Claim → (not ours: NotClaimed)
  phase 1 (no continuation): Submit → Resolve ⇄ WaitForBuild → PublishLink → LinkPublished
  phase 2 (continuation):    Watch ⇄ WaitForProgress → Report → BuildPassed | BuildFailed
                                   → HandOver → HandedOver (progress to the console, next job)
  abandoned: Cancel → Abandoned;  CodePipeline refuses results: Cancel → JobGone
Every step after Claim has a catch-all to ReportFailure, so a claimed job always gets a result.
Claim has none: before the claim the execution owns nothing, and must not touch the job.

Waits are `.waitForTaskToken` park tasks whose timeout is the next look: a woken task (abandoned,
Travis webhook) continues at once, a timed-out one looks as scheduled. Each execution ends in a
state that names what happened, so the history tells an operator at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

# Our failure class that means "a dependency is unavailable, try the step again later"
# (worker.failures.ServiceUnavailable); the steps are idempotent, so retrying is safe.
RETRYABLE_ERROR = "ServiceUnavailable"
# A build request that may be this job's is not processed by Travis yet (worker.failures).
PENDING_ERROR = "RequestPending"
# A step that timed out or crashed may have done its side effect; steps are idempotent.
CRASH_ERRORS = ["States.Timeout", "Sandbox.Timedout", "Lambda.Unknown"]
# Lambda throttling is not in CDK's default service-exception retry.
THROTTLED_ERRORS = ["Lambda.TooManyRequestsException"]
# The run was abandoned / CodePipeline refuses results (worker.failures.ActionEnded).
ABANDONED_ERROR = "ActionAbandoned"
GONE_ERROR = "JobGone"


@dataclass(frozen=True)
class StepFunctions:
    """The Lambda function behind each step."""

    claim: lambda_.IFunction
    submit: lambda_.IFunction
    resolve: lambda_.IFunction
    publish: lambda_.IFunction
    watch: lambda_.IFunction
    park: lambda_.IFunction
    report: lambda_.IFunction
    report_failure: lambda_.IFunction
    cancel: lambda_.IFunction


def build_definition(scope: Construct, steps: StepFunctions) -> sfn.IChainable:
    """The state machine's states, wired together."""
    job_gone = sfn.Succeed(
        scope, "JobGone", comment="CodePipeline no longer takes results for this job."
    )
    abandoned = sfn.Succeed(
        scope, "Abandoned", comment="The pipeline run was stopped and abandoned."
    )

    report_failure = _invoke(
        scope, "ReportFailure", steps.report_failure, "$.reported", attempts=8, max_delay_minutes=10
    )
    report_failure.next(
        sfn.Choice(scope, "FailureReported?")
        .when(sfn.Condition.string_equals("$.reported.result", "gone"), job_gone)
        .otherwise(
            sfn.Succeed(
                scope, "ReportedFailure", comment="CodePipeline has the classified failure."
            )
        )
    )

    def guarded(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
        task.add_catch(report_failure, errors=["States.ALL"], result_path="$.error")
        return task

    def cancel_then(name: str, end: sfn.Succeed) -> sfn.IChainable:
        cancel = _invoke(scope, name, steps.cancel, "$.canceled")
        # Canceling is best effort once the run is over; the end state says what happened.
        cancel.add_catch(end, errors=["States.ALL"], result_path="$.cancelError")
        return cancel.next(end)

    cancel_abandoned = cancel_then("CancelAbandoned", abandoned)
    cancel_gone = cancel_then("CancelGone", job_gone)

    def ending(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
        """A step that may learn the run is over: abandoned before a build, or gone."""
        task.add_catch(abandoned, errors=[ABANDONED_ERROR], result_path="$.error")
        task.add_catch(cancel_gone, errors=[GONE_ERROR], result_path="$.error")
        return guarded(task)

    # Phase 1: request the build and publish its link.
    # A submit whose POST got no readable answer, or that was cut off by its timeout mid-POST,
    # looks for its request before posting again: both retries wait longer than the client's
    # read timeout (20 s), without jitter, so a POST still in flight has landed.
    submit = ending(
        _invoke(
            scope,
            "SubmitBuild",
            steps.submit,
            "$.submission",
            first_retry_seconds=30,
            jitter=False,
            crash_retry_seconds=30,
            pending=True,
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
    publish = ending(_invoke(scope, "PublishLink", steps.publish, "$.publication"))
    wait_for_build = _park(scope, "WaitForBuild", steps.park, "$.resolution.waitSeconds", resolve)
    build_ready = (
        sfn.Choice(scope, "BuildCreated?")
        .when(
            sfn.Condition.string_equals("$.resolution.next", "publish"),
            publish.next(
                sfn.Succeed(scope, "LinkPublished", comment="The console shows the build link.")
            ),
        )
        .when(sfn.Condition.string_equals("$.resolution.next", "cancel"), cancel_abandoned)
        .otherwise(wait_for_build)
    )
    phase_start = submit.next(resolve).next(build_ready)

    # Phase 2: follow the build, hand over now and then, and report its outcome.
    watch = guarded(
        _invoke(scope, "WatchBuild", steps.watch, "$.watch", attempts=10, first_retry_seconds=30)
    )
    report = guarded(_invoke(scope, "ReportResult", steps.report, "$.reported"))
    reported = (
        sfn.Choice(scope, "Reported?")
        .when(
            sfn.Condition.string_equals("$.reported.result", "passed"),
            sfn.Succeed(scope, "BuildPassed", comment="CodePipeline has the success."),
        )
        .when(sfn.Condition.string_equals("$.reported.result", "gone"), job_gone)
        .otherwise(sfn.Succeed(scope, "BuildFailed", comment="CodePipeline has the failure."))
    )
    hand_over = ending(_invoke(scope, "HandOver", steps.publish, "$.publication"))
    wait_for_progress = _park(scope, "WaitForProgress", steps.park, "$.watch.waitSeconds", watch)
    next_step = (
        sfn.Choice(scope, "Next?")
        .when(sfn.Condition.string_equals("$.watch.next", "report"), report.next(reported))
        .when(
            sfn.Condition.string_equals("$.watch.next", "handover"),
            hand_over.next(
                sfn.Succeed(
                    scope, "HandedOver", comment="A fresh continuation job goes on watching."
                )
            ),
        )
        .when(sfn.Condition.string_equals("$.watch.next", "cancel"), cancel_abandoned)
        .otherwise(wait_for_progress)
    )
    phase_watch = watch.next(next_step)

    claim = _invoke(scope, "Claim", steps.claim, "$.claim")
    claimed = (
        sfn.Choice(scope, "Claimed?")
        .when(
            sfn.Condition.boolean_equals("$.claim.claimed", False),
            sfn.Succeed(
                scope,
                "NotClaimed",
                comment="Another hand-out of this job was acknowledged first, or CodePipeline "
                "did not give it to us.",
            ),
        )
        .when(sfn.Condition.is_null("$.continuation"), phase_start)
        .otherwise(phase_watch)
    )
    return claim.next(claimed)


def _payload(token: bool = False) -> sfn.TaskInput:
    fields: dict[str, object] = {
        "state": sfn.JsonPath.entire_payload,
        "execution": sfn.JsonPath.string_at("$$.Execution.Name"),
        "retries": sfn.JsonPath.number_at("$$.State.RetryCount"),
        "enteredAt": sfn.JsonPath.string_at("$$.State.EnteredTime"),
    }
    if token:
        fields["token"] = sfn.JsonPath.task_token
    return sfn.TaskInput.from_object(fields)


def _park(
    scope: Construct,
    name: str,
    function: lambda_.IFunction,
    seconds_path: str,
    then: sfn.IChainable,
) -> tasks.LambdaInvoke:
    """Wait until the next look (the task's timeout) or until someone wakes the task."""
    task = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
        payload=_payload(token=True),
        result_path="$.woken",
        task_timeout=sfn.Timeout.at(seconds_path),
        retry_on_service_exceptions=True,
    )
    task.add_retry(
        errors=[RETRYABLE_ERROR, *THROTTLED_ERRORS],
        interval=Duration.seconds(2),
        backoff_rate=2,
        max_attempts=4,
        jitter_strategy=sfn.JitterType.FULL,
    )
    # The timeout is the normal way on: look as scheduled. A park that could not leave its
    # token (the table unavailable) also just looks again: only a wake-up was lost.
    task.add_catch(then, errors=["States.ALL"], result_path="$.woken")
    task.next(then)
    return task


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
    pending: bool = False,
) -> tasks.LambdaInvoke:
    task = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        payload=_payload(),
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
    if pending:
        # Until Travis processes a request that may be ours: 10 s growing to 2 min, for about
        # 20 minutes; the submit itself gives up after 10 (RequestAmbiguous).
        task.add_retry(
            errors=[PENDING_ERROR],
            interval=Duration.seconds(10),
            backoff_rate=1.5,
            max_attempts=15,
            max_delay=Duration.minutes(2),
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
