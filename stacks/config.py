"""Deployment settings from CDK context (`cdk.json` or `-c key=value`), validated at synth time.

A bad value stops synthesis with one line that names the key and the forms it accepts
(`ConfigError`); `app.py` prints that line instead of a traceback. Values from `-c` arrive as
strings, values from `cdk.json` as JSON: both are accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Any

from constructs import Construct

DEFAULT_ENDPOINT = "https://api.travis-ci.com"
DEFAULT_WEB_URL = "https://app.travis-ci.com/github"
_PROVIDER = re.compile(r"[0-9A-Za-z_-]{1,35}")
_VERSION = re.compile(r"[0-9A-Za-z_-]{1,9}")
_CATEGORIES = ("Source", "Build", "Deploy", "Test", "Invoke", "Approval")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
LOG_RETENTION_DAYS = (1, 7, 14, 30, 90, 180, 365)


class ConfigError(ValueError):
    """A context value is invalid; synth stops with a message naming it."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a deployment can tune."""

    category: str = "Test"
    provider: str = "Travis"
    version: str = "1"
    token_secret_arn: str | None = None
    default_endpoint: str = DEFAULT_ENDPOINT
    trusted_endpoints: tuple[str, ...] = ()
    web_url: str = DEFAULT_WEB_URL
    watch_timeout_minutes: int = 120
    resolve_timeout_minutes: int = 15
    poll_batch_size: int = 10
    log_retention_days: int = 30
    # Hand the watch to a fresh continuation job (progress in the console) when a Travis job
    # finished and this long passed since the last summary ...
    progress_minutes: int = 5
    # ... and in any case after this long, so no job is held for hours.
    hand_over_max_minutes: int = 60
    # Travis notifies a webhook when the build ends (push completion): opt-in, see README.
    webhooks: bool = False
    alarm_email: str | None = None
    example_pipeline: bool = False

    def __post_init__(self) -> None:
        if self.category not in _CATEGORIES:
            raise ConfigError(f"context 'category' must be one of {', '.join(_CATEGORIES)}")
        if not _PROVIDER.fullmatch(self.provider):
            raise ConfigError("context 'provider' must be 1-35 of [0-9A-Za-z_-]")
        if not _VERSION.fullmatch(self.version):
            raise ConfigError("context 'version' must be 1-9 of [0-9A-Za-z_-]")
        _between("watchTimeoutMinutes", self.watch_timeout_minutes, 5, 20 * 60)
        _between("resolveTimeoutMinutes", self.resolve_timeout_minutes, 1, 60)
        _between("pollBatchSize", self.poll_batch_size, 1, 100)
        _between("progressMinutes", self.progress_minutes, 1, 60)
        # CodePipeline's newer job model caps one job at 12 hours; an hour keeps well clear.
        _between("handOverMaxMinutes", self.hand_over_max_minutes, 5, 60)
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
            raise ConfigError(f"context 'logRetentionDays' must be one of {allowed}")
        for key, endpoint in (
            ("defaultEndpoint", self.default_endpoint),
            *(("trustedEndpoints", e) for e in self.trusted_endpoints),
            ("travisWebUrl", self.web_url),
        ):
            if not endpoint.startswith("https://") or " " in endpoint:
                raise ConfigError(
                    f"context '{key}' must be https URLs such as https://api.travis-ci.com, "
                    f"not {endpoint!r}"
                )
        if self.alarm_email is not None and not _EMAIL.fullmatch(self.alarm_email):
            raise ConfigError(
                f"context 'alarmEmail' must be an email address, not {self.alarm_email!r}"
            )
        if self.token_secret_arn is not None and not self.token_secret_arn.startswith("arn:"):
            raise ConfigError(
                "context 'travisTokenSecretArn' must be the complete ARN of a Secrets Manager "
                "secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX)"
            )

    @classmethod
    def from_context(cls, scope: Construct) -> WorkerConfig:
        defaults = cls()

        def get(key: str, default: Any = None) -> Any:
            # Only an absent key takes the default: 0 or "" must reach validation, not be replaced.
            value = scope.node.try_get_context(key)
            return default if value is None else value

        secret = get("travisTokenSecretArn")
        email = get("alarmEmail")
        return cls(
            category=str(get("category", defaults.category)),
            provider=str(get("provider", defaults.provider)),
            version=str(get("version", defaults.version)),
            token_secret_arn=str(secret) if secret else None,
            default_endpoint=_url(get("defaultEndpoint", defaults.default_endpoint)),
            trusted_endpoints=_urls(get("trustedEndpoints", ())),
            web_url=_url(get("travisWebUrl", defaults.web_url)),
            watch_timeout_minutes=_integer("watchTimeoutMinutes", get("watchTimeoutMinutes", 120)),
            resolve_timeout_minutes=_integer(
                "resolveTimeoutMinutes", get("resolveTimeoutMinutes", 15)
            ),
            poll_batch_size=_integer("pollBatchSize", get("pollBatchSize", 10)),
            log_retention_days=_integer("logRetentionDays", get("logRetentionDays", 30)),
            progress_minutes=_integer("progressMinutes", get("progressMinutes", 5)),
            hand_over_max_minutes=_integer("handOverMaxMinutes", get("handOverMaxMinutes", 60)),
            webhooks=_boolean("webhooks", get("webhooks", False)),
            alarm_email=str(email).strip() if email else None,
            example_pipeline=_boolean("examplePipeline", get("examplePipeline", False)),
        )

    @classmethod
    def keys(cls) -> list[str]:
        """The context keys, as users write them."""
        return [_camel(f.name) for f in fields(cls)]


def _between(key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(
            f"context '{key}' must be a whole number from {low} to {high}, not {value}"
        )


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"context '{key}' must be a whole number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"context '{key}' must be a whole number, not {value!r}") from None
    if number != int(number):
        raise ConfigError(f"context '{key}' must be a whole number, not {value!r}")
    return int(number)


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ConfigError(f"context '{key}' must be true or false, not {value!r}")


def _url(value: Any) -> str:
    return str(value).strip().rstrip("/")


def _urls(value: Any) -> tuple[str, ...]:
    """A list of URLs: a JSON list (cdk.json, or `-c 'trustedEndpoints=["https://a"]'`) or a
    comma-separated string (`-c trustedEndpoints=https://a,https://b`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ConfigError(
                    "context 'trustedEndpoints' must be a JSON list of https URLs or a "
                    f"comma-separated list, not {value!r}"
                ) from None
        else:
            value = [part for part in text.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            "context 'trustedEndpoints' must be a list of https URLs (JSON list or "
            f"comma-separated), not {value!r}"
        )
    return tuple(_url(v) for v in value)


def _camel(name: str) -> str:
    special = {"token_secret_arn": "travisTokenSecretArn", "web_url": "travisWebUrl"}
    if name in special:
        return special[name]
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
