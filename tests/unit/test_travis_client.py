"""The Travis HTTP client against the Travis fake: headers, error mapping, retries, bad answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer

from local.travis import ALL, Fault, JobScript, TravisFake, token_fingerprint
from tests.unit.support import (
    BRANCH,
    ENCODED_SLUG,
    JOB_TOKEN,
    SLUG,
    Sleeps,
    VirtualClockView,
)
from worker.failures import (
    ConfigurationInvalid,
    PermissionDenied,
    ServiceUnavailable,
    TravisBanned,
)
from worker.providers import CancelResult
from worker.providers.travis import client as client_module
from worker.providers.travis.client import (
    REQUEST_FIELDS,
    USER_AGENT,
    RequestOutcomeUnknown,
    Throttled,
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
    """A build that exists in the fake (created through the client itself, then processed)."""
    created = client.create_request(SLUG, BODY)
    travis.clock.advance(6)  # past the fake's processing delay
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
    client.list_requests(SLUG, since=0)
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
    client.list_requests(SLUG, since=0, limit=5)
    client.get_request(SLUG, str(created["request"]["id"]))

    # Then every repository path carries owner%2Frepo, as Travis documents
    paths = [c.path for c in travis.calls]
    assert paths == [
        f"/repo/{ENCODED_SLUG}/requests",
        f"/repo/{ENCODED_SLUG}/requests",
        f"/repo/{ENCODED_SLUG}/request/{created['request']['id']}",
    ]
    assert travis.calls[1].query["limit"] == ["5"]


def test_create_request_posts_the_body_once(travis: TravisFake, client: TravisClient) -> None:
    answer = client.create_request(SLUG, BODY)

    (call,) = travis.calls_of("create_request")
    assert call.body == BODY
    assert answer["request"]["id"] == travis.requests_for(SLUG)[0].id


# --- error mapping ----------------------------------------------------------------------------


def _call(client: TravisClient, call: str, slug: str = SLUG) -> Any:
    if call == "get":
        return client.list_requests(slug, since=0)
    if call == "cancel":
        return client.cancel_build(slug, "900001")
    return client.create_request(slug, BODY)


@pytest.mark.parametrize("call", ["get", "create"])
def test_an_unknown_or_revoked_token_is_refused(
    travis: TravisFake, client: TravisClient, call: str
) -> None:
    # Given Travis does not know the token any more (403, plain text "access denied")
    travis.revoke_token(JOB_TOKEN)

    # When the client calls Travis
    with pytest.raises(PermissionDenied, match="refused the API token") as raised:
        _call(client, call)

    # Then the error says HTTP 403 and where to fix it, never the token, and is not retried
    assert "HTTP 403" in raised.value.message
    assert "APIToken" in raised.value.message
    assert JOB_TOKEN not in raised.value.message
    assert [c.status for c in travis.calls] == [403]


@pytest.mark.parametrize(
    ("authorization", "error_type"),
    [(None, "login_required"), ("token ", "wrong_credentials")],
)
def test_a_missing_or_empty_token_is_refused(
    travis: TravisFake, sleeps: Sleeps, authorization: str | None, error_type: str
) -> None:
    # Given a client whose Authorization header is absent, or carries no token
    client = TravisClient(travis.base_url, "", budget=RetryBudget(sleep=sleeps))
    if authorization is None:
        client._headers.pop("Authorization")  # the only way to send no header at all
    else:
        client._headers["Authorization"] = authorization

    # When it asks for a build
    with pytest.raises(PermissionDenied, match="refused the API token") as raised:
        client.create_request(SLUG, BODY)

    # Then Travis's error type is named
    assert error_type in raised.value.message
    assert travis.calls_of("create_request")[0].status == 403
    assert travis.requests_for(SLUG) == []


def test_a_token_without_the_create_permission_is_named(
    travis: TravisFake, client: TravisClient
) -> None:
    # Given a token that may read but not trigger builds (403 insufficient_access)
    travis.add_token(JOB_TOKEN, ALL, can_create=False)

    with pytest.raises(PermissionDenied) as raised:
        client.create_request(SLUG, BODY)

    assert "may not trigger builds of octo-org/hello.world" in raised.value.message
    assert "insufficient_access, permission create_request" in raised.value.message
    assert travis.requests_for(SLUG) == []


def test_a_token_without_the_cancel_permission_is_not_permitted(
    travis: TravisFake, client: TravisClient
) -> None:
    # Given a build, and a token that may not cancel (403 insufficient_access, permission cancel)
    build_id = _build_id(travis, client)
    travis.add_token(JOB_TOKEN, ALL, can_cancel=False)

    # When the client cancels it: Travis's refusal is an answer, not an error (not retried)
    assert client.cancel_build(SLUG, build_id) is CancelResult.NOT_PERMITTED
    assert [c.status for c in travis.calls_of("cancel_build")] == [403]
    assert travis.get_build(int(build_id)).cancel_requested_at is None


def test_a_banned_token_on_create_is_travis_banned(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps
) -> None:
    # Given Rack::Attack banned the token (403, plain text "Forbidden")
    travis.fail_next("create_request", 403)

    with pytest.raises(TravisBanned, match="temporarily blocked") as raised:
        client.create_request(SLUG, BODY)

    assert raised.value.failure_type == "SystemUnavailable"
    assert len(travis.calls_of("create_request")) == 1
    assert sleeps.seconds == []


def test_a_banned_token_on_a_read_is_temporary(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps
) -> None:
    # Given the ban also refuses reads
    travis.fail_next("list_requests", 403)

    # Then the read fails as unavailable (the state machine looks again), not as a permission
    with pytest.raises(ServiceUnavailable, match="temporarily blocked"):
        client.list_requests(SLUG, since=0)
    assert len(travis.calls_of("list_requests")) == 1


def test_a_real_ban_after_a_burst_of_posts(travis: TravisFake, sleeps: Sleeps) -> None:
    # Given a token that sent more POSTs than Rack::Attack allows in 30 s (cancels of a build
    # that does not exist: no requests made)
    client = TravisClient(travis.base_url, JOB_TOKEN, budget=RetryBudget(sleep=sleeps))
    headers = {"Travis-API-Version": "3", "Authorization": f"token {JOB_TOKEN}"}
    with requests.Session() as burst:
        for _ in range(60):
            if travis.banned(JOB_TOKEN):
                break
            burst.post(f"{travis.base_url}/build/1/cancel", headers=headers, timeout=5)
    assert travis.banned(JOB_TOKEN)

    # When it asks for a build: TravisBanned, and Travis created nothing
    with pytest.raises(TravisBanned):
        client.create_request(SLUG, BODY)
    assert travis.requests_for(SLUG) == []


@pytest.mark.parametrize("call", ["get", "create"])
def test_an_unknown_repository_is_a_configuration_error(
    travis: TravisFake, client: TravisClient, call: str
) -> None:
    # When the client calls Travis for a repository it does not have (404)
    with pytest.raises(ConfigurationInvalid) as raised:
        _call(client, call, "octo-org/nope")

    # Then the user is told which properties to check, once
    assert "octo-org/nope" in raised.value.message
    assert "HTTP 404" in raised.value.message
    assert "Owner and ProjectName" in raised.value.message
    assert len(travis.calls) == 1


def test_an_inactive_repository_is_a_configuration_error(
    travis: TravisFake, client: TravisClient
) -> None:
    # Given the repository is not active on Travis (406 repository_inactive)
    travis.script(SLUG).active = False

    with pytest.raises(ConfigurationInvalid, match="not active") as raised:
        client.create_request(SLUG, BODY)

    assert "HTTP 406" in raised.value.message
    assert travis.requests_for(SLUG) == []


# --- what list_requests and get_build ask for ---------------------------------------------------


def test_list_requests_asks_for_a_small_answer_since_a_time(
    travis: TravisFake, client: TravisClient, session: requests.Session
) -> None:
    # Given a repository with a 300 KB .travis.yml, and a processed request (and an older one)
    client.create_request(SLUG, BODY)
    travis.clock.advance(600)
    travis.script(SLUG).config_bytes = 300_000
    since = travis.clock.now()
    client.create_request(SLUG, BODY)
    travis.clock.advance(6)
    sizes: list[int] = []
    session.hooks["response"].append(lambda r, *a, **k: sizes.append(len(r.content)))

    # When the client lists the requests since then
    entries = client.list_requests(SLUG, since=since, limit=10, offset=0)

    # Then it asked for created_at >= since, the minimal representation and our few fields
    (call,) = travis.calls_of("list_requests")
    assert call.query["from"] == [_iso(since)]
    assert call.query["representation"] == ["minimal"]
    assert call.query["include"] == [REQUEST_FIELDS]
    assert (call.query["limit"], call.query["offset"]) == (["10"], ["0"])
    # and got the commits (with the messages we sent), not the configs: a few KB, not ~1 MB
    assert len(entries) == 1
    assert all(e["commit"]["message"] == BODY["request"]["message"] for e in entries)
    assert all(e["event_type"] == "api" and e["created_at"] for e in entries)
    assert sizes[-1] < 10_000
    full = requests.get(
        f"{travis.base_url}/repo/{ENCODED_SLUG}/requests?limit=1",
        headers={"Travis-API-Version": "3", "Authorization": f"token {JOB_TOKEN}"},
        timeout=5,
    )
    assert len(full.content) > 300_000  # what one standard entry would have cost


def test_get_build_asks_for_the_jobs(travis: TravisFake, client: TravisClient) -> None:
    build_id = _build_id(travis, client)

    build = client.get_build(SLUG, build_id)

    (call,) = travis.calls_of("get_build")
    assert call.query == {"include": ["build.jobs"]}
    assert [set(j) >= {"id", "state", "number"} for j in build["jobs"]] == [True, True]


def test_job_log_returns_the_tail(
    travis: TravisFake, client: TravisClient, clock: VirtualClockView
) -> None:
    # Given a finished job with a known log
    log = "".join(f"line {i}\n" for i in range(2000)) + "The command exited with 1.\n"
    travis.script(SLUG).jobs = [JobScript(duration=30, state="failed", log=log)]
    build_id = _build_id(travis, client)
    clock.advance(120)
    (job,) = client.get_build(SLUG, build_id)["jobs"]

    # When the client reads the last 200 bytes of it
    tail = client.job_log(str(job["id"]), keep_bytes=200)

    # Then it has the end of the log, no more
    assert tail.endswith("The command exited with 1.\n")
    assert len(tail.encode()) <= 200
    assert "line 1999" in tail
    (call,) = travis.calls_of("get_log")
    assert call.path == f"/job/{job['id']}/log.txt"


def test_job_log_of_an_unknown_job_is_empty(travis: TravisFake, client: TravisClient) -> None:
    assert client.job_log("424242", keep_bytes=200) == ""


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- retries of idempotent calls --------------------------------------------------------------


def test_the_global_throttle_is_retried_for_reads(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps
) -> None:
    # Given Rack::Attack throttles the next two reads (429, plain "Retry later", no Retry-After)
    travis.fail_next("list_requests", 429, times=2)

    # When the client lists requests
    assert client.list_requests(SLUG, since=0) == []

    # Then it waited (jittered backoff) and tried again until Travis answered
    assert [c.status for c in travis.calls] == [429, 429, 200]
    assert len(sleeps.seconds) == 2


def test_a_proxys_retry_after_is_honoured_for_reads(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps
) -> None:
    # Given a proxy in front of Travis asks to come back in 3 seconds (Travis never does)
    travis.fail_next("list_requests", 429, retry_after=3)

    assert client.list_requests(SLUG, since=0) == []

    assert sleeps.seconds == [3.0]
    assert [c.status for c in travis.calls] == [429, 200]


def test_a_retry_after_beyond_the_budget_is_left_to_the_state_machine(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps
) -> None:
    travis.fail_next("list_requests", 429, retry_after=600)

    with pytest.raises(ServiceUnavailable, match=r"throttled \(HTTP 429\)"):
        client.list_requests(SLUG, since=0)

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
    assert client.list_requests(SLUG, since=0) == []
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
    assert client.list_requests(SLUG, since=0) == []
    assert len(travis.calls) == 2


def test_a_list_of_the_wrong_shape_is_service_unavailable(
    travis: TravisFake, client: TravisClient
) -> None:
    travis.malformed_next("list_requests", "wrong_shape")
    with pytest.raises(ServiceUnavailable, match="malformed"):
        client.list_requests(SLUG, since=0)


def test_a_slow_answer_times_out_and_is_retried(
    travis: TravisFake, client: TravisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a read timeout shortened for the test and a Travis that hangs once
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.2)
    travis.slow_next("list_requests", 3600)

    # When the client lists requests
    # Then the hung call is abandoned and the retry succeeds
    assert client.list_requests(SLUG, since=0) == []
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
        client.list_requests(SLUG, since=0)
    with pytest.raises(ConfigurationInvalid, match=f"HTTP {status}"):
        client.create_request(SLUG, BODY)

    # Then the redirect target never heard from us
    assert travis.calls == []


# --- creating a request is never retried by the client ---------------------------------------


def test_create_request_throttled_raises_once(
    travis: TravisFake, client: TravisClient, sleeps: Sleeps
) -> None:
    # Given the global throttle answers the POST ("Retry later": nothing was created)
    travis.fail_next("create_request", 429)

    with pytest.raises(Throttled) as raised:
        client.create_request(SLUG, BODY)

    # Then the caller decides: not the request limit, no wait, one POST, nothing created
    assert raised.value.limit_reached is False
    assert raised.value.retry_after is None
    assert len(travis.calls_of("create_request")) == 1
    assert travis.created_count() == 0
    assert sleeps.seconds == []


def test_create_request_past_the_repository_limit_names_the_limit(
    travis: TravisFake, client: TravisClient, clock: VirtualClockView
) -> None:
    # Given a repository limited to one request an hour that already had it
    travis.script(SLUG).rate_limit = 1
    client.create_request(SLUG, BODY)
    clock.advance(6)

    # When the client asks again: 429 request_limit_reached, without Retry-After
    with pytest.raises(Throttled) as raised:
        client.create_request(SLUG, BODY)

    assert raised.value.limit_reached is True
    assert (raised.value.max_requests, raised.value.per_seconds) == (1, 3600)
    assert raised.value.retry_after is None
    assert [c.status for c in travis.calls_of("create_request")] == [202, 429]
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
    # Given Travis answers after the client gave up (virtual seconds: far beyond 0.2 s real)
    monkeypatch.setattr(client_module, "READ_TIMEOUT", 0.2)
    travis.slow_next("create_request", 3600)

    with pytest.raises(RequestOutcomeUnknown, match="Timeout"):
        client.create_request(SLUG, BODY)

    assert len(travis.calls_of("create_request")) == 1


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_of_a_running_build_is_requested(
    travis: TravisFake, client: TravisClient, clock: VirtualClockView
) -> None:
    build_id = _build_id(travis, client)

    assert client.cancel_build(SLUG, build_id) is CancelResult.REQUESTED

    # Travis cancels asynchronously: the build ends canceled a few seconds later
    (call,) = travis.calls_of("cancel_build")
    assert (call.method, call.path, call.status) == ("POST", f"/build/{build_id}/cancel", 202)
    clock.advance(30)
    assert travis.get_build(int(build_id)).state == "canceled"


def test_cancel_of_a_finished_build_is_already_finished(
    travis: TravisFake, client: TravisClient, clock: VirtualClockView
) -> None:
    # Given a build that already passed (Travis answers 409 build_not_cancelable)
    build_id = _build_id(travis, client)
    clock.advance(3600)
    assert client.get_build(SLUG, build_id)["state"] == "passed"

    assert client.cancel_build(SLUG, build_id) is CancelResult.ALREADY_FINISHED

    assert [c.status for c in travis.calls_of("cancel_build")] == [409]
    assert travis.get_build(int(build_id)).state == "passed"


def test_cancel_is_retried_on_5xx(travis: TravisFake, client: TravisClient) -> None:
    build_id = _build_id(travis, client)
    travis.fail_next("cancel_build", 503)

    assert client.cancel_build(SLUG, build_id) is CancelResult.REQUESTED

    assert [c.status for c in travis.calls_of("cancel_build")] == [503, 202]
