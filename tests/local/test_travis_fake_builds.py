"""Builds in the Travis fake: timelines in virtual time, stages, history, async cancel, logs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.travis import DEFAULT_TOKEN, JobScript, RepoScript, SeedBuild, TravisFake
from tests.local.test_travis_fake_support import (
    ENC,
    HEADERS,
    SLUG,
    SteppedClock,
    build_id_of,
    call,
    create,
    get_build,
)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def fake(clock: SteppedClock) -> Iterator[TravisFake]:
    script = RepoScript(
        processing_delay=0,
        queue_delay=30,
        jobs=[JobScript(duration=100), JobScript(duration=200)],
    )
    with TravisFake({SLUG: script}, clock=clock) as server:
        yield server


def new_build(fake: TravisFake, **request: Any) -> int:
    return build_id_of(fake, create(fake, **request).json()["request"]["id"])


def test_build_timeline_in_virtual_time(fake: TravisFake, clock: SteppedClock) -> None:
    bid = new_build(fake, message="timeline")
    full = "?include=build.jobs"

    def jobs() -> list[str]:
        return [j["state"] for j in get_build(fake, bid, full)["jobs"]]

    created = get_build(fake, bid)
    assert (created["state"], created["number"], created["started_at"]) == ("created", "1", None)
    # Then jobs come as {id} only, without a state, unless include=build.jobs
    assert set(created["jobs"][0]) == {"@type", "@href", "@representation", "id"}
    assert created["@permissions"] == {
        "read": True,
        "cancel": True,
        "restart": True,
        "prioritize": True,
    }
    assert jobs() == ["created", "created"]
    clock.advance(11)
    assert jobs() == ["queued", "queued"] and get_build(fake, bid)["state"] == "created"
    clock.advance(10)
    assert jobs() == ["received", "received"]
    clock.advance(10)
    started = get_build(fake, bid, full)
    assert started["state"] == "started" and started["started_at"] and started["duration"] is None
    assert [j["number"] for j in started["jobs"]] == ["1.1", "1.2"]
    assert started["jobs"][0]["build"] == {"@href": f"/build/{bid}"}  # already rendered above
    clock.advance(100)
    assert jobs() == ["passed", "started"]
    clock.advance(100)
    done = get_build(fake, bid, full)
    # travis-hub matrix.rb#duration: the sum of the jobs' run times, not the wall time
    assert (done["state"], done["duration"]) == ("passed", 300)
    assert done["finished_at"] and done["jobs"][1]["finished_at"] == done["finished_at"]
    assert done["commit"]["message"] == "timeline" and done["branch"]["name"] == "main"
    assert done["repository"]["slug"] == SLUG and done["event_type"] == "api"
    assert done["created_by"]["@type"] == "user" and done["updated_at"].endswith("Z")
    assert fake.get_build(bid).state == "passed"


@pytest.mark.parametrize("queue_states", [False, True])
def test_build_queue_states_switch(clock: SteppedClock, queue_states: bool) -> None:
    script = RepoScript(processing_delay=0, queue_delay=30, build_queue_states=queue_states)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        bid = new_build(fake)
        clock.advance(11)
        assert get_build(fake, bid)["state"] == ("queued" if queue_states else "created")
        clock.advance(10)
        assert get_build(fake, bid)["state"] == ("received" if queue_states else "created")


@pytest.mark.parametrize("outcome", ["passed", "failed", "errored", "canceled"])
def test_each_outcome(clock: SteppedClock, outcome: str) -> None:
    script = RepoScript(processing_delay=0, outcome=outcome, jobs=2, job_duration=10, queue_delay=0)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        bid = new_build(fake)
        clock.advance(11)
        build = get_build(fake, bid, "?include=build.jobs")
        assert build["state"] == outcome
        assert [j["state"] for j in build["jobs"]] == ["passed", outcome]


def test_a_failed_stage_cancels_the_later_stages(clock: SteppedClock) -> None:
    jobs = [
        JobScript(duration=50, stage="test", state="failed"),
        JobScript(duration=20, stage="test", allow_failure=True, state="failed"),
        JobScript(duration=50, stage="deploy"),
    ]
    with TravisFake(
        {SLUG: RepoScript(processing_delay=0, queue_delay=0, jobs=jobs)}, clock=clock
    ) as fake:
        bid = new_build(fake)
        clock.advance(51)
        build = get_build(fake, bid, "?include=build.jobs")
        # travis-hub build.rb#matrix_state: the first stage that did not pass; stage.rb cancels
        assert build["state"] == "failed" and build["duration"] == 70
        deploy = build["jobs"][2]
        assert (deploy["state"], deploy["started_at"]) == ("canceled", None)
        assert [(s["name"], s["state"]) for s in build["stages"]] == [
            ("test", "failed"),
            ("deploy", "canceled"),
        ]


def test_allow_failure_jobs_do_not_fail_the_build(clock: SteppedClock) -> None:
    jobs = [JobScript(duration=10), JobScript(duration=10, state="failed", allow_failure=True)]
    with TravisFake(
        {SLUG: RepoScript(processing_delay=0, queue_delay=0, jobs=jobs)}, clock=clock
    ) as fake:
        bid = new_build(fake)
        clock.advance(11)
        assert get_build(fake, bid)["state"] == "passed"


def test_previous_state_and_numbers(clock: SteppedClock) -> None:
    script = RepoScript(
        processing_delay=0, queue_delay=0, jobs=1, job_duration=10, outcome="failed"
    )
    with TravisFake({SLUG: script}, clock=clock) as fake:
        first = new_build(fake)
        clock.advance(11)
        second = new_build(fake)
        other = new_build(fake, branch="elsewhere")
        assert get_build(fake, first)["previous_state"] is None
        assert get_build(fake, second)["previous_state"] == "failed"
        assert get_build(fake, other)["previous_state"] is None
        assert [get_build(fake, b)["number"] for b in (first, second, other)] == ["1", "2", "3"]


def test_builds_list_filters_and_sorts_with_history(clock: SteppedClock) -> None:
    history = [
        SeedBuild(branch="main", duration=600, finished_ago=7200),
        SeedBuild(branch="main", duration=700, finished_ago=3600),
        SeedBuild(branch="main", state="failed", duration=100, finished_ago=1800),
        SeedBuild(branch="feature", duration=900, finished_ago=600),
    ]
    script = RepoScript(processing_delay=0, queue_delay=0, history=history, job_duration=500)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        running = new_build(fake)
        clock.advance(1)

        def builds(query: str) -> list[tuple[str, str, int | None]]:
            resp = call(fake, "GET", f"/repo/{ENC}/builds?{query}")
            assert resp.status_code == 200, resp.text
            return [(b["number"], b["state"], b["duration"]) for b in resp.json()["builds"]]

        # queries/builds.rb default sort number:desc,id:desc
        assert [n for n, _, _ in builds("")] == ["5", "4", "3", "2", "1"]
        # what a worker asks to learn recent durations of a branch
        query = "branch.name=main&build.state=passed&sort_by=finished_at:desc&limit=2"
        assert builds(query) == [("2", "passed", 700), ("1", "passed", 600)]
        assert builds("state=failed") == [("3", "failed", 100)]
        # Postgres: NULLS FIRST descending, so the running build leads
        assert builds("sort_by=finished_at:desc")[0] == ("5", "started", None)
        assert builds("sort_by=finished_at")[-1][0] == "5"
        warned = call(fake, "GET", f"/repo/{ENC}/builds?sort_by=colour").json()
        assert warned["@warnings"][0]["warning_type"] == "ignored_value"
        assert running in [b.id for b in fake.builds_for(SLUG)]


def test_cancel_is_asynchronous(clock: SteppedClock) -> None:
    script = RepoScript(processing_delay=0, queue_delay=0, jobs=2, job_duration=600, cancel_delay=8)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        bid = new_build(fake)
        clock.advance(100)
        resp = call(fake, "POST", f"/build/{bid}/cancel")
        assert resp.status_code == 202
        body = resp.json()
        assert (body["@type"], body["state_change"], body["resource_type"]) == (
            "pending",
            "cancel",
            "build",
        )
        assert body["build"]["id"] == bid and body["build"]["@representation"] == "minimal"
        # Then the build is still started until travis-hub gets to the cancel
        clock.advance(7)
        assert get_build(fake, bid)["state"] == "started"
        clock.advance(2)
        done = get_build(fake, bid, "?include=build.jobs")
        assert done["state"] == "canceled" and done["finished_at"]
        assert {j["state"] for j in done["jobs"]} == {"canceled"}
        assert done["duration"] == 2 * 108
        again = call(fake, "POST", f"/build/{bid}/cancel")
        assert again.status_code == 409 and again.json()["error_type"] == "build_not_cancelable"


def test_cancel_permission_is_checked_before_the_409(clock: SteppedClock) -> None:
    script = RepoScript(processing_delay=0, queue_delay=0, jobs=1, job_duration=10)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        fake.add_token("viewer", can_cancel=False)
        bid = new_build(fake)
        clock.advance(11)  # finished
        viewer = {**HEADERS, "Authorization": "token viewer"}
        resp = call(fake, "POST", f"/build/{bid}/cancel", headers=viewer)
        assert resp.status_code == 403 and resp.json()["permission"] == "cancel"
        assert (
            resp.json()["error_type"] == "insufficient_access" and resp.json()["build"]["id"] == bid
        )
        anonymous = {k: v for k, v in HEADERS.items() if k != "Authorization"}
        resp = call(fake, "POST", f"/build/{bid}/cancel", headers=anonymous)
        assert resp.json()["error_type"] == "login_required"
        assert call(fake, "POST", f"/build/{bid}/cancel").status_code == 409


def test_cancel_before_any_job_started(clock: SteppedClock) -> None:
    script = RepoScript(processing_delay=0, queue_delay=60, cancel_delay=1)
    with TravisFake({SLUG: script}, clock=clock) as fake:
        bid = new_build(fake)
        assert call(fake, "POST", f"/build/{bid}/cancel").status_code == 202
        clock.advance(2)
        build = get_build(fake, bid, "?include=build.jobs")
        assert (build["state"], build["started_at"], build["duration"]) == ("canceled", None, 0)


def test_logs_look_like_travis_logs(clock: SteppedClock) -> None:
    jobs = [JobScript(duration=100), JobScript(duration=100, state="failed")]
    with TravisFake(
        {SLUG: RepoScript(processing_delay=0, queue_delay=10, jobs=jobs)}, clock=clock
    ) as fake:
        bid = new_build(fake)
        job_ids = [j.id for j in fake.get_build(bid).jobs]
        # Given a job that has not started: no log yet (404, as text/plain like the .txt asked)
        early = call(fake, "GET", f"/job/{job_ids[0]}/log.txt")
        assert early.status_code == 404 and early.headers["Content-Type"] == "text/plain"
        assert early.json()["error_message"] == "log not found"
        fake.script(SLUG).log_before_start = "empty"  # the other reading of the sources
        assert call(fake, "GET", f"/job/{job_ids[0]}/log.txt").text == ""
        clock.advance(60)
        partial = call(fake, "GET", f"/job/{job_ids[1]}/log.txt").text
        clock.advance(60)
        failed = call(fake, "GET", f"/job/{job_ids[1]}/log.txt")
        assert failed.status_code == 200 and failed.headers["Content-Type"] == "text/plain"
        text = failed.text
        assert failed.text.startswith(partial) and len(partial) < len(text)
        assert "travis_fold:start:worker_info\r\x1b[0K" in text and "\x1b[31;1m" in text
        assert "FAILED tests/test_app.py::test_checkout" in text
        assert text.endswith("exited with 1.\x1b[0m\n\n\nDone. Your build exited with 1.\n")
        assert '\x1b[31;1mThe command "pytest" exited with 1.\x1b[0m' in text
        passed = call(fake, "GET", f"/job/{job_ids[0]}/log.txt").text
        assert 'The command "pytest" exited with 0.' in passed
        # renderer/log.rb answers the whole log: a Range header is not looked at
        ranged = call(
            fake, "GET", f"/job/{job_ids[1]}/log.txt", headers={**HEADERS, "Range": "bytes=0-9"}
        )
        assert ranged.status_code == 200 and ranged.text == text
        as_json = call(fake, "GET", f"/job/{job_ids[1]}/log").json()
        assert (
            as_json["content"] == text
            and as_json["@raw_log_href"] == f"/v3/job/{job_ids[1]}/log.txt"
        )
        # Models::Job.find raises for an unknown job and nothing rescues it: a 500
        unknown = call(fake, "GET", "/job/1/log.txt")
        assert unknown.status_code == 500 and unknown.text == "Sorry, we experienced an error.\n"


def test_scripted_log(clock: SteppedClock) -> None:
    jobs = [JobScript(duration=10, state="errored", log="custom\nlog\n")]
    with TravisFake(
        {SLUG: RepoScript(processing_delay=0, queue_delay=0, jobs=jobs)}, clock=clock
    ) as fake:
        bid = new_build(fake)
        clock.advance(11)
        job_id = fake.get_build(bid).jobs[0].id
        assert call(fake, "GET", f"/job/{job_id}/log.txt").text == "custom\nlog\n"
        assert get_build(fake, bid)["state"] == "errored"


def test_builds_are_invisible_to_tokens_without_access_on_private_repos(
    clock: SteppedClock,
) -> None:
    script = RepoScript(processing_delay=0, private=True)
    with TravisFake(
        {SLUG: script}, tokens={DEFAULT_TOKEN: "all", "narrow": ["x/y"]}, clock=clock
    ) as fake:
        bid = new_build(fake)
        narrow = {**HEADERS, "Authorization": "token narrow"}
        resp = call(fake, "GET", f"/build/{bid}", headers=narrow)
        assert (
            resp.status_code == 404
            and resp.json()["error_message"] == "build not found (or insufficient access)"
        )
        assert call(fake, "GET", "/build/123").status_code == 404
