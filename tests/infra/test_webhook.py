"""The optional webhook receiver (context webhooks=true): its function, its URL, its wiring."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from tests.infra.conftest import STEPS, WEBHOOK_HANDLER, Synthesized

pytestmark = pytest.mark.synth


def test_no_webhook_without_the_context(default_synth: Synthesized) -> None:
    default_synth.assertions.resource_count_is("AWS::Lambda::Url", 0)
    default_synth.assertions.resource_properties_count_is(
        "AWS::Lambda::Function", {"Handler": WEBHOOK_HANDLER}, 0
    )
    assert "WebhookUrl" not in default_synth.template["Outputs"]


def test_webhook_function_and_url(webhook_synth: Synthesized) -> None:
    function = webhook_synth.functions["webhook"]
    webhook_synth.assertions.resource_properties_count_is(
        "AWS::Lambda::Function", {"Handler": WEBHOOK_HANDLER}, 1
    )
    webhook_synth.assertions.resource_count_is("AWS::Lambda::Url", 1)
    # Travis cannot sign AWS requests: the URL is public, the function checks Travis's signature.
    webhook_synth.assertions.has_resource_properties(
        "AWS::Lambda::Url",
        {"AuthType": "NONE", "TargetFunctionArn": {"Fn::GetAtt": [function, "Arn"]}},
    )
    webhook_synth.assertions.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunctionUrl",
            "FunctionName": {"Fn::GetAtt": [function, "Arn"]},
            "FunctionUrlAuthType": "NONE",
            "Principal": "*",
        },
    )


def test_webhook_url_is_an_output(webhook_synth: Synthesized) -> None:
    (url_id,) = webhook_synth.resources("AWS::Lambda::Url")
    assert webhook_synth.template["Outputs"]["WebhookUrl"]["Value"] == {
        "Fn::GetAtt": [url_id, "FunctionUrl"]
    }


@pytest.mark.parametrize("name", STEPS)
def test_steps_know_the_webhook_url(webhook_synth: Synthesized, name: str) -> None:
    (url_id,) = webhook_synth.resources("AWS::Lambda::Url")
    webhook_synth.assertions.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": f"worker.handlers.{name}.handler",
            "Environment": {
                "Variables": Match.object_like(
                    {"WEBHOOK_URL": {"Fn::GetAtt": [url_id, "FunctionUrl"]}}
                )
            },
        },
    )


@pytest.mark.parametrize("name", ["webhook", "poller", "abandon", "reaper"])
def test_other_functions_do_not_get_the_url(webhook_synth: Synthesized, name: str) -> None:
    # The receiver itself must not know its URL (a GetAtt on its own URL is a cycle), and
    # the event handlers do not tell Travis where to call.
    assert "WEBHOOK_URL" not in webhook_synth.environment(name)


def test_webhook_function_is_like_the_others(webhook_synth: Synthesized) -> None:
    props = webhook_synth.function("webhook")
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Architectures"] == ["arm64"]
    assert props["Timeout"] <= 30, "Travis waits for the answer"
    env = webhook_synth.environment("webhook")
    (table_id,) = webhook_synth.resources("AWS::DynamoDB::GlobalTable")
    assert env["WATCH_TABLE"] == {"Ref": table_id}
