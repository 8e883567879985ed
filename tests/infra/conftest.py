"""Synthesis fixtures for the infrastructure tests.

Synthesis starts a node process and takes seconds, so each variant of the app is synthesized once
per test session (per xdist worker) and shared read-only: the default context, an overridden context
with a concrete account and region (what `cdk deploy` with credentials sees), and (in its module) an
imported token secret. Tests read the template as a plain dict; `Synthesized.assertions` gives the
`aws_cdk.assertions.Template` for the few checks that read better with `Match`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from local.template import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    lambda_functions,
    resolve,
    resources_of_type,
    state_machine_definition,
    state_machine_logical_id,
)

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# The overridden deployment: every context key the tests look at differs from its default.
CUSTOM_CONTEXT: dict[str, Any] = {
    "category": "Build",
    "provider": "TravisEnterprise",
    "version": "2",
    "watchTimeoutMinutes": 30,
    "resolveTimeoutMinutes": 5,
    "logRetentionDays": 7,
}
CUSTOM_ENV = {"CDK_DEFAULT_ACCOUNT": "111122223333", "CDK_DEFAULT_REGION": "eu-west-1"}
_STACK_ENV_KEYS = ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")

# Handler of each function, as the tests name them.
HANDLERS = {
    "claim": "worker.handlers.steps.claim",
    "submit": "worker.handlers.steps.submit",
    "resolve": "worker.handlers.steps.resolve",
    "publish": "worker.handlers.steps.publish",
    "watch": "worker.handlers.steps.watch",
    "report": "worker.handlers.steps.report",
    "report_failure": "worker.handlers.steps.report_error",
    "poller": "worker.handlers.poller.handler",
}
STEPS = tuple(name for name in HANDLERS if name != "poller")


def render(value: Any) -> Any:
    """A template value with its tokens written out: `${Id}` for a Ref, `${Id.Attr}` for a GetAtt.

    Pseudo parameters become the placeholder partition, region and account, so ARNs built by
    `Stack.format_arn` read as plain strings (arn:aws:...:us-east-1:123456789012:...).
    """
    pseudo = {
        "AWS::Partition": "aws",
        "AWS::Region": DEFAULT_REGION,
        "AWS::AccountId": DEFAULT_ACCOUNT,
        "AWS::URLSuffix": "amazonaws.com",
    }

    def resolve_ref(logical_id: str, attribute: str | None) -> str:
        if attribute is None:
            return pseudo.get(logical_id, f"${{{logical_id}}}")
        return f"${{{logical_id}.{attribute}}}"

    return resolve(value, resolve_ref)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass
class Synthesized:
    """One synthesized app: the stack's template and the cloud assembly directory."""

    outdir: Path
    stack_name: str
    template: dict[str, Any]
    seconds: float

    @cached_property
    def assertions(self) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_json(self.template)

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{self.stack_name}.template.json"

    def validation_report(self) -> dict[str, Any]:
        return dict(json.loads((self.outdir / "validation-report.json").read_text()))

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return resources_of_type(self.template, resource_type)

    def only(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        (item,) = self.resources(resource_type).items()
        return item

    @cached_property
    def functions(self) -> dict[str, str]:
        """Logical id of each function, by the name used in HANDLERS (found by its handler)."""
        by_handler = {
            props["Handler"]: lid for lid, props in lambda_functions(self.template).items()
        }
        assert len(by_handler) == len(lambda_functions(self.template)), "two functions, one handler"
        return {name: by_handler[handler] for name, handler in HANDLERS.items()}

    def function(self, name: str) -> dict[str, Any]:
        return lambda_functions(self.template)[self.functions[name]]

    def environment(self, name: str) -> dict[str, Any]:
        return dict(self.function(name).get("Environment", {}).get("Variables", {}))

    @cached_property
    def definition(self) -> dict[str, Any]:
        return state_machine_definition(self.template)

    @property
    def state_machine_id(self) -> str:
        return state_machine_logical_id(self.template)

    def role_id(self, function_or_state_machine: str) -> str:
        props = self.template["Resources"][function_or_state_machine]["Properties"]
        role = props.get("Role") or props.get("RoleArn")
        assert isinstance(role, dict) and "Fn::GetAtt" in role, role
        return str(role["Fn::GetAtt"][0])

    def role_statements(self, role_id: str) -> list[dict[str, Any]]:
        """Every statement granted to a role: its inline policies and the AWS::IAM::Policy on it."""
        statements: list[dict[str, Any]] = []
        role = self.template["Resources"][role_id]["Properties"]
        for policy in role.get("Policies", []):
            statements.extend(policy["PolicyDocument"]["Statement"])
        for policy in self.resources("AWS::IAM::Policy").values():
            props = policy["Properties"]
            if {"Ref": role_id} in props.get("Roles", []):
                statements.extend(props["PolicyDocument"]["Statement"])
        return statements

    def managed_policies(self, role_id: str) -> list[str]:
        role = self.template["Resources"][role_id]["Properties"]
        return [str(render(arn)) for arn in role.get("ManagedPolicyArns", [])]


@contextmanager
def _stack_environment(env: Mapping[str, str] | None) -> Iterator[None]:
    """CDK_DEFAULT_ACCOUNT/REGION as given (absent by default: an environment-agnostic stack)."""
    saved = {key: os.environ.get(key) for key in _STACK_ENV_KEYS}
    try:
        for key in _STACK_ENV_KEYS:
            os.environ.pop(key, None)
        os.environ.update(env or {})
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def synthesize(
    outdir: Path, context: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Synthesized:
    """Synthesize the app as `cdk synth` would (cdk-nag included: a finding raises here)."""
    from app import build_app  # jsii starts node on first use

    started = time.perf_counter()
    with _stack_environment(env):
        app = build_app(outdir=str(outdir), context=dict(context or {}))
        assembly = app.synth()
    (stack,) = assembly.stacks
    return Synthesized(
        outdir=outdir,
        stack_name=stack.stack_name,
        template=dict(stack.template),
        seconds=time.perf_counter() - started,
    )


@pytest.fixture(scope="session")
def default_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with no context at all: every default, token secret created by the stack."""
    return synthesize(tmp_path_factory.mktemp("synth-default"))


@pytest.fixture(scope="session")
def custom_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with CUSTOM_CONTEXT and a concrete account and region."""
    return synthesize(tmp_path_factory.mktemp("synth-custom"), CUSTOM_CONTEXT, CUSTOM_ENV)
