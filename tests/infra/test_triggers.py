"""The poller's two triggers: the minute sweep and the "action started" event."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import CUSTOM_CONTEXT, Synthesized

pytestmark = pytest.mark.synth


def rules(synth: Synthesized) -> tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]:
    """(schedule rule, event rule), each as (logical id, properties)."""
    found = synth.resources("AWS::Events::Rule")
    schedules = [
        (k, r["Properties"]) for k, r in found.items() if "ScheduleExpression" in r["Properties"]
    ]
    patterns = [(k, r["Properties"]) for k, r in found.items() if "EventPattern" in r["Properties"]]
    assert len(schedules) == 1 and len(patterns) == 1, sorted(found)
    return schedules[0], patterns[0]


def test_schedule_sweeps_every_minute(default_synth: Synthesized) -> None:
    (_, schedule), _ = rules(default_synth)
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    assert schedule.get("State", "ENABLED") == "ENABLED"


def test_event_rule_matches_our_started_actions(default_synth: Synthesized) -> None:
    _, (_, rule) = rules(default_synth)
    assert rule["EventPattern"] == {
        "source": ["aws.codepipeline"],
        "detail-type": ["CodePipeline Action Execution State Change"],
        "detail": {
            "state": ["STARTED"],
            "type": {"owner": ["Custom"], "category": ["Test"], "provider": ["Travis"]},
        },
    }


def test_event_rule_does_not_filter_on_version(custom_synth: Synthesized) -> None:
    # The event carries the version as a number or a string: a filter would miss some events.
    _, (_, rule) = rules(custom_synth)
    action_type = rule["EventPattern"]["detail"]["type"]
    assert "version" not in action_type
    assert action_type == {
        "owner": ["Custom"],
        "category": [CUSTOM_CONTEXT["category"]],
        "provider": [CUSTOM_CONTEXT["provider"]],
    }


@pytest.mark.parametrize("which", ["schedule", "event"])
def test_rule_invokes_only_the_poller(default_synth: Synthesized, which: str) -> None:
    schedule, event = rules(default_synth)
    rule_id, rule = schedule if which == "schedule" else event
    poller = default_synth.functions["poller"]
    assert [t["Arn"] for t in rule["Targets"]] == [{"Fn::GetAtt": [poller, "Arn"]}]
    # EventBridge may invoke the poller for this rule (and only as this rule).
    permissions = [
        p["Properties"]
        for p in default_synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"].get("SourceArn") == {"Fn::GetAtt": [rule_id, "Arn"]}
    ]
    assert len(permissions) == 1
    assert permissions[0]["Principal"] == "events.amazonaws.com"
    assert permissions[0]["Action"] == "lambda:InvokeFunction"
    assert permissions[0]["FunctionName"] == {"Fn::GetAtt": [poller, "Arn"]}


def test_no_trigger_retries_a_stale_poll(default_synth: Synthesized) -> None:
    # A missed tick is covered by the next one; retrying old events only adds duplicate polls.
    for _, rule in rules(default_synth):
        for target in rule["Targets"]:
            assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
