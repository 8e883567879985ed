"""Requests in the Travis fake: created pending, processed on time, listed and found like Travis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from local.travis import RepoScript, TravisFake
from tests.local.test_travis_fake_support import (
    ENC,
    SLUG,
    SteppedClock,
    build_id_of,
    call,
    create,
    get_request,
    poll,
)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def fake(clock: SteppedClock) -> Iterator[TravisFake]:
    with TravisFake({SLUG: RepoScript(processing_delay=5)}, clock=clock) as server:
        yield server


def test_create_answers_202_pending_with_remaining_counted_before(fake: TravisFake) -> None:
    # Given a repository with the default limit of 10 requests an hour
    config = {"script": "make test"}
    # When the client creates two requests
    first = create(fake, branch="dev", sha="a" * 40, message="build [job:J-1]", config=config)
    second = create(fake, message="again")
    # Then both are 202 "pending", remaining_requests counted before each one
    assert first.status_code == 202 and "Retry-After" not in first.headers
    body = first.json()
    assert (body["@type"], body["resource_type"], body["remaining_requests"]) == (
        "pending",
        "request",
        10,
    )
    assert second.json()["remaining_requests"] == 9
    assert body["repository"] == {
        "@type": "repository",
        "@href": f"/repo/{fake.script(SLUG).repo_id}",
        "@representation": "minimal",
        "id": fake.script(SLUG).repo_id,
        "name": "app",
        "slug": SLUG,
    }
    sent = body["request"]
    assert sent["repository"] == {
        "id": fake.script(SLUG).github_id,
        "vcs_type": "GithubRepository",
        "owner_name": "octo",
        "name": "app",
    }
    assert sent["branch"] == "dev" and sent["sha"] == "a" * 40
    assert sent["message"] == "build [job:J-1]" and sent["user"]["id"] > 0
    assert sent["config"] == '{"script":"make test"}'  # the config as a JSON string
    assert sent["configs"] == [{"config": '{"script":"make test"}', "mode": None}]
    # queries/request.rb#schedule compacts nils away; the branch defaults to the default branch
    assert second.json()["request"]["branch"] == "main"
    assert "sha" not in second.json()["request"] and "config" not in second.json()["request"]


def test_pending_request_has_no_commit_until_processed(
    fake: TravisFake, clock: SteppedClock
) -> None:
    rid = create(fake, branch="main", message="build [job:J-2]").json()["request"]["id"]
    # Given the request was just created: pending, no commit, no branch, no message of ours
    pending = get_request(fake, rid)
    assert pending["state"] == "pending" and pending["result"] is None
    assert pending["message"] is None and pending["commit"] is None
    assert pending["branch_name"] is None and pending["builds"] == []
    assert pending["config"] == {} and pending["raw_configs"] == []
    assert pending["event_type"] == "api" and pending["created_at"].endswith("Z")
    # When Travis has processed it (processing_delay virtual seconds later)
    clock.advance(4.9)
    assert get_request(fake, rid)["state"] == "pending"
    clock.advance(0.2)
    done = get_request(fake, rid)
    # Then the sent message is the commit's message; request.message is Travis's status text
    assert (done["state"], done["result"], done["message"]) == ("finished", "approved", None)
    assert done["commit"]["message"] == "build [job:J-2]"
    assert done["commit"]["@representation"] == "minimal" and done["branch_name"] == "main"
    assert [b["state"] for b in done["builds"]] == ["created"]
    assert done["builds"][0]["number"] == "1"
    assert done["config"]["script"] == "pytest"  # the repository's .travis.yml
    assert [c["source"] for c in done["raw_configs"]] == [
        f"{SLUG}:.travis.yml@{done['commit']['sha']}"
    ]
    assert fake.requests_with("[job:J-2]")[0].message == "build [job:J-2]"


@pytest.mark.parametrize(
    ("delay", "pending_after", "finished_after"),
    [(0.0, None, 0.0), (600.0, 599.0, 601.0), (None, 10 * 86400.0, None)],
    ids=["fast", "slow", "never"],
)
def test_processing_delay(
    clock: SteppedClock,
    delay: float | None,
    pending_after: float | None,
    finished_after: float | None,
) -> None:
    with TravisFake({SLUG: RepoScript(processing_delay=delay)}, clock=clock) as fake:
        rid = create(fake).json()["request"]["id"]
        if pending_after is not None:
            clock.advance(pending_after)
            assert get_request(fake, rid)["state"] == "pending"
        if finished_after is not None:
            clock.advance(finished_after)
            assert get_request(fake, rid)["state"] == "finished"
        assert fake.created_count(SLUG) == 1


def test_processing_happens_without_calls_through_the_ticker(
    fake: TravisFake, clock: SteppedClock
) -> None:
    rid = create(fake).json()["request"]["id"]
    clock.advance(6)

    def state() -> str | None:
        with fake.world.lock:  # read the world directly: no call that would advance it
            found = fake.world.requests[rid].state
        return found if found == "finished" else None

    assert poll(state) == "finished"


def test_request_started_state_switch(clock: SteppedClock) -> None:
    script = RepoScript(processing_delay=5, request_started_for=30)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        rid = create(fake, message="m").json()["request"]["id"]
        clock.advance(6)
        started = get_request(fake, rid)
        # travis-core's intermediate state: the commit is known, no result and no build yet
        assert (started["state"], started["result"], started["builds"]) == ("started", None, [])
        assert started["commit"]["message"] == "m"
        clock.advance(30)
        assert get_request(fake, rid)["state"] == "finished"


@pytest.mark.parametrize("approved_result", ["approved", None])
def test_approved_result_switch(clock: SteppedClock, approved_result: str | None) -> None:
    script = RepoScript(processing_delay=0, approved_result=approved_result)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        rid = create(fake).json()["request"]["id"]
        body = get_request(fake, rid)
        # travis-web request.js: "some of the requests have a null result" despite a build
        assert body["result"] == approved_result and len(body["builds"]) == 1


def test_rejection_reason_is_the_message_and_lint_entries_have_no_text(
    clock: SteppedClock,
) -> None:
    lint = {"id": 1, "level": "warn", "key": "root", "code": "unknown_key", "args": {"key": "x"}}
    script = RepoScript(
        processing_delay=0, reject=True, messages=[{**lint, "src": None, "line": 3}]
    )
    with TravisFake({SLUG: script}, clock=clock) as fake:
        body = get_request(fake, create(fake).json()["request"]["id"])
        assert (body["state"], body["result"]) == ("finished", "rejected")
        assert body["message"] == "branch not included or excluded" and body["builds"] == []
        (message,) = body["messages"]
        assert set(message) == {
            "@type",
            "@representation",
            "id",
            "level",
            "key",
            "code",
            "args",
            "src",
            "line",
        }
        assert fake.builds_for(SLUG) == []


@pytest.mark.parametrize("only_with_yml", [False, True])
def test_missing_travis_yml(clock: SteppedClock, only_with_yml: bool) -> None:
    script = RepoScript(
        processing_delay=0, travis_yml=None, builds_only_with_travis_yml=only_with_yml
    )
    with TravisFake({SLUG: script}, clock=clock) as fake:
        bare = get_request(fake, create(fake).json()["request"]["id"])
        if only_with_yml:
            assert bare["result"] == "rejected" and ".travis.yml is missing" in bare["message"]
        else:  # repository/settings.rb: off by default, so Travis builds its defaults
            assert bare["result"] == "approved" and bare["config"] == {
                "language": "ruby",
                "os": "linux",
            }
        given = get_request(fake, create(fake, config={"script": "true"}).json()["request"]["id"])
        assert given["result"] == "approved" and given["config"]["script"] == "true"
        assert given["raw_configs"] == [
            {"@type": "request_raw_configuration", "@representation": "minimal",
             "config": '{"script":"true"}', "source": "api", "merge_mode": None},
        ]  # fmt: skip


@pytest.mark.parametrize("unknown_sha", ["reject", "build_head"])
def test_unknown_sha_switch(clock: SteppedClock, unknown_sha: str) -> None:
    head = "c" * 40
    script = RepoScript(
        processing_delay=0, known_commits={head}, head_sha=head, unknown_sha=unknown_sha
    )
    with TravisFake({SLUG: script}, clock=clock) as fake:
        body = get_request(fake, create(fake, sha="d" * 40).json()["request"]["id"])
        if unknown_sha == "reject":
            assert (body["result"], body["message"], body["commit"]) == (
                "rejected",
                "missing commit",
                None,
            )
        else:  # legacy behaviour: the sha is ignored and the branch head is built
            assert body["result"] == "approved" and body["commit"]["sha"] == head
            assert get_build_sha(fake, body) == head
        known = get_request(fake, create(fake, sha=head).json()["request"]["id"])
        assert known["result"] == "approved"


def get_build_sha(fake: TravisFake, request_body: dict[str, Any]) -> str:
    build = call(fake, "GET", f"/build/{request_body['builds'][0]['id']}").json()
    return str(build["commit"]["sha"])


def test_travis_may_build_another_commit_than_asked(clock: SteppedClock) -> None:
    script = RepoScript(processing_delay=0, build_sha="b" * 40)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        body = get_request(fake, create(fake, sha="a" * 40).json()["request"]["id"])
        assert body["commit"]["sha"] == "a" * 40
        assert get_build_sha(fake, body) == "b" * 40  # what RevisionOutOfSync checks catch


def test_list_is_newest_first_and_paginated(fake: TravisFake, clock: SteppedClock) -> None:
    ids = [create(fake, message=f"m{i}").json()["request"]["id"] for i in range(3)]
    body = call(fake, "GET", f"/repo/{ENC}/requests?limit=2").json()
    assert body["@type"] == "requests" and [r["id"] for r in body["requests"]] == ids[::-1][:2]
    page = body["@pagination"]
    assert (page["limit"], page["offset"], page["count"], page["is_first"], page["is_last"]) == (
        2, 0, 3, True, False,
    )  # fmt: skip
    assert page["next"] == {
        "@href": f"/repo/{ENC}/requests?limit=2&offset=2",
        "offset": 2,
        "limit": 2,
    }
    second = call(fake, "GET", f"/repo/{ENC}/requests?limit=2&offset=2").json()
    assert [r["id"] for r in second["requests"]] == ids[:1]
    assert second["@pagination"]["prev"]["offset"] == 0
    # paginator.rb: default 25, max 100 (also for 0), negative offset is 0, non-integers are 400
    assert call(fake, "GET", f"/repo/{ENC}/requests").json()["@pagination"]["limit"] == 25
    assert call(fake, "GET", f"/repo/{ENC}/requests?limit=0").json()["@pagination"]["limit"] == 100
    assert (
        call(fake, "GET", f"/repo/{ENC}/requests?limit=500").json()["@pagination"]["limit"] == 100
    )
    assert call(fake, "GET", f"/repo/{ENC}/requests?offset=-3").json()["@pagination"]["offset"] == 0
    bad = call(fake, "GET", f"/repo/{ENC}/requests?limit=ten")
    assert bad.status_code == 400 and bad.json()["error_type"] == "wrong_params"
    assert bad.json()["error_message"] == "limit must be an integer"
    assert '\n  "@type": "requests"' in call(fake, "GET", f"/repo/{ENC}/requests").text


def test_list_filters(fake: TravisFake, clock: SteppedClock) -> None:
    fake.add_repo(SLUG, processing_delay=5)
    t0 = clock.now()
    old = create(fake, branch="feature").json()["request"]["id"]
    clock.advance(100)
    newer = create(fake, branch="main").json()["request"]["id"]
    fresh = create(fake, branch="feature").json()["request"]["id"]  # still pending below

    def ids(query: str) -> list[int]:
        resp = call(fake, "GET", f"/repo/{ENC}/requests?{query}")
        assert resp.status_code == 200, resp.text
        return [r["id"] for r in resp.json()["requests"]]

    assert ids("state=pending") == [fresh, newer]
    assert ids("state=finished") == [old]
    assert ids("result=approved") == [old]
    # queries/requests.rb: a branch filter needs Travis's branch row; pending requests have none
    assert ids("branch=feature") == [old]
    assert ids("branch=nowhere") == []
    middle = datetime.fromtimestamp(t0 + 50, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(f"from={middle}") == [fresh, newer]
    assert ids(f"to={middle}") == [old]
    assert call(fake, "GET", f"/repo/{ENC}/requests?from=yesterday").status_code == 500


def test_minimal_representation_stays_small_with_a_large_config(clock: SteppedClock) -> None:
    script = RepoScript(processing_delay=0, config_bytes=300_000)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        for i in range(3):
            create(fake, message=f"m{i}")
        standard = call(fake, "GET", f"/repo/{ENC}/requests?limit=3")
        minimal = call(fake, "GET", f"/repo/{ENC}/requests?limit=3&representation=minimal")
        # Then every standard entry carries the whole .travis.yml (raw) and the parsed config
        assert len(standard.content) > 3 * 2 * 300_000
        entry = standard.json()["requests"][0]
        assert len(entry["raw_configs"][0]["config"]) >= 300_000 and entry["config"]["env"]
        assert len(minimal.content) < 5_000
        assert set(minimal.json()["requests"][0]) == {
            "@type", "@href", "@representation", "id", "state", "result", "message",
            "pull_request_mergeable",
        }  # fmt: skip
        # include= adds fields to the minimal entries, and renders commits in standard
        query = "limit=3&representation=minimal&include=request.commit,request.created_at"
        included = call(fake, "GET", f"/repo/{ENC}/requests?{query}").json()["requests"][0]
        assert included["created_at"] and included["commit"]["@representation"] == "standard"
        assert "author" in included["commit"] and "raw_configs" not in included


def test_include_must_be_well_formed(fake: TravisFake) -> None:
    create(fake)
    bad = call(fake, "GET", f"/repo/{ENC}/requests?include=request")
    assert (
        bad.status_code == 400
        and bad.json()["error_message"] == "illegal format for include parameter"
    )
    unknown = call(fake, "GET", f"/repo/{ENC}/requests?include=request.nope")
    assert unknown.json()["error_message"] == 'no field "request.nope" to include'


def test_request_is_found_by_id_alone(fake: TravisFake) -> None:
    fake.add_repo("other/repo")
    rid = create(fake).json()["request"]["id"]
    # queries/request.rb#find: the repository in the path plays no part
    body = get_request(fake, rid, slug="other%2Frepo")
    assert body["id"] == rid and body["repository"]["slug"] == SLUG
    missing = call(fake, "GET", f"/repo/{ENC}/request/999")
    assert missing.status_code == 404 and missing.json()["resource_type"] == "request"
    assert missing.json()["error_message"] == "request not found (or insufficient access)"
    assert call(fake, "GET", f"/repo/{ENC}/request/abc").status_code == 404


def test_unsafelisted_params_come_back_as_warnings(fake: TravisFake) -> None:
    resp = call(fake, "POST", f"/repo/{ENC}/requests", {"request": {}, "colour": "red"})
    assert resp.status_code == 202
    (warning,) = resp.json()["@warnings"]
    assert warning == {
        "@type": "warning",
        "message": "query parameter colour not safelisted, ignored",
        "warning_type": "ignored_parameter",
        "parameter": "colour",
    }
    listing = call(fake, "GET", f"/repo/{ENC}/requests?sort_by=id").json()
    assert listing["@warnings"][0]["parameter"] == "sort_by"  # requests are not sortable


def test_request_params_may_be_nested_dotted_or_top_level(
    fake: TravisFake, clock: SteppedClock
) -> None:
    nested = create(fake, branch="a").json()["request"]["branch"]
    dotted = call(fake, "POST", f"/repo/{ENC}/requests", {"request.branch": "b"}).json()
    top = call(fake, "POST", f"/repo/{ENC}/requests", {"branch": "c", "message": "top"}).json()
    assert (nested, dotted["request"]["branch"], top["request"]["branch"]) == ("a", "b", "c")
    clock.advance(10)
    assert get_request(fake, top["request"]["id"])["commit"]["message"] == "top"


def test_limit_counts_a_top_level_branch_only(clock: SteppedClock) -> None:
    # queries/requests.rb#count goes through #find, which filters on a top-level `branch`
    with TravisFake({SLUG: RepoScript(processing_delay=0, rate_limit=1)}, clock=clock) as fake:
        assert create(fake, branch="main").status_code == 202
        assert create(fake, branch="main").status_code == 429
        top = call(fake, "POST", f"/repo/{ENC}/requests", {"branch": "new-branch"})
        assert top.status_code == 202 and top.json()["remaining_requests"] == 1
        main = call(fake, "POST", f"/repo/{ENC}/requests", {"branch": "main"})
        assert main.status_code == 429


def test_build_appears_on_the_request_once_processed(fake: TravisFake, clock: SteppedClock) -> None:
    rid = create(fake).json()["request"]["id"]
    clock.advance(5)
    bid = build_id_of(fake, rid)
    assert fake.get_build(bid).request_id == rid and fake.get_request(rid).build_id == bid
