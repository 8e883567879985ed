"""Compatibility shim: the Travis fake now lives in `local.travis` (import from there).

Kept so existing importers work until they are migrated; see `local/travis/__init__.py` for what
changed (time instead of GET counts, Travis's real error table, webhooks, ...).
"""

from __future__ import annotations

from local.travis import (
    ALL,
    DEFAULT_TOKEN,
    KINDS,
    MALFORMED_STYLES,
    OUTCOMES,
    RANDOM_FAULTS,
    REAL_FAILURE_MODES,
    TERMINAL,
    AttackLimits,
    Fault,
    JobScript,
    RecordedCall,
    RepoScript,
    SeedBuild,
    TravisBuild,
    TravisFake,
    TravisJob,
    TravisRequest,
    WebhookDelivery,
    main,
    token_fingerprint,
)

__all__ = [
    "ALL",
    "DEFAULT_TOKEN",
    "KINDS",
    "MALFORMED_STYLES",
    "OUTCOMES",
    "RANDOM_FAULTS",
    "REAL_FAILURE_MODES",
    "TERMINAL",
    "AttackLimits",
    "Fault",
    "JobScript",
    "RecordedCall",
    "RepoScript",
    "SeedBuild",
    "TravisBuild",
    "TravisFake",
    "TravisJob",
    "TravisRequest",
    "WebhookDelivery",
    "main",
    "token_fingerprint",
]

if __name__ == "__main__":
    main()
