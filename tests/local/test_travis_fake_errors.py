"""The Travis fake's error table: who answers what when Travis says no (and never Retry-After)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests
from urllib3.util import SKIP_HEADER

from local.travis import DEFAULT_TOKEN, AttackLimits, RepoScript, TravisFake
from tests.local.test_travis_fake_support import (
    ENC,
    HEADERS,
    SLUG,
    SteppedClock,
    call,
    create,
)

ANONYMOUS = {k: v for k, v in HEADERS.items() if k != "Authorization"}
LEGACY = {k: v for k, v in HEADERS.items() if k != "Travis-API-Version"}


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def fake(clock: SteppedClock) -> Iterator[TravisFake]:
    with TravisFake({SLUG: RepoScript(processing_delay=0)}, clock=clock) as server:
        yield server


def test_no_token_cannot_create_but_may_read_public_repositories(fake: TravisFake) -> None:
    resp = create(fake, headers=ANONYMOUS)
    assert resp.status_code == 403
    assert resp.json() == {
        "@type": "error",
        "error_type": "login_required",
        "error_message": "login required",
    }
    assert call(fake, "GET", f"/repo/{ENC}/requests", headers=ANONYMOUS).status_code == 200


@pytest.mark.parametrize("public_mode", [True, False])
def test_public_mode_switch(clock: SteppedClock, public_mode: bool) -> None:
    fake = TravisFake({SLUG: RepoScript()}, clock=clock, public_mode=public_mode)
    with fake:
        resp = call(fake, "GET", f"/repo/{ENC}/requests", headers=ANONYMOUS)
        assert resp.status_code == (200 if public_mode else 404)


def test_unknown_or_revoked_token_is_a_plain_text_access_denied(fake: TravisFake) -> None:
    for token in ("nope", DEFAULT_TOKEN):
        if token == DEFAULT_TOKEN:
            fake.revoke_token(DEFAULT_TOKEN)
        wrong = {**HEADERS, "Authorization": f"token {token}"}
        for method, path in (
            ("POST", f"/repo/{ENC}/requests"),
            ("GET", "/build/1"),
            ("GET", "/config"),
        ):
            resp = call(fake, method, path, {} if method == "POST" else None, headers=wrong)
            # scope_check.rb answers before any API: never 401, never JSON
            assert (resp.status_code, resp.text) == (403, "access denied")
            assert resp.headers["Content-Type"].startswith("text/html")
    assert fake.created_count() == 0


def test_unknown_scheme_is_wrong_credentials(fake: TravisFake) -> None:
    resp = call(
        fake, "GET", f"/repo/{ENC}/requests", headers={**HEADERS, "Authorization": "Bearer x"}
    )
    assert resp.status_code == 403 and resp.json()["error_type"] == "wrong_credentials"
    basic = base64.b64encode(f"{DEFAULT_TOKEN}:x".encode()).decode()
    ok = call(
        fake, "GET", f"/repo/{ENC}/requests", headers={**HEADERS, "Authorization": f"Basic {basic}"}
    )
    assert ok.status_code == 200


def test_token_without_create_permission(fake: TravisFake) -> None:
    fake.add_token("reader", can_create=False)
    resp = create(fake, headers={**HEADERS, "Authorization": "token reader"})
    assert resp.status_code == 403
    body = resp.json()
    assert (body["error_type"], body["permission"], body["resource_type"]) == (
        "insufficient_access",
        "create_request",
        "repository",
    )
    assert body["error_message"] == "operation requires create_request access to repository"
    assert body["repository"]["slug"] == SLUG


def test_tokens_for_other_repositories(fake: TravisFake) -> None:
    fake.add_token("narrow", ["other/repo"])
    narrow = {**HEADERS, "Authorization": "token narrow"}
    # a public repository is visible to everyone: the create is refused for lack of permission
    assert create(fake, headers=narrow).json()["error_type"] == "insufficient_access"
    # a private one is invisible: 404
    fake.add_repo(SLUG, private=True)
    resp = create(fake, headers=narrow)
    assert resp.status_code == 404
    assert resp.json() == {
        "@type": "error",
        "error_type": "not_found",
        "error_message": "repository not found (or insufficient access)",
        "resource_type": "repository",
    }


def test_missing_and_inactive_repositories(fake: TravisFake) -> None:
    assert create(fake, "nobody%2Fhere").status_code == 404
    fake.add_repo("gone/repo", exists=False)
    assert create(fake, "gone%2Frepo").status_code == 404
    fake.add_repo("idle/repo", active=False)
    resp = create(fake, "idle%2Frepo")
    assert resp.status_code == 406
    assert resp.json()["error_type"] == "repository_inactive"
    assert resp.json()["error_message"] == "cannot create requests on an inactive repository"
    assert fake.created_count() == 0


def test_hourly_request_limit_has_no_retry_after(fake: TravisFake, clock: SteppedClock) -> None:
    fake.add_repo(SLUG, rate_limit=2, processing_delay=0)
    fake.add_repo("other/repo")
    fake.add_token("second")
    assert create(fake).json()["remaining_requests"] == 2
    clock.advance(600)
    # every API request of the repository counts, whoever made it
    assert (
        create(fake, headers={**HEADERS, "Authorization": "token second"}).json()[
            "remaining_requests"
        ]
        == 1
    )
    resp = create(fake)
    assert resp.status_code == 429 and "Retry-After" not in resp.headers
    body = resp.json()
    assert (body["error_type"], body["max_requests"], body["per_seconds"]) == (
        "request_limit_reached",
        2,
        3600,
    )
    assert body["error_message"] == "request limit reached for resource"
    assert body["repository"]["slug"] == SLUG
    assert create(fake, "other%2Frepo").status_code == 202
    clock.advance(3001)  # the first request leaves the sliding hour
    assert create(fake).json()["remaining_requests"] == 1
    assert fake.created_count(SLUG) == 3


@pytest.mark.parametrize("throttle", [5, None])
def test_global_throttle_switch(clock: SteppedClock, throttle: int | None) -> None:
    limits = AttackLimits(token_throttle=throttle)
    with TravisFake({SLUG: RepoScript()}, clock=clock, attack=limits) as fake:
        statuses = [call(fake, "GET", "/build/1").status_code for _ in range(7)]
        if throttle is None:
            assert statuses == [404] * 7
            return
        assert statuses == [404] * 5 + [429, 429]
        resp = call(fake, "GET", "/build/1")
        # rack-attack's throttled response: plain text, no Retry-After
        assert (resp.text, resp.headers["Content-Type"]) == ("Retry later\n", "text/plain")
        assert "Retry-After" not in resp.headers
        clock.advance(60)  # the next minute window
        assert call(fake, "GET", "/build/1").status_code == 404


@pytest.mark.parametrize("enterprise", [False, True])
def test_fifty_posts_in_thirty_seconds_ban_the_token(clock: SteppedClock, enterprise: bool) -> None:
    with TravisFake({SLUG: RepoScript()}, clock=clock, enterprise=enterprise) as fake:
        fake.add_token("other")
        statuses = [create(fake, "nobody%2Fhere").status_code for _ in range(51)]
        if enterprise:  # app.rb: no Rack::Attack on Enterprise
            assert statuses == [404] * 51 and not fake.banned(DEFAULT_TOKEN)
            return
        # attack.rb Allow2Ban: the 50th POST trips the ban and passes, then everything is refused
        assert statuses == [404] * 50 + [403]
        assert fake.banned(DEFAULT_TOKEN)
        resp = call(fake, "GET", f"/repo/{ENC}/requests")
        assert (resp.status_code, resp.text) == (403, "Forbidden\n")
        other = {**HEADERS, "Authorization": "token other"}
        assert call(fake, "GET", f"/repo/{ENC}/requests", headers=other).status_code == 200
        clock.advance(3599)
        assert call(fake, "GET", f"/repo/{ENC}/requests").status_code == 403
        clock.advance(2)
        assert call(fake, "GET", f"/repo/{ENC}/requests").status_code == 200


def test_bodies_travis_cannot_use(fake: TravisFake) -> None:
    raw = dict(HEADERS, **{"Content-Type": "application/json"})
    broken = requests.post(
        f"{fake.base_url}/repo/{ENC}/requests", data=b"{oops", headers=raw, timeout=5
    )
    # rack-contrib's JSON body parser answers before anything else
    assert (broken.status_code, broken.json()) == (400, {"error": "Failed to parse body as JSON"})
    listed = requests.post(
        f"{fake.base_url}/repo/{ENC}/requests", data=b"[1]", headers=raw, timeout=5
    )
    assert listed.status_code == 500
    # a body of another content type is not read: Travis creates a request with defaults
    text = dict(HEADERS, **{"Content-Type": "text/plain"})
    resp = requests.post(
        f"{fake.base_url}/repo/{ENC}/requests",
        data=b'{"request": {"branch": "x"}}',
        headers=text,
        timeout=5,
    )
    assert resp.status_code == 202 and resp.json()["request"]["branch"] == "main"


def test_without_the_v3_header_calls_go_to_the_legacy_api(fake: TravisFake) -> None:
    for method, path in (
        ("GET", f"/repo/{ENC}/requests"),
        ("POST", f"/repo/{ENC}/requests"),
        ("GET", "/build/1"),
    ):
        resp = call(fake, method, path, {} if method == "POST" else None, headers=LEGACY)
        assert (resp.status_code, resp.json()) == (404, {"file": "not found"})
    assert fake.created_count() == 0
    assert [c.api for c in fake.calls] == ["legacy"] * 3
    # v3/opt_in.rb: a /v3 prefix or the v3 media type select v3 as well
    assert call(fake, "GET", f"/v3/repo/{ENC}/requests", headers=LEGACY).status_code == 200
    media = {**LEGACY, "Accept": "application/vnd.travis-ci.3+json"}
    assert call(fake, "GET", f"/repo/{ENC}/requests", headers=media).status_code == 200
    moved = call(fake, "GET", "/v3", headers=LEGACY, allow_redirects=False)
    assert (moved.status_code, moved.headers["Location"]) == (307, "/v3/")


def test_config_is_legacy_only(fake: TravisFake) -> None:
    legacy = call(fake, "GET", "/config", headers={"User-Agent": "worker/1"})
    key = legacy.json()["config"]["notifications"]["webhook"]["public_key"]
    assert key.startswith("-----BEGIN PUBLIC KEY-----")
    assert call(fake, "GET", "/config").status_code == 404  # with the v3 header: no such route


def test_slugs_must_be_encoded(fake: TravisFake) -> None:
    resp = call(fake, "GET", "/repo/octo/app/requests")
    # routes.rb captures slugs as [^/]+%2[fF][^/]+: a raw slash matches no route
    assert resp.status_code == 404
    assert resp.json()["error_message"] == "resource not found (or insufficient access)"
    repo_id = fake.script(SLUG).repo_id
    for path in (
        "/repo/octo%2fapp/requests",
        f"/repo/{repo_id}/requests",
        f"/repo/github/{ENC}/requests",
    ):
        assert call(fake, "GET", path).status_code == 200, path


def test_enterprise_api_prefix_prefixes_hrefs(fake: TravisFake) -> None:
    resp = call(fake, "GET", f"/api/repo/{ENC}/requests")
    assert resp.status_code == 200 and resp.json()["@href"].startswith("/api/repo/")
    v3 = call(fake, "POST", f"/v3/repo/{ENC}/requests", {"request": {}}).json()
    assert v3["repository"]["@href"].startswith("/repo/")  # accepted.rb renders without SCRIPT_NAME


def test_wrong_verb_is_405(fake: TravisFake) -> None:
    for method, path in (("PUT", f"/repo/{ENC}/requests"), ("GET", "/build/1/cancel")):
        resp = call(fake, method, path)
        assert resp.status_code == 405 and resp.json()["error_type"] == "method_not_allowed"


@pytest.mark.parametrize("required", [False, True])
def test_user_agent_requirement_switch(clock: SteppedClock, required: bool) -> None:
    with TravisFake({SLUG: RepoScript()}, clock=clock, require_user_agent=required) as fake:
        headers = {**HEADERS, "User-Agent": SKIP_HEADER}  # urllib3 then sends no User-Agent
        resp = requests.get(f"{fake.base_url}/repo/{ENC}/requests", headers=headers, timeout=5)
        if required:
            assert (resp.status_code, resp.json()) == (400, {"error": "missing User-Agent header"})
        else:
            assert resp.status_code == 200
        assert fake.calls[0].header_problems == ["missing_user_agent"]
