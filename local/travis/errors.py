"""Answers and the error table: what Travis sends back when it says no, and who says it.

Travis's answers come from several layers (the request passes them in this order, see
travis-api `lib/travis/api/app.rb`): Rack::JSONBodyParser, the v2 ScopeCheck middleware (token),
UserAgentTracker, Rack::Attack (`lib/travis/api/attack.rb`), then the v3 router
(`lib/travis/api/v3/router.rb`) or the legacy v2 app. Only the v3 router answers the
`{"@type": "error", ...}` bodies of `lib/travis/api/v3.rb`; the others answer plain text or their
own JSON, and none of them ever sends Retry-After.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TEXT = "text/plain"
JSON = "application/json"


@dataclass
class Reply:
    """One HTTP answer. `declared_length` lies about Content-Length (the "incomplete" fault)."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None


def pretty(status: int, payload: Any, content_type: str = JSON) -> Reply:
    """travis-api lib/travis/api/v3.rb#response: JSON.pretty_generate, the negotiated type."""
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    return Reply(status, text.encode(), content_type)


def compact(status: int, payload: Any) -> Reply:
    """The legacy v2 app and the middlewares answer compact JSON."""
    return Reply(status, json.dumps(payload, separators=(",", ":")).encode(), JSON)


def plain(status: int, text: str, content_type: str = TEXT) -> Reply:
    return Reply(status, text.encode(), content_type)


def v3_error(
    status: int, error_type: str, message: str, content_type: str = JSON, **payload: Any
) -> Reply:
    """travis-api v3/renderer/error.rb: @type, error_type, error_message, then the payload."""
    body = {"@type": "error", "error_type": error_type, "error_message": message, **payload}
    return pretty(status, body, content_type)


# ----- before the v3 router --------------------------------------------------------------------

# rack-contrib json_body_parser.rb (used in app.rb before everything else): a POST/PUT/PATCH
# with Content-Type application/json whose body does not parse
BAD_JSON = compact(400, {"error": "Failed to parse body as JSON"})
# app/middleware/scope_check.rb: `halt 403, 'access denied' unless access_token`; Sinatra's
# default content type (assumed: text/html, Sinatra 3.2 default_content_type)
ACCESS_DENIED = plain(403, "access denied", "text/html;charset=utf-8")
# app/middleware/user_agent_tracker.rb, only with the feature flag require_user_agent
MISSING_USER_AGENT = compact(400, {"error": "missing User-Agent header"})
# rack-attack 6.x configuration.rb DEFAULT_BLOCKLISTED_RESPONSE / DEFAULT_THROTTLED_RESPONSE,
# throttled_response_retry_after_header false: no Retry-After
FORBIDDEN = plain(403, "Forbidden\n")
RETRY_LATER = plain(429, "Retry later\n")
# app/middleware/error_handler.rb: any exception the app does not rescue
SERVER_ERROR = plain(500, "Sorry, we experienced an error.\n")
# app/endpoint.rb not_found block: the legacy app knows no /repo, /build or /job route
# (assumed: the JSON variant; the spec repositories_spec.rb shows it for JSON requests)
LEGACY_NOT_FOUND = compact(404, {"file": "not found"})


# ----- the v3 router (lib/travis/api/v3.rb error classes) ---------------------------------------


def login_required(ctype: str = JSON) -> Reply:
    return v3_error(403, "login_required", "login required", ctype)


def wrong_credentials(ctype: str = JSON) -> Reply:
    """v3/access_control.rb: an Authorization scheme no access control accepts."""
    return v3_error(403, "wrong_credentials", "access denied", ctype)


def not_found(resource: str | None = None, ctype: str = JSON, message: str | None = None) -> Reply:
    """v3.rb NotFound/EntityMissing: '%s not found (or insufficient access)'."""
    if message is not None:  # EntityMissing.new('log not found') and friends
        return v3_error(404, "not_found", message, ctype)
    if resource is None:
        return v3_error(404, "not_found", "resource not found (or insufficient access)", ctype)
    text = f"{resource} not found (or insufficient access)"
    return v3_error(404, "not_found", text, ctype, resource_type=resource)


def method_not_allowed(ctype: str = JSON) -> Reply:
    return v3_error(405, "method_not_allowed", "method not allowed", ctype)


def insufficient_access(
    permission: str, resource_type: str, resource: Any | None, ctype: str = JSON
) -> Reply:
    """v3/permissions/generic.rb#<permission>!: the object is included when it is visible."""
    payload: dict[str, Any] = {"resource_type": resource_type, "permission": permission}
    if resource is not None:
        payload[resource_type] = resource
    message = f"operation requires {permission} access to {resource_type}"
    return v3_error(403, "insufficient_access", message, ctype, **payload)


def repository_inactive(repository: Any) -> Reply:
    message = "cannot create requests on an inactive repository"
    return v3_error(406, "repository_inactive", message, repository=repository)


def request_limit_reached(repository: Any, max_requests: int, per_seconds: int) -> Reply:
    """v3/services/requests/create.rb: max_requests and per_seconds, and no Retry-After."""
    return v3_error(
        429,
        "request_limit_reached",
        "request limit reached for resource",
        repository=repository,
        max_requests=max_requests,
        per_seconds=per_seconds,
    )


def build_not_cancelable() -> Reply:
    return v3_error(409, "build_not_cancelable", "build is not running, cannot cancel")


def wrong_params(message: str = "wrong parameters", ctype: str = JSON) -> Reply:
    return v3_error(400, "wrong_params", message, ctype)
