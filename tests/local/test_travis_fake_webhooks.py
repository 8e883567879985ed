"""Webhooks of the Travis fake: merged configs, notification rules, signed POSTs, no retries."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from local.clock import VirtualClock
from local.travis import RepoScript, TravisFake
from local.travis.config import merge
from tests.local.test_travis_fake_support import (
    SLUG,
    Receiver,
    SteppedClock,
    build_id_of,
    call,
    create,
    get_request,
    poll,
)

USER_YML = """language: python
script: pytest
notifications:
  email: false
  webhooks:
    urls:
      - {user}
    on_start: always
"""


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def fake_for(clock: VirtualClock, **script: Any) -> TravisFake:
    defaults: dict[str, Any] = {
        "processing_delay": 0,
        "queue_delay": 0,
        "jobs": 1,
        "job_duration": 10,
    }
    return TravisFake({SLUG: RepoScript(**{**defaults, **script})}, clock=clock)


def hook(url: str, **settings: Any) -> dict[str, Any]:
    return {"notifications": {"webhooks": {"urls": [url], **settings}}}


def run_build(fake: TravisFake, clock: SteppedClock, config: dict[str, Any], **request: Any) -> int:
    rid = create(fake, config=config, **request).json()["request"]["id"]
    bid = build_id_of(fake, rid)
    clock.advance(11)
    return bid


def test_delivery_is_a_signed_form_post_verifiable_with_the_config_key(
    clock: SteppedClock, receiver: Receiver
) -> None:
    with fake_for(clock) as fake:
        bid = run_build(fake, clock, hook(receiver.url + "/ours"), message="build [job:J-9]")
        (post,) = poll(lambda: receiver.to("/ours"))
        # Then: form-encoded, one field `payload`, signed with the key GET /config serves
        assert set(post.form) == {"payload"}
        assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert post.headers["Travis-Repo-Slug"] == SLUG
        assert post.headers["User-Agent"] == "Travis CI Notifications"
        text = post.form["payload"][0]
        pem = call(fake, "GET", "/config", headers={"User-Agent": "worker/1"}).json()
        public = serialization.load_pem_public_key(
            pem["config"]["notifications"]["webhook"]["public_key"].encode()
        )
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(
            base64.b64decode(post.headers["Signature"]),
            text.encode(),
            padding.PKCS1v15(),
            hashes.SHA1(),  # noqa: S303 (what travis-tasks signs with)
        )
        payload = json.loads(text)
        assert (payload["id"], payload["number"], payload["state"]) == (bid, "1", "passed")
        assert (payload["status"], payload["result"], payload["status_message"]) == (0, 0, "Passed")
        assert payload["message"] == "build [job:J-9]" and payload["branch"] == "main"
        assert payload["duration"] == 10 and payload["type"] == "api"
        assert payload["build_url"] == f"https://travis-ci.com/{SLUG}/builds/{bid}"
        assert (
            payload["repository"]["owner_name"] == "octo" and payload["repository"]["name"] == "app"
        )
        (job,) = payload["matrix"]
        assert job["parent_id"] == bid and job["started_at"] == payload["started_at"]
        assert not {"request", "request_id"} & set(payload)  # no request id in the payload
        (record,) = fake.deliveries_for(bid)
        assert (record.status, record.event, record.payload) == (200, "build:finished", text)


def test_deep_merge_append_adds_our_url_to_the_users(
    clock: SteppedClock, receiver: Receiver
) -> None:
    yml = USER_YML.format(user=receiver.url + "/user")
    with fake_for(clock, travis_yml=yml) as fake:
        rid = create(fake, config=hook(receiver.url + "/ours")).json()["request"]["id"]
        merged = get_request(fake, rid)["config"]["notifications"]
        # travis-yml support/merge.rb#append is `rgt + lft`: the user's urls first, then ours
        assert merged["webhooks"]["urls"] == [receiver.url + "/user", receiver.url + "/ours"]
        assert merged["email"] is False and merged["webhooks"]["on_start"] == "always"
        assert get_request(fake, rid)["raw_configs"][0]["source"] == "api"
        clock.advance(11)
        poll(lambda: len(receiver.posts) == 4)  # started + finished, to both urls
        assert sorted(p.path for p in receiver.posts) == ["/ours", "/ours", "/user", "/user"]


@pytest.mark.parametrize("mode", ["deep_merge", "merge", "replace"])
def test_other_merge_modes_displace_the_users_webhook(
    clock: SteppedClock, receiver: Receiver, mode: str
) -> None:
    yml = USER_YML.format(user=receiver.url + "/user")
    with fake_for(clock, travis_yml=yml) as fake:
        rid = create(fake, config=hook(receiver.url + "/ours"), merge_mode=mode).json()["request"][
            "id"
        ]
        body = get_request(fake, rid)
        notifications = body["config"]["notifications"]
        assert notifications["webhooks"]["urls"] == [receiver.url + "/ours"]
        # merge replaces the whole `notifications`; deep_merge merges hashes, replaces lists
        assert ("email" in notifications) is (mode == "deep_merge")
        if mode == "replace":  # configs/config/api.rb: .travis.yml is not even loaded
            assert [c["source"] for c in body["raw_configs"]] == ["api"] and "script" not in body[
                "config"
            ]
        clock.advance(11)
        poll(lambda: receiver.to("/ours"))
        assert receiver.to("/user") == []


def test_a_string_meeting_a_hash_is_replaced_by_the_apis_value(
    clock: SteppedClock, receiver: Receiver
) -> None:
    yml = f"script: pytest\nnotifications:\n  webhooks: {receiver.url}/user\n"
    with fake_for(clock, travis_yml=yml) as fake:
        run_build(fake, clock, hook(receiver.url + "/ours"))
        poll(lambda: receiver.to("/ours"))
        assert receiver.to("/user") == []
    with fake_for(
        clock,
        travis_yml=f"notifications:\n  webhooks:\n    urls: [{receiver.url}/user]\n",
    ) as fake:
        run_build(fake, clock, {"notifications": {"webhooks": receiver.url + "/ours"}})
        poll(lambda: receiver.to("/ours") and len(receiver.to("/ours")) == 2)
        assert receiver.to("/user") == []


def test_merge_rules_directly() -> None:
    api = {"a": [3], "b": {"x": 1}, "c": "api"}
    user = {"a": [1, 2], "b": {"x": 0, "y": 2}, "c": "user", "d": True}
    assert merge(api, user, None) == {"a": [1, 2, 3], "b": {"x": 1, "y": 2}, "c": "api", "d": True}
    assert merge(api, user, "deep_merge_prepend")["a"] == [3, 1, 2]
    assert merge(api, user, "deep_merge")["a"] == [3]
    assert merge(api, user, "merge") == {"a": [3], "b": {"x": 1}, "c": "api", "d": True}
    assert merge(api, user, "replace") == api
    with pytest.raises(ValueError, match="Unknown merge mode"):
        merge(api, user, "sideways")


@pytest.mark.parametrize(
    ("settings", "events"),
    [
        ({}, ["build:finished"]),  # on_start is off by default (notify.rb DEFAULTS)
        ({"on_start": "always"}, ["build:started", "build:finished"]),
        ({"on_success": "never"}, []),
        ({"on_success": False, "on_start": True}, ["build:started"]),
    ],
)
def test_on_settings(
    clock: SteppedClock, receiver: Receiver, settings: dict[str, Any], events: list[str]
) -> None:
    with fake_for(clock) as fake:
        run_build(fake, clock, hook(receiver.url, **settings))
        assert fake.webhooks_idle()  # the build is over and its webhooks are out
        assert [d.event for d in fake.deliveries] == events


def test_top_level_on_success_is_inherited(clock: SteppedClock, receiver: Receiver) -> None:
    with fake_for(clock) as fake:
        config = {"notifications": {"on_success": "never", "webhooks": {"urls": [receiver.url]}}}
        bid = run_build(fake, clock, config)
        assert fake.get_build(bid).state == "passed" and fake.webhooks_idle()
        assert fake.deliveries == []


def test_change_frequency(clock: SteppedClock, receiver: Receiver) -> None:
    with fake_for(clock) as fake:
        config = hook(receiver.url, on_success="change")
        run_build(fake, clock, config)  # the first build of the branch: sent
        poll(lambda: fake.deliveries)
        run_build(fake, clock, config)  # passed after passed: not sent
        assert fake.webhooks_idle() and len(fake.deliveries) == 1


@pytest.mark.parametrize("on_cancel", ["always", "never"])
def test_canceled_builds_notify_on_cancel(
    clock: SteppedClock, receiver: Receiver, on_cancel: str
) -> None:
    with fake_for(clock, job_duration=600, cancel_delay=5) as fake:
        rid = create(fake, config=hook(receiver.url, on_cancel=on_cancel)).json()["request"]["id"]
        bid = build_id_of(fake, rid)
        clock.advance(10)
        assert call(fake, "POST", f"/build/{bid}/cancel").status_code == 202
        clock.advance(6)
        assert call(fake, "GET", f"/build/{bid}").json()["state"] == "canceled"
        if on_cancel == "always":
            assert fake.webhooks_idle()
            (delivery,) = fake.deliveries
            assert delivery.event == "build:canceled"
            assert json.loads(delivery.payload)["status_message"] == "Canceled"
        else:
            assert fake.webhooks_idle() and fake.deliveries == []


@pytest.mark.parametrize("errored_event", ["finished", "errored"])
def test_errored_event_switch(clock: SteppedClock, receiver: Receiver, errored_event: str) -> None:
    fake = TravisFake(
        {
            SLUG: RepoScript(
                processing_delay=0, queue_delay=0, jobs=1, job_duration=10, outcome="errored"
            )
        },
        clock=clock,
        errored_event=errored_event,
    )
    with fake:
        # on_failure governs a finished build that errored; on_error governs build:errored
        run_build(fake, clock, hook(receiver.url + "/a", on_failure="never"))
        run_build(fake, clock, hook(receiver.url + "/b", on_error="never"))
        assert fake.webhooks_idle()
        (delivery,) = fake.deliveries
        if errored_event == "finished":
            assert (delivery.event, delivery.url) == ("build:finished", receiver.url + "/b")
        else:
            assert (delivery.event, delivery.url) == ("build:errored", receiver.url + "/a")
        assert json.loads(delivery.payload)["status"] == 1


def test_deliveries_are_never_retried(clock: SteppedClock) -> None:
    with Receiver(status=500) as failing, fake_for(clock) as fake:
        run_build(fake, clock, hook(failing.url))
        assert fake.webhooks_idle()
        (delivery,) = fake.deliveries
        assert delivery.status == 500 and len(failing.posts) == 1
        clock.advance(3600)
        assert fake.webhooks_idle()
        assert len(failing.posts) == 1 and len(fake.deliveries) == 1
    with fake_for(clock) as fake:
        run_build(fake, clock, hook("http://127.0.0.1:9/closed"))
        assert fake.webhooks_idle()
        (unreachable,) = fake.deliveries
        assert unreachable.status is None and unreachable.error


def test_drop_switch(clock: SteppedClock, receiver: Receiver) -> None:
    with fake_for(clock) as fake:
        fake.drop_webhooks(1)
        run_build(fake, clock, hook(receiver.url))
        assert fake.webhooks_idle()
        (dropped,) = fake.deliveries
        assert dropped.dropped and dropped.status is None and receiver.posts == []
        run_build(fake, clock, hook(receiver.url))
        poll(lambda: receiver.posts)


def test_delay_switch(receiver: Receiver) -> None:
    clock = VirtualClock(0.01)
    with fake_for(clock) as fake:
        fake.webhook_delay = 30.0  # virtual seconds: 0.3 s here
        rid = create(fake, config=hook(receiver.url)).json()["request"]["id"]
        bid = poll(lambda: get_request(fake, rid)["builds"])[0]["id"]
        (delivery,) = poll(lambda: fake.deliveries, timeout=10)
        finished = fake.get_build(bid).finished_as_of(clock.now())
        assert finished is not None and delivery.timestamp >= finished + 30.0
