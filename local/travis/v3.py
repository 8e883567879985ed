"""The v3 router's view of one call, and what every v3 answer shares (warnings, params).

travis-api `lib/travis/api/v3/router.rb` builds the params (query merged with a JSON body),
`v3/service.rb` safelists them per service, `v3/result.rb#add_info` reports the rest as
`@warnings`, and `v3.rb#response` pretty-prints the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local.travis import errors
from local.travis.errors import Reply
from local.travis.model import Json
from local.travis.world import Access

_BASE = ("include", "@type", "representation")  # v3/service.rb DEFAULT_PARAMS
_PAGINATE = ("limit", "offset", "skip_count")  # service.rb#paginate
_CREATE = ("merge_mode", "config", "configs", "message", "branch", "sha", "token")
SAFELISTS: dict[str, tuple[str, ...]] = {
    # services/requests/create.rb: params "request", "user", :merge_mode, ... (symbols prefixed)
    "create_request": (*_BASE, "request", "user", *_CREATE, *(f"request.{p}" for p in _CREATE)),
    # services/requests/find.rb: params :result, :state, :from, :to, :branch; paginate
    "list_requests": (
        *_BASE,
        *_PAGINATE,
        *(p for n in ("result", "state", "from", "to", "branch") for p in (n, f"request.{n}")),
    ),
    # services/builds/find.rb: params :state, :event_type, :previous_state, :created_by (build.),
    # "branch.name"; paginate (+ sort_by: queries/builds.rb is sortable)
    "list_builds": (
        *_BASE,
        *_PAGINATE,
        "sort_by",
        "branch.name",
        *(
            p
            for n in ("state", "event_type", "previous_state", "created_by")
            for p in (n, f"build.{n}")
        ),
    ),
    "get_log": (*_BASE, "log.token"),  # services/log/find.rb
}


@dataclass
class V3Call:
    """One call as the v3 router sees it."""

    method: str
    path: str  # PATH_INFO, raw, without SCRIPT_NAME (/api, /v3)
    script_name: str
    query_string: str
    params: dict[str, Any]  # the query merged with a JSON object body (router.rb#params)
    accept: str
    access: Access
    token_sha: str | None
    now: float

    @property
    def content_type(self) -> str:
        """router.rb#get_content_type: text/plain only when asked for exactly (or .txt)."""
        if self.path.endswith(".txt") or self.accept == "text/plain":
            return errors.TEXT
        return errors.JSON

    @property
    def location(self) -> str:
        """v3.rb#location: SCRIPT_NAME + PATH_INFO + ?QUERY_STRING."""
        loc = self.script_name + self.path
        return f"{loc}?{self.query_string}" if self.query_string else loc


class Answer(Exception):
    """A V3 error raised by a service (router.rb rescues Error and renders it)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def param(params: dict[str, Any], prefix: str, name: str, main_type: bool = True) -> Any:
    """v3/query.rb params accessor: `prefix.name`, then `prefix: {name}`, then bare `name`."""
    if f"{prefix}.{name}" in params:
        return params[f"{prefix}.{name}"]
    nested = params.get(prefix)
    if isinstance(nested, dict) and name in nested:
        return nested[name]
    return params.get(name) if main_type else None


def finish(call: V3Call, kind: str, status: int, payload: Json) -> Reply:
    """result.rb#add_info: `@warnings` for params not safelisted (router.rb), then pretty JSON."""
    allowed = SAFELISTS.get(kind, _BASE)
    ignored = [key for key in call.params if key not in allowed]
    if ignored:
        warnings = [
            {
                "@type": "warning",
                "message": f"query parameter {key} not safelisted, ignored",
                "warning_type": "ignored_parameter",
                "parameter": key,
            }
            for key in ignored
        ]
        existing = payload.pop("@warnings", [])
        payload = {"@warnings": [*existing, *warnings], **payload}
    return errors.pretty(status, payload, call.content_type)
