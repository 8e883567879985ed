"""Monitoring: the alarms, the topic they notify (and its e-mail subscriber), the dashboard."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match

from tests.infra.conftest import WEBHOOK_CONTEXT, Synthesized, render

pytestmark = pytest.mark.synth

NAMESPACE = "CodePipelineTravisWorker"
SERVICE = {"Name": "service", "Value": "codepipeline-travis-worker"}
ALARMS = (
    "ExecutionsEndedWithoutResult",
    "PollerErrors",
    "JobsReaped",
    "ReaperErrors",
    "SystemUnavailableRising",
    "ClaimsUncertain",
    "Throttling",
)


def topic_id(synth: Synthesized) -> str:
    (found,) = synth.resources("AWS::SNS::Topic")
    return found


def alarm(synth: Synthesized, name: str) -> dict[str, Any]:
    (found,) = [
        r["Properties"]
        for k, r in synth.resources("AWS::CloudWatch::Alarm").items()
        if k.startswith(f"WorkerMonitoring{name}")
    ]
    return found


def test_exactly_the_alarms(default_synth: Synthesized) -> None:
    assert len(default_synth.resources("AWS::CloudWatch::Alarm")) == len(ALARMS)
    for name in ALARMS:
        alarm(default_synth, name)


@pytest.mark.parametrize("name", ALARMS)
def test_each_alarm_notifies_the_topic(default_synth: Synthesized, name: str) -> None:
    props = alarm(default_synth, name)
    assert props["AlarmActions"] == [{"Ref": topic_id(default_synth)}]
    assert props["TreatMissingData"] == "notBreaching"
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert len(props["AlarmDescription"]) > 20, "the description tells the operator what to do"


def test_executions_ended_without_result_adds_the_three_endings(
    default_synth: Synthesized,
) -> None:
    machine = default_synth.state_machine_id

    def state_metric(metric_id: str, name: str) -> dict[str, Any]:
        return {
            "Id": metric_id,
            "MetricStat": {
                "Metric": {
                    "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": machine}}],
                    "MetricName": name,
                    "Namespace": "AWS/States",
                },
                "Period": 300,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }

    default_synth.assertions.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmActions": [{"Ref": topic_id(default_synth)}],
            "Threshold": 1,
            "Metrics": Match.array_with(
                [
                    Match.object_like(
                        {"Expression": "failed + timedout + aborted", "ReturnData": True}
                    ),
                    state_metric("failed", "ExecutionsFailed"),
                    state_metric("timedout", "ExecutionsTimedOut"),
                    state_metric("aborted", "ExecutionsAborted"),
                ]
            ),
        },
    )


@pytest.mark.parametrize(
    ("name", "function", "threshold"),
    [("PollerErrors", "poller", 2), ("ReaperErrors", "reaper", 1)],
)
def test_function_error_alarms(
    default_synth: Synthesized, name: str, function: str, threshold: int
) -> None:
    props = alarm(default_synth, name)
    assert props["Namespace"] == "AWS/Lambda"
    assert props["MetricName"] == "Errors"
    assert props["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": default_synth.functions[function]}}
    ]
    assert (props["Statistic"], props["Period"], props["Threshold"]) == ("Sum", 300, threshold)


def test_jobs_reaped_alarm_counts_the_worker_metric(default_synth: Synthesized) -> None:
    default_synth.assertions.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": NAMESPACE,
            "MetricName": "JobsReaped",
            "Dimensions": [SERVICE],
            "Statistic": "Sum",
            "Threshold": 1,
            "AlarmActions": [{"Ref": topic_id(default_synth)}],
        },
    )


def test_system_unavailable_rising_counts_that_failure_type(default_synth: Synthesized) -> None:
    dimensions = Capture()
    default_synth.assertions.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": NAMESPACE,
            "MetricName": "JobsFailed",
            "Dimensions": dimensions,
            "Period": 900,
            "Statistic": "Sum",
            "Threshold": 3,
            "AlarmActions": [{"Ref": topic_id(default_synth)}],
        },
    )
    assert sorted(dimensions.as_array(), key=lambda d: d["Name"]) == [
        {"Name": "FailureType", "Value": "SystemUnavailable"},
        SERVICE,
    ]


def test_throttling_adds_the_poller_and_the_steps(default_synth: Synthesized) -> None:
    props = alarm(default_synth, "Throttling")
    (expression,) = [m for m in props["Metrics"] if "Expression" in m]
    metrics = [m for m in props["Metrics"] if "MetricStat" in m]
    assert expression["Expression"] == " + ".join(m["Id"] for m in metrics)
    assert len(metrics) == 10, "a math alarm combines at most 10 metrics"
    throttled = set()
    for metric in metrics:
        stat = metric["MetricStat"]
        assert stat["Metric"]["MetricName"] == "Throttles"
        assert stat["Metric"]["Namespace"] == "AWS/Lambda"
        (dimension,) = stat["Metric"]["Dimensions"]
        throttled.add(dimension["Value"]["Ref"])
    names = ("poller", "claim", "submit", "resolve", "publish", "watch", "park", "report")
    names += ("report_failure", "cancel")
    assert throttled == {default_synth.functions[n] for n in names}
    assert props["Threshold"] == 5


def test_topic_is_ssl_only(default_synth: Synthesized) -> None:
    topic = topic_id(default_synth)
    default_synth.assertions.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "sns:Publish",
                                "Effect": "Deny",
                                "Principal": "*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                "Resource": {"Ref": topic},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_alarms_can_publish_to_the_topic(default_synth: Synthesized) -> None:
    # CloudWatch alarms cannot use a topic under the AWS-managed SNS key: the topic is not
    # encrypted at rest (acknowledged with its reason) and refuses anything but TLS.
    _, topic = default_synth.only("AWS::SNS::Topic")
    assert "KmsMasterKeyId" not in topic["Properties"]
    policies = default_synth.template["Resources"]
    assert "aws:SecureTransport" in json.dumps(
        [r for r in policies.values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    )


def test_no_subscription_without_an_email(default_synth: Synthesized) -> None:
    default_synth.assertions.resource_count_is("AWS::SNS::Subscription", 0)


def test_email_subscription_with_alarm_email(webhook_synth: Synthesized) -> None:
    webhook_synth.assertions.resource_count_is("AWS::SNS::Subscription", 1)
    webhook_synth.assertions.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": WEBHOOK_CONTEXT["alarmEmail"],
            "TopicArn": {"Ref": topic_id(webhook_synth)},
        },
    )


def test_topic_and_dashboard_are_outputs(default_synth: Synthesized) -> None:
    outputs = default_synth.template["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": topic_id(default_synth)}
    (dashboard,) = default_synth.resources("AWS::CloudWatch::Dashboard")
    assert outputs["DashboardName"]["Value"] == {"Ref": dashboard}


def dashboard_body(synth: Synthesized) -> dict[str, Any]:
    _, dashboard = synth.only("AWS::CloudWatch::Dashboard")
    props = dashboard["Properties"]
    assert props["DashboardName"] == f"{synth.stack_name}-worker"
    return dict(json.loads(render(props["DashboardBody"])))


def widget(body: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = [w for w in body["widgets"] if w["properties"].get("title") == title]
    return dict(found["properties"])


def metric_names(properties: dict[str, Any]) -> list[str]:
    # [namespace, name, dim, value, ..., {options}]
    return [m[1] for m in properties["metrics"]]


def test_dashboard_widgets(default_synth: Synthesized) -> None:
    body = dashboard_body(default_synth)
    runs = widget(body, "Runs")
    assert metric_names(runs) == ["JobsReceived", "JobsClaimed", "BuildsRequested", "ClaimsLost"]
    assert all(m[0] == NAMESPACE for m in runs["metrics"])
    outcomes = widget(body, "Outcomes")
    assert metric_names(outcomes) == [
        "BuildsPassed",
        "BuildsFailed",
        "JobsGone",
        "RunsAbandoned",
        "JobsReaped",
    ]
    failures = widget(body, "Failures by type")
    assert set(metric_names(failures)) == {"JobsFailed"}
    types = {m[m.index("FailureType") + 1] for m in failures["metrics"]}
    assert "SystemUnavailable" in types and "JobFailed" in types
    durations = widget(body, "Execution duration (p50, p95)")
    assert {m[0] for m in durations["metrics"]} == {"AWS/States"}
    assert metric_names(durations) == ["ExecutionTime", "ExecutionTime"]
    pickup = widget(body, "Pickup latency: event to execution (s)")
    assert set(metric_names(pickup)) == {"PickupLatency"}
    travis = widget(body, "Travis CI errors and retries")
    assert "TravisCallsFailed" in metric_names(travis)
    alarms = widget(body, "Alarms")
    assert len(alarms["alarms"]) == len(ALARMS)


def test_dashboard_shows_the_errors_of_every_function(webhook_synth: Synthesized) -> None:
    errors = widget(dashboard_body(webhook_synth), "Lambda errors")
    assert len(errors["metrics"]) == len(webhook_synth.functions)
    assert set(metric_names(errors)) == {"Errors"}
