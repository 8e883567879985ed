"""Read what the local runner and the infrastructure tests need from a synthesized template.

The state machine definition is an `Fn::Join` of strings and `Fn::GetAtt`/`Ref` tokens; resolving
it with concrete ARNs gives the plain ASL that Step Functions would run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


def placeholder_function_arn(logical_id: str) -> str:
    """A Lambda ARN named after the function's logical id (what the runner routes on)."""
    return f"arn:aws:lambda:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:function:{logical_id}"


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one CloudFormation type, by logical id."""
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def state_machine_logical_id(template: dict[str, Any]) -> str:
    """The logical id of the template's only state machine."""
    machines = resources_of_type(template, "AWS::StepFunctions::StateMachine")
    if len(machines) != 1:
        raise ValueError(f"expected one state machine, found {len(machines)}")
    return next(iter(machines))


def resolve(value: Any, resolve_ref: Callable[[str, str | None], str]) -> Any:
    """Resolve Fn::Join / Fn::GetAtt / Ref / Fn::Sub-free tokens with `resolve_ref(id, attr)`."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return resolve_ref(str(arg), None)
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return resolve_ref(str(logical_id), str(attribute))
        if key == "Fn::Join":
            separator, parts = arg
            return str(separator).join(str(resolve(p, resolve_ref)) for p in parts)
    if isinstance(value, dict):
        return {k: resolve(v, resolve_ref) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, resolve_ref) for v in value]
    return value


def state_machine_definition(
    template: dict[str, Any],
    function_arn: Callable[[str], str] = placeholder_function_arn,
) -> dict[str, Any]:
    """The state machine's ASL; each Lambda `Fn::GetAtt [Id, Arn]` becomes `function_arn(Id)`."""
    machine = template["Resources"][state_machine_logical_id(template)]["Properties"]

    def resolve_ref(logical_id: str, attribute: str | None) -> str:
        if attribute == "Arn":
            return function_arn(logical_id)
        if logical_id == "AWS::Partition":
            return "aws"
        if logical_id == "AWS::Region":
            return DEFAULT_REGION
        if logical_id == "AWS::AccountId":
            return DEFAULT_ACCOUNT
        raise ValueError(f"cannot resolve {logical_id}.{attribute} in the definition")

    definition = resolve(machine["DefinitionString"], resolve_ref)
    return dict(json.loads(definition))


def lambda_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Lambda functions by logical id, with their properties."""
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in resources_of_type(template, "AWS::Lambda::Function").items()
    }


def function_environment(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's environment variables as synthesized (values may be CloudFormation tokens)."""
    properties = lambda_functions(template)[logical_id]
    return dict((properties.get("Environment") or {}).get("Variables") or {})
