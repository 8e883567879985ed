"""The Lambda functions: runtime, packaging, observability and the environment they run with."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from stacks.config import WorkerConfig
from stacks.worker import ARCHITECTURE, RUNTIME
from tests.infra.conftest import (
    CUSTOM_CONTEXT,
    HANDLERS,
    STEPS,
    WEBHOOK_HANDLER,
    Synthesized,
    render,
)

pytestmark = pytest.mark.synth

ALL = sorted(HANDLERS)


def test_one_function_per_handler(default_synth: Synthesized) -> None:
    assert len(default_synth.resources("AWS::Lambda::Function")) == len(HANDLERS)
    assert set(default_synth.functions) == set(HANDLERS)


@pytest.mark.parametrize("name", ALL)
def test_runtime_and_architecture(default_synth: Synthesized, name: str) -> None:
    props = default_synth.function(name)
    assert props["Runtime"] == RUNTIME.name
    assert RUNTIME.name.startswith("python3.")
    assert props["Architectures"] == [ARCHITECTURE.name] == ["arm64"]


@pytest.mark.parametrize("name", ALL)
def test_one_dependency_layer_for_the_same_platform(default_synth: Synthesized, name: str) -> None:
    (layer_ref,) = default_synth.function(name)["Layers"]
    layer = default_synth.template["Resources"][layer_ref["Ref"]]
    assert layer["Type"] == "AWS::Lambda::LayerVersion"
    assert RUNTIME.name in layer["Properties"]["CompatibleRuntimes"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


@pytest.mark.parametrize("name", ALL)
def test_one_lambda_module_per_function(default_synth: Synthesized, name: str) -> None:
    assert default_synth.function(name)["Handler"] == f"worker.handlers.{name}.handler"


@pytest.mark.parametrize("handler", [*sorted(HANDLERS.values()), WEBHOOK_HANDLER])
def test_handler_is_an_importable_function(handler: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    module_name, _, function_name = handler.rpartition(".")
    function = getattr(importlib.import_module(module_name), function_name)
    assert callable(function)


@pytest.mark.parametrize("name", ALL)
def test_tracing_and_logs_with_retention(default_synth: Synthesized, name: str) -> None:
    props = default_synth.function(name)
    assert props["TracingConfig"] == {"Mode": "Active"}
    log_group = default_synth.template["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == 30
    assert props["LoggingConfig"]["LogFormat"] == "JSON"


def test_log_retention_comes_from_context(custom_synth: Synthesized) -> None:
    retention = {
        g["Properties"]["RetentionInDays"]
        for g in custom_synth.resources("AWS::Logs::LogGroup").values()
    }
    assert retention == {CUSTOM_CONTEXT["logRetentionDays"]}


@pytest.mark.parametrize("name", ALL)
def test_timeouts_leave_room(default_synth: Synthesized, name: str) -> None:
    props = default_synth.function(name)
    env = default_synth.environment(name)
    if name == "poller":
        # The poller stops polling before Lambda stops it.
        assert int(env["POLL_TIME_BUDGET_SECONDS"]) < props["Timeout"]
    assert props["Timeout"] <= 900


# --- environment -------------------------------------------------------------------------------


def action_types(env: dict[str, Any]) -> list[dict[str, Any]]:
    value = env["ACTION_TYPES"]
    assert isinstance(value, str), "ACTION_TYPES is a JSON string, not a token"
    return list(json.loads(value))


@pytest.mark.parametrize("name", ALL)
def test_environment_wiring(default_synth: Synthesized, name: str) -> None:
    env = default_synth.environment(name)
    (action,) = action_types(env)
    assert {k: action[k] for k in ("category", "provider", "version")} == {
        "category": "Test",
        "provider": "Travis",
        "version": "1",
    }
    assert "APIToken" in action["secretProperties"]
    (secret_id,) = default_synth.resources("AWS::SecretsManager::Secret")
    assert env["TRAVIS_TOKEN_SECRET_ARN"] == {"Ref": secret_id}
    assert env["WATCH_TIMEOUT_SECONDS"] == "7200"
    assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    assert env["TRAVIS_DEFAULT_ENDPOINT"] == "https://api.travis-ci.com"
    assert env.get("POWERTOOLS_SERVICE_NAME")


def test_every_function_knows_the_state_machine_and_the_table(default_synth: Synthesized) -> None:
    # The ARN is built from the state machine's fixed name (the state machine invokes the
    # functions, so a Ref would be a dependency cycle); it must name that very state machine.
    name = default_synth.template["Resources"][default_synth.state_machine_id]["Properties"][
        "StateMachineName"
    ]
    (table_id,) = default_synth.resources("AWS::DynamoDB::GlobalTable")
    for function in ALL:
        env = default_synth.environment(function)
        assert render(env["STATE_MACHINE_ARN"]) == (
            f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"
        ), function
        assert env["WATCH_TABLE"] == {"Ref": table_id}, function
    assert 1 <= int(default_synth.environment("poller")["POLL_BATCH_SIZE"]) <= 100


def test_steps_know_the_poller(default_synth: Synthesized) -> None:
    poller = default_synth.functions["poller"]
    for name in STEPS:
        assert default_synth.environment(name)["POLLER_FUNCTION"] == {"Ref": poller}, name


def test_hand_over_settings_come_from_context(
    default_synth: Synthesized, custom_synth: Synthesized
) -> None:
    defaults = WorkerConfig()
    for name in ALL:
        env = default_synth.environment(name)
        assert env["PROGRESS_SECONDS"] == str(defaults.progress_minutes * 60)
        assert env["HAND_OVER_MAX_SECONDS"] == str(defaults.hand_over_max_minutes * 60)
        custom = custom_synth.environment(name)
        assert custom["PROGRESS_SECONDS"] == str(CUSTOM_CONTEXT["progressMinutes"] * 60)
        assert custom["HAND_OVER_MAX_SECONDS"] == str(CUSTOM_CONTEXT["handOverMaxMinutes"] * 60)
    assert custom_synth.environment("poller")["POLL_BATCH_SIZE"] == CUSTOM_CONTEXT["pollBatchSize"]


def test_no_webhook_url_without_webhooks(default_synth: Synthesized) -> None:
    for name in ALL:
        assert "WEBHOOK_URL" not in default_synth.environment(name), name


def test_action_types_follow_context(custom_synth: Synthesized) -> None:
    for name in ALL:
        (action,) = action_types(custom_synth.environment(name))
        assert action["category"] == CUSTOM_CONTEXT["category"]
        assert action["provider"] == CUSTOM_CONTEXT["provider"]
        assert action["version"] == CUSTOM_CONTEXT["version"]


@pytest.mark.parametrize("name", ALL)
def test_no_secret_value_in_the_environment(default_synth: Synthesized, name: str) -> None:
    env = default_synth.environment(name)
    for key, value in env.items():
        if any(word in key.upper() for word in ("TOKEN", "SECRET", "PASSWORD", "KEY")):
            assert key == "TRAVIS_TOKEN_SECRET_ARN", f"{key} looks like a credential"
        # A dynamic reference would put the secret's value into the function configuration.
        assert "resolve:secretsmanager" not in json.dumps(value), key
