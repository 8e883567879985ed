"""Settings from the Lambda environment: parsed once, failing fast with the variable named."""

from __future__ import annotations

import json

import pytest

from tests.unit.support import ACTION_TYPE, REGISTERED, worker_env
from worker.job import ActionType
from worker.settings import PollerSettings, Settings, SettingsError, WaitSchedule

TRAVIS = "https://api.travis-ci.com"


# What stacks/worker.py `_environment()` sets beyond the poller's and the old steps' variables.
STEP_ENV = {
    "TRAVIS_WEB_URL": "https://app.travis-ci.com/github/",
    "WATCH_TABLE": "travis-worker-watches",
    "PROGRESS_SECONDS": "300",
    "HAND_OVER_MAX_SECONDS": "1800",
}


@pytest.fixture
def env() -> dict[str, str]:
    return {**worker_env(TRAVIS + "/", "http://127.0.0.1:1"), **STEP_ENV}


def test_the_stacks_environment_is_parsed(env: dict[str, str]) -> None:
    # Given the environment the stack sets, with two extra trusted endpoints
    env["TRAVIS_TRUSTED_ENDPOINTS"] = " https://travis.example.com/api/ ,,https://ci.example.org"

    # When it is read
    settings = Settings.from_env(env)

    # Then every value is typed, and endpoints are normalised without trailing slashes
    assert settings.action_types == (REGISTERED,)
    assert settings.token_secret_arn == env["TRAVIS_TOKEN_SECRET_ARN"]
    assert settings.default_endpoint == TRAVIS
    assert settings.trusted_endpoints == {
        TRAVIS,
        "https://travis.example.com/api",
        "https://ci.example.org",
    }
    assert settings.watch_timeout_seconds == 7200
    assert settings.resolve_timeout_seconds == 900
    assert settings.watch_wait == WaitSchedule(first=15, factor=1.5, cap=120)
    assert settings.resolve_wait == WaitSchedule(first=5, factor=1.5, cap=30)


def test_the_default_endpoint_is_always_trusted(env: dict[str, str]) -> None:
    env["TRAVIS_TRUSTED_ENDPOINTS"] = ""
    assert Settings.from_env(env).trusted_endpoints == {TRAVIS}


def test_settings_are_read_from_the_process_environment(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env().default_endpoint == TRAVIS
    assert PollerSettings.from_env().batch_size == 10


@pytest.mark.parametrize(
    "name",
    [
        "ACTION_TYPES",
        "TRAVIS_TOKEN_SECRET_ARN",
        "TRAVIS_DEFAULT_ENDPOINT",
        "WATCH_TIMEOUT_SECONDS",
        "RESOLVE_TIMEOUT_SECONDS",
        "WATCH_WAIT_SECONDS",
        "RESOLVE_WAIT_SECONDS",
        "TRAVIS_WEB_URL",
        "WATCH_TABLE",
        "PROGRESS_SECONDS",
        "HAND_OVER_MAX_SECONDS",
    ],
)
@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_variable_is_named(env: dict[str, str], name: str, value: str | None) -> None:
    # Given a deployment that forgot (or blanked) one variable
    if value is None:
        del env[name]
    else:
        env[name] = value

    # When the settings are read
    # Then it fails at once, naming the variable
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "name",
    [
        "WATCH_TIMEOUT_SECONDS",
        "RESOLVE_TIMEOUT_SECONDS",
        "PROGRESS_SECONDS",
        "HAND_OVER_MAX_SECONDS",
    ],
)
def test_a_non_integer_is_named_with_its_value(env: dict[str, str], name: str) -> None:
    env[name] = "2h"
    with pytest.raises(SettingsError, match=rf"{name} must be an integer, got '2h'"):
        Settings.from_env(env)


