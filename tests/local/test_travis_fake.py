"""The Travis fake behaves like the API our client relies on, and its faults fire as scripted."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.travis_fake import (
    DEFAULT_TOKEN,
    Fault,
    RepoScript,
    TravisFake,
    missing_commit_message,
    token_fingerprint,
)

SLUG = "octo/app"
ENC = "octo%2Fapp"
HEADERS = {
    "Travis-API-Version": "3",
    "Authorization": f"token {DEFAULT_TOKEN}",
    "User-Agent": "codepipeline-travis-worker/test",
    "Accept": "application/json",
}


@pytest.fixture
def fake() -> Iterator[TravisFake]:
    with TravisFake({SLUG: RepoScript()}) as server:
        yield server


def call(
    fake: TravisFake,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> requests.Response:
    hdrs = dict(HEADERS if headers is None else headers)
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    return requests.request(method, fake.base_url + path, json=body, headers=hdrs, timeout=timeout)


def create(fake: TravisFake, slug: str = ENC, **request: Any) -> requests.Response:
    request.setdefault("branch", "main")
    return call(fake, "POST", f"/repo/{slug}/requests", {"request": request})


def build_of(fake: TravisFake, request_id: int, slug: str = ENC) -> int:
    """Poll the request until Travis created the build (as the client's ResolveBuild does)."""
    for _ in range(10):
        body = call(fake, "GET", f"/repo/{slug}/request/{request_id}").json()
        if body["builds"]:
            return int(body["builds"][0]["id"])
    raise AssertionError("no build")


def test_lifecycle_pending_build_passed(fake: TravisFake) -> None:
    fake.add_repo(SLUG, polls_until_build=2, polls_until_done=4, jobs=3)
    resp = create(fake, sha="abc123", message="Travis for job J-1")
    assert resp.status_code == 202
    created = resp.json()
    assert created["@type"] == "pending" and created["resource_type"] == "request"
    assert created["remaining_requests"] == 9
    assert created["repository"]["slug"] == SLUG
    assert created["request"]["branch"] == "main"
    rid = created["request"]["id"]

    first = call(fake, "GET", f"/repo/{ENC}/request/{rid}").json()
    assert (first["state"], first["result"], first["builds"]) == ("pending", None, [])
    second = call(fake, "GET", f"/repo/{ENC}/request/{rid}").json()
    assert (second["state"], second["result"]) == ("finished", "approved")
    assert second["commit"]["sha"] == "abc123" and second["event_type"] == "api"
    assert second["branch_name"] == "main" and second["messages"] == []
    bid = second["builds"][0]["id"]

    seen = []
    for _ in range(4):
        build = call(fake, "GET", f"/build/{bid}").json()
        done = sum(j["state"] == "passed" for j in build["jobs"])
        seen.append((build["state"], done))
    assert seen == [("created", 0), ("started", 1), ("started", 2), ("passed", 3)]
    assert build["branch"]["name"] == "main" and build["commit"]["sha"] == "abc123"
    assert build["commit"]["message"] == "Travis for job J-1"
    assert build["repository"]["slug"] == SLUG and build["number"] == "1"
    assert build["started_at"] and build["finished_at"] and build["duration"] is not None
    assert build["previous_state"] is None
    assert fake.header_problems() == []
    assert [c.status for c in fake.calls] == [202, 200, 200, 200, 200, 200, 200]
    assert fake.builds_for(SLUG)[0].state == "passed"


@pytest.mark.parametrize("outcome", ["passed", "failed", "errored", "canceled"])
def test_each_outcome(fake: TravisFake, outcome: str) -> None:
    fake.add_repo(SLUG, outcome=outcome, polls_until_done=1, jobs=2)
    bid = build_of(fake, create(fake).json()["request"]["id"])
    build = call(fake, "GET", f"/build/{bid}").json()
    assert build["state"] == outcome
    assert [j["state"] for j in build["jobs"]][-1] == outcome


def test_rejected_request_has_messages_and_no_build(fake: TravisFake) -> None:
    fake.add_repo(SLUG, reject=True, reject_messages=["branch excluded", {"code": "x"}])
    rid = create(fake).json()["request"]["id"]
    body = call(fake, "GET", f"/repo/{ENC}/request/{rid}").json()
    assert (body["state"], body["result"], body["builds"]) == ("finished", "rejected", [])
    first, second = body["messages"]
    assert first["text"] == "branch excluded" and first["level"] == "error"
    assert first["code"] == "rejected" and second["code"] == "x"
    assert fake.builds_for() == []


def test_missing_commit_is_rejected(fake: TravisFake) -> None:
    fake.add_repo(SLUG, known_commits={"good"})
    bad = create(fake, sha="deadbeef").json()["request"]["id"]
    good = create(fake, sha="good").json()["request"]["id"]
    body = call(fake, "GET", f"/repo/{ENC}/request/{bad}").json()
    assert body["result"] == "rejected" and body["builds"] == []
    assert body["messages"] == [missing_commit_message("deadbeef", SLUG)]
    assert body["messages"][0]["code"] == "missing_commit"
    assert "could not be found" in body["messages"][0]["text"]
    assert call(fake, "GET", f"/repo/{ENC}/request/{good}").json()["result"] == "approved"


def test_auth_and_not_found_errors(fake: TravisFake) -> None:
    fake.add_repo("other/repo")
    fake.add_token("narrow", ["other/repo"])
    no_token = {k: v for k, v in HEADERS.items() if k != "Authorization"}
    assert call(fake, "GET", f"/repo/{ENC}/requests", headers=no_token).status_code == 401
    wrong = {**HEADERS, "Authorization": "token nope"}
    resp = call(fake, "GET", f"/repo/{ENC}/requests", headers=wrong)
    assert resp.status_code == 401 and resp.json()["@type"] == "error"
    narrow = {**HEADERS, "Authorization": "token narrow"}
    resp = call(fake, "POST", f"/repo/{ENC}/requests", {"request": {}}, headers=narrow)
    assert resp.status_code == 403 and resp.json()["error_type"] == "insufficient_access"
    assert call(fake, "GET", "/repo/other%2Frepo/requests", headers=narrow).status_code == 200
    resp = call(fake, "GET", "/repo/nobody%2Fhere/requests")
    assert resp.status_code == 404 and resp.json()["error_type"] == "not_found"
    assert call(fake, "GET", f"/repo/{ENC}/request/999").status_code == 404
    assert call(fake, "GET", "/build/999").status_code == 404
    assert call(fake, "GET", "/nothing").status_code == 404
    fake.add_repo(SLUG, auth_error=403)
    assert create(fake).status_code == 403
    fake.add_repo(SLUG, auth_error=401)
    assert create(fake).status_code == 401
    fake.add_repo(SLUG, exists=False)
    assert create(fake).status_code == 404
    assert fake.created_count() == 0
    assert {c.token_sha for c in fake.calls} >= {None, token_fingerprint("narrow")}
    assert "narrow" not in repr(fake.calls) and "nope" not in repr(fake.calls)


def test_rate_limit_429_with_retry_after_and_rolling_window() -> None:
    now = [1000.0]
    with TravisFake({SLUG: RepoScript(rate_limit=2, rate_window=60)}, clock=lambda: now[0]) as fake:
        assert create(fake).json()["remaining_requests"] == 1
        now[0] += 10
        assert create(fake).json()["remaining_requests"] == 0
        resp = create(fake)
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "50"
        assert resp.json()["error_type"] == "request_limit_reached"
        assert resp.json()["max_requests"] == 2
        now[0] += 51
        assert create(fake).status_code == 202
        assert fake.created_count(SLUG) == 3


def test_fault_status_and_retry_after(fake: TravisFake) -> None:
    fake.fail_next("get_request", 503, times=2)
    fake.fail_next("create_request", 429, retry_after=7)
    resp = create(fake)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert fake.created_count() == 0
    rid = create(fake).json()["request"]["id"]
    statuses = [call(fake, "GET", f"/repo/{ENC}/request/{rid}").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert fake.pending_faults == []
    assert [c.fault for c in fake.calls_of("get_request")] == ["status=503", "status=503", None]


@pytest.mark.parametrize(
    ("style", "status"),
    [("html", 502), ("truncated", 200), ("not_object", 200), ("empty", 200), ("wrong_shape", 200)],
)
def test_fault_malformed_bodies(fake: TravisFake, style: str, status: int) -> None:
    fake.malformed_next("get_build", style)
    resp = call(fake, "GET", "/build/1")
    assert resp.status_code == status
    if style == "wrong_shape":
        assert resp.json()["state"] == 42
    elif style == "not_object":
        assert isinstance(resp.json(), list)
    else:
        with pytest.raises(ValueError):
            resp.json()
    if style == "html":
        assert resp.headers["Content-Type"] == "text/html"


def test_fault_huge_and_incomplete(fake: TravisFake) -> None:
    fake.add_fault("list_requests", Fault(malformed="huge", huge_bytes=3_000_000))
    assert len(call(fake, "GET", f"/repo/{ENC}/requests").content) > 3_000_000
    fake.malformed_next("list_requests", "incomplete")
    with pytest.raises(requests.RequestException):
        call(fake, "GET", f"/repo/{ENC}/requests")


def test_fault_slow_and_drop(fake: TravisFake) -> None:
    fake.slow_next("list_requests", 0.5)
    with pytest.raises(requests.Timeout):
        call(fake, "GET", f"/repo/{ENC}/requests", timeout=0.1)
    fake.slow_next("list_requests", 0.2)
    assert call(fake, "GET", f"/repo/{ENC}/requests").status_code == 200
    fake.drop_next("list_requests")
    with pytest.raises(requests.ConnectionError):
        call(fake, "GET", f"/repo/{ENC}/requests")
    assert fake.calls_of("list_requests")[-1].status is None
    assert fake.calls_of("list_requests")[-1].fault == "drop"


@pytest.mark.parametrize("status", [502, None])
def test_create_then_fail_leaves_request_behind(fake: TravisFake, status: int | None) -> None:
    fake.process_then_fail_next("create_request", status)
    if status is None:
        with pytest.raises(requests.ConnectionError):
            create(fake, message="build for [codepipeline-job:J-42]")
    else:
        assert create(fake, message="build for [codepipeline-job:J-42]").status_code == 502
    assert fake.created_count(SLUG) == 1
    (made,) = fake.requests_with("[codepipeline-job:J-42]", SLUG)
    listing = call(fake, "GET", f"/repo/{ENC}/requests?limit=5").json()
    assert [r["id"] for r in listing["requests"]] == [made.id]
    assert "J-42" in listing["requests"][0]["message"]


def test_random_faults_are_seeded_and_scoped() -> None:
    def run() -> list[int | None]:
        with TravisFake({SLUG: RepoScript()}) as fake:
            fake.random_faults(0.5, kinds=["list_requests"], seed=7)
            for _ in range(20):
                with contextlib.suppress(requests.RequestException):
                    call(fake, "GET", f"/repo/{ENC}/requests")
            assert create(fake).status_code == 202  # not a chosen kind
            return [c.status for c in fake.calls_of("list_requests")]

    first, second = run(), run()
    assert first == second
    assert 200 in first and any(s != 200 for s in first)


def test_cancel(fake: TravisFake) -> None:
    fake.add_repo(SLUG, polls_until_done=10, jobs=2)
    bid = build_of(fake, create(fake).json()["request"]["id"])
    call(fake, "GET", f"/build/{bid}")
    resp = call(fake, "POST", f"/build/{bid}/cancel", {})
    assert resp.status_code == 202
    body = resp.json()
    assert body["state_change"] == "cancel" and body["resource_type"] == "build"
    assert body["build"]["id"] == bid
    build = call(fake, "GET", f"/build/{bid}").json()
    assert build["state"] == "canceled" and build["finished_at"]
    assert {j["state"] for j in build["jobs"]} == {"canceled"}
    resp = call(fake, "POST", f"/build/{bid}/cancel", {})
    assert resp.status_code == 409 and resp.json()["error_type"] == "build_not_cancelable"


def test_listing_newest_first_with_limit_offset_and_previous_state(fake: TravisFake) -> None:
    fake.add_repo(SLUG, polls_until_build=0, polls_until_done=1, outcome="failed")
    ids = [create(fake, message=f"m{i}").json()["request"]["id"] for i in range(3)]
    body = call(fake, "GET", f"/repo/{ENC}/requests?limit=2").json()
    assert body["@type"] == "requests"
    assert [r["id"] for r in body["requests"]] == ids[::-1][:2]
    assert body["requests"][0]["builds"][0]["state"] == "created"
    body = call(fake, "GET", f"/repo/{ENC}/requests?limit=2&offset=2").json()
    assert [r["message"] for r in body["requests"]] == ["m0"]
    builds = fake.builds_for(SLUG)
    assert [b.number for b in builds] == ["1", "2", "3"]
    call(fake, "GET", f"/build/{builds[0].id}")
    assert call(fake, "GET", f"/build/{builds[1].id}").json()["previous_state"] == "failed"


@pytest.mark.parametrize(
    "slug", ["octo%2Fapp", "octo%2fapp", "octo/app", "OCTO%2FAPP", "{repo_id}", "api"]
)
def test_slug_spellings(fake: TravisFake, slug: str) -> None:
    prefix = ""
    if slug == "api":  # Travis Enterprise serves the API under /api
        prefix, slug = "/api", ENC
    slug = slug.format(repo_id=fake.script(SLUG).repo_id)
    resp = call(fake, "POST", f"{prefix}/repo/{slug}/requests", {"request": {"branch": "b"}})
    assert resp.status_code == 202
    rid = resp.json()["request"]["id"]
    assert call(fake, "GET", f"{prefix}/repo/{slug}/request/{rid}").status_code == 200
    assert fake.calls[0].slug == SLUG


def test_header_problems_are_recorded(fake: TravisFake) -> None:
    resp = requests.get(f"{fake.base_url}/repo/{ENC}/requests", timeout=5)
    assert resp.status_code == 400
    assert set(fake.calls[0].header_problems) == {
        "missing_api_version",
        "missing_authorization",
        "generic_user_agent",
    }
    raw = requests.post(
        f"{fake.base_url}/repo/{ENC}/requests",
        data=b'{"request": {"branch": "main"}}',
        headers={**HEADERS, "Content-Type": "text/plain", "Accept": "text/html"},
        timeout=5,
    )
    assert raw.status_code == 202
    assert fake.calls[1].header_problems == ["accept_not_json", "bad_content_type"]
    assert fake.calls[1].body == {"request": {"branch": "main"}}
    assert fake.calls[1].token_present and fake.calls[1].token_sha == token_fingerprint(
        DEFAULT_TOKEN
    )
    assert DEFAULT_TOKEN not in repr(fake.calls)
    create(fake)
    assert fake.calls[2].header_problems == []


def test_concurrent_creates_are_thread_safe(fake: TravisFake) -> None:
    fake.add_repo(SLUG, rate_limit=100)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                assert create(fake).status_code == 202
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    made = fake.requests_for(SLUG)
    assert len(made) == 40 == len({r.id for r in made})
