"""Alarms that fire, a topic that tells someone, and a dashboard to look at.

What each alarm means for an operator is in the README ("Operate"). The worker's own metrics are
EMF from Powertools in namespace `CodePipelineTravisWorker` with the dimension `service`
(and `FailureType` on `JobsFailed`); Step Functions and Lambda metrics come from AWS.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

STEP_NAMES = frozenset(
    {"claim", "submit", "resolve", "publish", "watch", "park", "report", "report_failure", "cancel"}
)
FAILURE_TYPES = (
    "JobFailed",
    "ConfigurationError",
    "PermissionError",
    "RevisionOutOfSync",
    "RevisionUnavailable",
    "SystemUnavailable",
)


class Monitoring(Construct):
    """The worker's alarms, their SNS topic, and its CloudWatch dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        namespace: str,
        service: str,
        state_machine: sfn.StateMachine,
        functions: Mapping[str, lambda_.Function],
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._namespace = namespace
        self._service = service
        # Not encrypted at rest: CloudWatch alarms cannot publish to a topic under the AWS-managed
        # SNS key, and a customer-managed key would cost more than the idle worker; alarm
        # messages carry alarm names and numbers, no secret. Transport is TLS only.
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="CodePipeline Travis worker alarms",
            enforce_ssl=True,
        )

        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms = self._alarms(state_machine, functions)
        for alarm in self.alarms.values():
            alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.dashboard = self._dashboard(state_machine, functions)

    def worker_metric(
        self, name: str, *, statistic: str = "Sum", period_minutes: int = 5, **dimensions: str
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=name,
            dimensions_map={"service": self._service, **dimensions},
            statistic=statistic,
            period=Duration.minutes(period_minutes),
        )

    def _alarms(
        self, state_machine: sfn.StateMachine, functions: Mapping[str, lambda_.Function]
    ) -> dict[str, cloudwatch.Alarm]:
        five = Duration.minutes(5)

        def alarm(
            name: str,
            metric: cloudwatch.IMetric,
            description: str,
            threshold: float = 1,
            evaluation_periods: int = 1,
        ) -> cloudwatch.Alarm:
            return cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=evaluation_periods,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )

        ended = cloudwatch.MathExpression(
            expression="failed + timedout + aborted",
            using_metrics={
                "failed": state_machine.metric_failed(period=five, statistic="Sum"),
                "timedout": state_machine.metric_timed_out(period=five, statistic="Sum"),
                "aborted": state_machine.metric_aborted(period=five, statistic="Sum"),
            },
            label="Executions that ended without their job's result",
            period=five,
        )
        # A math alarm may combine at most 10 metrics: the poller and the state machine's steps
        # are where throttling delays jobs (the event handlers retry through EventBridge).
        throttled = [functions["poller"], *(f for n, f in functions.items() if n in STEP_NAMES)]
        throttles = cloudwatch.MathExpression(
            expression=" + ".join(f"t{i}" for i in range(len(throttled[:10]))),
            using_metrics={
                f"t{i}": f.metric_throttles(period=five, statistic="Sum")
                for i, f in enumerate(throttled[:10])
            },
            label="Throttled Lambda invocations",
            period=five,
        )
        return {
            "executions": alarm(
                "ExecutionsEndedWithoutResult",
                ended,
                "An execution ended FAILED, TIMED_OUT or ABORTED: its job may have no result "
                "(the reaper answers it). Open the execution in the Step Functions console.",
            ),
            "poller": alarm(
                "PollerErrors",
                functions["poller"].metric_errors(period=five, statistic="Sum"),
                "The poller failed twice within 5 minutes: jobs may not be picked up.",
                threshold=2,
            ),
            "reaper": alarm(
                "JobsReaped",
                self.worker_metric("JobsReaped"),
                "The reaper answered a job an execution had left open: see the reaper's logs "
                "for the execution.",
            ),
            "reaper_errors": alarm(
                "ReaperErrors",
                functions["reaper"].metric_errors(period=five, statistic="Sum"),
                "The reaper failed: a job left open by its execution may stay open.",
            ),
            "system_unavailable": alarm(
                "SystemUnavailableRising",
                self.worker_metric(
                    "JobsFailed", period_minutes=15, FailureType="SystemUnavailable"
                ),
                "Three or more jobs failed as SystemUnavailable within 15 minutes: Travis CI "
                "(or CodePipeline) is unavailable, throttling, or banned the token.",
                threshold=3,
            ),
            "claims_uncertain": alarm(
                "ClaimsUncertain",
                self.worker_metric("ReacknowledgeRefused"),
                "CodePipeline refused a same-nonce re-acknowledge: the execution ended without "
                "working on its job; if its first acknowledge had won, the job times out in "
                "CodePipeline. Check the pipeline run named in the claim step's error log.",
            ),
            "throttling": alarm(
                "Throttling",
                throttles,
                "Lambda throttled the worker's functions: check the account's concurrency.",
                threshold=5,
            ),
        }

    def _dashboard(
        self, state_machine: sfn.StateMachine, functions: Mapping[str, lambda_.Function]
    ) -> cloudwatch.Dashboard:
        m = self.worker_metric
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{Stack.of(self).stack_name}-worker",
            default_interval=Duration.hours(24),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Runs",
                left=[m("JobsReceived"), m("JobsClaimed"), m("BuildsRequested"), m("ClaimsLost")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Outcomes",
                left=[
                    m("BuildsPassed"),
                    m("BuildsFailed"),
                    m("JobsGone"),
                    m("RunsAbandoned"),
                    m("JobsReaped"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Failures by type",
                left=[m("JobsFailed", FailureType=t) for t in FAILURE_TYPES],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Execution duration (p50, p95)",
                left=[
                    state_machine.metric_time(statistic="p50"),
                    state_machine.metric_time(statistic="p95"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Pickup latency: event to execution (s)",
                left=[
                    m("PickupLatency", statistic="p50"),
                    m("PickupLatency", statistic="Maximum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Travis CI errors and retries",
                left=[m("TravisCallsFailed"), m("DuplicateBuildsCanceled"), m("WebhooksRejected")],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=12
            ),
            cloudwatch.GraphWidget(
                title="Lambda errors",
                left=[
                    f.metric_errors(label=name, period=Duration.minutes(5))
                    for name, f in functions.items()
                ],
                width=12,
            ),
        )
        return dashboard
