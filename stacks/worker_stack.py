"""The deployable stack: the worker construct and its outputs."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from .config import WorkerConfig
from .worker import TravisWorker


class TravisWorkerStack(Stack):
    """Deploys one `TravisWorker` configured from CDK context."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: WorkerConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        config = config or WorkerConfig.from_context(self)
        self.worker = TravisWorker(self, "Worker", config=config)
        self._outputs(config)

    def _outputs(self, config: WorkerConfig) -> None:
        w = self.worker
        action = f"Custom/{config.category}/{config.provider}/{config.version}"
        CfnOutput(
            self,
            "ActionTypeId",
            value=action,
            description="Owner/Category/Provider/Version to use in pipelines",
        )
        CfnOutput(
            self,
            "StateMachineArn",
            value=w.state_machine.state_machine_arn,
            description="One execution per CodePipeline job (name starts with the job id)",
        )
        CfnOutput(self, "PollerFunctionName", value=w.poller.function_name)
        CfnOutput(
            self,
            "TravisTokenSecretArn",
            value=w.token_secret.secret_arn,
            description='Put {"token": "<TRAVIS TOKEN>"} here unless every action sets APIToken',
        )
        CfnOutput(self, "WatchTableName", value=w.table.table_name)
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=w.monitoring.topic.topic_arn,
            description="Subscribe to be told when an alarm fires",
        )
        CfnOutput(self, "DashboardName", value=w.monitoring.dashboard.dashboard_name)
        if w.webhook_url is not None:
            CfnOutput(
                self,
                "WebhookUrl",
                value=w.webhook_url.url,
                description="Travis notifies this URL when a build ends (webhooks context)",
            )
