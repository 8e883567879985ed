"""The state machine: its resource settings and the definition Step Functions will run.

The definition is read from the synthesized template (resolved to plain ASL by local.template), the
same way the local end-to-end runner takes it.
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from local.template import placeholder_function_arn
from stacks.config import WorkerConfig
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
    "HandOver": "publish",
    "ReportFailure": "report_failure",
    "CancelAbandoned": "cancel",
    "CancelGone": "cancel",
}
# Park tasks (.waitForTaskToken): the seconds path and the look they go back to.
PARKS = {
    "WaitForBuild": ("$.resolution.waitSeconds", "ResolveBuild"),
    "WaitForProgress": ("$.watch.waitSeconds", "WatchBuild"),
}
# Tasks with the catch-all into ReportFailure (every task after Claim, but the best-effort
# cancels, the parks that look again, and ReportFailure itself).
GUARDED = {"SubmitBuild", "ResolveBuild", "PublishLink", "WatchBuild", "ReportResult", "HandOver"}
# Tasks that may learn the run is over: abandoned before a build, or the job gone.
ENDING = {"SubmitBuild", "PublishLink", "HandOver"}
END_STATES = {
    "NotClaimed",
    "LinkPublished",
    "HandedOver",
    "BuildPassed",
    "BuildFailed",
    "ReportedFailure",
    "Abandoned",
    "JobGone",
}
# Tasks whose success is itself a result for the job (PutJobSuccessResult/PutJobFailureResult),
# or whose run is over (abandoned, job gone: nothing takes a result any more).
REPORTING_TASKS = {"PublishLink", "HandOver", "ReportResult", "ReportFailure"}
PAYLOAD = {
    "state.$": "$",
    "execution.$": "$$.Execution.Name",
    "retries.$": "$$.State.RetryCount",
    "enteredAt.$": "$$.State.EnteredTime",
}
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


def backstop_seconds(hand_over_minutes: int, resolve_minutes: int) -> int:
    return (max(hand_over_minutes, resolve_minutes + 20) + 90) * 60


def test_overall_timeout_is_a_backstop_past_one_execution(default_synth: Synthesized) -> None:
    # One execution watches for at most a hand-over interval (then a continuation job goes on),
    # or resolves for at most the resolve timeout; the execution timeout is only a backstop
    # that must not cut short ReportFailure's hour of retries.
    env = default_synth.environment("watch")
    assert env["WATCH_TIMEOUT_SECONDS"] == str(120 * 60)
    hand_over = int(env["HAND_OVER_MAX_SECONDS"])
    resolve = int(env["RESOLVE_TIMEOUT_SECONDS"])
    timeout = default_synth.definition["TimeoutSeconds"]
    defaults = WorkerConfig()
    assert hand_over == defaults.hand_over_max_minutes * 60
    assert timeout == backstop_seconds(
        defaults.hand_over_max_minutes, defaults.resolve_timeout_minutes
    )
    assert timeout > max(hand_over, resolve) + 60 * 60
    assert timeout < 12 * 3600, "CodePipeline's job model caps a job at 12 hours"


def test_timeout_context_changes_env_and_timeout(custom_synth: Synthesized) -> None:
    watch = CUSTOM_CONTEXT["watchTimeoutMinutes"] * 60
    resolve = CUSTOM_CONTEXT["resolveTimeoutMinutes"] * 60
    for name in ("watch", "poller"):
        assert custom_synth.environment(name)["WATCH_TIMEOUT_SECONDS"] == str(watch)
        assert custom_synth.environment(name)["RESOLVE_TIMEOUT_SECONDS"] == str(resolve)
    assert custom_synth.definition["TimeoutSeconds"] == backstop_seconds(
        CUSTOM_CONTEXT["handOverMaxMinutes"], CUSTOM_CONTEXT["resolveTimeoutMinutes"]
    )


# --- the definition ----------------------------------------------------------------------------


def test_starts_by_claiming_the_job(default_synth: Synthesized) -> None:
    assert default_synth.definition["StartAt"] == "Claim"


def test_every_state_is_reachable(default_synth: Synthesized) -> None:
    all_states = states(default_synth)
    assert reachable(all_states, "Claim") == set(all_states)


def test_each_task_invokes_its_step_function(default_synth: Synthesized) -> None:
    tasks = {name: s for name, s in states(default_synth).items() if s["Type"] == "Task"}
    assert set(tasks) == set(TASKS) | set(PARKS)
    for name, function in TASKS.items():
        expected = placeholder_function_arn(default_synth.functions[function])
        assert tasks[name]["Resource"] == expected, name
        # Each step gets the whole state, the execution name and its retry count and entry time.
        assert tasks[name]["Parameters"] == PAYLOAD, name
        assert tasks[name]["ResultPath"].startswith("$."), "a step must not replace the state"


@pytest.mark.parametrize("park", sorted(PARKS))
def test_park_tasks_wait_for_a_token_until_the_next_look(
    default_synth: Synthesized, park: str
) -> None:
    seconds_path, look = PARKS[park]
    state = states(default_synth)[park]
    assert state["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert state["TimeoutSecondsPath"] == seconds_path
    assert "TimeoutSeconds" not in state
    assert state["ResultPath"] == "$.woken"
    assert state["Parameters"] == {
        "FunctionName": placeholder_function_arn(default_synth.functions["park"]),
        "Payload": {**PAYLOAD, "token.$": "$$.Task.Token"},
    }
    # Woken or timed out (the normal way on), the run looks again; never to ReportFailure.
    assert state["Next"] == look
    assert state["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.woken", "Next": look}
    ]


def test_park_tasks_are_reached_from_their_look(default_synth: Synthesized) -> None:
    all_states = states(default_synth)
    assert all_states["BuildCreated?"]["Default"] == "WaitForBuild"
    assert all_states["Next?"]["Default"] == "WaitForProgress"
    assert not [s for s in all_states.values() if s["Type"] == "Wait"]


def test_every_end_state_exists_and_is_reachable(default_synth: Synthesized) -> None:
    all_states = states(default_synth)
    ends = {name for name, s in all_states.items() if s["Type"] == "Succeed" or s.get("End")}
    assert ends == END_STATES
    assert reachable(all_states, "Claim") >= END_STATES
    for end in END_STATES:
        assert all_states[end]["Type"] == "Succeed", end


def test_end_states_follow_the_outcome(default_synth: Synthesized) -> None:
    all_states = states(default_synth)
    assert all_states["PublishLink"]["Next"] == "LinkPublished"
    assert all_states["HandOver"]["Next"] == "HandedOver"
    reported = {c["StringEquals"]: c["Next"] for c in all_states["Reported?"]["Choices"]}
    assert reported == {"passed": "BuildPassed", "gone": "JobGone"}
    assert all_states["Reported?"]["Default"] == "BuildFailed"
    failure = {c["StringEquals"]: c["Next"] for c in all_states["FailureReported?"]["Choices"]}
    assert failure == {"gone": "JobGone"}
    assert all_states["FailureReported?"]["Default"] == "ReportedFailure"
    assert all_states["CancelAbandoned"]["Next"] == "Abandoned"
    assert all_states["CancelGone"]["Next"] == "JobGone"
    watch = {c["StringEquals"]: c["Next"] for c in all_states["Next?"]["Choices"]}
    assert watch == {"report": "ReportResult", "handover": "HandOver", "cancel": "CancelAbandoned"}
    build = {c["StringEquals"]: c["Next"] for c in all_states["BuildCreated?"]["Choices"]}
    assert build == {"publish": "PublishLink", "cancel": "CancelAbandoned"}


def test_claim_has_no_catch(default_synth: Synthesized) -> None:
    # Before the claim the execution owns nothing: a failure must leave the job for the next poll.
    assert "Catch" not in states(default_synth)["Claim"]


@pytest.mark.parametrize("task", sorted(GUARDED))
def test_steps_after_claim_catch_everything_into_report_failure(
    default_synth: Synthesized, task: str
) -> None:
    catchers = states(default_synth)[task]["Catch"]
    # the catch-all comes last: the specific catches (ActionAbandoned, JobGone) win
    assert catchers[-1] == {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.error",
        "Next": "ReportFailure",
    }


def test_every_task_after_claim_is_guarded_or_ends_the_run(default_synth: Synthesized) -> None:
    tasks = {n for n, s in states(default_synth).items() if s["Type"] == "Task"}
    assert tasks - {"Claim"} == GUARDED | set(PARKS) | {
        "ReportFailure",
        "CancelAbandoned",
        "CancelGone",
    }


@pytest.mark.parametrize("task", sorted(ENDING))
def test_abandoned_and_gone_are_caught(default_synth: Synthesized, task: str) -> None:
    catchers = states(default_synth)[task]["Catch"]
    assert catchers[:2] == [
        {"ErrorEquals": ["ActionAbandoned"], "ResultPath": "$.error", "Next": "Abandoned"},
        {"ErrorEquals": ["JobGone"], "ResultPath": "$.error", "Next": "CancelGone"},
    ]


@pytest.mark.parametrize(
    ("task", "end"), [("CancelAbandoned", "Abandoned"), ("CancelGone", "JobGone")]
)
def test_cancels_are_best_effort(default_synth: Synthesized, task: str, end: str) -> None:
    assert states(default_synth)[task]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.cancelError", "Next": end}
    ]


def test_the_stack_catches_the_errors_the_worker_raises() -> None:
    from stacks.state_machine import ABANDONED_ERROR, GONE_ERROR, PENDING_ERROR
    from worker import failures

    for name in (ABANDONED_ERROR, GONE_ERROR, PENDING_ERROR):
        assert isinstance(getattr(failures, name), type), name


def test_report_failure_does_not_loop(default_synth: Synthesized) -> None:
    all_states = states(default_synth)
    report_failure = all_states["ReportFailure"]
    assert "Catch" not in report_failure
    assert all_states[report_failure["Next"]]["Type"] == "Choice"
    assert reachable(all_states, report_failure["Next"]) == {
        "FailureReported?",
        "JobGone",
        "ReportedFailure",
    }


@pytest.mark.parametrize("task", sorted(set(TASKS) | set(PARKS)))
def test_every_task_retries_transient_errors(default_synth: Synthesized, task: str) -> None:
    retriers = states(default_synth)[task].get("Retry", [])
    retried = {error for retrier in retriers for error in retrier["ErrorEquals"]}
    assert "ServiceUnavailable" in retried
    assert retried >= LAMBDA_SERVICE_ERRORS
    # Classified failures (ConfigurationError, ...) must reach ReportFailure without delay.
    assert "States.ALL" not in retried
    assert not retried & {"ActionAbandoned", "JobGone"}
    for retrier in retriers:
        assert retrier["MaxAttempts"] >= 1
        assert retrier.get("BackoffRate", 2.0) >= 1


def test_phase_is_chosen_by_the_continuation(default_synth: Synthesized) -> None:
    (phase,) = [
        s
        for s in states(default_synth).values()
        if s["Type"] == "Choice"
        and any(c.get("Variable") == "$.continuation" for c in s["Choices"])
    ]
    assert {"Variable": "$.continuation", "IsNull": True, "Next": "SubmitBuild"} in phase["Choices"]
    assert phase["Default"] == "WatchBuild"


def test_losing_the_claim_ends_without_touching_the_job(default_synth: Synthesized) -> None:
    all_states = states(default_synth)
    claimed = all_states[all_states["Claim"]["Next"]]
    assert claimed["Type"] == "Choice"
    # the first choice: a lost claim wins over the phase
    assert claimed["Choices"][0] == {
        "Variable": "$.claim.claimed",
        "BooleanEquals": False,
        "Next": "NotClaimed",
    }


def test_every_claimed_job_ends_with_a_result(default_synth: Synthesized) -> None:
    # Invariant 2 at the definition level: after the claim, every way to end the execution goes
    # through a step that gives the job a result, or learned the run is over (abandoned, gone).
    all_states = states(default_synth)
    assert not [name for name, s in all_states.items() if s["Type"] == "Fail"]
    predecessors: dict[str, set[str]] = {name: set() for name in all_states}
    for name, state in all_states.items():
        for successor in successors(state):
            predecessors[successor].add(name)

    def origin(name: str) -> set[str]:
        # through Choices to the task that decided
        if all_states[name]["Type"] != "Choice":
            return {name}
        return set().union(*(origin(p) for p in predecessors[name]))

    allowed = {
        "LinkPublished": {"PublishLink"},
        "HandedOver": {"HandOver"},
        "BuildPassed": {"ReportResult"},
        "BuildFailed": {"ReportResult"},
        "ReportedFailure": {"ReportFailure"},
        "Abandoned": {"SubmitBuild", "PublishLink", "HandOver", "CancelAbandoned"},
        "JobGone": {"ReportResult", "ReportFailure", "CancelGone"},
    }
    for end, tasks in allowed.items():
        found = set().union(*(origin(p) for p in predecessors[end]))
        assert found == tasks, (end, found)
    assert set().union(*(origin(p) for p in predecessors["NotClaimed"])) == {"Claim"}


def test_submit_retries_only_after_a_post_in_flight_has_landed(default_synth: Synthesized) -> None:
    # Regression (soak): a retried submit with a short, jittered delay could look for its request
    # before a timed-out POST landed in Travis, then post again: a second build. The client's read
    # timeout is 20 s, so the retry must wait longer, without jitter that could shorten it.
    from worker.providers.travis.client import READ_TIMEOUT

    retry = states(default_synth)["SubmitBuild"]["Retry"]
    (retrier,) = [r for r in retry if r["ErrorEquals"] == ["ServiceUnavailable"]]
    assert retrier["IntervalSeconds"] == 30 > READ_TIMEOUT
    assert retrier["JitterStrategy"] == "NONE"
    # The same holds when the step was cut off by its timeout, possibly mid-POST (review finding)
    (crash,) = [r for r in retry if "Sandbox.Timedout" in r["ErrorEquals"]]
    assert crash["IntervalSeconds"] == 30 > READ_TIMEOUT
    assert crash.get("JitterStrategy", "NONE") == "NONE"
    # A request that may be ours is not processed yet: wait for Travis, then look again.
    (pending,) = [r for r in retry if r["ErrorEquals"] == ["RequestPending"]]
    assert pending == {
        "ErrorEquals": ["RequestPending"],
        "IntervalSeconds": 10,
        "MaxAttempts": 15,
        "BackoffRate": 1.5,
        "MaxDelaySeconds": 120,
    }


def test_only_submit_waits_for_pending_requests(default_synth: Synthesized) -> None:
    for name, state in states(default_synth).items():
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        assert ("RequestPending" in retried) == (name == "SubmitBuild"), name


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


def test_definition_with_match(default_synth: Synthesized) -> None:
    # The rendered resource names the fixed state machine name, with logging and tracing.
    default_synth.assertions.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": Match.string_like_regexp("^CodePipelineTravisWorker-Worker$"),
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like(
                {"Level": "ALL", "IncludeExecutionData": True}
            ),
        },
    )
