"""Context validation: a bad value stops synth with a ConfigError that names it.

Most cases construct WorkerConfig (or read a fake context) directly and need no synthesis; one case
goes through build_app to prove the check runs when the app is built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stacks.config import ConfigError, WorkerConfig

pytestmark = pytest.mark.synth

ROOT = Path(__file__).resolve().parents[2]


def from_context(context: dict[str, Any]) -> WorkerConfig:
    """WorkerConfig.from_context on a stand-in scope (no node process needed)."""
    scope: Any = SimpleNamespace(node=SimpleNamespace(try_get_context=context.get))
    return WorkerConfig.from_context(scope)


# Every key, with invalid values and the accepted forms its message must name.
INVALID = [
    ({"category": "Testing"}, "category", "one of Source, Build, Deploy, Test, Invoke, Approval"),
    ({"provider": "Travis CI"}, "provider", "1-35 of [0-9A-Za-z_-]"),
    ({"provider": ""}, "provider", "1-35 of"),
    ({"provider": "T" * 36}, "provider", "1-35 of"),
    ({"version": "1.0"}, "version", "1-9 of [0-9A-Za-z_-]"),
    ({"version": "1234567890"}, "version", "1-9 of"),
    ({"travisTokenSecretArn": "ci/travis-token"}, "travisTokenSecretArn", "complete ARN"),
    ({"defaultEndpoint": "http://api.travis-ci.com"}, "defaultEndpoint", "https URLs"),
    ({"trustedEndpoints": "https://travis.example.com/api,http://x"}, "trustedEndpoints", "https"),
    ({"trustedEndpoints": ["http://travis.example.com/api"]}, "trustedEndpoints", "https URLs"),
    ({"trustedEndpoints": '["https://a.example.com"'}, "trustedEndpoints", "JSON list"),
    ({"trustedEndpoints": 5}, "trustedEndpoints", "JSON list or comma-separated"),
    ({"trustedEndpoints": [1, 2]}, "trustedEndpoints", "JSON list or comma-separated"),
    ({"travisWebUrl": "app.travis-ci.com"}, "travisWebUrl", "https URLs"),
    ({"watchTimeoutMinutes": 0}, "watchTimeoutMinutes", "whole number from 5 to 1200"),
    ({"watchTimeoutMinutes": "0"}, "watchTimeoutMinutes", "whole number from 5 to 1200"),
    ({"watchTimeoutMinutes": 24 * 60}, "watchTimeoutMinutes", "from 5 to 1200"),
    ({"watchTimeoutMinutes": "abc"}, "watchTimeoutMinutes", "whole number"),
    ({"watchTimeoutMinutes": "two hours"}, "watchTimeoutMinutes", "whole number"),
    ({"watchTimeoutMinutes": 7.5}, "watchTimeoutMinutes", "whole number"),
    ({"watchTimeoutMinutes": True}, "watchTimeoutMinutes", "whole number"),
    ({"resolveTimeoutMinutes": 0}, "resolveTimeoutMinutes", "whole number from 1 to 60"),
    ({"resolveTimeoutMinutes": "x"}, "resolveTimeoutMinutes", "whole number"),
    ({"pollBatchSize": 0}, "pollBatchSize", "whole number from 1 to 100"),
    ({"pollBatchSize": 101}, "pollBatchSize", "from 1 to 100"),
    ({"pollBatchSize": "abc"}, "pollBatchSize", "whole number"),
    ({"logRetentionDays": 3}, "logRetentionDays", "one of 1, 7, 14, 30, 90, 180, 365"),
    ({"logRetentionDays": "month"}, "logRetentionDays", "whole number"),
    ({"progressMinutes": 0}, "progressMinutes", "whole number from 1 to 60"),
    ({"progressMinutes": "soon"}, "progressMinutes", "whole number"),
    ({"handOverMaxMinutes": 4}, "handOverMaxMinutes", "whole number from 5 to 60"),
    ({"handOverMaxMinutes": 61}, "handOverMaxMinutes", "from 5 to 60"),
    ({"webhooks": "maybe"}, "webhooks", "true or false"),
    ({"webhooks": 2}, "webhooks", "true or false"),
    ({"alarmEmail": "ops"}, "alarmEmail", "email address"),
    ({"alarmEmail": "ops@example"}, "alarmEmail", "email address"),
    ({"examplePipeline": "sure"}, "examplePipeline", "true or false"),
]


@pytest.mark.parametrize(("context", "key", "accepted"), INVALID)
def test_invalid_context_names_the_key_and_the_accepted_forms(
    context: dict[str, Any], key: str, accepted: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        from_context(context)
    message = str(raised.value)
    assert message.startswith(f"context '{key}' ")
    assert accepted in message
    assert "\n" not in message, "one line"


def test_every_key_has_an_invalid_case() -> None:
    assert {key for _, key, _ in INVALID} == set(WorkerConfig.keys())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '["https://a.example.com/api/", "https://b.example.com"]',
            ("https://a.example.com/api", "https://b.example.com"),
        ),
        (["https://a.example.com"], ("https://a.example.com",)),
        (
            "https://a.example.com, https://b.example.com/",
            ("https://a.example.com", "https://b.example.com"),
        ),
        ("", ()),
        ("[]", ()),
    ],
)
def test_trusted_endpoints_json_list_or_comma_list(value: Any, expected: tuple[str, ...]) -> None:
    assert from_context({"trustedEndpoints": value}).trusted_endpoints == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        (True, True),
        ("false", False),
        ("0", False),
        ("no", False),
        (False, False),
    ],
)
def test_booleans_from_cli_strings_or_json(value: Any, expected: bool) -> None:
    config = from_context({"webhooks": value, "examplePipeline": value})
    assert (config.webhooks, config.example_pipeline) == (expected, expected)


def test_new_keys_are_parsed() -> None:
    config = from_context(
        {
            "progressMinutes": "10",
            "handOverMaxMinutes": 45,
            "alarmEmail": " ops@example.com ",
            "logRetentionDays": "90",
        }
    )
    assert config.progress_minutes == 10
    assert config.hand_over_max_minutes == 45
    assert config.alarm_email == "ops@example.com"
    assert config.log_retention_days == 90


@pytest.mark.parametrize(
    "kwargs",
    [
        {"provider": "Travis CI"},
        {"watch_timeout_minutes": 0},
        {"default_endpoint": "http://api.travis-ci.com"},
        {"trusted_endpoints": ("http://travis.example.com/api",)},
    ],
)
def test_invalid_config_raises(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        WorkerConfig(**kwargs)


def test_defaults_without_context() -> None:
    assert from_context({}) == WorkerConfig()
    config = WorkerConfig()
    assert (config.category, config.provider, config.version) == ("Test", "Travis", "1")
    assert config.watch_timeout_minutes == 120
    assert config.token_secret_arn is None
    assert config.progress_minutes == 5
    assert config.progress_minutes < config.hand_over_max_minutes <= 60
    assert (config.webhooks, config.alarm_email, config.example_pipeline) == (False, None, False)


def test_cli_strings_are_parsed() -> None:
    # `cdk synth -c watchTimeoutMinutes=30 -c trustedEndpoints=a,b` passes strings.
    config = from_context(
        {
            "watchTimeoutMinutes": "30",
            "pollBatchSize": "5",
            "version": 2,
            "trustedEndpoints": "https://travis.example.com/api/,https://other.example.com/api",
            "defaultEndpoint": "https://travis.example.com/api/",
        }
    )
    assert config.watch_timeout_minutes == 30
    assert config.poll_batch_size == 5
    assert config.version == "2"
    assert config.trusted_endpoints == (
        "https://travis.example.com/api",
        "https://other.example.com/api",
    )
    assert config.default_endpoint == "https://travis.example.com/api"


@pytest.mark.parametrize(
    "context",
    [
        {"provider": "Travis CI"},
        {"watchTimeoutMinutes": 0},
        {"defaultEndpoint": "http://api.travis-ci.com"},
        {"logRetentionDays": 3},
    ],
)
def test_build_app_stops_on_invalid_context(context: dict[str, Any], tmp_path: Any) -> None:
    from app import build_app

    with pytest.raises(ConfigError):
        build_app(outdir=str(tmp_path), context=context)


def test_app_prints_one_line_and_exits_2() -> None:
    context, key = {"pollBatchSize": "abc"}, "pollBatchSize"
    # What `cdk synth -c pollBatchSize=abc` runs: the CLI passes the context as CDK_CONTEXT_JSON.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CDK_CONTEXT_JSON", "CDK_OUTDIR", "CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")
    }
    env |= {
        "CDK_CONTEXT_JSON": json.dumps(context),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "app.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: context '{key}' "), lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
