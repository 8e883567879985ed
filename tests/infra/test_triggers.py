"""The triggers: the minute sweep and "action started" wake the poller, "abandoned" wakes the
abandon handler, and an execution that ended without a result wakes the reaper."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match

from tests.infra.conftest import CUSTOM_CONTEXT, Synthesized, render

pytestmark = pytest.mark.synth

ACTION_EVENT = "CodePipeline Action Execution State Change"
# rule -> function (by HANDLERS name) it invokes, and its retry attempts
TARGETS = {
    "SweepSchedule": ("poller", 0),
    "ActionStarted": ("poller", 0),
    "ActionAbandoned": ("abandon", 4),
    "ExecutionEnded": ("reaper", 8),
}


def rule(synth: Synthesized, name: str) -> tuple[str, dict[str, Any]]:
    """The rule whose logical id starts with Worker<name>, as (logical id, properties)."""
    (found,) = [
        (k, r["Properties"])
        for k, r in synth.resources("AWS::Events::Rule").items()
        if k.startswith(f"Worker{name}")
    ]
    return found


def action_type(category: str = "Test", provider: str = "Travis") -> dict[str, Any]:
    return {"owner": ["Custom"], "category": [category], "provider": [provider]}


def test_exactly_the_four_rules(default_synth: Synthesized) -> None:
    assert len(default_synth.resources("AWS::Events::Rule")) == len(TARGETS)
    for name in TARGETS:
        rule(default_synth, name)


def test_schedule_sweeps_every_minute(default_synth: Synthesized) -> None:
    _, schedule = rule(default_synth, "SweepSchedule")
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    assert schedule.get("State", "ENABLED") == "ENABLED"
    assert "EventPattern" not in schedule


def test_action_started_pattern_is_exact(default_synth: Synthesized) -> None:
    default_synth.assertions.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.exact(
                {
                    "source": ["aws.codepipeline"],
                    "detail-type": [ACTION_EVENT],
                    "detail": {"state": ["STARTED"], "type": action_type()},
                }
            )
        },
    )


def test_action_abandoned_pattern_is_exact(default_synth: Synthesized) -> None:
    _, abandoned = rule(default_synth, "ActionAbandoned")
    assert abandoned["EventPattern"] == {
        "source": ["aws.codepipeline"],
        "detail-type": [ACTION_EVENT],
        "detail": {"state": ["ABANDONED", "CANCELED"], "type": action_type()},
    }


def test_execution_ended_pattern_names_our_state_machine(default_synth: Synthesized) -> None:
    arn = Capture()
    default_synth.assertions.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.exact(
                {
                    "source": ["aws.states"],
                    "detail-type": ["Step Functions Execution Status Change"],
                    "detail": {
                        "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                        "stateMachineArn": [arn],
                    },
                }
            )
        },
    )
    name = default_synth.template["Resources"][default_synth.state_machine_id]["Properties"][
        "StateMachineName"
    ]
    assert render(arn.as_object()) == f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"


@pytest.mark.parametrize("name", ["ActionStarted", "ActionAbandoned"])
def test_action_rules_do_not_filter_on_version(custom_synth: Synthesized, name: str) -> None:
    # The event carries the version as a number or a string: a filter would miss some events.
    _, found = rule(custom_synth, name)
    types = found["EventPattern"]["detail"]["type"]
    assert "version" not in types
    assert types == action_type(CUSTOM_CONTEXT["category"], CUSTOM_CONTEXT["provider"])


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_rule_invokes_only_its_function(default_synth: Synthesized, name: str) -> None:
    rule_id, found = rule(default_synth, name)
    function, retries = TARGETS[name]
    function_id = default_synth.functions[function]
    (target,) = found["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == retries
    # EventBridge may invoke the function for this rule (and only as this rule).
    permissions = [
        p["Properties"]
        for p in default_synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"].get("SourceArn") == {"Fn::GetAtt": [rule_id, "Arn"]}
    ]
    assert len(permissions) == 1
    assert permissions[0]["Principal"] == "events.amazonaws.com"
    assert permissions[0]["Action"] == "lambda:InvokeFunction"
    assert permissions[0]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_no_poll_trigger_retries_a_stale_poll(default_synth: Synthesized) -> None:
    # A missed tick is covered by the next one; retrying old events only adds duplicate polls.
    for name in ("SweepSchedule", "ActionStarted"):
        (target,) = rule(default_synth, name)[1]["Targets"]
        assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 300, "MaximumRetryAttempts": 0}
