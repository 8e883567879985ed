"""What a call meets before the v3 router: body parsing, the token check, Rack::Attack.

Order and behaviour from travis-api `lib/travis/api/app.rb` (the middleware stack),
`app/middleware/scope_check.rb`, `app/middleware/user_agent_tracker.rb`, `lib/travis/api/attack.rb`
and the rack-attack gem it configures (6.x: fixed windows aligned on the epoch, Allow2Ban lets the
request that trips the ban through and blocks the next ones; blocked and throttled answers are
plain text without Retry-After), and `v3/opt_in.rb` (which calls go to v3 at all).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from email.message import Message
from typing import Any

from local.travis import errors
from local.travis.errors import Reply

# attack.rb POST_SAFELIST: POSTs that never count towards the ban
POST_SAFELIST = ("/auth/handshake", "/auth/post_message", "/auth/post_message/iframe")


def parse_body(method: str, headers: Message, raw: bytes) -> tuple[Any, Reply | None]:
    """rack-contrib json_body_parser.rb, then v3/router.rb#params (which also reads text/json).

    Returns (parsed body or None, an early answer or None). A body with another content type is
    not read at all: Travis creates the request with defaults.
    """
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not raw or ctype not in ("application/json", "text/json"):
        return None, None
    try:
        body = json.loads(raw)
    except ValueError:
        if ctype == "application/json" and method in ("POST", "PATCH", "PUT"):
            return None, errors.BAD_JSON
        return None, errors.SERVER_ERROR  # router.rb JSON.load raises; error_handler.rb: 500
    if (
        ctype == "application/json"
        and method in ("POST", "PATCH", "PUT")
        and not isinstance(body, dict)
    ):
        # the parsed body becomes Rack's form hash; Request#params then merges a list: 500
        return body, errors.SERVER_ERROR
    return body, None


def header_token(headers: Message) -> tuple[str | None, str | None]:
    """scope_check.rb#header_token: (token, scheme) from `Authorization: token X` or basic auth."""
    auth = headers.get("Authorization")
    if auth is None:
        return None, None
    scheme, _, payload = auth.strip().partition(" ")
    scheme = scheme.lower()
    payload = payload.strip()
    if not payload:
        return None, scheme
    if scheme == "basic":
        try:
            decoded = base64.b64decode(payload).decode(errors="replace")
        except (binascii.Error, ValueError):
            return None, scheme
        return decoded.split(":", 1)[0], scheme
    if scheme == "token":
        if len(payload) > 1 and payload.startswith('"') and payload.endswith('"'):
            payload = payload[1:-1]
        return payload, scheme
    return None, scheme


@dataclass
class AttackLimits:
    """attack.rb's numbers (production values)."""

    post_ban_max: int = 50  # spamming_post_requests: maxretry 50 ...
    post_ban_window: float = 30.0  # ... findtime 30 seconds ...
    ban_seconds: float = 3600.0  # ... bantime 1 hour
    token_throttle: int | None = 2000  # req_token_1min: 2000 per minute per token (or IP)
    ip_throttle: int | None = 500  # req_ip_1min: 500 per minute per IP when unauthenticated
    throttle_period: float = 60.0


class Attack:
    """Rack::Attack with attack.rb's rules on the fake's clock (caller holds the world's lock)."""

    def __init__(self, limits: AttackLimits) -> None:
        self.limits = limits
        self._counts: dict[tuple[str, str, int], int] = {}
        self._bans: dict[str, float] = {}  # identifier -> banned until

    def _count(self, name: str, who: str, period: float, now: float) -> int:
        """rack-attack cache.rb#count: one counter per epoch-aligned window."""
        key = (name, who, int(now // period))
        self._counts[key] = self._counts.get(key, 0) + 1
        if len(self._counts) > 10_000:
            self._counts = {k: v for k, v in self._counts.items() if k[2] >= key[2] - 1}
        return self._counts[key]

    def banned(self, who: str, now: float) -> bool:
        return self._bans.get(who, float("-inf")) > now

    def check(
        self, who: str, ip: str, *, authenticated: bool, method: str, path: str, now: float
    ) -> Reply | None:
        """The answer Rack::Attack sends instead of letting the call through, if any."""
        if path.endswith((".png", ".svg")):
            return None  # safelist build_status_image
        lim = self.limits
        # blocklist spamming_post_requests (Allow2Ban): banned callers are refused everything
        if self.banned(who, now):
            return errors.FORBIDDEN
        if method == "POST" and path not in POST_SAFELIST:  # noqa: SIM102
            if self._count("allow2ban", who, lim.post_ban_window, now) >= lim.post_ban_max:
                self._bans[who] = now + lim.ban_seconds  # this POST still passes
        # throttles, in attack.rb's order (the second 'req_ip_1min' replaced the first)
        period = lim.throttle_period
        if not authenticated and lim.ip_throttle is not None:  # noqa: SIM102 (one rule per if)
            if self._count("req_ip_1min", ip, period, now) > lim.ip_throttle:
                return errors.RETRY_LATER
        if lim.token_throttle is not None:  # noqa: SIM102
            if self._count("req_token_1min", who, period, now) > lim.token_throttle:
                return errors.RETRY_LATER
        return None


def wants_v3(path: str, headers: Message) -> tuple[bool, str]:
    """v3/opt_in.rb#matching_env: a /v3 prefix, the v3 media type, or Travis-API-Version: 3.

    Returns (v3?, path without the /v3 prefix).
    """
    if path.startswith("/v3/"):
        return True, path[3:]
    accept = headers.get("Accept") or ""
    if "application/vnd.travis-ci.3+" in accept:
        return True, path
    return headers.get("Travis-API-Version") == "3", path
