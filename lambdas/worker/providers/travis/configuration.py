"""The Travis action's configuration properties, validated before anything is sent to Travis."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from worker.failures import ConfigurationInvalid

# GitHub/GitLab/Bitbucket owner and repository names: letters, digits, '.', '_', '-'.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
# git check-ref-format, simplified: no whitespace/control characters or ~^:?*[\ and no '..'.
_BRANCH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class TravisTarget:
    """Where and what to build, from the action configuration."""

    owner: str
    project: str
    branch: str
    endpoint: str

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.project}"


def read_target(configuration: Mapping[str, str], default_endpoint: str) -> TravisTarget:
    """Validate Owner, ProjectName, Branch and Endpoint; ConfigurationInvalid names the property."""
    owner = _name(configuration, "Owner", "the Travis/GitHub owner of the repository")
    project = _name(configuration, "ProjectName", "the repository name")
    branch = _branch(configuration)
    endpoint = configuration.get("Endpoint", "").strip() or default_endpoint
    return TravisTarget(
        owner=owner, project=project, branch=branch, endpoint=check_endpoint(endpoint)
    )


def check_endpoint(endpoint: str) -> str:
    """An https URL without credentials, query or fragment (http only for loopback test servers)."""
    problem = "must be an https URL such as https://api.travis-ci.com or https://HOST/api"
    if len(endpoint) > 500:
        raise ConfigurationInvalid(f"The Endpoint property is too long; it {problem}.")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as error:
        raise ConfigurationInvalid(f"The Endpoint property {problem}.") from error
    secure = parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK_HOSTS)
    if not secure or not host or parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationInvalid(f"The Endpoint property {problem}.")
    return endpoint.rstrip("/")


def _name(configuration: Mapping[str, str], prop: str, meaning: str) -> str:
    value = configuration.get(prop, "").strip()
    if not value:
        raise ConfigurationInvalid(f"The required property {prop} ({meaning}) is missing or empty.")
    if not _NAME.fullmatch(value) or value in (".", ".."):
        raise ConfigurationInvalid(
            f"The property {prop} must be 1-100 letters, digits, '.', '_' or '-' ({meaning})."
        )
    return value


def _branch(configuration: Mapping[str, str]) -> str:
    branch = configuration.get("Branch", "").strip()
    if not branch:
        raise ConfigurationInvalid(
            "The required property Branch (the branch to build) is missing or empty."
        )
    if (
        len(branch) > 255
        or _BRANCH_FORBIDDEN.search(branch)
        or branch.startswith(("-", "/"))
        or branch.endswith(("/", ".", ".lock"))
    ):
        raise ConfigurationInvalid(
            "The property Branch is not a valid git branch name (no spaces, '..', '~', '^', ':', "
            "'?', '*', '[' or '\\', at most 255 characters)."
        )
    return branch


def web_base(endpoint: str) -> str:
    """The Travis web UI for an API endpoint: app.travis-ci.com/github for travis-ci.com,
    the same host without /api for Travis Enterprise."""
    parts = urlsplit(endpoint)
    if parts.hostname in ("api.travis-ci.com", "api.travis-ci.org"):
        return "https://app.travis-ci.com/github"
    base = endpoint.rstrip("/")
    return base[: -len("/api")] if base.endswith("/api") else base


def build_url(target_endpoint: str, slug: str, build_id: str) -> str:
    return f"{web_base(target_endpoint)}/{slug}/builds/{build_id}"
