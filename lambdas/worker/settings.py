"""Configuration from the Lambda environment, parsed once per invocation into typed settings.

The stack sets every variable; a missing or malformed one is a deployment bug, so it fails fast with
a message naming the variable instead of falling back to a silent default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from worker.job import ActionType


class SettingsError(RuntimeError):
    """The Lambda environment is incomplete or malformed (a deployment problem)."""


@dataclass(frozen=True)
class RegisteredActionType:
    """A custom action type this deployment serves, and the provider that does its work."""

    action_type: ActionType
    provider: str  # key in the provider registry, e.g. "travis"
    secret_properties: frozenset[str]


@dataclass(frozen=True)
class WaitSchedule:
    """Exponential backoff between two looks at Travis: first, factor, cap (seconds)."""

    first: int
    factor: float
    cap: int

    def seconds(self, polls_done: int) -> int:
        try:
            wait = self.first * self.factor ** max(polls_done, 0)
        except OverflowError:  # a float power overflows after ~1750 polls: long past the cap
            wait = self.cap
        return int(min(self.cap, wait))


@dataclass(frozen=True)
class Settings:
    """Everything the worker's step functions read from their environment."""

    action_types: tuple[RegisteredActionType, ...]
    token_secret_arn: str
    default_endpoint: str
    trusted_endpoints: frozenset[str]
    watch_timeout_seconds: int
    resolve_timeout_seconds: int
    watch_wait: WaitSchedule
    resolve_wait: WaitSchedule
    # Links to builds on the default endpoint use this web UI (travisWebUrl context).
    web_url: str = "https://app.travis-ci.com/github"
    # The table where waiting executions leave their wake-up token (see worker.wake).
    watch_table: str = ""
    # The function URL Travis notifies when a build ends; empty when push is not enabled.
    webhook_url: str = ""
    # Hand the watch to a fresh continuation job when progress changed and this much time passed
    # since the last publication, and in any case after hand_over_max_seconds.
    progress_seconds: int = 300
    hand_over_max_seconds: int = 3600
    # The poller, woken right after a link is published so the continuation job starts at once.
    poller_function: str = ""
    state_machine_arn: str = ""

    @property
    def push(self) -> bool:
        return bool(self.webhook_url)

    def registered(self, action_type: ActionType) -> RegisteredActionType | None:
        for registered in self.action_types:
            if registered.action_type == action_type:
                return registered
        return None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        default_endpoint = _required(env, "TRAVIS_DEFAULT_ENDPOINT").rstrip("/")
        trusted = {
            e.strip().rstrip("/") for e in env.get("TRAVIS_TRUSTED_ENDPOINTS", "").split(",")
        }
        return cls(
            action_types=_action_types(_required(env, "ACTION_TYPES")),
            token_secret_arn=_required(env, "TRAVIS_TOKEN_SECRET_ARN"),
            default_endpoint=default_endpoint,
            trusted_endpoints=frozenset({default_endpoint} | {e for e in trusted if e}),
            watch_timeout_seconds=_integer(env, "WATCH_TIMEOUT_SECONDS"),
            resolve_timeout_seconds=_integer(env, "RESOLVE_TIMEOUT_SECONDS"),
            watch_wait=_schedule(env, "WATCH_WAIT"),
            resolve_wait=_schedule(env, "RESOLVE_WAIT"),
            web_url=_required(env, "TRAVIS_WEB_URL").rstrip("/"),
            watch_table=_required(env, "WATCH_TABLE"),
            webhook_url=env.get("WEBHOOK_URL", "").strip(),
            progress_seconds=_integer(env, "PROGRESS_SECONDS"),
            hand_over_max_seconds=_integer(env, "HAND_OVER_MAX_SECONDS"),
            poller_function=env.get("POLLER_FUNCTION", "").strip(),
            state_machine_arn=env.get("STATE_MACHINE_ARN", "").strip(),
        )


@dataclass(frozen=True)
class PollerSettings:
    """What only the poller reads."""

    state_machine_arn: str
    batch_size: int
    time_budget_seconds: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PollerSettings:
        env = os.environ if env is None else env
        batch_size = _integer(env, "POLL_BATCH_SIZE")
        if not 1 <= batch_size <= 100:
            raise SettingsError("POLL_BATCH_SIZE must be between 1 and 100 (PollForJobs limit)")
        return cls(
            state_machine_arn=_required(env, "STATE_MACHINE_ARN"),
            batch_size=batch_size,
            time_budget_seconds=_integer(env, "POLL_TIME_BUDGET_SECONDS"),
        )


def action_types_from_env(env: Mapping[str, str] | None = None) -> tuple[RegisteredActionType, ...]:
    """The registered action types alone (the poller and the event handlers need no more)."""
    env = os.environ if env is None else env
    return _action_types(_required(env, "ACTION_TYPES"))


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set")
    return value


def _integer(env: Mapping[str, str], name: str) -> int:
    raw = _required(env, name)
    try:
        return int(raw)
    except ValueError as error:
        raise SettingsError(
            f"environment variable {name} must be an integer, got {raw!r}"
        ) from error


def _schedule(env: Mapping[str, str], prefix: str) -> WaitSchedule:
    # "first,factor,cap", e.g. "15,1.5,120"
    raw = _required(env, f"{prefix}_SECONDS")
    try:
        first, factor, cap = raw.split(",")
        return WaitSchedule(first=int(first), factor=float(factor), cap=int(cap))
    except ValueError as error:
        raise SettingsError(f"{prefix}_SECONDS must be 'first,factor,cap', got {raw!r}") from error


def _action_types(raw: str) -> tuple[RegisteredActionType, ...]:
    try:
        items = json.loads(raw)
        registered = tuple(
            RegisteredActionType(
                action_type=ActionType(
                    category=str(item["category"]),
                    provider=str(item["provider"]),
                    version=str(item["version"]),
                ),
                provider=str(item["implementation"]),
                secret_properties=frozenset(str(p) for p in item.get("secretProperties", [])),
            )
            for item in items
        )
    except (ValueError, KeyError, TypeError) as error:
        raise SettingsError(
            "ACTION_TYPES must be a JSON list of registered action types"
        ) from error
    if not registered:
        raise SettingsError("ACTION_TYPES lists no action type")
    return registered