@pytest.mark.parametrize("raw", ["15,1.5", "15;1.5;120", "a,b,c", "15,1.5,120,9"])
def test_a_malformed_wait_schedule_is_named(env: dict[str, str], raw: str) -> None:
    env["WATCH_WAIT_SECONDS"] = raw
    with pytest.raises(SettingsError, match="WATCH_WAIT_SECONDS must be 'first,factor,cap'"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("not json", "JSON list"),
        ("null", "JSON list"),
        ('{"category": "Test"}', "JSON list"),
        ('[{"category": "Test", "provider": "Travis"}]', "JSON list"),
        ("[]", "no action type"),
    ],
)
def test_malformed_action_types_are_refused(env: dict[str, str], raw: str, problem: str) -> None:
    env["ACTION_TYPES"] = raw
    with pytest.raises(SettingsError, match=f"ACTION_TYPES.*{problem}|{problem}"):
        Settings.from_env(env)


def test_registered_finds_only_served_action_types(env: dict[str, str]) -> None:
    # Given a deployment serving Test/Travis/1 and Build/Travis/2
    types = json.loads(env["ACTION_TYPES"])
    types.append({"category": "Build", "provider": "Travis", "version": "2",
                  "implementation": "travis"})  # fmt: skip
    env["ACTION_TYPES"] = json.dumps(types)
    settings = Settings.from_env(env)

    # Then each is found with its provider and secrets; anything else is not served
    assert settings.registered(ACTION_TYPE) == REGISTERED
    build = settings.registered(ActionType("Build", "Travis", "2"))
    assert build is not None
    assert build.provider == "travis"
    assert build.secret_properties == frozenset()
    assert settings.registered(ActionType("Test", "Travis", "2")) is None


@pytest.mark.parametrize("batch", ["0", "101", "-1"])
def test_poll_batch_size_stays_within_pollforjobs_limits(env: dict[str, str], batch: str) -> None:
    env["POLL_BATCH_SIZE"] = batch
    with pytest.raises(SettingsError, match="POLL_BATCH_SIZE"):
        PollerSettings.from_env(env)


@pytest.mark.parametrize(
    "name", ["STATE_MACHINE_ARN", "POLL_BATCH_SIZE", "POLL_TIME_BUDGET_SECONDS"]
)
def test_poller_variables_are_named_when_missing(env: dict[str, str], name: str) -> None:
    del env[name]
    with pytest.raises(SettingsError, match=name):
        PollerSettings.from_env(env)


def test_poller_settings(env: dict[str, str]) -> None:
    poller = PollerSettings.from_env(env)
    assert poller.state_machine_arn == env["STATE_MACHINE_ARN"]
    assert (poller.batch_size, poller.time_budget_seconds) == (10, 40)


def test_wait_schedule_backs_off_to_its_cap() -> None:
    # Given the stack's resolve schedule: first 5 s, factor 1.5, cap 30 s
    schedule = WaitSchedule(first=5, factor=1.5, cap=30)

    # Then waits grow geometrically and stop at the cap, whatever the poll count
    assert [schedule.seconds(n) for n in range(7)] == [5, 7, 11, 16, 25, 30, 30]
    assert schedule.seconds(-3) == 5
    assert schedule.seconds(10_000) == 30


def test_the_new_step_variables_are_parsed(env: dict[str, str]) -> None:
    # Given the stack's step environment without push and without the poller's name
    settings = Settings.from_env(env)

    # Then the web URL loses its trailing slash, the table and hand-over timing are typed,
    # and push is off
    assert settings.web_url == "https://app.travis-ci.com/github"
    assert settings.watch_table == "travis-worker-watches"
    assert (settings.progress_seconds, settings.hand_over_max_seconds) == (300, 1800)
    assert settings.webhook_url == settings.poller_function == ""
    assert settings.push is False


def test_push_and_the_poller_function_are_optional(env: dict[str, str]) -> None:
    # Given push enabled (the function URL) and the poller to wake after a hand-over
    env["WEBHOOK_URL"] = " https://abc.lambda-url.us-east-1.on.aws/ "
    env["POLLER_FUNCTION"] = "travis-worker-poller"

    settings = Settings.from_env(env)

    assert settings.webhook_url == "https://abc.lambda-url.us-east-1.on.aws/"
    assert settings.push is True
    assert settings.poller_function == "travis-worker-poller"
    assert settings.state_machine_arn == env["STATE_MACHINE_ARN"]
