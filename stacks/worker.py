"""`TravisWorker`: the reusable construct that is the whole serverless worker.

It registers the custom action type, and builds the functions, the state machine, the watch
table, the poller and its triggers, the abandon handler, the reaper, the optional webhook
receiver, the token secret, least-privilege permissions, and the alarms and dashboard. A stack
only has to instantiate it.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import (
    Acknowledgment,
    ArnFormat,
    CfnElement,
    Duration,
    RemovalPolicy,
    Stack,
    Token,
    Validations,
)
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .config import WorkerConfig
from .dependency_layer import DependencyLayer
from .function_code import function_code
from .monitoring import Monitoring
from .state_machine import StepFunctions, build_definition

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
SERVICE_NAME = "codepipeline-travis-worker"
METRICS_NAMESPACE = "CodePipelineTravisWorker"
POLLER_TIMEOUT_SECONDS = 60
POLL_TIME_BUDGET_SECONDS = 45
STEP_TIMEOUT_SECONDS = 90
TOKEN_PROPERTY = "APIToken"
# Backoff between looks at Travis without build history, "first,factor,cap" seconds (see
# worker.settings.WaitSchedule and worker.schedule); resolve: while Travis creates the build.
WATCH_WAIT = "15,1.5,120"
RESOLVE_WAIT = "5,1.5,30"

_COLON_RESOURCE_NAME = ArnFormat.COLON_RESOURCE_NAME

# Properties compatible with the original worker's job_configs/travis.json, plus Endpoint.
CONFIGURATION_PROPERTIES = (
    ("Owner", True, False, "Travis/GitHub owner of the repository"),
    ("ProjectName", True, False, "Repository name"),
    ("Branch", True, False, "Branch to build"),
    (TOKEN_PROPERTY, False, True, "Travis API token; when empty the worker's own secret is used"),
    (
        "Endpoint",
        False,
        False,
        "Travis API URL (default https://api.travis-ci.com; Enterprise: https://HOST/api)",
    ),
)

# The state machine's steps: handler module, CodePipeline job-API calls (none of them supports
# resource-level permissions), whether it calls Travis (and so may read the worker's token),
# whether it asks CodePipeline about its action execution (ListActionExecutions).
STEPS: dict[str, tuple[str, tuple[str, ...], bool, bool]] = {
    "claim": ("claim", ("codepipeline:AcknowledgeJob",), False, False),
    "submit": ("submit", ("codepipeline:GetJobDetails",), True, True),
    "resolve": ("resolve", ("codepipeline:GetJobDetails",), True, True),
    "publish": ("publish", ("codepipeline:PutJobSuccessResult",), False, True),
    "watch": ("watch", ("codepipeline:GetJobDetails",), True, True),
    "park": ("park", (), False, False),
    "report": (
        "report",
        (
            "codepipeline:GetJobDetails",
            "codepipeline:PutJobSuccessResult",
            "codepipeline:PutJobFailureResult",
        ),
        True,
        True,
    ),
    "report_failure": ("report_failure", ("codepipeline:PutJobFailureResult",), False, True),
    "cancel": ("cancel", ("codepipeline:GetJobDetails",), True, False),
}
# Steps that read or write the watch table, and how.
TABLE_ACCESS: dict[str, tuple[str, ...]] = {
    "submit": ("dynamodb:GetItem",),
    "publish": ("dynamodb:UpdateItem", "dynamodb:PutItem"),
    "watch": ("dynamodb:UpdateItem",),
    "park": ("dynamodb:UpdateItem", "dynamodb:PutItem"),
    "abandon": ("dynamodb:UpdateItem",),
    "webhook": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
}
# Functions that may wake a parked task (SendTaskSuccess on this state machine's tasks).
WAKERS = ("park", "abandon", "webhook")


def lambda_code_dir() -> Path:
    """The Lambda code: `lambdas/` in the repository, `lambda_code/` in the installed package."""
    here = Path(__file__).resolve().parent
    packaged = here / "lambda_code"
    return packaged if packaged.is_dir() else here.parent / "lambdas"


class TravisWorker(Construct):
    """The CodePipeline custom-action worker for Travis CI."""

    def __init__(self, scope: Construct, construct_id: str, *, config: WorkerConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.action_type = self._build_action_type()
        self.token_secret = self._build_secret()
        self.table = self._build_table()
        self.layer = DependencyLayer(
            self, "Dependencies", runtime=RUNTIME, architecture=ARCHITECTURE
        ).layer
        self.code = function_code(lambda_code_dir(), RUNTIME)
        # The state machine's name is fixed so functions can know its ARN without depending on
        # it: the state machine in turn depends on them.
        self.state_machine_name = f"{Stack.of(self).stack_name}-{construct_id}"
        self.poller = self._build_poller()
        self.webhook = self._build_webhook() if config.webhooks else None
        self.webhook_url = (
            self.webhook.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
            if self.webhook
            else None
        )
        self.step_functions = {name: self._build_step(name) for name in STEPS}
        self.abandon = self._build_abandon()
        self.reaper = self._build_reaper()
        self.state_machine = self._build_state_machine()
        self._build_triggers()
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            namespace=METRICS_NAMESPACE,
            service=SERVICE_NAME,
            state_machine=self.state_machine,
            functions={
                **self.step_functions,
                "poller": self.poller,
                "abandon": self.abandon,
                "reaper": self.reaper,
                **({"webhook": self.webhook} if self.webhook else {}),
            },
            alarm_email=config.alarm_email,
        )
        self._acknowledge_nag_findings()

    @property
    def all_functions(self) -> dict[str, lambda_.Function]:
        functions = {
            **self.step_functions,
            "poller": self.poller,
            "abandon": self.abandon,
            "reaper": self.reaper,
        }
        if self.webhook is not None:
            functions["webhook"] = self.webhook
        return functions

    # --- action type --------------------------------------------------------------------------

    def _build_action_type(self) -> codepipeline.CfnCustomActionType:
        c = self.config
        repo = f"{c.web_url}/{{Config:Owner}}/{{Config:ProjectName}}"
        return codepipeline.CfnCustomActionType(
            self,
            "ActionType",
            category=c.category,
            provider=c.provider,
            version=c.version,
            configuration_properties=[
                codepipeline.CfnCustomActionType.ConfigurationPropertiesProperty(
                    name=name,
                    required=required,
                    key=True,
                    secret=secret,
                    queryable=False,
                    description=description,
                    type="String",
                )
                for name, required, secret, description in CONFIGURATION_PROPERTIES
            ],
            input_artifact_details=codepipeline.CfnCustomActionType.ArtifactDetailsProperty(
                minimum_count=0, maximum_count=1
            ),
            # The worker writes a build report (build-report.json) to an output artifact.
            output_artifact_details=codepipeline.CfnCustomActionType.ArtifactDetailsProperty(
                minimum_count=0, maximum_count=1
            ),
            settings=codepipeline.CfnCustomActionType.SettingsProperty(
                entity_url_template=repo,
                execution_url_template=f"{repo}/builds/{{ExternalExecutionId}}",
            ),
        )

    def _action_type_arn(self) -> str:
        c = self.config
        return Stack.of(self).format_arn(
            service="codepipeline",
            resource="actiontype",
            resource_name=f"Custom/{c.category}/{c.provider}/{c.version}",
            arn_format=_COLON_RESOURCE_NAME,
        )

    # --- secret and table ---------------------------------------------------------------------

    def _build_secret(self) -> secretsmanager.ISecret:
        if self.config.token_secret_arn:
            return secretsmanager.Secret.from_secret_complete_arn(
                self, "TravisToken", self.config.token_secret_arn
            )
        return secretsmanager.Secret(
            self,
            "TravisToken",
            description="Default Travis CI API token of the CodePipeline worker: "
            'set {"token": "<TOKEN>"} after deploying',
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"token": ""}),
                generate_string_key="placeholder",
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _build_table(self) -> dynamodb.TableV2:
        """Waiting action runs and their wake-up tokens (worker.wake); items expire on their own."""
        return dynamodb.TableV2(
            self,
            "WatchTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="expiresAt",
            removal_policy=RemovalPolicy.DESTROY,
        )

    # --- functions ----------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        c = self.config
        return {
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_LOGGER_LOG_EVENT": "false",
            "ACTION_TYPES": json.dumps(
                [
                    {
                        "category": c.category,
                        "provider": c.provider,
                        "version": c.version,
                        "implementation": "travis",
                        "secretProperties": [TOKEN_PROPERTY],
                    }
                ]
            ),
            "TRAVIS_TOKEN_SECRET_ARN": self.token_secret.secret_arn,
            "TRAVIS_DEFAULT_ENDPOINT": c.default_endpoint,
            "TRAVIS_TRUSTED_ENDPOINTS": ",".join(c.trusted_endpoints),
            "TRAVIS_WEB_URL": c.web_url,
            "WATCH_TIMEOUT_SECONDS": str(c.watch_timeout_minutes * 60),
            "RESOLVE_TIMEOUT_SECONDS": str(c.resolve_timeout_minutes * 60),
            "WATCH_WAIT_SECONDS": WATCH_WAIT,
            "RESOLVE_WAIT_SECONDS": RESOLVE_WAIT,
            "PROGRESS_SECONDS": str(c.progress_minutes * 60),
            "HAND_OVER_MAX_SECONDS": str(c.hand_over_max_minutes * 60),
            "WATCH_TABLE": self.table.table_name,
            "STATE_MACHINE_ARN": self._state_machine_arn(),
        }

    def _function(
        self,
        construct_id: str,
        handler: str,
        description: str,
        timeout_seconds: int,
        environment: dict[str, str],
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            retention=_retention(self.config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        return lambda_.Function(
            self,
            construct_id,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=self.code,
            layers=[self.layer],
            memory_size=256,
            timeout=Duration.seconds(timeout_seconds),
            environment=environment,
            description=description,
            # Lambda's own active tracing: no tracing SDK on the import path.
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )

    def _build_step(self, name: str) -> lambda_.Function:
        module, job_actions, calls_travis, asks_pipeline = STEPS[name]
        environment = self._environment() | {"POLLER_FUNCTION": self.poller.function_name}
        if self.webhook_url is not None:
            environment["WEBHOOK_URL"] = self.webhook_url.url
        function = self._function(
            f"{_camel(name)}Step",
            f"worker.handlers.{module}.handler",
            f"CodePipeline Travis worker: {name.replace('_', ' ')} step",
            timeout_seconds=STEP_TIMEOUT_SECONDS,
            environment=environment,
        )
        if job_actions:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=list(job_actions),
                    resources=["*"],  # the CodePipeline job APIs have no resource type
                )
            )
        if asks_pipeline:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["codepipeline:ListActionExecutions"],
                    resources=[self._pipelines_arn()],
                )
            )
        if calls_travis:
            self.token_secret.grant_read(function)
        self._grant_table(name, function)
        if name in WAKERS:
            self._grant_wake(function)
        if name == "claim":
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["states:ListExecutions"], resources=[self._state_machine_arn()]
                )
            )
        if name == "publish":
            self.poller.grant_invoke(function)
        return function

    def _grant_table(self, name: str, function: lambda_.Function) -> None:
        actions = TABLE_ACCESS.get(name)
        if actions:
            function.add_to_role_policy(
                iam.PolicyStatement(actions=list(actions), resources=[self.table.table_arn])
            )

    def _grant_wake(self, function: lambda_.Function) -> None:
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:SendTaskSuccess"], resources=[self._state_machine_arn()]
            )
        )

    def _build_poller(self) -> lambda_.Function:
        environment = self._environment() | {
            "POLL_BATCH_SIZE": str(self.config.poll_batch_size),
            "POLL_TIME_BUDGET_SECONDS": str(POLL_TIME_BUDGET_SECONDS),
        }
        poller = self._function(
            "Poller",
            "worker.handlers.poller.handler",
            "CodePipeline Travis worker: polls jobs and starts one execution per job",
            timeout_seconds=POLLER_TIMEOUT_SECONDS,
            environment=environment,
        )
        poller.add_to_role_policy(
            iam.PolicyStatement(
                actions=["codepipeline:PollForJobs"], resources=[self._action_type_arn()]
            )
        )
        poller.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"], resources=[self._state_machine_arn()]
            )
        )
        poller.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution"], resources=[self._executions_arn()]
            )
        )
        return poller

    def _build_abandon(self) -> lambda_.Function:
        function = self._function(
            "AbandonHandler",
            "worker.handlers.abandon.handler",
            "CodePipeline Travis worker: wakes abandoned action runs to cancel their build",
            timeout_seconds=30,
            environment=self._environment(),
        )
        self._grant_table("abandon", function)
        self._grant_wake(function)
        # With no execution parked, it cancels a published build itself (Travis token).
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["codepipeline:GetJobDetails"],
                resources=["*"],  # the CodePipeline job APIs have no resource type
            )
        )
        self.token_secret.grant_read(function)
        return function

    def _build_webhook(self) -> lambda_.Function:
        function = self._function(
            "WebhookReceiver",
            "worker.handlers.webhook.handler",
            "CodePipeline Travis worker: Travis webhooks wake the watch of their build",
            timeout_seconds=15,
            environment=self._environment(),
        )
        self._grant_table("webhook", function)
        self._grant_wake(function)
        return function

    def _build_reaper(self) -> lambda_.Function:
        function = self._function(
            "Reaper",
            "worker.handlers.reaper.handler",
            "CodePipeline Travis worker: answers jobs whose execution ended without a result",
            timeout_seconds=STEP_TIMEOUT_SECONDS,
            environment=self._environment(),
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["codepipeline:PutJobFailureResult", "codepipeline:GetJobDetails"],
                resources=["*"],  # the CodePipeline job APIs have no resource type
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:GetExecutionHistory"],
                resources=[self._executions_arn()],
            )
        )
        self.token_secret.grant_read(function)
        return function

    # --- state machine -----------------------------------------------------------------------

    def _build_state_machine(self) -> sfn.StateMachine:
        steps = StepFunctions(**self.step_functions)
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{Stack.of(self).stack_name}-{self.node.id}",
            retention=_retention(self.config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        c = self.config
        # Backstop only: no execution waits longer than a hand-over interval, a resolve timeout
        # and the submit's bound on unprocessed requests; ReportFailure may then retry ~1 hour.
        backstop = Duration.minutes(
            max(c.hand_over_max_minutes, c.resolve_timeout_minutes + 20) + 90
        )
        return sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self.state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(build_definition(self, steps)),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=backstop,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            comment="One execution per CodePipeline job of the Travis custom action",
        )

    def _state_machine_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.state_machine_name,
            arn_format=_COLON_RESOURCE_NAME,
        )

    def _executions_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.state_machine_name}:*",
            arn_format=_COLON_RESOURCE_NAME,
        )

    def _pipelines_arn(self) -> str:
        # Pipelines are arn:aws:codepipeline:REGION:ACCOUNT:NAME; the worker serves any of them.
        return Stack.of(self).format_arn(service="codepipeline", resource="*")

    # --- triggers ------------------------------------------------------------------------------

    def _build_triggers(self) -> None:
        c = self.config
        action_type = {
            "owner": ["Custom"],
            "category": [c.category],
            "provider": [c.provider],
        }  # version is not matched: events send a string, the docs' sample a number
        poll = targets.LambdaFunction(
            self.poller, retry_attempts=0, max_event_age=Duration.minutes(5)
        )
        events.Rule(
            self,
            "SweepSchedule",
            description="Poll for CodePipeline jobs every minute (also picks up continuation jobs)",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            targets=[poll],
        )
        events.Rule(
            self,
            "ActionStarted",
            description="Poll as soon as a pipeline reaches the Travis action",
            event_pattern=events.EventPattern(
                source=["aws.codepipeline"],
                detail_type=["CodePipeline Action Execution State Change"],
                detail={"state": ["STARTED"], "type": action_type},
            ),
            targets=[poll],
        )
        events.Rule(
            self,
            "ActionAbandoned",
            description="Stop means stop: wake the run to cancel its Travis build",
            event_pattern=events.EventPattern(
                source=["aws.codepipeline"],
                detail_type=["CodePipeline Action Execution State Change"],
                detail={"state": ["ABANDONED", "CANCELED"], "type": action_type},
            ),
            targets=[targets.LambdaFunction(self.abandon, retry_attempts=4)],
        )
        events.Rule(
            self,
            "ExecutionEnded",
            description="Answer the job of an execution that ended without a result",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                    "stateMachineArn": [self._state_machine_arn()],
                },
            ),
            targets=[targets.LambdaFunction(self.reaper, retry_attempts=8)],
        )

    # --- cdk-nag -------------------------------------------------------------------------------

    def _acknowledge_nag_findings(self) -> None:
        """cdk-nag AwsSolutions findings that do not apply, each with its reason."""
        stack = Stack.of(self)
        # cdk-nag names a finding by the rendered ARN: a concrete region/account when the stack
        # has one (cdk CLI with credentials), a pseudo-parameter otherwise.
        region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
        account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
        acknowledgements = [
            (
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "The AWS-managed basic execution role is the minimum a function needs to write its "
                "logs to its own log group.",
            ),
            (
                "AwsSolutions-IAM5[Resource::*]",
                "The CodePipeline job APIs (AcknowledgeJob, GetJobDetails, "
                "PutJobSuccessResult, PutJobFailureResult), X-Ray PutTraceSegments and Step "
                "Functions log delivery have no resource-level permissions; each function gets "
                "only the actions it calls.",
            ),
            (
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:{region}:{account}:"
                f"execution:{self.state_machine_name}:*]",
                "The poller and the reaper may read executions of this state machine only (to "
                "tell a duplicate hand-out apart, and to see whether an ended execution had "
                "claimed its job).",
            ),
            (
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:codepipeline:{region}:"
                f"{account}:*]",
                "ListActionExecutions on the pipelines of this account and region: the worker "
                "serves every pipeline that uses its action type and asks only about the action "
                "execution of the job it holds (was it abandoned?).",
            ),
        ]
        # CDK's invoke grants (the state machine's steps, and publish waking the poller).
        for function in [*self.step_functions.values(), self.poller]:
            logical_id = stack.get_logical_id(self._cfn(function))
            acknowledgements.append(
                (
                    f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]",
                    "CDK's grant lets the state machine (or a step) invoke this function and its "
                    "versions.",
                )
            )
        Validations.of(self.token_secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-SMG4",
                reason="Travis CI API tokens are issued in Travis's web UI and cannot be rotated "
                "by a Lambda rotation function; rotate in Travis and update the secret (README).",
            )
        )
        for finding, reason in acknowledgements:
            Validations.of(self).acknowledge(
                Acknowledgment(id=f"AwsSolutions::{finding}", reason=reason)
            )

    @staticmethod
    def _cfn(construct: Construct) -> CfnElement:
        child = construct.node.default_child
        assert isinstance(child, CfnElement)  # noqa: S101 - L2 constructs always have one
        return child


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def _retention(days: int) -> logs.RetentionDays:
    return _RETENTION[days]
