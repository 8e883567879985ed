"""The two wire protocols of the CodePipeline 2015-07-09 model, and the HTTP server.

* awsJson1_1: ``POST /`` with ``X-Amz-Target: CodePipeline_20150709.<Op>``; errors are
  ``{"__type": Code, "message": ...}``; timestamps are epoch seconds (botocore 1.44.5 picks this
  protocol for CodePipeline: ``json`` comes first in its priority list).
* Smithy RPC v2 CBOR: ``POST /service/CodePipeline_20150709/operation/<Op>``, a CBOR body and
  ``smithy-protocol: rpc-v2-cbor``; errors carry a shape id (``namespace#Code``); timestamps are
  CBOR tag 1 (epoch seconds), the only tag botocore's CBOR parser accepts.
* A SigV4 ``Authorization`` header must be present and scoped to the emulator's region and to
  ``codepipeline`` (the signature itself is not checked: there are no real keys). Authentication
  errors answer 403 (assumed: AWS's front door does; botocore only needs the code).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import cbor2

from .model import ApiError, operation_model

TARGET_PREFIX = "CodePipeline_20150709"
CBOR_PATH_PREFIX = f"/service/{TARGET_PREFIX}/operation/"
MODEL_NAMESPACE = "com.amazonaws.codepipeline"
# AWS front-door errors (not in the CodePipeline model) come from Coral namespaces.
CORAL_NAMESPACES = {
    "ThrottlingException": "com.amazonaws.coral.availability",
    "SerializationException": "com.amazonaws.coral.service",
    "UnknownOperationException": "com.amazonaws.coral.service",
    "InternalFailure": "com.amazonaws.coral.service",
    "ServiceUnavailableException": "com.amazonaws.coral.availability",
    "MissingAuthenticationTokenException": "com.amazon.coral.service",
    "InvalidSignatureException": "com.amazon.coral.service",
}


def content_type(protocol: str) -> dict[str, str]:
    if protocol == "cbor":
        return {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    return {"Content-Type": "application/x-amz-json-1.1"}


def decode(protocol: str, body: bytes) -> dict[str, Any]:
    try:
        if protocol == "cbor":
            params = cbor2.loads(body) if body else {}
        else:
            params = json.loads(body) if body else {}
    except Exception as error:  # any decoder failure is the client's fault
        raise ApiError("SerializationException", f"Malformed request body: {error}") from error
    if not isinstance(params, dict):
        raise ApiError("SerializationException", "Request body must be an object")
    return params


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()  # awsJson1_1 timestamps: epoch seconds
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def encode(protocol: str, payload: Mapping[str, Any]) -> bytes:
    if protocol == "cbor":
        # datetime_as_timestamp: tag 1 epoch seconds (Smithy RPC v2 CBOR timestamps)
        return bytes(cbor2.dumps(payload, datetime_as_timestamp=True))
    return json.dumps(payload, default=_json_default).encode()


def encode_error(protocol: str, error: ApiError) -> bytes:
    if protocol == "cbor":
        namespace = CORAL_NAMESPACES.get(error.code, MODEL_NAMESPACE)
        return encode(protocol, {"__type": f"{namespace}#{error.code}", "message": error.message})
    return encode(protocol, {"__type": error.code, "message": error.message})


def check_signature(authorization: str | None, region: str) -> None:
    if not authorization or not authorization.startswith("AWS4-HMAC-SHA256 "):
        raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    scope = re.search(r"Credential=[^/,]+/\d{8}/([^/]+)/([^/]+)/aws4_request", authorization)
    if scope is None:
        raise ApiError("InvalidSignatureException", "Malformed credential scope", 403)
    found_region, service = scope.groups()
    if service != "codepipeline" or found_region != region:
        raise ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and service, not "
            f"'{found_region}/{service}'",
            403,
        )


def unknown_operation(protocol: str, operation: str) -> ApiError:
    return ApiError(
        "UnknownOperationException",
        f"Operation {operation!r} is not emulated",
        404 if protocol == "cbor" else 400,
    )


def respond(
    protocol: str,
    operation: str,
    response: Mapping[str, Any] | None,
    error: ApiError | None,
    request_id: str,
) -> tuple[int, dict[str, str], bytes]:
    """The HTTP answer (status, headers, body) for an operation's response or error."""
    headers = {"x-amzn-RequestId": request_id}
    if error is not None:
        return error.status, headers | content_type(protocol), encode_error(protocol, error)
    if response is None or operation_model(operation).output_shape is None:
        # Operations without output answer with an empty body (Smithy: no Content-Type).
        extra = {"smithy-protocol": "rpc-v2-cbor"} if protocol == "cbor" else content_type(protocol)
        return 200, headers | extra, b""
    return 200, headers | content_type(protocol), encode(protocol, response)


class Backend(Protocol):
    """What the HTTP server calls: one request, already split by protocol."""

    def serve(
        self, protocol: str, operation: str, body: bytes, authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]: ...


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    backend: Backend


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms a call.
    disable_nagle_algorithm = True
    server: Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        if path.startswith(CBOR_PATH_PREFIX):
            protocol, operation = "cbor", path[len(CBOR_PATH_PREFIX) :]
        elif path == "/":
            protocol = "json"
            target = self.headers.get("X-Amz-Target") or ""
            prefix, _, operation = target.partition(".")
            if prefix != TARGET_PREFIX:
                operation = target or "<missing X-Amz-Target>"
        else:
            self._reply(404, {"Content-Type": "application/json"}, b'{"message": "Not Found"}')
            return
        status, headers, payload = self.server.backend.serve(
            protocol, operation, body, self.headers.get("Authorization")
        )
        self._reply(status, headers, payload)

    def do_GET(self) -> None:
        self._reply(405, {"Content-Type": "application/json"}, b'{"message": "Use POST"}')

    def _reply(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Keep test output quiet: the call log is ``CodePipelineEmulator.calls()``."""


def make_server(host: str, port: int, backend: Backend) -> Server:
    server = Server((host, port), Handler)
    server.backend = backend
    return server
