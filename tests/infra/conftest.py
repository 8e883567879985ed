"""Synthesis fixtures for the infrastructure tests.

Synthesis starts a node process and takes seconds, so each variant of the app is synthesized once
per test session (per xdist worker) and shared read-only: the default context, an overridden context
with a concrete account and region (what `cdk deploy` with credentials sees), webhooks with an alarm
e-mail, and (in their modules) an imported token secret and the example pipeline. Tests read the
template as a plain dict; `Synthesized.assertions` gives the `aws_cdk.assertions.Template` for the
checks that read better with `Match`/`Capture`.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    "progressMinutes": 10,
    "handOverMaxMinutes": 20,
    "pollBatchSize": "25",
}
CUSTOM_ENV = {"CDK_DEFAULT_ACCOUNT": "111122223333", "CDK_DEFAULT_REGION": "eu-west-1"}
_STACK_ENV_KEYS = ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")

# Handler of each function, as the tests name them (one Lambda module per function).
STEP_NAMES = (
    "claim",
    "submit",
    "resolve",
    "publish",
    "watch",
    "park",
    "report",
    "report_failure",
    "cancel",
)
HANDLERS = {
    name: f"worker.handlers.{name}.handler" for name in (*STEP_NAMES, "poller", "abandon", "reaper")
}
# Only with context webhooks=true.
WEBHOOK_HANDLER = "worker.handlers.webhook.handler"
ALL_HANDLERS = {**HANDLERS, "webhook": WEBHOOK_HANDLER}
# The variant with the optional parts of the worker stack switched on.
WEBHOOK_CONTEXT: dict[str, Any] = {"webhooks": "true", "alarmEmail": "ops@example.com"}
EXAMPLE_CONTEXT: dict[str, Any] = {
    "examplePipeline": "true",
    "exampleOwner": "my-org",
    "exampleProject": "my-app",
}
STEPS = STEP_NAMES


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
    """One synthesized app: the worker stack's template and the cloud assembly directory."""

    outdir: Path
    stack_name: str
    template: dict[str, Any]
    seconds: float
    # Templates of the app's other stacks (the example pipeline), by stack name.
    others: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        return {
            name: by_handler[handler]
            for name, handler in ALL_HANDLERS.items()
            if handler in by_handler
        }

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
    stacks = {s.stack_name: dict(s.template) for s in assembly.stacks}
    name = str((context or {}).get("stackName") or "CodePipelineTravisWorker")
    template = stacks.pop(name)
    return Synthesized(
        outdir=outdir,
        stack_name=name,
        template=template,
        seconds=time.perf_counter() - started,
        others=stacks,
    )


def shared_synth(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    context: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Synthesized:
    """`synthesize` once per test run, not once per xdist worker: the first worker synthesizes
    into the run's shared temporary folder under a lock, the others read its cloud assembly."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    outdir = root / f"synth-{name}"
    done = root / f"synth-{name}.json"
    with (root / f"synth-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                synth = synthesize(outdir, context, env)
                done.write_text(
                    json.dumps(
                        {
                            "stack": synth.stack_name,
                            "seconds": synth.seconds,
                            "others": sorted(synth.others),
                        }
                    )
                )
                return synth
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    saved = json.loads(done.read_text())

    def template(stack: str) -> dict[str, Any]:
        return dict(json.loads((outdir / f"{stack}.template.json").read_text()))

    return Synthesized(
        outdir=outdir,
        stack_name=saved["stack"],
        template=template(saved["stack"]),
        seconds=saved["seconds"],
        others={other: template(other) for other in saved["others"]},
    )


@pytest.fixture(scope="session")
def default_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with no context at all: every default, token secret created by the stack."""
    return shared_synth(tmp_path_factory, "default")


@pytest.fixture(scope="session")
def custom_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with CUSTOM_CONTEXT and a concrete account and region."""
    return shared_synth(tmp_path_factory, "custom", CUSTOM_CONTEXT, CUSTOM_ENV)


@pytest.fixture(scope="session")
def webhook_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with WEBHOOK_CONTEXT: the webhook receiver and its URL, an alarm subscriber."""
    return shared_synth(tmp_path_factory, "webhooks", WEBHOOK_CONTEXT)
