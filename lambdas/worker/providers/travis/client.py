"""The Travis API v3 HTTP client: one session, timeouts, bounded retries, and Travis's errors.

Reads (GET) and cancel are retried with backoff. Creating a build request is not idempotent, so
`create_request` never retries by itself: it says whether nothing was created (a throttle, a
refusal) or whether the outcome is unknown (timeout, 5xx, unreadable answer), and the caller looks
for the request it may have made before it ever posts again.

Travis's answers as its source gives them (shared/reference/travis-api-v3.md): JSON errors
`{"@type": "error", "error_type", "error_message", ...}`, except a refused token (403, plain text
`access denied`), the one-hour ban after a burst of POSTs (403, plain text `Forbidden`) and the
global throttle (429, plain text `Retry later`). Travis never sends Retry-After.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from worker.failures import (
    ConfigurationInvalid,
    PermissionDenied,
    ServiceUnavailable,
    TravisBanned,
    clip,
)
from worker.observability import metrics
from worker.providers import CancelResult
from worker.retry import RetryBudget, parse_retry_after, step_time_left

USER_AGENT = "codepipeline-travis-worker/2.0 (+AWS CodePipeline custom action)"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
MAX_BODY_BYTES = 5_000_000  # a bigger JSON answer is not Travis talking to us
# What the request list returns per entry: no config/raw_configs (a large .travis.yml made the
# standard entries megabytes), the commit (it holds the message we sent) and when/how it came.
REQUEST_FIELDS = "request.commit,request.created_at,request.event_type,request.builds"
# Permissions Travis names in `insufficient_access` answers, in words.
_PERMISSIONS = {
    "create_request": "trigger builds of",
    "cancel": "cancel builds of",
    "read": "read",
}


class RequestOutcomeUnknown(Exception):
    """A create-request call ended without a readable answer: the request may or may not exist."""


class Throttled(Exception):
    """Travis answered 429 to a create-request call; nothing was created."""

    def __init__(
        self,
        *,
        limit_reached: bool,
        max_requests: int | None = None,
        per_seconds: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__("request limit reached" if limit_reached else "throttled")
        self.limit_reached = limit_reached  # the repository's hourly build-request limit
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Answer:
    status: int
    error_type: str
    message: str
    data: dict[str, Any]
    text: str


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
        """POST a build request once. Raises Throttled or RequestOutcomeUnknown to the caller."""
        try:
            response = self._send("POST", f"/repo/{_slug(slug)}/requests", json_body=body)
        except requests.RequestException as error:
            raise RequestOutcomeUnknown(type(error).__name__) from error
        answer = _read(response)
        if answer.status == 429:
            raise Throttled(
                limit_reached=answer.error_type == "request_limit_reached",
                max_requests=_int(answer.data.get("max_requests")),
                per_seconds=_int(answer.data.get("per_seconds")),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if answer.status >= 500:
            raise RequestOutcomeUnknown(f"HTTP {answer.status}")
        self._raise_refusal(answer, slug, f"the build request for {slug}")
        if not answer.data:
            raise RequestOutcomeUnknown("malformed answer")
        return answer.data

    def list_requests(
        self, slug: str, *, since: float, limit: int = 10, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Requests created since `since` (epoch seconds), newest first, one page."""
        query = {
            "limit": str(limit),
            "offset": str(offset),
            "from": _iso(since),  # v3/queries/requests.rb: created_at >= from
            "representation": "minimal",
            "include": REQUEST_FIELDS,
        }
        data = self._get(
            f"/repo/{_slug(slug)}/requests?{urlencode(query)}", slug, f"recent requests of {slug}"
        )
        entries = data.get("requests")
        if not isinstance(entries, list):
            raise _malformed(f"recent requests of {slug}")
        return [r for r in entries if isinstance(r, dict)]

    def get_request(self, slug: str, request_id: str) -> dict[str, Any]:
        return self._get(
            f"/repo/{_slug(slug)}/request/{quote(request_id, safe='')}",
            slug,
            f"build request {request_id} of {slug}",
        )

    # --- builds ------------------------------------------------------------------------------

    def get_build(self, slug: str, build_id: str) -> dict[str, Any]:
        """The build with its jobs' states (`include=build.jobs`; without it jobs are ids only)."""
        return self._get(
            f"/build/{quote(build_id, safe='')}?include=build.jobs",
            slug,
            f"build {build_id} of {slug}",
        )

    def recent_builds(self, slug: str, branch: str, limit: int = 5) -> list[dict[str, Any]]:
        """The branch's latest finished builds (for how long builds take)."""
        query = {
            "branch.name": branch,
            "build.state": "passed,failed",
            "sort_by": "finished_at:desc",
            "limit": str(limit),
            "representation": "minimal",
        }
        data = self._get(
            f"/repo/{_slug(slug)}/builds?{urlencode(query)}", slug, f"recent builds of {slug}"
        )
        builds = data.get("builds")
        return [b for b in builds if isinstance(b, dict)] if isinstance(builds, list) else []

    def cancel_build(self, slug: str, build_id: str) -> CancelResult:
        """Ask Travis to cancel (it does so asynchronously: the build stays started a while)."""
        data = self._with_retries(
            "POST",
            f"/build/{quote(build_id, safe='')}/cancel",
            slug,
            f"canceling build {build_id} of {slug}",
            answers={409: "already_finished", 403: "insufficient_access"},
        )
        if data.get("_answer") == "already_finished":
            return CancelResult.ALREADY_FINISHED
        if data.get("_answer") == "insufficient_access":
            return CancelResult.NOT_PERMITTED
        return CancelResult.REQUESTED

    def job_log(self, job_id: str, *, keep_bytes: int, max_bytes: int = 20_000_000) -> str:
        """The end of a job's log (plain text), reading at most `max_bytes` of it."""
        path = f"/job/{quote(job_id, safe='')}/log.txt"
        headers = dict(self._headers, Accept="text/plain")
        headers.pop("Content-Type", None)
        try:
            response = self._session.get(
                self.endpoint + path,
                headers=headers,
                timeout=_timeouts(),
                allow_redirects=False,
                stream=True,
            )
            if response.is_redirect and response.headers.get("Location"):
                # An archived log may live elsewhere: follow once, never with our token.
                location = response.headers["Location"]
                response.close()
                if urlsplit(location).scheme != "https":
                    return ""
                response = self._session.get(
                    location, timeout=_timeouts(), allow_redirects=False, stream=True
                )
            if response.status_code != 200:
                response.close()
                return ""
            return _tail(response.iter_content(64 * 1024), keep_bytes, max_bytes)
        except requests.RequestException:
            return ""

    # --- plumbing ------------------------------------------------------------------------------

    def _get(self, path: str, slug: str, what: str) -> dict[str, Any]:
        return self._with_retries("GET", path, slug, what)

    def _with_retries(
        self,
        method: str,
        path: str,
        slug: str,
        what: str,
        *,
        answers: dict[int, str] | None = None,
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._send(method, path)
                answer = _read(response)
                if answer.status == 429:
                    # The global throttle (plain "Retry later"): nothing was done, try again.
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    problem = "throttled (HTTP 429)"
                elif answer.status >= 500:
                    problem = f"HTTP {answer.status}"
                else:
                    special = (answers or {}).get(answer.status)
                    if special and (
                        answer.status != 403 or answer.error_type == "insufficient_access"
                    ):
                        return {"_answer": special}
                    try:
                        self._raise_refusal(answer, slug, what)
                    except TravisBanned as banned:
                        # A ban refuses reads too, for up to an hour: temporary, so the state
                        # machine looks again later instead of failing the job.
                        raise ServiceUnavailable(banned.message) from None
                    if answer.data:
                        return answer.data
                    problem = "a malformed answer"
            except requests.RequestException as error:
                problem = type(error).__name__
            metrics.add_metric(name="TravisCallsFailed", unit="Count", value=1)
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

    def _raise_refusal(self, answer: _Answer, slug: str, what: str) -> None:
        """Raise the failure a 4xx answer means; return for 2xx."""
        status = answer.status
        if 200 <= status < 300:
            return
        detail = f": {clip(answer.message, 300)}" if answer.message else ""
        if status == 403 and answer.text.strip() == "Forbidden" and not answer.error_type:
            # lib/travis/api/attack.rb: more than 50 POSTs in 30 s ban the token for an hour.
            raise TravisBanned(
                "Travis CI has temporarily blocked the API token after too many requests in a "
                "short time (HTTP 403 Forbidden); the block ends within an hour, then re-run "
                "the stage."
            )
        refused_token = (
            status == 401
            or answer.error_type in ("login_required", "wrong_credentials")
            or (status == 403 and not answer.error_type and "access denied" in answer.text)
        )
        if refused_token:
            raise PermissionDenied(
                f"Travis CI at {self.endpoint} refused the API token (HTTP {status}"
                f"{', ' + answer.error_type if answer.error_type else ''}): check the APIToken "
                "property of the action or the worker's Travis token secret."
            )
        if status == 403:
            permission = str(answer.data.get("permission") or "")
            action = _PERMISSIONS.get(permission, "access")
            raise PermissionDenied(
                f"The Travis CI API token may not {action} {slug} (HTTP 403 "
                f"{answer.error_type or 'forbidden'}"
                f"{', permission ' + permission if permission else ''}): use a token of a user "
                "with write access to the repository."
            )
        if status == 404:
            raise ConfigurationInvalid(
                f"Travis CI at {self.endpoint} has no repository {slug}, or the token cannot see "
                f"it (HTTP 404, {what}): check the Owner and ProjectName properties."
            )
        if status == 406 or answer.error_type == "repository_inactive":
            raise ConfigurationInvalid(
                f"The repository {slug} is not active on Travis CI (HTTP {status}): activate it "
                "in Travis CI's settings."
            )
        raise ConfigurationInvalid(f"Travis CI refused {what} (HTTP {status}){detail}.")


def _read(response: requests.Response) -> _Answer:
    """Status, Travis's error fields and the JSON object (empty when the body is not one)."""
    content = response.content
    text = content[:2000].decode("utf-8", "replace") if content else ""
    data: dict[str, Any] = {}
    if content and len(content) <= MAX_BODY_BYTES:
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            data = parsed
    error_type = str(data.get("error_type") or "") if data.get("@type") == "error" else ""
    message = str(data.get("error_message") or "") if error_type else ""
    return _Answer(response.status_code, error_type, message, data, text)


def _tail(chunks: Iterator[bytes], keep_bytes: int, max_bytes: int) -> str:
    kept = b""
    read = 0
    for chunk in chunks:
        read += len(chunk)
        kept = (kept + chunk)[-keep_bytes:]
        if read >= max_bytes:
            break
    return kept.decode("utf-8", "replace")


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
    # v3/routes.rb: the slug's slash must be encoded (/repo/owner%2Frepo)
    return quote(slug, safe="")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _malformed(what: str) -> ServiceUnavailable:
    return ServiceUnavailable(f"Travis CI answered {what} with a malformed response.")


def webhook_public_key(endpoint: str, session: requests.Session | None = None) -> str:
    """The key Travis signs webhooks with: the legacy `GET /config` (asked without the v3
    header, shared/reference/travis-api-v3.md), `config.notifications.webhook.public_key`."""
    response = (session or requests.Session()).get(
        endpoint.rstrip("/") + "/config",
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
        allow_redirects=False,
    )
    response.raise_for_status()
    data = response.json()
    key = data["config"]["notifications"]["webhook"]["public_key"]
    if not isinstance(key, str):
        raise ValueError("no public key in Travis's /config")
    return key
