"""`TravisWorker`: the reusable construct that is the whole serverless worker.

It registers the custom action type, and builds the functions, the state machine, the poller and its
two triggers, the token secret and least-privilege permissions. A stack only has to instantiate it.
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
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.config import ConfigError, WorkerConfig
from stacks.dependency_layer import DependencyLayer
from stacks.state_machine import HandOver, StepFunctions, build_definition

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "lambdas"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
SERVICE_NAME = "codepipeline-travis-worker"
METRICS_NAMESPACE = "CodePipelineTravisWorker"
POLLER_TIMEOUT_SECONDS = 60
POLL_TIME_BUDGET_SECONDS = 40
TOKEN_PROPERTY = "APIToken"
# Backoff between looks at Travis, "first,factor,cap" seconds (see worker.settings.WaitSchedule).
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

# Which job-API calls each step needs (none of them supports resource-level permissions).
STEP_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "claim": ("codepipeline:AcknowledgeJob",),
    "submit": ("codepipeline:GetJobDetails",),
    "resolve": ("codepipeline:GetJobDetails",),
    "publish": ("codepipeline:PutJobSuccessResult",),
    "watch": ("codepipeline:GetJobDetails",),
    "report": ("codepipeline:PutJobSuccessResult", "codepipeline:PutJobFailureResult"),
    "report_failure": ("codepipeline:PutJobFailureResult",),
}
# Steps that call Travis and so may read the worker's token.
STEPS_WITH_TOKEN = ("submit", "resolve", "watch")
STEP_HANDLERS = {
    "claim": "claim",
    "submit": "submit",
    "resolve": "resolve",
    "publish": "publish",
    "watch": "watch",
    "report": "report",
    "report_failure": "report_error",
}


class TravisWorker(Construct):
    """The CodePipeline custom-action worker for Travis CI."""

    def __init__(self, scope: Construct, construct_id: str, *, config: WorkerConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.action_type = self._build_action_type()
        self.token_secret = self._build_secret()
        self.layer = DependencyLayer(
            self, "Dependencies", runtime=RUNTIME, architecture=ARCHITECTURE
        ).layer
        self.code = lambda_.Code.from_asset(
            str(LAMBDA_DIR), exclude=["requirements.txt", "**/__pycache__", "**/*.pyc"]
        )
        self.step_functions = {name: self._build_step(name) for name in STEP_HANDLERS}
        # The state machine's name is fixed so the poller can know its ARN without depending on
        # it: the state machine in turn invokes the poller to hand a continuation job over.
        self.state_machine_name = f"{Stack.of(self).stack_name}-{construct_id}"
        self.poller = self._build_poller()
        self.state_machine = self._build_state_machine()
        self._build_triggers()
        self._acknowledge_nag_findings()

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
        stack = Stack.of(self)
        return stack.format_arn(
            service="codepipeline",
            resource="actiontype",
            resource_name=f"Custom/{c.category}/{c.provider}/{c.version}",
            arn_format=_COLON_RESOURCE_NAME,
        )

    # --- secret -----------------------------------------------------------------------------

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
            "WATCH_TIMEOUT_SECONDS": str(c.watch_timeout_minutes * 60),
            "RESOLVE_TIMEOUT_SECONDS": str(c.resolve_timeout_minutes * 60),
            "WATCH_WAIT_SECONDS": WATCH_WAIT,
            "RESOLVE_WAIT_SECONDS": RESOLVE_WAIT,
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
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )

    def _build_step(self, name: str) -> lambda_.Function:
        function = self._function(
            f"{_camel(name)}Step",
            f"worker.handlers.steps.{STEP_HANDLERS[name]}",
            f"CodePipeline Travis worker: {name.replace('_', ' ')} step",
            timeout_seconds=90,
            environment=self._environment(),
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=list(STEP_PERMISSIONS[name]),
                resources=["*"],  # the CodePipeline job APIs have no resource type
            )
        )
        if name in STEPS_WITH_TOKEN:
            self.token_secret.grant_read(function)
        return function

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
        # Backstop only: the watch step enforces the watch timeout itself (canceling the build and
        # failing the job); this catches anything that would otherwise run forever.
        backstop = Duration.minutes(c.watch_timeout_minutes + c.resolve_timeout_minutes + 60)
        hand_over = HandOver(
            poller=self.poller,
            action_type={
                "owner": "Custom",
                "category": c.category,
                "provider": c.provider,
                "version": c.version,
            },
        )
        return sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self.state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(
                build_definition(self, steps, hand_over)
            ),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=backstop,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            comment="One execution per CodePipeline job of the Travis custom action",
        )

    def _build_poller(self) -> lambda_.Function:
        environment = self._environment() | {
            "STATE_MACHINE_ARN": self._state_machine_arn(),
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
                actions=["codepipeline:PollForJobs"],
                resources=[self._action_type_arn()],
            )
        )
        poller.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"], resources=[self._state_machine_arn()]
            )
        )
        poller.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution"],
                resources=[
                    Stack.of(self).format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{self.state_machine_name}:*",
                        arn_format=_COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        return poller

    def _state_machine_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.state_machine_name,
            arn_format=_COLON_RESOURCE_NAME,
        )

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
                "The poller may describe executions of this state machine only (to tell a "
                "duplicate hand-out from one whose execution ended before claiming the job).",
            ),
        ]
        for function in [*self.step_functions.values(), self.poller]:
            logical_id = stack.get_logical_id(self._cfn(function))
            acknowledgements.append(
                (
                    f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]",
                    "CDK's grant lets the state machine invoke this step function and its "
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

    def _build_triggers(self) -> None:
        c = self.config
        target = targets.LambdaFunction(
            self.poller, retry_attempts=0, max_event_age=Duration.minutes(5)
        )
        events.Rule(
            self,
            "SweepSchedule",
            description="Poll for CodePipeline jobs every minute (also picks up continuation jobs)",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            targets=[target],
        )
        events.Rule(
            self,
            "ActionStarted",
            description="Poll as soon as a pipeline reaches the Travis action",
            event_pattern=events.EventPattern(
                source=["aws.codepipeline"],
                detail_type=["CodePipeline Action Execution State Change"],
                detail={
                    "state": ["STARTED"],
                    # version is not matched: it arrives as a number or a string
                    "type": {
                        "owner": ["Custom"],
                        "category": [c.category],
                        "provider": [c.provider],
                    },
                },
            ),
            targets=[target],
        )


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
    try:
        return _RETENTION[days]
    except KeyError:
        raise ConfigError(
            f"context 'logRetentionDays' must be one of {sorted(_RETENTION)}"
        ) from None
