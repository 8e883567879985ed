"""Least privilege: each role gets exactly the actions its code calls, on the narrowest resource."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match

from stacks.worker import TABLE_ACCESS, WAKERS
from tests.infra.conftest import (
    CUSTOM_CONTEXT,
    CUSTOM_ENV,
    STEPS,
    Synthesized,
    as_list,
    render,
)

pytestmark = pytest.mark.synth

TRACING = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
SECRET_READ = {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
LIST_EXECUTIONS = "codepipeline:ListActionExecutions"
# Actions of each function beyond X-Ray tracing.
EXPECTED_ACTIONS = {
    "claim": {"codepipeline:AcknowledgeJob", "states:ListExecutions"},
    "submit": {"codepipeline:GetJobDetails", LIST_EXECUTIONS, "dynamodb:GetItem", *SECRET_READ},
    "resolve": {"codepipeline:GetJobDetails", LIST_EXECUTIONS, *SECRET_READ},
    "publish": {
        "codepipeline:PutJobSuccessResult",
        LIST_EXECUTIONS,
        "lambda:InvokeFunction",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
    },
    "watch": {"codepipeline:GetJobDetails", LIST_EXECUTIONS, "dynamodb:UpdateItem", *SECRET_READ},
    "park": {"dynamodb:UpdateItem", "dynamodb:PutItem", "states:SendTaskSuccess"},
    "report": {
        "codepipeline:GetJobDetails",
        "codepipeline:PutJobSuccessResult",
        "codepipeline:PutJobFailureResult",
        LIST_EXECUTIONS,
        *SECRET_READ,
    },
    "report_failure": {"codepipeline:PutJobFailureResult", LIST_EXECUTIONS},
    "cancel": {"codepipeline:GetJobDetails", *SECRET_READ},
    "poller": {"codepipeline:PollForJobs", "states:StartExecution", "states:DescribeExecution"},
    # with no execution parked, it cancels a published build itself
    "abandon": {
        "dynamodb:UpdateItem",
        "states:SendTaskSuccess",
        "codepipeline:GetJobDetails",
        *SECRET_READ,
    },
    "reaper": {
        "codepipeline:PutJobFailureResult",
        "codepipeline:GetJobDetails",
        "states:DescribeExecution",
        "states:GetExecutionHistory",
        *SECRET_READ,
    },
    "webhook": {"dynamodb:GetItem", "dynamodb:UpdateItem", "states:SendTaskSuccess"},
}
TOKEN_READERS = sorted(n for n, actions in EXPECTED_ACTIONS.items() if actions & SECRET_READ)
ACCOUNT_ARN = "arn:aws:{service}:us-east-1:123456789012:"
# Actions that have no resource-level permissions, so "*" is the only possible resource.
NO_RESOURCE_TYPE = {
    "codepipeline:AcknowledgeJob",
    "codepipeline:GetJobDetails",
    "codepipeline:PutJobSuccessResult",
    "codepipeline:PutJobFailureResult",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",  # the state machine's tracing (CDK grants them)
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


@pytest.fixture(params=["default_synth", "webhook_synth"])
def synth(request: pytest.FixtureRequest) -> Synthesized:
    fixture: Synthesized = request.getfixturevalue(request.param)
    return fixture


def granted_to(synth: Synthesized, name: str) -> dict[str, list[Any]]:
    return actions_on(function_statements(synth, name))


def state_machine_arn(synth: Synthesized) -> str:
    props = synth.template["Resources"][synth.state_machine_id]["Properties"]
    return f"{ACCOUNT_ARN.format(service='states')}stateMachine:{props['StateMachineName']}"


def executions_arn(synth: Synthesized) -> str:
    props = synth.template["Resources"][synth.state_machine_id]["Properties"]
    return f"{ACCOUNT_ARN.format(service='states')}execution:{props['StateMachineName']}:*"


def table_arn(synth: Synthesized) -> str:
    (table_id,) = synth.resources("AWS::DynamoDB::GlobalTable")
    return f"${{{table_id}.Arn}}"


def test_no_wildcard_action_anywhere(synth: Synthesized) -> None:
    statements = all_statements(synth)
    assert statements
    for owner, statement in statements:
        assert "NotAction" not in statement and "NotResource" not in statement, owner
        for action in as_list(statement.get("Action", [])):
            assert action != "*" and not action.endswith(":*"), (owner, action)
            assert "*" not in action, (owner, action)


def test_star_resource_only_where_no_resource_type_exists(synth: Synthesized) -> None:
    for owner, statement in all_statements(synth):
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= NO_RESOURCE_TYPE, (owner, statement)


def test_expected_actions_cover_every_function(
    default_synth: Synthesized, webhook_synth: Synthesized
) -> None:
    assert set(webhook_synth.functions) == set(EXPECTED_ACTIONS)
    assert set(default_synth.functions) == set(EXPECTED_ACTIONS) - {"webhook"}


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_function_role_has_exactly_its_actions(webhook_synth: Synthesized, name: str) -> None:
    # Tracing is Lambda's active tracing: segments and telemetry only, no SDK sampling calls.
    assert set(granted_to(webhook_synth, name)) == EXPECTED_ACTIONS[name] | TRACING


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_function_role_managed_policy_is_logging_only(
    webhook_synth: Synthesized, name: str
) -> None:
    role_id = webhook_synth.role_id(webhook_synth.functions[name])
    assert webhook_synth.managed_policies(role_id) == [BASIC_EXECUTION]
    trust = webhook_synth.template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_tracing_grants_only_segments_and_telemetry(webhook_synth: Synthesized) -> None:
    webhook_synth.assertions.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                            "Effect": "Allow",
                            "Resource": "*",
                        }
                    ]
                )
            }
        },
    )
    for name in webhook_synth.functions:
        xray = {a for a in granted_to(webhook_synth, name) if a.startswith("xray:")}
        assert xray == TRACING, name


def test_claim_acknowledges_and_lists_executions_of_our_state_machine(
    default_synth: Synthesized,
) -> None:
    role = default_synth.role_id(default_synth.functions["claim"])
    resource = Capture()
    default_synth.assertions.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": role}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": "codepipeline:AcknowledgeJob",
                            "Effect": "Allow",
                            "Resource": "*",
                        },
                        {
                            "Action": "states:ListExecutions",
                            "Effect": "Allow",
                            "Resource": resource,
                        },
                    ]
                )
            },
        },
    )
    assert render(resource.as_object()) == state_machine_arn(default_synth)


@pytest.mark.parametrize("name", TOKEN_READERS)
def test_token_readers_read_only_the_token_secret(synth: Synthesized, name: str) -> None:
    if name not in synth.functions:
        pytest.skip("not in this variant")
    (secret_id,) = synth.resources("AWS::SecretsManager::Secret")
    granted = granted_to(synth, name)
    for action in SECRET_READ:
        assert granted[action] == [f"${{{secret_id}}}"]


def test_token_readers_are_the_steps_that_call_travis() -> None:
    assert TOKEN_READERS == ["abandon", "cancel", "reaper", "report", "resolve", "submit", "watch"]


def test_only_token_readers_may_read_secrets(webhook_synth: Synthesized) -> None:
    for name in webhook_synth.functions:
        if name in TOKEN_READERS:
            continue
        granted = granted_to(webhook_synth, name)
        assert not [a for a in granted if a.startswith(("secretsmanager:", "kms:"))], name


def test_list_action_executions_only_where_used_on_this_accounts_pipelines(
    webhook_synth: Synthesized,
) -> None:
    users = {n for n, actions in EXPECTED_ACTIONS.items() if LIST_EXECUTIONS in actions}
    assert users == {"submit", "resolve", "publish", "watch", "report", "report_failure"}
    for name in webhook_synth.functions:
        granted = granted_to(webhook_synth, name)
        if name in users:
            assert granted[LIST_EXECUTIONS] == [f"{ACCOUNT_ARN.format(service='codepipeline')}*"]
        else:
            assert LIST_EXECUTIONS not in granted, name


def test_list_action_executions_follows_the_environment(custom_synth: Synthesized) -> None:
    granted = granted_to(custom_synth, "watch")
    account, region = CUSTOM_ENV["CDK_DEFAULT_ACCOUNT"], CUSTOM_ENV["CDK_DEFAULT_REGION"]
    assert granted[LIST_EXECUTIONS] == [f"arn:aws:codepipeline:{region}:{account}:*"]


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_table_access_as_declared_on_the_table_only(webhook_synth: Synthesized, name: str) -> None:
    granted = granted_to(webhook_synth, name)
    table = {a: r for a, r in granted.items() if a.startswith("dynamodb:")}
    expected = set(TABLE_ACCESS.get(name, ()))
    assert set(table) == expected
    assert expected == {a for a in EXPECTED_ACTIONS[name] if a.startswith("dynamodb:")}
    for resources in table.values():
        assert resources == [table_arn(webhook_synth)], name


def test_table_statements_name_the_table_arn(default_synth: Synthesized) -> None:
    (table_id,) = default_synth.resources("AWS::DynamoDB::GlobalTable")
    role = default_synth.role_id(default_synth.functions["park"])
    default_synth.assertions.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": role}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": ["dynamodb:UpdateItem", "dynamodb:PutItem"],
                            "Effect": "Allow",
                            "Resource": {"Fn::GetAtt": [table_id, "Arn"]},
                        }
                    ]
                )
            },
        },
    )


def test_only_wakers_send_task_success_on_our_state_machine(webhook_synth: Synthesized) -> None:
    assert set(WAKERS) == {"park", "abandon", "webhook"}
    for name in webhook_synth.functions:
        granted = granted_to(webhook_synth, name)
        task_actions = {a for a in granted if a.startswith("states:SendTask")}
        if name in WAKERS:
            assert task_actions == {"states:SendTaskSuccess"}, name
            assert granted["states:SendTaskSuccess"] == [state_machine_arn(webhook_synth)]
        else:
            assert not task_actions, name


def test_publish_may_invoke_only_the_poller(default_synth: Synthesized) -> None:
    poller = default_synth.functions["poller"]
    assert set(granted_to(default_synth, "publish")["lambda:InvokeFunction"]) == {
        f"${{{poller}.Arn}}",
        f"${{{poller}.Arn}}:*",
    }
    for name in default_synth.functions:
        if name != "publish":
            assert "lambda:InvokeFunction" not in granted_to(default_synth, name), name


def test_reaper_reads_only_our_executions_and_fails_jobs(default_synth: Synthesized) -> None:
    granted = granted_to(default_synth, "reaper")
    for action in ("states:DescribeExecution", "states:GetExecutionHistory"):
        assert granted[action] == [executions_arn(default_synth)]
    assert granted["codepipeline:PutJobFailureResult"] == ["*"]
    assert "codepipeline:PutJobSuccessResult" not in granted


def test_no_wildcard_resource_on_secrets_tables_or_state_machines(synth: Synthesized) -> None:
    for owner, statement in all_statements(synth):
        services = {a.split(":", 1)[0] for a in as_list(statement["Action"])}
        if services & {"secretsmanager", "dynamodb", "states"}:
            for resource in as_list(statement["Resource"]):
                assert render(resource) != "*", (owner, statement)


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
    # the state machine's steps only: the hand-over goes through the publish step
    functions = [default_synth.functions[name] for name in STEPS]
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
