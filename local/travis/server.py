"""HTTP plumbing of the fake: a threading server on 127.0.0.1 that hands each call to the fake.

`BaseHTTPRequestHandler.path` is the raw request-target, so `%2F` in a slug arrives as sent
(Werkzeug would decode it); Rack's PATH_INFO is not decoded either, and the v3 routes depend on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from local.travis.errors import Reply

MAX_BODY = 1 << 22


@dataclass
class RawCall:
    """One HTTP call as it came in."""

    method: str
    path: str  # raw, query excluded
    query_string: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    client_ip: str


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 makes concurrent clients wait on SYN retries
    handle_call: Callable[[BaseHTTPRequestHandler], None]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-answer are expected here; keep test output clean."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one call per connection: no stale keep-alive surprises

    def _dispatch(self) -> None:
        cast(Server, self.server).handle_call(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch  # noqa: N815 (http.server names)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base class name)
        """Silence per-call logging; the fake records calls itself."""


def read_call(h: BaseHTTPRequestHandler) -> RawCall:
    split = urlsplit(h.path)
    length = int(h.headers.get("Content-Length") or 0)
    body = h.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
    return RawCall(
        method=h.command.upper(),
        path=split.path,
        query_string=split.query,
        query=parse_qs(split.query, keep_blank_values=True),
        headers=h.headers,
        body=body,
        client_ip=str(h.client_address[0]),
    )


def write_reply(h: BaseHTTPRequestHandler, reply: Reply) -> None:
    try:
        h.send_response(reply.status)
        h.send_header("Content-Type", reply.content_type)
        length = reply.declared_length if reply.declared_length is not None else len(reply.body)
        h.send_header("Content-Length", str(length))
        for name, value in reply.headers.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(reply.body)
        h.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (e.g. its timeout hit during a slow fault)


def drop(h: BaseHTTPRequestHandler) -> None:
    """Close the socket without a byte of answer."""
    h.close_connection = True
    with contextlib.suppress(OSError):
        h.connection.shutdown(2)


def header_problems(headers: Message, method: str, kind: str) -> list[str]:
    """Why: tests assert the client sends what Travis needs, not just that calls succeed."""
    problems = []
    version = headers.get("Travis-API-Version")
    if kind == "get_config":
        if version is not None:
            problems.append("api_version_on_legacy_config")  # /config is v2 only (home.rb)
    elif version is None:
        problems.append("missing_api_version")
    elif version.strip() != "3":
        problems.append("bad_api_version")
    auth = headers.get("Authorization")
    if auth is None:
        if kind != "get_config":
            problems.append("missing_authorization")
    elif not auth.lower().startswith("token ") or not auth[6:].strip():
        problems.append("bad_authorization_scheme")
    agent = headers.get("User-Agent")
    if not agent:
        problems.append("missing_user_agent")
    elif agent.lower().startswith(("python-requests/", "python-urllib", "curl/")):
        problems.append("generic_user_agent")
    accept = headers.get("Accept")
    wanted = ("text", "*/*") if kind == "get_log" else ("json", "*/*", "application/*")
    if accept and not any(t in accept.lower() for t in wanted):
        problems.append("accept_not_json" if kind != "get_log" else "accept_not_text")
    if method in ("POST", "PUT", "PATCH"):
        ctype = headers.get("Content-Type")
        if ctype is None:
            problems.append("missing_content_type")
        elif ctype.split(";")[0].strip().lower() != "application/json":
            problems.append("bad_content_type")
    return problems


def _split_prefix(path: str) -> tuple[str, str]:
    """Travis Enterprise serves the API under https://HOST/api (SCRIPT_NAME /api)."""
    if path.startswith("/api/"):
        return "/api", path[4:]
    return "", path
