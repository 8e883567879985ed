"""The state machine: its resource settings and the definition Step Functions will run.

The definition is read from the synthesized template (resolved to plain ASL by local.template), the
same way the local end-to-end runner takes it.
"""

from __future__ import annotations

from typing import Any

import pytest

from local.template import placeholder_function_arn
from tests.infra.conftest import CUSTOM_CONTEXT, Synthesized

pytestmark = pytest.mark.synth

# Task state -> the function (by HANDLERS name) it must invoke.
TASKS = {
    "Claim": "claim",
    "SubmitBuild": "submit",
    "ResolveBuild": "resolve",
    "PublishLink": "publish",
    "WatchBuild": "watch",
    "ReportResult": "report",
    "ReportFailure": "report_failure",
}
# Tasks whose success is itself a result for the job (PutJobSuccessResult/PutJobFailureResult).
REPORTING_TASKS = {"PublishLink", "ReportResult", "ReportFailure"}
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def states(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return dict(synth.definition["States"])


def successors(state: dict[str, Any]) -> set[str]:
    found = {state["Next"]} if "Next" in state else set()
    found |= {choice["Next"] for choice in state.get("Choices", [])}
    found |= {state["Default"]} if "Default" in state else set()
    found |= {catcher["Next"] for catcher in state.get("Catch", [])}
    return found


def reachable(all_states: dict[str, dict[str, Any]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(successors(all_states[name]))
    return seen


# --- the resource ------------------------------------------------------------------------------


def test_standard_type_with_tracing(default_synth: Synthesized) -> None:
    props = default_synth.template["Resources"][default_synth.state_machine_id]["Properties"]
    assert props.get("StateMachineType", "STANDARD") == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_logs_everything_to_a_log_group_with_retention(default_synth: Synthesized) -> None:
    props = default_synth.template["Resources"][default_synth.state_machine_id]["Properties"]
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    (destination,) = logging["Destinations"]
    log_group_arn = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert "Fn::GetAtt" in log_group_arn, "the log group is part of the stack"
    log_group = default_synth.template["Resources"][log_group_arn["Fn::GetAtt"][0]]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == 30
    # Step Functions log delivery needs the /aws/vendedlogs/ prefix to stay within policy limits.
    assert log_group["Properties"]["LogGroupName"].startswith("/aws/vendedlogs/states/")


def test_overall_timeout_outlasts_the_watch_timeout(default_synth: Synthesized) -> None:
    watch_seconds = int(default_synth.environment("watch")["WATCH_TIMEOUT_SECONDS"])
    assert watch_seconds == 120 * 60
    timeout = default_synth.definition["TimeoutSeconds"]
    # The watch step cancels the build and fails the job itself; the execution timeout is only a
    # backstop and must not cut that short.
    assert timeout > watch_seconds + 15 * 60
    assert timeout < 24 * 3600, "CodePipeline gives a custom action 24 hours"


def test_watch_timeout_context_changes_env_and_timeout(
    default_synth: Synthesized, custom_synth: Synthesized
) -> None:
    watch = CUSTOM_CONTEXT["watchTimeoutMinutes"] * 60
    resolve = CUSTOM_CONTEXT["resolveTimeoutMinutes"] * 60
    for name in ("watch", "poller"):
        assert custom_synth.environment(name)["WATCH_TIMEOUT_SECONDS"] == str(watch)
        assert custom_synth.environment(name)["RESOLVE_TIMEOUT_SECONDS"] == str(resolve)
    timeout = custom_synth.definition["TimeoutSeconds"]
    assert watch + resolve < timeout < default_synth.definition["TimeoutSeconds"]


# --- the definition ----------------------------------------------------------------------------


def test_starts_by_claiming_the_job(default_synth: Synthesized) -> None:
    assert default_synth.definition["StartAt"] == "Claim"


def test_every_state_is_reachable(default_synth: Synthesized) -> None:
    all_states = states(default_synth)
    assert reachable(all_states, "Claim") == set(all_states)


def test_each_task_invokes_its_step_function(default_synth: Synthesized) -> None:
    tasks = {name: s for name, s in states(default_synth).items() if s["Type"] == "Task"}
    tasks.pop("HandOverToWatch")  # checked below: it wakes the poller, it is not a step
    assert set(tasks) == set(TASKS)
    for name, function in TASKS.items():
        expected = placeholder_function_arn(default_synth.functions[function])
        assert tasks[name]["Resource"] == expected, name
        # Each step gets the whole state and the execution name (for messages ops can trace).
        assert tasks[name]["Parameters"] == {"state.$": "$", "execution.$": "$$.Execution.Name"}
        assert tasks[name]["ResultPath"].startswith("$."), "a step must not replace the state"


def test_after_the_link_the_poller_is_woken_for_the_continuation_job(
    default_synth: Synthesized,
) -> None:
    all_states = states(default_synth)
    hand_over = all_states["HandOverToWatch"]
    assert all_states["PublishLink"]["Next"] == "HandOverToWatch"
    # asynchronous, with an event naming our action type, as CodePipeline's own event would
    assert hand_over["Resource"] == "arn:aws:states:::lambda:invoke"
    assert hand_over["Parameters"]["InvocationType"] == "Event"
    assert hand_over["Parameters"]["FunctionName"] == placeholder_function_arn(
        default_synth.functions["poller"]
    )
    assert hand_over["Parameters"]["Payload"]["detail"]["type"] == {
        "owner": "Custom",
        "category": "Test",
        "provider": "Travis",
        "version": "1",
    }
    # The job already has its result: waking the poller may fail without touching the job
    assert hand_over["ResultPath"] is None
    assert [c["Next"] for c in hand_over["Catch"]] == ["LinkPublished"]
    assert hand_over["Next"] == "LinkPublished"


def test_claim_has_no_catch(default_synth: Synthesized) -> None:
    # Before the claim the execution owns nothing: a failure must leave the job for the next poll.
    assert "Catch" not in states(default_synth)["Claim"]


@pytest.mark.parametrize("task", sorted(set(TASKS) - {"Claim", "ReportFailure"}))
def test_steps_after_claim_catch_everything_into_report_failure(
    default_synth: Synthesized, task: str
) -> None:
    catchers = states(default_synth)[task].get("Catch", [])
    assert {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ReportFailure"} in (
        catchers
    )


def test_report_failure_does_not_loop(default_synth: Synthesized) -> None:
    report_failure = states(default_synth)["ReportFailure"]
    assert "Catch" not in report_failure
    assert states(default_synth)[report_failure["Next"]]["Type"] == "Succeed"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_retries_transient_errors(default_synth: Synthesized, task: str) -> None:
    retriers = states(default_synth)[task].get("Retry", [])
    retried = {error for retrier in retriers for error in retrier["ErrorEquals"]}
    assert "ServiceUnavailable" in retried
    assert retried >= LAMBDA_SERVICE_ERRORS
    # Classified failures (ConfigurationError, ...) must reach ReportFailure without delay.
    assert "States.ALL" not in retried
    for retrier in retriers:
        assert retrier["MaxAttempts"] >= 1
        assert retrier.get("BackoffRate", 2.0) >= 1


def test_waits_take_their_seconds_from_the_step(default_synth: Synthesized) -> None:
    waits = {name: s for name, s in states(default_synth).items() if s["Type"] == "Wait"}
    assert set(waits) == {"WaitForBuild", "WaitForProgress"}
    assert waits["WaitForBuild"]["SecondsPath"] == "$.resolution.waitSeconds"
    assert waits["WaitForBuild"]["Next"] == "ResolveBuild"
    assert waits["WaitForProgress"]["SecondsPath"] == "$.watch.waitSeconds"
    assert waits["WaitForProgress"]["Next"] == "WatchBuild"
    for wait in waits.values():
        assert not {"Seconds", "Timestamp", "TimestampPath"} & set(wait)


def test_phase_is_chosen_by_the_continuation(default_synth: Synthesized) -> None:
    (phase,) = [
        s
        for s in states(default_synth).values()
        if s["Type"] == "Choice"
        and any(c.get("Variable") == "$.continuation" for c in s["Choices"])
    ]
    assert phase["Choices"] == [
        {"Variable": "$.continuation", "IsNull": True, "Next": "SubmitBuild"}
    ]
    assert phase["Default"] == "WatchBuild"


def test_losing_the_claim_ends_without_touching_the_job(default_synth: Synthesized) -> None:
    all_states = states(default_synth)
    claimed = all_states[all_states["Claim"]["Next"]]
    assert claimed["Type"] == "Choice"
    (lost,) = [c for c in claimed["Choices"] if c.get("BooleanEquals") is False]
    assert lost["Variable"] == "$.claim.claimed"
    assert all_states[lost["Next"]]["Type"] == "Succeed"


def test_every_claimed_job_ends_with_a_result(default_synth: Synthesized) -> None:
    # Invariant 2 at the definition level: after the claim, every way to end the execution goes
    # through a step that gives the job a result; nothing ends in Fail or an unreported End.
    all_states = states(default_synth)
    assert not [name for name, s in all_states.items() if s["Type"] == "Fail"]
    predecessors: dict[str, set[str]] = {name: set() for name in all_states}
    for name, state in all_states.items():
        for successor in successors(state):
            predecessors[successor].add(name)
    lost_claim = {
        c["Next"]
        for c in all_states[all_states["Claim"]["Next"]]["Choices"]
        if c.get("BooleanEquals") is False
    }
    ends = {name for name, s in all_states.items() if s["Type"] == "Succeed" or s.get("End")}
    for end in ends - lost_claim:
        assert all_states[end]["Type"] == "Succeed", end
        # the hand-over comes only after PublishLink, so it counts as that step's ending
        before = {"PublishLink" if p == "HandOverToWatch" else p for p in predecessors[end]}
        assert predecessors["HandOverToWatch"] == {"PublishLink"}
        assert before and before <= REPORTING_TASKS, (end, predecessors[end])


def test_submit_retries_only_after_a_post_in_flight_has_landed(default_synth: Synthesized) -> None:
    # Regression (soak): a retried submit with a short, jittered delay could look for its request
    # before a timed-out POST landed in Travis, then post again: a second build. The client's read
    # timeout is 20 s, so the retry must wait longer, without jitter that could shorten it.
    from worker.providers.travis.client import READ_TIMEOUT

    (retrier,) = [
        r
        for r in states(default_synth)["SubmitBuild"]["Retry"]
        if r["ErrorEquals"] == ["ServiceUnavailable"]
    ]
    assert retrier["IntervalSeconds"] > READ_TIMEOUT
    assert retrier.get("JitterStrategy", "NONE") == "NONE"
    # The same holds when the step was cut off by its timeout, possibly mid-POST (review finding)
    (crash,) = [
        r
        for r in states(default_synth)["SubmitBuild"]["Retry"]
        if "Sandbox.Timedout" in r["ErrorEquals"]
    ]
    assert crash["IntervalSeconds"] > READ_TIMEOUT
    assert crash.get("JitterStrategy", "NONE") == "NONE"


def test_the_stack_retries_the_error_the_worker_raises_for_outages() -> None:
    from stacks.state_machine import RETRYABLE_ERROR
    from worker.failures import ServiceUnavailable

    assert ServiceUnavailable.__name__ == RETRYABLE_ERROR


def test_looks_at_travis_ride_out_a_long_outage(default_synth: Synthesized) -> None:
    for name in ("ResolveBuild", "WatchBuild"):
        (retrier,) = [
            r
            for r in states(default_synth)[name]["Retry"]
            if r["ErrorEquals"] == ["ServiceUnavailable"]
        ]
        waits = [
            min(
                retrier["IntervalSeconds"] * retrier["BackoffRate"] ** n, retrier["MaxDelaySeconds"]
            )
            for n in range(retrier["MaxAttempts"])
        ]
        assert sum(waits) >= 30 * 60  # jitter may shorten each wait; the schedule is long
