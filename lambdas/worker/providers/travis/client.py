"""The Travis API v3 HTTP client: one session, timeouts, bounded retries, and error mapping.

Idempotent calls (GET, cancel) are retried with backoff, honouring Retry-After. Creating a build
request is not idempotent, so `create_request` never retries by itself: it tells the caller whether
the outcome is unknown (timeout, 5xx, unreadable answer), and the caller looks for the request it
may have made before trying again. Errors become the worker's failure classes with messages that
name the repository and never the token.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests

from worker.failures import ConfigurationInvalid, PermissionDenied, ServiceUnavailable, clip
from worker.retry import RetryBudget, parse_retry_after, step_time_left

USER_AGENT = "codepipeline-travis-worker/1.0 (+AWS CodePipeline custom action)"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
MAX_BODY_BYTES = 2_000_000  # a bigger answer is not Travis talking


class RequestOutcomeUnknown(Exception):
    """A create-request call ended without a readable answer: the request may or may not exist."""


class RateLimited(Exception):
    """Travis answered 429; nothing was created."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


class TravisClient:
    """Calls to one Travis API endpoint with one token."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        session: requests.Session | None = None,
        budget: RetryBudget | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._session = session or requests.Session()
        self._budget = budget or RetryBudget()
        self._headers = {
            "Travis-API-Version": "3",
            "Authorization": f"token {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    # --- build requests -------------------------------------------------------------------

    def create_request(self, slug: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a build request once. Raises RateLimited or RequestOutcomeUnknown to the caller."""
        what = f"the build request for {slug}"
        try:
            response = self._send("POST", f"/repo/{_slug(slug)}/requests", json_body=body)
        except requests.RequestException as error:
            raise RequestOutcomeUnknown(type(error).__name__) from error
        if response.status_code == 429:
            raise RateLimited(parse_retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 500:
            raise RequestOutcomeUnknown(f"HTTP {response.status_code}")
        self._raise_for_client_error(response, slug, what)
        try:
            return _json_object(response)
        except ValueError as error:
            raise RequestOutcomeUnknown("malformed answer") from error

    def list_requests(self, slug: str, limit: int = 50) -> list[dict[str, Any]]:
        data = self._get(
            f"/repo/{_slug(slug)}/requests?limit={limit}", slug, f"recent requests of {slug}"
        )
        requests_ = data.get("requests")
        if not isinstance(requests_, list):
            raise _malformed(f"recent requests of {slug}")
        return [r for r in requests_ if isinstance(r, dict)]

    def get_request(self, slug: str, request_id: str) -> dict[str, Any]:
        return self._get(
            f"/repo/{_slug(slug)}/request/{quote(request_id, safe='')}",
            slug,
            f"build request {request_id} of {slug}",
        )

    # --- builds ------------------------------------------------------------------------------

    def get_build(self, slug: str, build_id: str) -> dict[str, Any]:
        return self._get(f"/build/{quote(build_id, safe='')}", slug, f"build {build_id} of {slug}")

    def cancel_build(self, slug: str, build_id: str) -> None:
        """Cancel (idempotent on Travis's side: canceling a finished build changes nothing)."""
        self._with_retries(
            "POST",
            f"/build/{quote(build_id, safe='')}/cancel",
            slug,
            f"canceling build {build_id} of {slug}",
            accept_conflict=True,
        )

    # --- plumbing ------------------------------------------------------------------------------

    def _get(self, path: str, slug: str, what: str) -> dict[str, Any]:
        return self._with_retries("GET", path, slug, what)

    def _with_retries(
        self, method: str, path: str, slug: str, what: str, *, accept_conflict: bool = False
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._send(method, path)
                if response.status_code == 429:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    problem = "rate limited (HTTP 429)"
                elif response.status_code >= 500:
                    problem = f"HTTP {response.status_code}"
                else:
                    if accept_conflict and response.status_code in (409, 422):
                        return {}
                    self._raise_for_client_error(response, slug, what)
                    try:
                        return _json_object(response)
                    except ValueError:
                        problem = "a malformed answer"
            except requests.RequestException as error:
                problem = type(error).__name__
            delay = self._budget.backoff(attempt, retry_after)
            if delay is None:
                raise ServiceUnavailable(
                    f"Travis CI at {self.endpoint} is unavailable: {what} got {problem}."
                )
            self._budget.wait(delay)
            attempt += 1

    def _send(
        self, method: str, path: str, json_body: dict[str, Any] | None = None
    ) -> requests.Response:
        return self._session.request(
            method,
            self.endpoint + path,
            headers=self._headers,
            data=json.dumps(json_body) if json_body is not None else None,
            timeout=_timeouts(),
            allow_redirects=False,  # a redirect could carry the token header elsewhere
        )

    def _raise_for_client_error(self, response: requests.Response, slug: str, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = _error_message(response)
        if status == 401:
            raise PermissionDenied(
                f"Travis CI refused the API token for {slug} (HTTP 401): check the APIToken "
                "property or the worker's Travis token secret."
            )
        if status == 403:
            raise PermissionDenied(
                f"The Travis CI API token has no access to {slug} (HTTP 403){detail}."
            )
        if status == 404:
            raise ConfigurationInvalid(
                f"Travis CI at {self.endpoint} has no repository {slug}, or the token cannot see "
                f"it (HTTP 404, {what}): check the Owner and ProjectName properties."
            )
        raise ConfigurationInvalid(f"Travis CI refused {what} (HTTP {status}){detail}.")


def _timeouts() -> tuple[float, float]:
    """Connect and read timeouts that end before the step must (READ_TIMEOUT at most)."""
    left = step_time_left()
    if left is None:
        return CONNECT_TIMEOUT, READ_TIMEOUT
    if left <= CONNECT_TIMEOUT + 1:
        # Not sending at all is safer than a request Lambda would cut off mid-way.
        raise requests.Timeout("no time left in this step for another call")
    return CONNECT_TIMEOUT, min(READ_TIMEOUT, left - 1)


def _slug(slug: str) -> str:
    # Travis wants the slug's slash encoded: /repo/owner%2Frepo
    return quote(slug, safe="")


def _json_object(response: requests.Response) -> dict[str, Any]:
    if len(response.content) > MAX_BODY_BYTES:
        raise ValueError("answer too large")
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _error_message(response: requests.Response) -> str:
    """Travis's own error text, when the body is the JSON error it documents."""
    try:
        data = _json_object(response)
    except ValueError:
        return ""
    message = data.get("error_message")
    return f": {clip(str(message), 300)}" if isinstance(message, str) and message else ""


def _malformed(what: str) -> ServiceUnavailable:
    return ServiceUnavailable(f"Travis CI answered {what} with a malformed response.")
