"""Deployment settings from CDK context (`cdk.json` or `-c key=value`), validated at synth time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from constructs import Construct

DEFAULT_ENDPOINT = "https://api.travis-ci.com"
DEFAULT_WEB_URL = "https://app.travis-ci.com/github"
_PROVIDER = re.compile(r"[0-9A-Za-z_-]{1,35}")
_VERSION = re.compile(r"[0-9A-Za-z_-]{1,9}")
_CATEGORIES = ("Source", "Build", "Deploy", "Test", "Invoke", "Approval")


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

    def __post_init__(self) -> None:
        if self.category not in _CATEGORIES:
            raise ConfigError(f"context 'category' must be one of {', '.join(_CATEGORIES)}")
        if not _PROVIDER.fullmatch(self.provider):
            raise ConfigError("context 'provider' must be 1-35 of [0-9A-Za-z_-]")
        if not _VERSION.fullmatch(self.version):
            raise ConfigError("context 'version' must be 1-9 of [0-9A-Za-z_-]")
        if not 5 <= self.watch_timeout_minutes <= 20 * 60:
            # CodePipeline gives a custom action 24 hours; keep well inside it.
            raise ConfigError("context 'watchTimeoutMinutes' must be between 5 and 1200")
        if not 1 <= self.resolve_timeout_minutes <= 60:
            raise ConfigError("context 'resolveTimeoutMinutes' must be between 1 and 60")
        if not 1 <= self.poll_batch_size <= 100:
            raise ConfigError("context 'pollBatchSize' must be between 1 and 100")
        for endpoint in (self.default_endpoint, *self.trusted_endpoints, self.web_url):
            if not endpoint.startswith("https://"):
                raise ConfigError(f"endpoint {endpoint!r} in context must be an https URL")

    @classmethod
    def from_context(cls, scope: Construct) -> WorkerConfig:
        defaults = cls()

        def get(key: str, default: Any = None) -> Any:
            # Only an absent key takes the default: 0 or "" must reach validation, not be replaced.
            value = scope.node.try_get_context(key)
            return default if value is None else value

        trusted = get("trustedEndpoints", ())
        if isinstance(trusted, str):
            trusted = tuple(e for e in trusted.split(",") if e)
        try:
            return cls(
                category=str(get("category", defaults.category)),
                provider=str(get("provider", defaults.provider)),
                version=str(get("version", defaults.version)),
                token_secret_arn=str(get("travisTokenSecretArn"))
                if get("travisTokenSecretArn")
                else None,
                default_endpoint=str(get("defaultEndpoint", defaults.default_endpoint)).rstrip("/"),
                trusted_endpoints=tuple(str(e).rstrip("/") for e in trusted),
                web_url=str(get("travisWebUrl", defaults.web_url)).rstrip("/"),
                watch_timeout_minutes=int(
                    get("watchTimeoutMinutes", defaults.watch_timeout_minutes)
                ),
                resolve_timeout_minutes=int(
                    get("resolveTimeoutMinutes", defaults.resolve_timeout_minutes)
                ),
                poll_batch_size=int(get("pollBatchSize", defaults.poll_batch_size)),
                log_retention_days=int(get("logRetentionDays", defaults.log_retention_days)),
            )
        except (TypeError, ValueError) as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError(f"invalid context value: {error}") from error
