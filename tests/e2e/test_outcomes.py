"""End to end: each build outcome, as CodePipeline and Travis saw it, on Travis's real semantics."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from typing import Any

import pytest

from tests.e2e.conftest import CONFIG, QUICK, REVISION, SLUG, end_states, quick_travis, run_action

pytestmark = pytest.mark.e2e
WEB = "https://app.travis-ci.com/github"


def test_passing_build_publishes_link_early_then_succeeds(worker_for: Any, clock: Any) -> None:
    # Given a repository whose build of three jobs passes
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, jobs=3))
    worker = worker_for(travis=travis, clock=clock)

    # When the pipeline reaches the Travis action
    run = run_action(worker)

    # Then Travis received exactly one request, for the branch and the pipeline's commit, with
    # the job's marker in the message it shows as the commit message once processed
    (request,) = travis.requests_for(SLUG)
    first_job = run.job_ids[0]
    assert request.branch == "main"
    assert f"[codepipeline-job {first_job}]" in request.message
    assert request.sha_sent == REVISION
    assert request.commit is not None and request.commit.sha == REVISION
    assert f"[codepipeline-job {first_job}]" in request.commit.message
    # And the first job finished early with the build link (continuation, 0 %)
    (build,) = travis.builds_for(SLUG)
    link, final = run.results[0], run.results[-1]
    assert link.job_id == first_job and link.continuation_token
    assert link.execution_details == {
        "externalExecutionId": str(build.id),
        "percentComplete": 0,
        "summary": f"Travis build #{build.number} started: {WEB}/{SLUG}/builds/{build.id}",
    }
    # And the last job (a new job id) ended in success with 100 % and output variables
    assert final.kind == "success" and final.job_id != first_job
    assert final.execution_details["percentComplete"] == 100
    assert final.output_variables == {
        "BuildId": str(build.id),
        "BuildNumber": build.number,
        "BuildUrl": f"{WEB}/{SLUG}/builds/{build.id}",
        "CommitId": REVISION,
    }
    assert run.status == "Succeeded"
    # And every execution ended in a state that says what happened
    states = end_states(worker, run)
    assert states[0] == "SUCCEEDED:LinkPublished"
    assert states[-1] == "SUCCEEDED:BuildPassed"
    # And the watch read the jobs' states (include=build.jobs) for its progress
    assert all("build.jobs" in str(c.query) for c in travis.calls_of("get_build"))


@pytest.mark.parametrize("outcome", ["failed", "errored", "canceled"])
def test_unsuccessful_build_fails_the_action_with_the_build_named(
    worker_for: Any, clock: Any, outcome: str
) -> None:
    # Given a build that ends <outcome> in Travis
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, outcome=outcome))
    worker = worker_for(travis=travis, clock=clock)

    # When the action runs
    run = run_action(worker)

    # Then CodePipeline got JobFailed naming the build, with its id as external execution id
    (build,) = travis.builds_for(SLUG)
    assert run.status == "Failed"
    failure = run.failure_details
    assert failure["type"] == "JobFailed"
    assert failure["externalExecutionId"] == str(build.id)
    assert f"Travis build #{build.number} {outcome}" in failure["message"]
    assert len(travis.requests_for(SLUG)) == 1
    assert end_states(worker, run)[-1] == "SUCCEEDED:BuildFailed"


def test_failure_message_quotes_the_failing_job_log(worker_for: Any, clock: Any) -> None:
    # Given a build whose second job fails with a test failure in its log
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, outcome="failed", jobs=2))
    worker = worker_for(travis=travis, clock=clock)

    # When the action runs
    run = run_action(worker)

    # Then the failure message names the failing job and quotes the end of its log: the
    # failed command's verdict, without ANSI codes or Travis's fold markers, within 5,000
    message = run.failure_details["message"]
    (build,) = travis.builds_for(SLUG)
    failed = [j for j in build.jobs if j.state_at(clock.now()) == "failed"]
    assert failed
    assert f"Job #{failed[0].number} failed:" in message
    assert "exited with 1." in message
    assert "\x1b" not in message and "travis_fold" not in message
    assert len(message) <= 5000
    assert any(c.kind == "get_log" for c in travis.calls)


def test_output_artifact_holds_the_build_report(worker_for: Any, clock: Any) -> None:
    # Given a pipeline that declares an output artifact for the Travis action
    worker = worker_for(clock=clock)

    # When the build passes
    run = run_action(worker, output_artifact_name="BuildReport")

    # Then the artifact location holds build-report.json (zipped, as CodePipeline artifacts
    # are), written with SSE-KMS, describing the build and its jobs
    assert run.status == "Succeeded"
    stored = worker.emulator.read_output_artifact(run.action_execution_id, "BuildReport")
    assert stored.server_side_encryption == "aws:kms"
    with zipfile.ZipFile(io.BytesIO(stored.body)) as archive:
        report = json.loads(archive.read("build-report.json"))
    (build,) = worker.travis.builds_for(SLUG)
    assert report["buildId"] == str(build.id)
    assert report["state"] == "passed"
    assert report["commit"] == REVISION
    assert [j["state"] for j in report["jobs"]] == ["passed"] * len(build.jobs)
    assert len(build.jobs) >= 1
    assert report["url"] == f"{WEB}/{SLUG}/builds/{build.id}"


def test_rejected_request_is_a_configuration_error_with_travis_reason(
    worker_for: Any, clock: Any
) -> None:
    travis = quick_travis(clock)
    travis.add_repo(
        SLUG, replace(QUICK, reject=True, reject_message="branch not included or excluded")
    )
    worker = worker_for(travis=travis, clock=clock)

    run = run_action(worker)

    assert run.failure_details["type"] == "ConfigurationError"
    assert "branch not included or excluded" in run.failure_details["message"]
    assert end_states(worker, run) == ["SUCCEEDED:ReportedFailure"]


@pytest.mark.parametrize("unknown_sha", ["reject", "build_head"])
def test_a_commit_travis_cannot_build_is_never_a_pass(
    worker_for: Any, clock: Any, unknown_sha: str
) -> None:
    # Given the pipeline's commit does not exist in the repository; what Travis then does is not
    # in its public source: it rejects the request, or builds the branch head (legacy code)
    travis = quick_travis(clock)
    travis.add_repo(
        SLUG, replace(QUICK, known_commits={"0" * 40}, unknown_sha=unknown_sha, head_sha="e" * 40)
    )
    worker = worker_for(travis=travis, clock=clock)

    run = run_action(worker)

    # Then the action fails: RevisionUnavailable, or RevisionOutOfSync naming both commits
    expected = {"reject": "RevisionUnavailable", "build_head": "RevisionOutOfSync"}[unknown_sha]
    assert run.failure_details["type"] == expected
    assert REVISION in run.failure_details["message"]
    if unknown_sha == "build_head":
        assert "e" * 40 in run.failure_details["message"]
        (build,) = travis.builds_for(SLUG)
        assert build.cancel_requested_at is not None  # the wrong build is not left running


def test_a_revision_that_is_not_a_commit_builds_the_branch_head(
    worker_for: Any, clock: Any
) -> None:
    # Given an S3 source: the revision is an object version id, not a git commit
    worker = worker_for(clock=clock)

    run = run_action(worker, revision="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")

    # Then no sha was sent, the branch head was built, and the console says so
    (request,) = worker.travis.requests_for(SLUG)
    assert request.sha_sent is None
    assert run.status == "Succeeded"
    assert "branch head" in run.results[-1].execution_details["summary"]
    assert "the head of branch main" in run.results[0].execution_details["summary"]


def test_refused_token_is_a_permission_error(worker_for: Any, clock: Any) -> None:
    # Given Travis does not know the worker's token (revoked): 403 "access denied"
    travis = quick_travis(clock)
    travis.revoke_token("fake-travis-token")
    worker = worker_for(travis=travis, clock=clock)

    run = run_action(worker)

    assert run.failure_details["type"] == "PermissionError"
    assert "refused the API token" in run.failure_details["message"]
    assert travis.requests_for(SLUG) == []


def test_unknown_repository_is_a_configuration_error(worker_for: Any, clock: Any) -> None:
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, exists=False))
    worker = worker_for(travis=travis, clock=clock)

    run = run_action(worker)

    assert run.failure_details["type"] == "ConfigurationError"
    assert "Owner and ProjectName" in run.failure_details["message"]


def test_missing_required_property_fails_before_calling_travis(worker_for: Any) -> None:
    worker = worker_for()

    run = run_action(worker, {k: v for k, v in CONFIG.items() if k != "Branch"})

    assert run.failure_details["type"] == "ConfigurationError"
    assert "Branch" in run.failure_details["message"]
    assert worker.travis.calls == []


def test_transient_travis_errors_recover_without_a_second_request(
    worker_for: Any, clock: Any
) -> None:
    # Given Travis answers 502/503 to looks at the request and the build for a while
    travis = quick_travis(clock)
    travis.fail_next("get_request", 503, times=2)
    travis.fail_next("get_build", 502, times=2)
    worker = worker_for(travis=travis, clock=clock)

    run = run_action(worker)

    assert run.status == "Succeeded"
    assert len(travis.requests_for(SLUG)) == 1


def test_travis_down_for_good_is_system_unavailable(worker_for: Any, clock: Any) -> None:
    travis = quick_travis(clock)
    travis.fail_next("create_request", 503, times=10_000)
    worker = worker_for(travis=travis, clock=clock)

    run = run_action(worker, timeout=120)

    assert run.failure_details["type"] == "SystemUnavailable"


def test_request_limit_is_reported_at_once_with_one_post(worker_for: Any, clock: Any) -> None:
    # Given the repository's hourly request limit is used up
    travis = quick_travis(clock)
    travis.add_repo(SLUG, replace(QUICK, rate_limit=0))
    worker = worker_for(travis=travis, clock=clock)

    run = run_action(worker)

    # Then the job fails at once naming the limit, after exactly one POST (no storm)
    assert run.failure_details["type"] == "SystemUnavailable"
    assert "request limit" in run.failure_details["message"]
    assert len(travis.calls_of("create_request")) == 1


def test_watch_phase_starts_without_waiting_for_the_sweeper(worker_for: Any) -> None:
    # Given no sweeper runs at all: only the STARTED event and the hand-over wake the poller
    worker = worker_for(sweep=False)

    run = run_action(worker)

    assert run.status == "Succeeded"
