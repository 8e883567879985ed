"""A Lambda function URL on 127.0.0.1: HTTP requests in, payload-format-2.0 events to a handler.

The shape of the event and of the answer follows the Lambda developer guide ("Invoking Lambda
function URLs": request and response payloads, version 2.0): `requestContext.http.method`,
lower-cased `headers`, `rawPath`, `rawQueryString`, `body` (Base64 with `isBase64Encoded` when
not text), and an answer `{statusCode, headers, body}`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

Invoke = Callable[[dict[str, Any]], Any]


class FunctionUrl:
    """Serves one function; `url` is what WEBHOOK_URL points at. Context manager."""

    def __init__(self, invoke: Invoke, host: str = "127.0.0.1") -> None:
        self._invoke = invoke
        self._server = _Server((host, 0), _Handler)
        self._server.function_url = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.requests = 0

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        port = int(self._server.server_address[1])
        return f"http://{host}:{port}/"

    def __enter__(self) -> FunctionUrl:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def event(self, handler: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any]:
        path, _, query = handler.path.partition("?")
        content_type = handler.headers.get("Content-Type", "")
        text = content_type.startswith(("text/", "application/x-www-form-urlencoded")) or (
            "json" in content_type
        )
        return {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": {k.lower(): v for k, v in handler.headers.items()},
            "requestContext": {
                "http": {
                    "method": handler.command,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": handler.client_address[0],
                    "userAgent": handler.headers.get("User-Agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "timeEpoch": int(time.time() * 1000),
            },
            "body": body.decode() if text else base64.b64encode(body).decode(),
            "isBase64Encoded": not text,
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    function_url: FunctionUrl


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def _serve(self) -> None:
        target = cast(_Server, self.server).function_url
        target.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = target._invoke(target.event(self, body))
        except Exception:
            answer = {"statusCode": 502, "body": '{"message": "Internal Server Error"}'}
        if not isinstance(answer, dict) or "statusCode" not in answer:
            answer = {"statusCode": 200, "body": json.dumps(answer)}
        payload = str(answer.get("body") or "").encode()
        self.send_response(int(answer["statusCode"]))
        for name, value in (answer.get("headers") or {}).items():
            self.send_header(str(name), str(value))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Quiet: the runner records invocations."""
