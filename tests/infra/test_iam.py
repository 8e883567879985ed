"""Least privilege: each role gets exactly the actions its code calls, on the narrowest resource."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import CUSTOM_CONTEXT, CUSTOM_ENV, STEPS, Synthesized, as_list, render

pytestmark = pytest.mark.synth

TRACING = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
SECRET_READ = {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
# Actions of each function beyond X-Ray tracing.
EXPECTED_ACTIONS = {
    "claim": {"codepipeline:AcknowledgeJob"},
    "submit": {"codepipeline:GetJobDetails", *SECRET_READ},
    "resolve": {"codepipeline:GetJobDetails", *SECRET_READ},
    "publish": {"codepipeline:PutJobSuccessResult"},
    "watch": {"codepipeline:GetJobDetails", *SECRET_READ},
    "report": {"codepipeline:PutJobSuccessResult", "codepipeline:PutJobFailureResult"},
    "report_failure": {"codepipeline:PutJobFailureResult"},
    "poller": {"codepipeline:PollForJobs", "states:StartExecution", "states:DescribeExecution"},
}
# Actions that have no resource-level permissions, so "*" is the only possible resource.
NO_RESOURCE_TYPE = {
    "codepipeline:AcknowledgeJob",
    "codepipeline:GetJobDetails",
    "codepipeline:PutJobSuccessResult",
    "codepipeline:PutJobFailureResult",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def all_statements(synth: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, resource in synth.template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found += [(logical_id, s) for s in props["PolicyDocument"]["Statement"]]
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                found += [(logical_id, s) for s in policy["PolicyDocument"]["Statement"]]
    return found


def function_statements(synth: Synthesized, name: str) -> list[dict[str, Any]]:
    return synth.role_statements(synth.role_id(synth.functions[name]))


def actions_on(statements: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each allowed action with the (rendered) resources it is granted on."""
    granted: dict[str, list[Any]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(render(r) for r in as_list(statement["Resource"]))
    return granted


def test_no_wildcard_action_anywhere(default_synth: Synthesized) -> None:
    statements = all_statements(default_synth)
    assert statements
    for owner, statement in statements:
        assert "NotAction" not in statement and "NotResource" not in statement, owner
        for action in as_list(statement.get("Action", [])):
            assert action != "*" and not action.endswith(":*"), (owner, action)
            assert "*" not in action, (owner, action)


def test_star_resource_only_where_no_resource_type_exists(default_synth: Synthesized) -> None:
    for owner, statement in all_statements(default_synth):
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= NO_RESOURCE_TYPE, (owner, statement)


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_function_role_has_exactly_its_actions(default_synth: Synthesized, name: str) -> None:
    granted = actions_on(function_statements(default_synth, name))
    assert set(granted) == EXPECTED_ACTIONS[name] | TRACING


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_function_role_managed_policy_is_logging_only(
    default_synth: Synthesized, name: str
) -> None:
    role_id = default_synth.role_id(default_synth.functions[name])
    assert default_synth.managed_policies(role_id) == [BASIC_EXECUTION]
    trust = default_synth.template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}


@pytest.mark.parametrize("name", ["submit", "resolve", "watch"])
def test_token_readers_read_only_the_token_secret(default_synth: Synthesized, name: str) -> None:
    (secret_id,) = default_synth.resources("AWS::SecretsManager::Secret")
    granted = actions_on(function_statements(default_synth, name))
    for action in SECRET_READ:
        assert granted[action] == [f"${{{secret_id}}}"]


def test_only_token_readers_may_read_secrets(default_synth: Synthesized) -> None:
    for name in (*STEPS, "poller"):
        if name in ("submit", "resolve", "watch"):
            continue
        granted = actions_on(function_statements(default_synth, name))
        assert not [a for a in granted if a.startswith(("secretsmanager:", "kms:"))], name


def test_poller_polls_only_our_action_type(default_synth: Synthesized) -> None:
    granted = actions_on(function_statements(default_synth, "poller"))
    assert granted["codepipeline:PollForJobs"] == [
        "arn:aws:codepipeline:us-east-1:123456789012:actiontype:Custom/Test/Travis/1"
    ]


def test_poller_policy_follows_context_and_environment(custom_synth: Synthesized) -> None:
    granted = actions_on(function_statements(custom_synth, "poller"))
    account, region = CUSTOM_ENV["CDK_DEFAULT_ACCOUNT"], CUSTOM_ENV["CDK_DEFAULT_REGION"]
    c = CUSTOM_CONTEXT
    assert granted["codepipeline:PollForJobs"] == [
        f"arn:aws:codepipeline:{region}:{account}:actiontype:"
        f"Custom/{c['category']}/{c['provider']}/{c['version']}"
    ]


def test_poller_starts_and_describes_only_our_executions(default_synth: Synthesized) -> None:
    machine = default_synth.state_machine_id
    name = default_synth.template["Resources"][machine]["Properties"]["StateMachineName"]
    granted = actions_on(function_statements(default_synth, "poller"))
    assert granted["states:StartExecution"] == [
        f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"
    ]
    assert granted["states:DescribeExecution"] == [
        f"arn:aws:states:us-east-1:123456789012:execution:{name}:*"
    ]


def test_state_machine_invokes_only_the_worker_functions(default_synth: Synthesized) -> None:
    role_id = default_synth.role_id(default_synth.state_machine_id)
    granted = actions_on(default_synth.role_statements(role_id))
    invoke = set(granted.pop("lambda:InvokeFunction"))
    # the steps, and the poller (to hand a continuation job over after PublishLink)
    functions = [default_synth.functions[name] for name in [*STEPS, "poller"]]
    assert invoke == {f"${{{f}.Arn}}" for f in functions} | {f"${{{f}.Arn}}:*" for f in functions}
    # Everything else is log delivery and tracing, which have no resource type.
    assert set(granted) <= NO_RESOURCE_TYPE
    assert all(resources == ["*"] * len(resources) for resources in granted.values())
    assert default_synth.managed_policies(role_id) == []


def test_state_machine_role_trusts_only_step_functions_of_this_account(
    default_synth: Synthesized,
) -> None:
    role_id = default_synth.role_id(default_synth.state_machine_id)
    trust = default_synth.template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "states.amazonaws.com"}
    assert render(statement["Condition"]["StringEquals"]["aws:SourceAccount"]) == "123456789012"
