"""What the synthesized template deploys, made real in one process: functions and their
environment, the state machine, the watch table and the token secret, in moto.

Each function's environment comes from the template; its CloudFormation references are resolved
to what the local run created (the state machine's ARN, the table's name, the secret's ARN, a
function's name, the webhook's local URL).
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from local.template import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    lambda_functions,
    resolve,
    resources_of_type,
    state_machine_definition,
)

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".build"
TABLE_NAME = "travis-worker-watch"


def synthesize(context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Synthesize the CDK app (cdk-nag included) and return the worker stack's template.

    The cloud assembly goes to a temporary folder that is removed: only the template is needed.
    """
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from app import build_app  # imported late: jsii starts a node process

    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="synth-", dir=BUILD_DIR) as outdir:
        app = build_app(outdir=outdir, context=dict(context or {}))
        stacks = [s for s in app.synth().stacks if "ExamplePipeline" not in s.stack_name]
        (stack,) = stacks
        return dict(stack.template)


@dataclass(frozen=True)
class DeployedFunction:
    logical_id: str
    handler: str
    timeout_seconds: int
    environment: dict[str, Any]

    @property
    def role(self) -> str:
        """What the function is, from its handler module (`claim`, `poller`, `webhook`, ...)."""
        return self.handler.rsplit(".", 2)[-2]

    def load(self) -> Callable[[dict[str, Any], Any], Any]:
        module, _, name = self.handler.rpartition(".")
        handler: Callable[[dict[str, Any], Any], Any] = getattr(
            importlib.import_module(module), name
        )
        return handler


class Deployment:
    """The template's resources as a local run needs them."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.template = template
        self.functions = {
            logical_id: DeployedFunction(
                logical_id=logical_id,
                handler=str(props["Handler"]),
                timeout_seconds=int(props.get("Timeout", 3)),
                environment=dict((props.get("Environment") or {}).get("Variables") or {}),
            )
            for logical_id, props in lambda_functions(template).items()
        }
        self.state_machine_arn = ""
        self.secret_arn = ""

    def function(self, role: str) -> DeployedFunction | None:
        """The function whose handler module is `role` (e.g. "poller", "abandon")."""
        found = [f for f in self.functions.values() if f.role == role]
        return found[0] if found else None

    @property
    def action_type(self) -> dict[str, str]:
        (resource,) = resources_of_type(
            self.template, "AWS::CodePipeline::CustomActionType"
        ).values()
        props = resource["Properties"]
        return {
            "owner": "Custom",
            "category": props["Category"],
            "provider": props["Provider"],
            "version": props["Version"],
        }

    def create_in_moto(self, default_token: str) -> None:
        """Create in moto what the template declares and the local run needs."""
        secrets = boto3.client("secretsmanager", region_name=DEFAULT_REGION)
        self.secret_arn = secrets.create_secret(
            Name="travis-worker-token", SecretString=json.dumps({"token": default_token})
        )["ARN"]
        for resource in self._tables().values():
            keys = resource["Properties"]["KeySchema"]
            attributes = resource["Properties"]["AttributeDefinitions"]
            boto3.client("dynamodb", region_name=DEFAULT_REGION).create_table(
                TableName=TABLE_NAME,
                KeySchema=keys,
                AttributeDefinitions=attributes,
                BillingMode="PAY_PER_REQUEST",
            )
        sfn = boto3.client("stepfunctions", region_name=DEFAULT_REGION)
        machine_id = self._state_machine_id()
        name = self.template["Resources"][machine_id]["Properties"].get("StateMachineName")
        self.state_machine_arn = sfn.create_state_machine(
            name=str(name or "TravisWorker"),
            definition=json.dumps(state_machine_definition(self.template)),
            roleArn=f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/TravisWorkerStateMachine",
            type="STANDARD",
        )["stateMachineArn"]

    def environment(self, webhook_url: str, travis_endpoint: str) -> dict[str, str]:
        """Every function's environment from the template, merged, with references resolved.

        Functions' environments differ only in what some leave out (a function cannot name
        itself), so one process environment serves every in-process invocation faithfully.
        """
        merged: dict[str, Any] = {}
        for function in self.functions.values():
            for key, value in function.environment.items():
                if key in merged and merged[key] != value:
                    raise RuntimeError(
                        f"functions disagree on {key}: cannot run them in one process"
                    )
                merged[key] = value
        machine_id = self._state_machine_id()
        secrets = resources_of_type(self.template, "AWS::SecretsManager::Secret")
        tables = self._tables()
        urls = resources_of_type(self.template, "AWS::Lambda::Url")

        def resolve_ref(logical_id: str, attribute: str | None) -> str:
            if logical_id == machine_id and attribute is None:
                return self.state_machine_arn
            if logical_id in secrets and attribute is None:
                return self.secret_arn
            if logical_id in tables and attribute is None:
                return TABLE_NAME
            if logical_id in self.functions and attribute is None:
                return logical_id  # the runner routes invocations by logical id
            if logical_id in urls and attribute == "FunctionUrl":
                return webhook_url
            pseudo = {
                "AWS::Partition": "aws",
                "AWS::Region": DEFAULT_REGION,
                "AWS::AccountId": DEFAULT_ACCOUNT,
            }
            if logical_id in pseudo:
                return pseudo[logical_id]
            raise RuntimeError(f"cannot resolve {logical_id}.{attribute} locally")

        resolved = {key: str(resolve(value, resolve_ref)) for key, value in merged.items()}
        if resolved.get("STATE_MACHINE_ARN", self.state_machine_arn) != self.state_machine_arn:
            raise RuntimeError("STATE_MACHINE_ARN does not name the state machine")
        # Travis lives on 127.0.0.1 here: make the fake the default (and trusted) endpoint.
        resolved["TRAVIS_DEFAULT_ENDPOINT"] = travis_endpoint
        return resolved

    def _state_machine_id(self) -> str:
        return next(iter(resources_of_type(self.template, "AWS::StepFunctions::StateMachine")))

    def _tables(self) -> dict[str, dict[str, Any]]:
        return {
            **resources_of_type(self.template, "AWS::DynamoDB::GlobalTable"),
            **resources_of_type(self.template, "AWS::DynamoDB::Table"),
        }
