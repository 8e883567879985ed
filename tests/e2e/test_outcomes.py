"""End to end: each build outcome and configuration answer, as CodePipeline and Travis saw it."""

from __future__ import annotations

from typing import Any

import pytest

from local.travis_fake import RepoScript, TravisFake
from tests.e2e.conftest import CONFIG, REVISION, SLUG, run_action

pytestmark = pytest.mark.e2e


def test_passing_build_publishes_link_early_then_succeeds(worker_for: Any) -> None:
    # Given a repository whose build passes
    travis = TravisFake(repos={SLUG: RepoScript(outcome="passed", polls_until_done=3, jobs=3)})
    worker = worker_for(travis=travis)

    # When the pipeline reaches the Travis action
    run = run_action(worker)

    # Then Travis received exactly one request, for the branch and the pipeline's commit
    (request,) = travis.requests_for(SLUG)
    assert request.branch == "main"
    assert request.sha == REVISION
    first_job, continuation_job = run.job_ids
    assert f"[codepipeline-job {first_job}]" in request.message
    # And the first job finished early with the build link (continuation, 0 %)
    link, final = run.results
    (build,) = travis.builds_for(SLUG)
    build_url = f"{travis.base_url}/{SLUG}/builds/{build.id}"
    assert link.job_id == first_job and link.continuation_token
    assert link.execution_details == {
        "externalExecutionId": str(build.id),
        "percentComplete": 0,
        "summary": f"Travis build #{build.number} started: {build_url}",
    }
    # And the continuation job (a new job id) ended in success with 100 % and output variables
    assert final.job_id == continuation_job != first_job
    assert final.kind == "success"
    assert final.execution_details["percentComplete"] == 100
    assert final.execution_details["externalExecutionId"] == str(build.id)
    assert "passed" in final.execution_details["summary"]
    assert final.output_variables == {
        "BuildId": str(build.id),
        "BuildNumber": build.number,
        "BuildUrl": f"{travis.base_url}/{SLUG}/builds/{build.id}",
        "CommitId": REVISION,
    }
    assert run.status == "Succeeded"
    # And each job was claimed exactly once, by one execution per job, both succeeded
    assert [worker.emulator.ack_count(j) for j in run.job_ids] == [1, 1]
    executions = worker.executions()
    assert sorted(e["name"][:36] for e in executions) == sorted(run.job_ids)
    assert {e["status"] for e in executions} == {"SUCCEEDED"}
    # And the watch loop backed off between looks at the build (15 s, then 22 s, ...)
    assert worker.observations.waits[:2] == [15.0, 22.0] or 15.0 in worker.observations.waits


@pytest.mark.parametrize("outcome", ["failed", "errored", "canceled"])
def test_unsuccessful_build_fails_the_action_with_the_build_named(
    worker_for: Any, outcome: str
) -> None:
    # Given a build that ends <outcome> in Travis
    travis = TravisFake(repos={SLUG: RepoScript(outcome=outcome)})
    worker = worker_for(travis=travis)

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


def test_rejected_request_is_a_configuration_error_with_travis_reason(worker_for: Any) -> None:
    travis = TravisFake(
        repos={SLUG: RepoScript(reject=True, reject_messages=["branch main is excluded"])}
    )
    worker = worker_for(travis=travis)

    run = run_action(worker)

    assert run.status == "Failed"
    assert run.failure_details["type"] == "ConfigurationError"
    assert "branch main is excluded" in run.failure_details["message"]
    assert run.continuation_tokens == []  # no build, so no link was published


def test_unknown_commit_is_revision_unavailable(worker_for: Any) -> None:
    travis = TravisFake(repos={SLUG: RepoScript(known_commits={"0" * 40})})
    worker = worker_for(travis=travis)

    run = run_action(worker)

    assert run.failure_details["type"] == "RevisionUnavailable"
    assert REVISION in run.failure_details["message"]


@pytest.mark.parametrize("status", [401, 403])
def test_refused_token_is_a_permission_error(worker_for: Any, status: int) -> None:
    travis = TravisFake(repos={SLUG: RepoScript(auth_error=status)})
    worker = worker_for(travis=travis)

    run = run_action(worker)

    assert run.failure_details["type"] == "PermissionError"
    assert SLUG in run.failure_details["message"]
    assert travis.requests_for(SLUG) == []


def test_unknown_repository_is_a_configuration_error(worker_for: Any) -> None:
    worker = worker_for(travis=TravisFake(repos={}))

    run = run_action(worker, {**CONFIG, "ProjectName": "no-such-repo"})

    assert run.failure_details["type"] == "ConfigurationError"
    assert "octo-org/no-such-repo" in run.failure_details["message"]
    assert "ProjectName" in run.failure_details["message"]


def test_missing_required_property_fails_before_calling_travis(worker_for: Any) -> None:
    travis = TravisFake(auto_repos=True)
    worker = worker_for(travis=travis)

    run = run_action(worker, {"Owner": "octo-org", "ProjectName": "web-app"})

    assert run.failure_details["type"] == "ConfigurationError"
    assert "Branch" in run.failure_details["message"]
    assert travis.calls == []


def test_transient_travis_errors_recover_without_a_second_request(worker_for: Any) -> None:
    # Given Travis answers 503, then 429 with Retry-After, then a proxy's HTML page, then recovers
    travis = TravisFake(repos={SLUG: RepoScript()})
    travis.fail_next("list_requests", 503)
    travis.fail_next("create_request", 429, retry_after=0)
    travis.process_then_fail_next("create_request", 502)
    travis.malformed_next("get_request", "html")
    travis.fail_next("get_build", 500, times=2)
    worker = worker_for(travis=travis)

    # When the action runs
    run = run_action(worker)

    # Then it succeeds with exactly one Travis request (the one whose answer was lost was found)
    assert run.status == "Succeeded", run.failure_details
    assert travis.created_count(SLUG) == 1
    assert len(travis.builds_for(SLUG)) == 1


def test_travis_down_for_good_is_system_unavailable(worker_for: Any) -> None:
    travis = TravisFake(repos={SLUG: RepoScript()})
    travis.fail_next("list_requests", 503, times=1000)
    worker = worker_for(travis=travis)

    run = run_action(worker)

    assert run.failure_details["type"] == "SystemUnavailable"
    assert travis.created_count(SLUG) == 0


def test_watch_phase_starts_without_waiting_for_the_sweeper(worker_for: Any) -> None:
    # Given no schedule at all: only the STARTED event reaches the poller
    travis = TravisFake(repos={SLUG: RepoScript(outcome="passed")})
    worker = worker_for(travis=travis, deliver_events=True, sweep=False)

    # When the action runs
    run = run_action(worker)

    # Then the state machine handed the continuation job over to the poller itself
    assert run.status == "Succeeded", run.failure_details
    first, continuation = run.job_ids
    names = {e["name"][:36] for e in worker.executions()}
    assert names == {first, continuation}
    poller = worker.poller.logical_id
    assert sum(1 for i in worker.observations.invocations if i.function == poller) >= 2
