"""The Travis HTTP client against the Travis fake: headers, error mapping, retries, bad answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer

from local.travis_fake import Fault, TravisFake, token_fingerprint
from tests.unit.support import BRANCH, ENCODED_SLUG, JOB_TOKEN, SLUG, Sleeps
from worker.failures import ConfigurationInvalid, PermissionDenied, ServiceUnavailable
from worker.providers.travis import client as client_module
from worker.providers.travis.client import (
    USER_AGENT,
    RateLimited,
    RequestOutcomeUnknown,
    TravisClient,
)
from worker.retry import RetryBudget

BODY = {"request": {"branch": BRANCH, "message": "from the client test"}}


class SentHeaders:
    """Headers of every request the session really sent (a response hook, not a mock)."""

    def __init__(self, session: requests.Session) -> None:
        self.headers: list[dict[str, str]] = []
        session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.headers.append(dict(response.request.headers))


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def client(travis: TravisFake, session: requests.Session, sleeps: Sleeps) -> TravisClient:
    return TravisClient(
        travis.base_url, JOB_TOKEN, session=session, budget=RetryBudget(sleep=sleeps)
    )


def _build_id(travis: TravisFake, client: TravisClient) -> str:
    """A build that exists in the fake (created through the client itself)."""
    created = client.create_request(SLUG, BODY)
    request = client.get_request(SLUG, str(created["request"]["id"]))
    return str(request["builds"][0]["id"])


# --- what every call sends --------------------------------------------------------------------


def test_every_call_sends_the_headers_travis_needs(
    travis: TravisFake, client: TravisClient, session: requests.Session
) -> None:
    # Given a client with the job's token
    sent = SentHeaders(session)

    # When it makes every kind of call
    build_id = _build_id(travis, client)
    client.list_requests(SLUG)
    client.get_build(SLUG, build_id)
    client.cancel_build(SLUG, build_id)

    # Then Travis saw the v3 API version, the token in Travis's scheme and our User-Agent
    kinds = [c.kind for c in travis.calls]
    assert kinds == ["create_request", "get_request", "list_requests", "get_build", "cancel_build"]
    assert travis.header_problems() == []
    assert {c.token_sha for c in travis.calls} == {token_fingerprint(JOB_TOKEN)}
    for headers in sent.headers:
        assert headers["Authorization"] == f"token {JOB_TOKEN}"
        assert headers["Travis-API-Version"] == "3"
        assert headers["User-Agent"] == USER_AGENT
        assert headers["Accept"] == "application/json"
        assert headers["Content-Type"] == "application/json"
    assert USER_AGENT.startswith("codepipeline-travis-worker/")


def test_the_slug_slash_is_url_encoded(travis: TravisFake, client: TravisClient) -> None:
    # When the client creates, lists and reads requests of owner/repo
    created = client.create_request(SLUG, BODY)
    client.list_requests(SLUG, limit=5)
    client.get_request(SLUG, str(created["request"]["id"]))

    # Then every repository path carries owner%2Frepo, as Travis documents
    paths = [c.path for c in travis.calls]
    assert paths == [
        f"/repo/{ENCODED_SLUG}/requests",
        f"/repo/{ENCODED_SLUG}/requests",
        f"/repo/{ENCODED_SLUG}/request/{created['request']['id']}",
    ]
    assert travis.calls[1].query == {"limit": ["5"]}


def test_create_request_posts_the_body_once(travis: TravisFake, client: TravisClient) -> None:
    answer = client.create_request(SLUG, BODY)

    (call,) = travis.calls_of("create_request")
    assert call.body == BODY
    assert answer["request"]["id"] == travis.requests_for(SLUG)[0].id


# --- error mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("call", ["get", "create"])
def test_a_refused_token_is_a_permission_error(
    travis: TravisFake, client: TravisClient, status: int, call: str
) -> None:
    # Given a repository whose token is refused
    travis.script(SLUG).auth_error = status

    # When the client calls Travis
    with pytest.raises(PermissionDenied) as raised:
        if call == "get":
            client.list_requests(SLUG)
        else:
            client.create_request(SLUG, BODY)

    # Then the error names the repository and status, never the token, and is not retried
    assert f"HTTP {status}" in raised.value.message
    assert SLUG in raised.value.message
    assert JOB_TOKEN not in raised.value.message
    assert len(travis.calls) == 1


def test_an_unknown_token_is_a_permission_error(travis: TravisFake, sleeps: Sleeps) -> None:
    client = TravisClient(travis.base_url, "nobody-knows-me", budget=RetryBudget(sleep=sleeps))
    with pytest.raises(PermissionDenied, match="APIToken"):
        client.get_build(SLUG, "1")


@pytest.mark.parametrize("call", ["get", "create"])
def test_an_unknown_repository_is_a_configuration_error(
    travis: TravisFake, client: TravisClient, call: str
) -> None:
    # When the client calls Travis for a repository it does not have
    with pytest.raises(ConfigurationInvalid) as raised:
        if call == "get":
            client.list_requests("octo-org/nope")
        else:
            client.create_request("octo-org/nope", BODY)

    # Then the user is told which properties to check, once
    assert "octo-org/nope" in raised.value.message
    assert "Owner and ProjectName" in raised.value.message
    assert len(travis.calls) == 1


def test_an_unprocessable_request_carries_travis_reason(
    travis: TravisFake, client: TravisClient
) -> None:
    # Given a body Travis refuses (no "request" object)
    with pytest.raises(ConfigurationInvalid, match=r"HTTP 400\): wrong parameters"):
        client.create_request(SLUG, {"branch": BRANCH})


# --- retries of idempotent calls --------------------------------------------------------------


def test_429_with_retry_after_is_honoured_for_get(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps
) -> None:
    # Given Travis rate-limits the next call and asks to come back in 3 seconds
    travis.fail_next("list_requests", 429, retry_after=3)

    # When the client lists requests
    assert client.list_requests(SLUG) == []

    # Then it waited exactly what Travis asked, then succeeded
    assert sleeps.seconds == [3.0]
    assert [c.status for c in travis.calls] == [429, 200]


def test_a_retry_after_beyond_the_budget_is_left_to_the_state_machine(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps
) -> None:
    travis.fail_next("list_requests", 429, retry_after=600)

    with pytest.raises(ServiceUnavailable, match="rate limited"):
        client.list_requests(SLUG)

    assert sleeps.seconds == []
    assert len(travis.calls) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_then_service_unavailable(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps, status: int
) -> None:
    # Given Travis keeps failing
    travis.fail_next("get_request", status, times=10)

    # When the client reads a request
    with pytest.raises(ServiceUnavailable) as raised:
        client.get_request(SLUG, "205001")

    # Then it tried as often as the budget allows, waiting in between, and says what failed
    assert len(travis.calls) == RetryBudget().attempts
    assert len(sleeps.seconds) == RetryBudget().attempts - 1
    assert f"HTTP {status}" in raised.value.message
    assert travis.base_url in raised.value.message


def test_a_transient_5xx_is_retried_to_success(travis: TravisFake, client: TravisClient) -> None:
    travis.fail_next("list_requests", 502)
    assert client.list_requests(SLUG) == []
    assert [c.status for c in travis.calls] == [502, 200]


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=502, malformed="html"),
        Fault(malformed="truncated"),
        Fault(malformed="not_object"),
        Fault(malformed="empty"),
        Fault(malformed="incomplete"),
        Fault(malformed="huge", huge_bytes=client_module.MAX_BODY_BYTES + 10),
        Fault(drop=True),
    ],
    ids=lambda f: f.label(),
)
def test_malformed_answers_are_retried_then_service_unavailable(
    travis: TravisFake, client: TravisClient, fault: Fault
) -> None:
    # Given Travis (or a proxy in front of it) keeps answering garbage
    travis.add_fault("get_build", fault, times=10)

    # When the client reads a build
    # Then it never hands garbage on: the build is unavailable, not something else
    with pytest.raises(ServiceUnavailable):
        client.get_build(SLUG, "900001")
    assert len(travis.calls) == RetryBudget().attempts


def test_a_malformed_answer_then_a_good_one(travis: TravisFake, client: TravisClient) -> None:
    travis.malformed_next("list_requests", "truncated")
    assert client.list_requests(SLUG) == []
    assert len(travis.calls) == 2


def test_a_list_of_the_wrong_shape_is_service_unavailable(
    travis: TravisFake, client: TravisClient
) -> None:
    travis.malformed_next("list_requests", "wrong_shape")
    with pytest.raises(ServiceUnavailable, match="malformed"):
        client.list_requests(SLUG)


def test_a_slow_answer_times_out_and_is_retried(
    travis: TravisFake, client: TravisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a read timeout shortened for the test and a Travis that hangs once
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.2)
    travis.slow_next("list_requests", 1.0)

    # When the client lists requests
    # Then the hung call is abandoned and the retry succeeds
    assert client.list_requests(SLUG) == []
    assert len(travis.calls_of("list_requests")) == 2


def test_an_unreachable_travis_is_service_unavailable(sleeps: Sleeps) -> None:
    # Given an endpoint where nothing listens (a fake that was stopped)
    with TravisFake() as gone:
        endpoint = gone.base_url
    client = TravisClient(endpoint, JOB_TOKEN, budget=RetryBudget(sleep=sleeps))

    with pytest.raises(ServiceUnavailable, match="ConnectionError"):
        client.get_build(SLUG, "1")
    assert len(sleeps.seconds) == RetryBudget().attempts - 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_never_followed(
    travis: TravisFake, httpserver: HTTPServer, sleeps: Sleeps, status: int
) -> None:
    # Given an endpoint that redirects to another host (which would receive the token header);
    # the server decodes %2F, hence the raw slug in its path
    httpserver.expect_request(f"/repo/{SLUG}/requests").respond_with_data(
        "", status=status, headers={"Location": f"{travis.base_url}/repo/{ENCODED_SLUG}/requests"}
    )
    client = TravisClient(httpserver.url_for("/"), JOB_TOKEN, budget=RetryBudget(sleep=sleeps))

    # When the client lists requests or creates one
    with pytest.raises(ConfigurationInvalid, match=f"HTTP {status}"):
        client.list_requests(SLUG)
    with pytest.raises(ConfigurationInvalid, match=f"HTTP {status}"):
        client.create_request(SLUG, BODY)

    # Then the redirect target never heard from us
    assert travis.calls == []


# --- creating a request is never retried by the client ---------------------------------------


def test_create_request_429_raises_rate_limited_once(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps
) -> None:
    travis.fail_next("create_request", 429, retry_after=7)

    with pytest.raises(RateLimited) as raised:
        client.create_request(SLUG, BODY)

    assert raised.value.retry_after == 7.0
    assert len(travis.calls_of("create_request")) == 1
    assert travis.created_count() == 0
    assert sleeps.seconds == []


def test_create_request_past_the_repository_limit_is_rate_limited(
    travis: TravisFake, client: TravisClient
) -> None:
    # Given a repository limited to one request an hour that already had it
    travis.script(SLUG).rate_limit = 1
    client.create_request(SLUG, BODY)

    with pytest.raises(RateLimited) as raised:
        client.create_request(SLUG, BODY)

    assert raised.value.retry_after is not None
    assert raised.value.retry_after > 3000
    assert travis.created_count() == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(status=502),
        Fault(status=503),
        Fault(drop=True),
        Fault(status=502, malformed="html"),
        Fault(malformed="truncated"),
        Fault(malformed="not_object"),
        Fault(malformed="incomplete"),
        Fault(status=502, process_first=True),
        Fault(drop=True, process_first=True),
    ],
    ids=lambda f: f.label(),
)
def test_create_request_with_an_unknown_outcome_is_never_retried_by_itself(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps, fault: Fault
) -> None:
    # Given a POST whose answer is lost or unreadable (Travis may or may not have acted)
    travis.add_fault("create_request", fault)

    # When the client creates a request
    with pytest.raises(RequestOutcomeUnknown):
        client.create_request(SLUG, BODY)

    # Then it posted exactly once and left the decision to the caller
    assert len(travis.calls_of("create_request")) == 1
    assert sleeps.seconds == []


def test_create_request_timeout_is_an_unknown_outcome(
    travis: TravisFake, client: TravisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Travis creates the request but answers after the client gave up
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.2)
    travis.slow_next("create_request", 0.6)

    with pytest.raises(RequestOutcomeUnknown, match="Timeout"):
        client.create_request(SLUG, BODY)

    assert len(travis.calls_of("create_request")) == 1


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_stops_a_running_build(travis: TravisFake, client: TravisClient) -> None:
    build_id = _build_id(travis, client)

    client.cancel_build(SLUG, build_id)

    assert travis.get_build(int(build_id)).state == "canceled"


def test_cancel_of_a_finished_build_is_accepted(travis: TravisFake, client: TravisClient) -> None:
    # Given a build that already passed (Travis answers 409 build_not_cancelable)
    build_id = _build_id(travis, client)
    while client.get_build(SLUG, build_id)["state"] != "passed":
        pass

    # When it is canceled (e.g. a retried watch step)
    client.cancel_build(SLUG, build_id)

    # Then nothing fails and the build keeps its result
    assert travis.calls_of("cancel_build")[0].status == 409
    assert travis.get_build(int(build_id)).state == "passed"


def test_cancel_is_retried_on_5xx(travis: TravisFake, client: TravisClient) -> None:
    build_id = _build_id(travis, client)
    travis.fail_next("cancel_build", 503)

    client.cancel_build(SLUG, build_id)

    assert [c.status for c in travis.calls_of("cancel_build")] == [503, 202]
