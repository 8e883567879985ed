"""Context validation: a bad value stops synth with a ConfigError that names it.

Most cases construct WorkerConfig (or read a fake context) directly and need no synthesis; one case
goes through build_app to prove the check runs when the app is built.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stacks.config import ConfigError, WorkerConfig

pytestmark = pytest.mark.synth


def from_context(context: dict[str, Any]) -> WorkerConfig:
    """WorkerConfig.from_context on a stand-in scope (no node process needed)."""
    scope: Any = SimpleNamespace(node=SimpleNamespace(try_get_context=context.get))
    return WorkerConfig.from_context(scope)


@pytest.mark.parametrize(
    ("context", "names"),
    [
        ({"provider": "Travis CI"}, "provider"),
        ({"provider": ""}, "provider"),
        ({"provider": "T" * 36}, "provider"),
        ({"category": "Testing"}, "category"),
        ({"version": "1.0"}, "version"),
        ({"watchTimeoutMinutes": 0}, "watchTimeoutMinutes"),
        ({"watchTimeoutMinutes": "0"}, "watchTimeoutMinutes"),
        ({"watchTimeoutMinutes": 24 * 60}, "watchTimeoutMinutes"),
        ({"watchTimeoutMinutes": "two hours"}, "invalid context value"),
        ({"resolveTimeoutMinutes": 0}, "resolveTimeoutMinutes"),
        ({"pollBatchSize": 0}, "pollBatchSize"),
        ({"pollBatchSize": 101}, "pollBatchSize"),
        ({"defaultEndpoint": "http://api.travis-ci.com"}, "http://api.travis-ci.com"),
        ({"trustedEndpoints": "https://travis.example.com/api,http://x"}, "http://x"),
        ({"trustedEndpoints": ["http://travis.example.com/api"]}, "http://travis.example.com"),
        ({"travisWebUrl": "app.travis-ci.com"}, "app.travis-ci.com"),
    ],
)
def test_invalid_context_raises(context: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        from_context(context)


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
