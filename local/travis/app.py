"""The fake's Travis application: travis-api's middleware stack in front of the v3 router.

Order as in travis-api `lib/travis/api/app.rb`: JSON body parser, ScopeCheck (unknown token:
403 "access denied"), UserAgentTracker, Rack::Attack (not on Enterprise), then V3::OptIn, which
sends v3 calls (a /v3 prefix, the v3 media type or `Travis-API-Version: 3`) to the v3 router and
everything else to the legacy v2 app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.travis import api, errors
from local.travis.errors import Reply
from local.travis.middleware import Attack, header_token, parse_body, wants_v3
from local.travis.model import RecordedCall, token_fingerprint
from local.travis.server import RawCall
from local.travis.v3 import V3Call
from local.travis.world import Access, World


@dataclass
class Settings:
    """Deployment switches of the fake Travis (see the package docstring)."""

    public_mode: bool = True  # assumed: public repositories readable by anyone (PUBLIC_MODE)
    enterprise: bool = False  # app.rb: no Rack::Attack on Enterprise
    require_user_agent: bool = False  # user_agent_tracker.rb feature flag require_user_agent
    web_host: str = "travis-ci.com"  # assumed: Travis.config.host (build_url, /config host)


def split_prefix(path: str) -> tuple[str, str]:
    """Travis Enterprise serves the API under https://HOST/api (SCRIPT_NAME /api)."""
    if path.startswith("/api/"):
        return "/api", path[4:]
    return "", path


class TravisApp:
    """Answers one call; the caller holds the world's lock and has advanced it to `now`."""

    def __init__(
        self, world: World, attack: Attack, settings: Settings, public_key: Callable[[], str]
    ) -> None:
        self.world, self.attack, self.settings = world, attack, settings
        self._public_key = public_key

    def answer(self, raw: RawCall, call: RecordedCall, now: float) -> Reply:
        script_name, path = split_prefix(raw.path)
        body, early = parse_body(raw.method, raw.headers, raw.body)
        call.body = body
        if early is not None:
            call.api = ""
            return early
        token, scheme = header_token(raw.headers)
        if token is None and (raw.query.get("access_token") or [""])[-1]:
            token = raw.query["access_token"][-1]  # scope_check.rb#query_token
        blocked = self._before_router(raw, token, now)
        if blocked is not None:
            call.api = ""
            return blocked
        if path == "/v3":  # opt_in.rb#redirect
            return Reply(307, b"", errors.TEXT, {"Location": f"{script_name}/v3/"})
        prefixed = path.startswith("/v3/")
        v3, path = wants_v3(path, raw.headers)
        if not v3:
            call.api = "legacy"
            return legacy(raw.method, path, self._public_key(), self.settings.web_host)
        if prefixed:  # opt_in.rb#from_prefix moves /v3 into SCRIPT_NAME
            script_name += "/v3"
        # v3/access_control.rb: only the Authorization header counts (not ?access_token=), and a
        # scheme no access control registers for is WrongCredentials
        header_tok, _ = header_token(raw.headers)
        if scheme is not None and (header_tok is None or scheme not in ("token", "basic")):
            return errors.wrong_credentials()
        grant = self.world.tokens.get(header_tok) if header_tok is not None else None
        kind, captures = api.route(raw.method, path)
        params: dict[str, Any] = {k: v[-1] for k, v in raw.query.items()}
        if isinstance(body, dict):
            params.update(body)
        v3call = V3Call(
            method=raw.method,
            path=path,
            script_name=script_name,
            query_string=raw.query_string,
            params=params,
            accept=raw.headers.get("Accept") or "",
            access=Access(grant, self.settings.public_mode),
            token_sha=token_fingerprint(header_tok) if header_tok else None,
            now=now,
        )
        return api.answer(self.world, v3call, kind, captures)

    def _before_router(self, raw: RawCall, token: str | None, now: float) -> Reply | None:
        if token is not None and token not in self.world.tokens:
            return errors.ACCESS_DENIED  # scope_check.rb: halt 403, 'access denied'
        if self.settings.require_user_agent and not raw.headers.get("User-Agent"):
            return errors.MISSING_USER_AGENT
        if self.settings.enterprise:
            return None  # app.rb: `use Rack::Attack unless ... Travis.config.enterprise`
        # attack.rb Request#identifier: the token when authenticated, else the IP
        who = token if token is not None else raw.client_ip
        return self.attack.check(
            who,
            raw.client_ip,
            authenticated=token is not None,
            method=raw.method,
            path=raw.path,
            now=now,
        )


def legacy(method: str, path: str, public_key: str, host: str) -> Reply:
    """What the v2 app answers for the paths a v3 client may hit without the v3 header.

    app/endpoint/home.rb: GET / and GET /config (check_auth false); everything under /repo,
    /build and /job matches no v2 endpoint prefix and falls to Home, which has no such route.
    """
    if method == "GET" and path == "/config":
        config = {  # home.rb client_config; the values are deployment settings (assumed)
            "host": host,
            "shorten_host": "trvs.io",
            "assets": {},
            "pusher": {"key": "fake-pusher-key"},
            "github": {"api_url": "https://api.github.com", "scopes": ["read:org", "user:email"]},
            "notifications": {"webhook": {"public_key": public_key}},
        }
        return errors.compact(200, {"config": config})
    if method == "GET" and path == "/":
        return errors.compact(200, {"hello": "world"})
    return errors.LEGACY_NOT_FOUND
