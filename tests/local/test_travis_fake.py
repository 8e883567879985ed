"""The Travis fake's faults, recordings and plumbing (the API itself: test_travis_fake_*.py)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from local.clock import VirtualClock
from local.travis import (
    DEFAULT_TOKEN,
    KINDS,
    REAL_FAILURE_MODES,
    Fault,
    RepoScript,
    TravisFake,
    token_fingerprint,
)
from tests.local.test_travis_fake_support import (
    ENC,
    HEADERS,
    SLUG,
    SteppedClock,
    call,
    create,
    get_request,
)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(0.01)  # faults wait in virtual seconds: 1 s here is 10 ms


@pytest.fixture
def fake(clock: VirtualClock) -> Iterator[TravisFake]:
    with TravisFake({SLUG: RepoScript(processing_delay=None)}, clock=clock) as server:
        yield server


def test_status_faults_answer_what_travis_layers_send(fake: TravisFake) -> None:
    fake.fail_next("get_request", 500)
    fake.fail_next("create_request", 429)
    fake.fail_next("list_requests", 503, retry_after=7)
    throttled = create(fake)
    # rack-attack's throttle: plain text, and Travis never sends Retry-After
    assert (throttled.status_code, throttled.text) == (429, "Retry later\n")
    assert "Retry-After" not in throttled.headers and fake.created_count() == 0
    rid = create(fake).json()["request"]["id"]
    crashed = call(fake, "GET", f"/repo/{ENC}/request/{rid}")
    assert (crashed.status_code, crashed.text) == (500, "Sorry, we experienced an error.\n")
    proxied = call(fake, "GET", f"/repo/{ENC}/requests")
    assert proxied.status_code == 503 and proxied.headers["Retry-After"] == "7"  # a proxy's
    assert call(fake, "GET", f"/repo/{ENC}/request/{rid}").status_code == 200
    assert fake.pending_faults == []
    assert [c.fault for c in fake.calls_of("get_request")] == ["status=500", None]


def test_faults_can_repeat_and_target_one_repository(fake: TravisFake) -> None:
    fake.add_repo("other/repo")
    fake.fail_next("*", 502, times=2, slug="other/repo")
    assert create(fake).status_code == 202
    assert [create(fake, "other%2Frepo").status_code for _ in range(3)] == [502, 502, 202]


@pytest.mark.parametrize(
    ("style", "status"),
    [("html", 502), ("truncated", 200), ("not_object", 200), ("empty", 200), ("wrong_shape", 200)],
)
def test_malformed_bodies(fake: TravisFake, style: str, status: int) -> None:
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


def test_huge_and_incomplete_bodies(fake: TravisFake) -> None:
    fake.add_fault("list_requests", Fault(malformed="huge", huge_bytes=3_000_000))
    assert len(call(fake, "GET", f"/repo/{ENC}/requests").content) > 3_000_000
    fake.malformed_next("list_requests", "incomplete")
    with pytest.raises(requests.RequestException):
        call(fake, "GET", f"/repo/{ENC}/requests")


def test_slow_answers_wait_in_virtual_seconds_and_drops_close_the_socket(fake: TravisFake) -> None:
    fake.slow_next("list_requests", 50.0)  # 0.5 s real at this scale
    with pytest.raises(requests.Timeout):
        call(fake, "GET", f"/repo/{ENC}/requests", timeout=0.1)
    fake.slow_next("list_requests", 5.0)
    assert call(fake, "GET", f"/repo/{ENC}/requests").status_code == 200
    fake.drop_next("list_requests")
    with pytest.raises(requests.ConnectionError):
        call(fake, "GET", f"/repo/{ENC}/requests")
    last = fake.calls_of("list_requests")[-1]
    assert (last.status, last.fault) == (None, "drop")


@pytest.mark.parametrize("status", [502, None])
def test_create_then_fail_leaves_a_request_behind(status: int | None) -> None:
    clock = SteppedClock()
    with TravisFake({SLUG: RepoScript(processing_delay=5)}, clock=clock) as fake:
        fake.process_then_fail_next("create_request", status)
        if status is None:
            with pytest.raises(requests.ConnectionError):
                create(fake, message="build for [codepipeline-job:J-42]")
        else:
            assert create(fake, message="build for [codepipeline-job:J-42]").status_code == 502
        (made,) = fake.requests_with("[codepipeline-job:J-42]", SLUG)
        listing = call(fake, "GET", f"/repo/{ENC}/requests?limit=5").json()
        (entry,) = listing["requests"]
        # Then the request exists, but Travis shows the marker only once it is processed
        assert entry["id"] == made.id and entry["commit"] is None and entry["message"] is None
        clock.advance(5)
        assert "J-42" in get_request(fake, made.id)["commit"]["message"]


def test_slow_create_that_acted_at_once() -> None:
    # a stepped clock makes the 100 s wait last until the fake stops: no race with the machine
    fake = TravisFake({SLUG: RepoScript(processing_delay=None)}, clock=SteppedClock()).start()
    answers: list[int] = []
    try:
        fake.add_fault("create_request", Fault(delay=100.0, process_first=True))
        worker = threading.Thread(target=lambda: answers.append(create(fake).status_code))
        worker.start()
        deadline = time.monotonic() + 5
        while not fake.created_count() and time.monotonic() < deadline:
            time.sleep(0.01)
        # Given the answer is still on its way, the request already exists
        assert fake.created_count() == 1 and worker.is_alive() and answers == []
    finally:
        fake.stop()  # wakes the waiting answer
    worker.join(timeout=5)
    assert answers == [202]


def test_random_faults_are_seeded_and_scoped() -> None:
    def run() -> list[int | None]:
        with TravisFake({SLUG: RepoScript()}, clock=VirtualClock(0.01)) as fake:
            fake.random_faults(0.5, kinds=["list_requests"], seed=7)
            for _ in range(20):
                with contextlib.suppress(requests.RequestException):
                    call(fake, "GET", f"/repo/{ENC}/requests")
            assert create(fake).status_code == 202  # not a chosen kind
            return [c.status for c in fake.calls_of("list_requests")]

    first, second = run(), run()
    assert first == second
    assert 200 in first and any(s != 200 for s in first)


def test_real_failure_modes_menu(fake: TravisFake) -> None:
    # Then the menu holds no Retry-After (Travis never sends one) and has lost answers on create
    assert all(f.retry_after is None for f in REAL_FAILURE_MODES)
    assert any(f.process_first and f.drop for f in REAL_FAILURE_MODES)
    assert any(f.delay > 20.0 for f in REAL_FAILURE_MODES)  # beyond the client's read timeout
    fake.random_faults(1.0, kinds=["get_build"], seed=1, faults=REAL_FAILURE_MODES)
    for _ in range(5):
        with contextlib.suppress(requests.RequestException):
            call(fake, "GET", "/build/1", timeout=2)
    assert all(c.fault for c in fake.calls_of("get_build"))


def test_new_kinds_can_fail(fake: TravisFake) -> None:
    assert {"list_builds", "get_log", "get_config"} <= set(KINDS)
    for kind, path in (("list_builds", f"/repo/{ENC}/builds"), ("get_log", "/job/1/log.txt")):
        fake.fail_next(kind, 500)
        assert call(fake, "GET", path).status_code == 500
    fake.fail_next("get_config", 503)
    assert call(fake, "GET", "/config", headers={"User-Agent": "w/1"}).status_code == 503
    with pytest.raises(ValueError, match="unknown kind"):
        fake.fail_next("restart_build")


def test_header_problems_are_recorded(fake: TravisFake) -> None:
    resp = requests.get(f"{fake.base_url}/repo/{ENC}/requests", timeout=5)
    assert resp.status_code == 404  # no v3 header: the legacy API
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
    create(fake)
    assert fake.calls[2].header_problems == []
    call(fake, "GET", "/config")
    assert fake.calls[3].header_problems == ["api_version_on_legacy_config"]
    assert fake.header_problems()[0] == ("list_requests", "missing_api_version")


def test_recordings_hold_fingerprints_never_tokens(fake: TravisFake) -> None:
    fake.add_token("narrow-secret", [SLUG])
    create(fake)
    create(fake, headers={**HEADERS, "Authorization": "token narrow-secret"})
    call(fake, "GET", "/build/1", headers={**HEADERS, "Authorization": "token wrong-secret"})
    assert [c.token_sha for c in fake.calls] == [
        token_fingerprint(DEFAULT_TOKEN),
        token_fingerprint("narrow-secret"),
        token_fingerprint("wrong-secret"),
    ]
    assert [r.token_sha for r in fake.requests_for(SLUG)] == [
        token_fingerprint(DEFAULT_TOKEN),
        token_fingerprint("narrow-secret"),
    ]
    text = repr(fake.calls) + repr(fake.requests_for())
    assert "secret" not in text.replace(token_fingerprint("narrow-secret"), "")
    assert DEFAULT_TOKEN not in text
    fake.reset_calls()
    assert fake.calls == []


def test_concurrent_clients_are_served_consistently(fake: TravisFake) -> None:
    fake.add_repo(SLUG, rate_limit=200, processing_delay=0)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                assert create(fake).status_code == 202
                assert call(fake, "GET", f"/repo/{ENC}/requests?limit=3").status_code == 200
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
    numbers = sorted(int(b.number) for b in fake.builds_for(SLUG))
    assert numbers == list(range(1, 41))


def test_start_stop_is_quick_and_restartable() -> None:
    began = time.monotonic()
    fake = TravisFake({SLUG: RepoScript()}).start()
    first = fake.port
    fake.stop()
    fake.start()
    assert call(fake, "GET", f"/repo/{ENC}/requests").status_code == 200
    fake.stop()
    assert first > 0 and time.monotonic() - began < 2.0


def test_auto_repos(clock: VirtualClock) -> None:
    with TravisFake(auto_repos=True, clock=clock) as fake:
        fake.auto_template = RepoScript(processing_delay=None)
        assert create(fake, "any%2Fthing").status_code == 202
        assert fake.script("any/thing").processing_delay is None
        assert create(fake, "nothing").status_code == 404


def test_the_package_exports_the_names_importers_use() -> None:
    from local import travis

    for name in (
        "TravisFake", "RepoScript", "Fault", "RANDOM_FAULTS", "DEFAULT_TOKEN", "ALL", "KINDS",
        "OUTCOMES", "token_fingerprint", "RecordedCall", "TravisRequest", "TravisBuild",
    ):  # fmt: skip
        assert getattr(travis, name) is not None
