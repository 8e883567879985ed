"""End to end: push completion — Travis's signed webhook wakes the watch at once; a forged one
cannot produce a result; a lost one falls back to the schedule."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from local.clock import VirtualClock
from tests.e2e.conftest import CONFIG, QUICK, REVISION, SLUG, quick_travis, run_action
from tests.e2e.test_stop import watching

pytestmark = pytest.mark.e2e
LONG = replace(QUICK, jobs=2, job_duration=900.0)  # 15 minutes, no history: polling backs off


def test_the_webhook_wakes_the_watch_when_the_build_ends(
    worker_for: Any, clock: VirtualClock, push_template: dict[str, Any]
) -> None:
    # Given push completion is enabled and a 15-minute build
    travis = quick_travis(clock)
    travis.add_repo(SLUG, LONG)
    worker = worker_for(template=push_template, travis=travis, clock=clock)

    # When the action runs
    run = run_action(worker, timeout=60)

    # Then the build request carried the worker's webhook URL (merged into .travis.yml)
    assert run.status == "Succeeded"
    (request,) = travis.requests_for(SLUG)
    assert worker.function_url is not None
    urls = request.merged_config["notifications"]["webhooks"]["urls"]
    assert worker.function_url.url in urls
    # And Travis's signed webhook reached the receiver and woke the parked watch
    (build,) = travis.builds_for(SLUG)
    deliveries = [d for d in travis.deliveries if d.build_id == build.id]
    assert deliveries and deliveries[-1].status == 202
    assert worker.metric_total("WebhooksAccepted") >= 1
    # And the result came from Travis itself: the last look and the report read GET /build
    finished = build.finished_as_of(clock.now())
    assert finished is not None
    last_result = run.results[-1].at
    # Virtual seconds: local processing is inflated a hundredfold by the compressed clock, so
    # the bound is loose here; what matters is that no scheduled look was waited for (the
    # fallback schedule would look minutes later; `make bench` measures the delay itself).
    assert last_result - finished < 300


def test_a_forged_webhook_is_refused_and_reports_nothing(
    worker_for: Any, clock: VirtualClock, push_template: dict[str, Any]
) -> None:
    # Given a build being watched with push enabled
    travis = quick_travis(clock)
    travis.add_repo(SLUG, LONG)
    worker = worker_for(template=push_template, travis=travis, clock=clock)
    run_id = worker.start_action(CONFIG, revision=REVISION)
    deadline = time.monotonic() + 30
    while not watching(worker, run_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # let it look and park
    (build,) = travis.builds_for(SLUG)

    # When someone posts a webhook saying it passed, signed with another key
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    payload = f'{{"id": {build.id}, "state": "passed", "status": 0}}'
    signature = base64.b64encode(
        forger.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - Travis signs so
    ).decode()
    assert worker.function_url is not None
    answer = requests.post(
        worker.function_url.url,
        data=urlencode({"payload": payload}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Signature": signature},
        timeout=10,
    )

    # Then it is refused and the run is still waiting for the real build
    assert answer.status_code == 401
    assert not worker.emulator.action_run(run_id).finished
    assert worker.metric_total("WebhooksRejected") == 1


def test_a_lost_webhook_falls_back_to_the_schedule(
    worker_for: Any, clock: VirtualClock, push_template: dict[str, Any]
) -> None:
    # Given Travis's webhook never arrives (Travis never retries one)
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, job_duration=120.0))
    travis.drop_webhooks(None)
    worker = worker_for(template=push_template, travis=travis, clock=clock)

    # When the action runs, it still ends with the build's result
    run = run_action(worker, timeout=60)
    assert run.status == "Succeeded"
