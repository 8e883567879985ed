"""The bad-input catalogue: what the worker answers to each kind of bad input, run end to end.

Each case is one pipeline action run through the real worker (local runner, emulators), against
the Travis fake answering as Travis does (`local.travis`): a refused token is a token Travis does
not know (403 `access denied`), a missing permission a 403 `insufficient_access`, the request
limit a 429 `request_limit_reached` without Retry-After, a ban a 403 `Forbidden`, a rejection a
finished request whose `message` is the reason. The end-to-end suite asserts every row;
`python -m local.catalogue --markdown` prints the table that docs/bad-input.md holds, so the
documentation is generated from the cases that are tested. All rows run at once, through one
worker, on one virtual clock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import requests

from local.clock import VirtualClock
from local.codepipeline import ActionRun, CodePipelineEmulator
from local.runner import LocalWorker, synthesize
from local.travis import DEFAULT_TOKEN, Fault, RepoScript, TravisFake

SHA = "5d41402abc4b2a76b9719d911017c592ae7f3c1d"
OTHER_SHA = "7c4a8d09ca3762af61e59520943dc26494f8941b"
# An S3 source's revision: an object version id, not a git commit
S3_VERSION_ID = "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
NOT_CLAIMED = "not claimed"
SUCCEEDED = "Succeeded"
PERSISTENT = 10_000  # "times" for a fault that never clears
TIME_SCALE = 0.005  # real seconds per virtual second: the slowest rows wait ~40 virtual minutes
# CodePipeline hands an unacknowledged job out again after a while; with every row claimed at
# once a claim may take a few real seconds, which must not look like a lost worker.
REDELIVERY_SECONDS = 1800.0
# A quick Travis: requests processed in 2 s, two 30-second jobs (virtual seconds).
QUICK = RepoScript(processing_delay=2.0, queue_delay=3.0, job_duration=30.0)
# Tokens of single rows (APIToken property): none of them is the worker's own.
UNKNOWN_TOKEN = "c16-token-travis-never-issued"
READ_ONLY_TOKEN = "c17-token-without-create-permission"
BANNED_TOKEN = "c38-token-banned-for-an-hour"
ROW_TOKENS = (UNKNOWN_TOKEN, READ_ONLY_TOKEN, BANNED_TOKEN)


def quick(**overrides: Any) -> RepoScript:
    return replace(QUICK, **overrides)


@dataclass(frozen=True)
class BadInput:
    """One kind of bad input and the answer a pipeline user must get."""

    name: str
    slug: str
    expected: str  # a failureDetails.type, "Succeeded", or "not claimed"
    message: str = ""  # a fragment the failure message (or success summary) must contain
    configuration: dict[str, str] | None = None
    revision: str | None = SHA
    script: RepoScript = field(default_factory=quick)
    faults: Callable[[TravisFake, str], None] | None = None
    setup: Callable[[TravisFake, str], None] | None = None  # before the action run starts
    continuation_token: str | None = None
    action_version: str | None = None  # another version of the action type
    input_artifact: bool = True
    travis_check: Callable[[TravisFake, str], bool] | None = None  # what Travis must have seen
    api_token: str | None = None  # the APIToken property
    why: str = ""

    def config(self) -> dict[str, str]:
        if self.configuration is not None:
            return self.configuration
        owner, project = self.slug.split("/")
        config = {"Owner": owner, "ProjectName": project, "Branch": "main"}
        if self.api_token:
            config["APIToken"] = self.api_token
        return config


def _persistent(kind: str, **fault: Any) -> Callable[[TravisFake, str], None]:
    def apply(travis: TravisFake, slug: str) -> None:
        travis.add_fault(kind, Fault(**fault), times=PERSISTENT, slug=slug)

    return apply


def _once(kind: str, **fault: Any) -> Callable[[TravisFake, str], None]:
    def apply(travis: TravisFake, slug: str) -> None:
        travis.add_fault(kind, Fault(**fault), times=1, slug=slug)

    return apply


def _posts(travis: TravisFake, slug: str) -> list[Any]:
    """Create-request calls for a repository, answered or not."""
    return [c for c in travis.calls if c.kind == "create_request" and c.slug == slug.lower()]


def _request_had(**expected: Any) -> Callable[[TravisFake, str], bool]:
    """Travis received exactly one build request, whose body had these fields (None: absent)."""

    def check(travis: TravisFake, slug: str) -> bool:
        posted = [
            c.body["request"]
            for c in _posts(travis, slug)
            if c.status == 202 and isinstance(c.body, dict)
        ]
        return len(posted) == 1 and all(posted[0].get(k) == v for k, v in expected.items())

    return check


def _posted(
    times: int, created: int | None = None, others: int = 0
) -> Callable[[TravisFake, str], bool]:
    """The worker POSTed exactly `times` build requests (besides `others` POSTs of the case's
    setup) and Travis holds `created` requests of the job."""

    def check(travis: TravisFake, slug: str) -> bool:
        made = len(travis.requests_with("codepipeline-job", slug))
        return len(_posts(travis, slug)) == times + others and created in (None, made)

    return check


def _one_build(travis: TravisFake, slug: str) -> bool:
    """However the answers went, Travis holds one request of the job and one build."""
    return len(travis.requests_with("codepipeline-job", slug)) == 1 and (
        len(travis.builds_for(slug)) == 1
    )


def _headers(token: str) -> dict[str, str]:
    return {
        "Travis-API-Version": "3",
        "Authorization": f"token {token}",
        "Content-Type": "application/json",
        "User-Agent": "someone-else/1.0",
    }


def _read_only_token(travis: TravisFake, slug: str) -> None:
    travis.add_token(READ_ONLY_TOKEN, can_create=False)


def _limit_spent_by_others(travis: TravisFake, slug: str) -> None:
    """Someone else used the repository's hourly request limit (3 here) a moment ago."""
    url = f"{travis.base_url}/repo/{quote(slug, safe='')}/requests"
    for number in range(travis.script(slug).rate_limit):
        body = {"request": {"branch": "main", "message": f"a release script, run {number}"}}
        answer = requests.post(url, json=body, headers=_headers(DEFAULT_TOKEN), timeout=10)
        answer.raise_for_status()


def _banned_token(travis: TravisFake, slug: str) -> None:
    """A token that sent more than 50 POSTs within 30 s: Rack::Attack bans it for an hour."""
    travis.add_token(BANNED_TOKEN)
    session = requests.Session()
    url = f"{travis.base_url}/build/1/cancel"

    def post(_: int) -> None:
        session.post(url, headers=_headers(BANNED_TOKEN), timeout=10)

    # all within one of Rack::Attack's 30 s windows, however slow the machine: hold the clock
    with travis.clock.held(), ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(60)))
    if not travis.banned(BANNED_TOKEN):
        raise RuntimeError("could not get the token banned")


def _token(version: int, **fields: Any) -> str:
    return json.dumps({"version": version, **fields})


CASES: tuple[BadInput, ...] = (
    BadInput(
        "Owner missing",
        "c01/app",
        "ConfigurationError",
        "Owner",
        configuration={"ProjectName": "app", "Branch": "main"},
    ),
    BadInput(
        "ProjectName missing",
        "c02/app",
        "ConfigurationError",
        "ProjectName",
        configuration={"Owner": "c02", "Branch": "main"},
    ),
    BadInput(
        "Branch missing",
        "c03/app",
        "ConfigurationError",
        "Branch",
        configuration={"Owner": "c03", "ProjectName": "app"},
    ),
    BadInput(
        "Owner empty",
        "c04/app",
        "ConfigurationError",
        "Owner",
        configuration={"Owner": "  ", "ProjectName": "app", "Branch": "main"},
    ),
    BadInput(
        "Owner with a space",
        "c05/app",
        "ConfigurationError",
        "Owner",
        configuration={"Owner": "acme corp", "ProjectName": "app", "Branch": "main"},
    ),
    BadInput(
        "ProjectName with a slash",
        "c06/app",
        "ConfigurationError",
        "ProjectName",
        configuration={"Owner": "c06", "ProjectName": "web/app", "Branch": "main"},
    ),
    BadInput(
        "ProjectName oversized (1000 characters)",
        "c07/app",
        "ConfigurationError",
        "ProjectName",
        configuration={"Owner": "c07", "ProjectName": "a" * 1000, "Branch": "main"},
    ),
    BadInput(
        "Branch with a space",
        "c08/app",
        "ConfigurationError",
        "Branch",
        configuration={"Owner": "c08", "ProjectName": "app", "Branch": "my branch"},
    ),
    BadInput(
        "Branch with '..'",
        "c09/app",
        "ConfigurationError",
        "Branch",
        configuration={"Owner": "c09", "ProjectName": "app", "Branch": "feature/../main"},
    ),
    BadInput(
        "Branch with characters that need encoding",
        "c10/app",
        SUCCEEDED,
        configuration={"Owner": "c10", "ProjectName": "app", "Branch": "feature/#42-ü%20"},
        travis_check=_request_had(branch="feature/#42-ü%20", sha=SHA),
        why="the branch travels in the JSON body, byte for byte",
    ),
    BadInput(
        "Owner and repository with '.', '_' and '-'",
        "c11.io/web_app-2",
        SUCCEEDED,
        travis_check=_request_had(branch="main"),
        why="the slug is sent as c11.io%2Fweb_app-2",
    ),
    BadInput(
        "Endpoint not https",
        "c12/app",
        "ConfigurationError",
        "Endpoint",
        configuration={
            "Owner": "c12",
            "ProjectName": "app",
            "Branch": "main",
            "Endpoint": "http://travis.example.com",
        },
    ),
    BadInput(
        "Endpoint not a URL",
        "c13/app",
        "ConfigurationError",
        "Endpoint",
        configuration={
            "Owner": "c13",
            "ProjectName": "app",
            "Branch": "main",
            "Endpoint": "travis please",
        },
    ),
    BadInput(
        "Endpoint with credentials in it",
        "c14/app",
        "ConfigurationError",
        "Endpoint",
        configuration={
            "Owner": "c14",
            "ProjectName": "app",
            "Branch": "main",
            "Endpoint": "https://user:pass@travis.example.com/api",
        },
    ),
    BadInput(
        "Endpoint not trusted and no APIToken",
        "c15/app",
        "ConfigurationError",
        "not trusted",
        configuration={
            "Owner": "c15",
            "ProjectName": "app",
            "Branch": "main",
            "Endpoint": "https://travis.example.com/api",
        },
        why="the worker's own token never goes to a host a pipeline author chose",
    ),
    BadInput(
        "token refused (Travis does not know it: 403 access denied)",
        "c16/app",
        "PermissionError",
        "refused the API token (HTTP 403)",
        api_token=UNKNOWN_TOKEN,
        travis_check=_posted(1, created=0),
    ),
    BadInput(
        "token without permission to trigger builds (403 insufficient_access)",
        "c17/app",
        "PermissionError",
        "may not trigger builds of c17/app",
        api_token=READ_ONLY_TOKEN,
        setup=_read_only_token,
        travis_check=_posted(1, created=0),
    ),
    BadInput(
        "repository unknown (404)",
        "c18/app",
        "ConfigurationError",
        "check the Owner and ProjectName",
        script=quick(exists=False),
    ),
    BadInput(
        "repository not active on Travis (406)",
        "c36/app",
        "ConfigurationError",
        "not active",
        script=quick(active=False),
    ),
    BadInput(
        "commit unknown (request rejected: missing commit)",
        "c19/app",
        "RevisionUnavailable",
        SHA,
        script=quick(known_commits={"0" * 40}),
        travis_check=_posted(1, created=1),
    ),
    BadInput(
        "request rejected: .travis.yml missing, builds without it disabled",
        "c20/app",
        "ConfigurationError",
        ".travis.yml is missing",
        script=quick(travis_yml=None, builds_only_with_travis_yml=True),
    ),
    BadInput(
        "request rejected: branch excluded",
        "c21/app",
        "ConfigurationError",
        "branch not included or excluded",
        script=quick(reject=True),
    ),
    BadInput(
        "request rejected with Travis's own reason",
        "c37/app",
        "ConfigurationError",
        "this repository is migrating",
        script=quick(reject=True, reject_message="this repository is migrating"),
        why="the reason is the request's `message`",
    ),
    BadInput(
        "Travis built another commit than the pipeline's",
        "c39/app",
        "RevisionOutOfSync",
        f"commit {OTHER_SHA} instead of the pipeline's revision {SHA}",
        script=quick(build_sha=OTHER_SHA),
    ),
    BadInput(
        "revision is an S3 object version id, not a commit",
        "c40/app",
        SUCCEEDED,
        "built the branch head",
        revision=S3_VERSION_ID,
        travis_check=_request_had(sha=None, branch="main"),
        why="the version id is never sent as `sha`; Travis builds the branch head",
    ),
    BadInput(
        "HTML instead of JSON (a proxy's 502 page, persistent)",
        "c22/app",
        "SystemUnavailable",
        "unavailable",
        faults=_persistent("get_request", status=502, malformed="html"),
    ),
    BadInput(
        "HTML instead of JSON with status 200 (persistent)",
        "c35/app",
        "SystemUnavailable",
        "malformed",
        faults=_persistent("get_build", malformed="html", status=200),
    ),
    BadInput(
        "truncated JSON (persistent)",
        "c23/app",
        "SystemUnavailable",
        "malformed",
        faults=_persistent("get_build", malformed="truncated"),
    ),
    BadInput(
        "huge response (5 MB, persistent)",
        "c24/app",
        "SystemUnavailable",
        "malformed",
        faults=_persistent("get_build", malformed="huge"),
    ),
    BadInput(
        "JSON of the wrong shape for a build",
        "c25/app",
        "SystemUnavailable",
        "malformed",
        faults=_persistent("get_build", malformed="wrong_shape"),
    ),
    BadInput(
        "JSON of the wrong shape for a request",
        "c34/app",
        "SystemUnavailable",
        "malformed",
        faults=_persistent("get_request", malformed="wrong_shape"),
    ),
    BadInput(
        "Travis failing (500 on every call, persistent)",
        "c26/app",
        "SystemUnavailable",
        "unavailable",
        faults=_persistent("*", status=500),
        travis_check=_posted(1),
        why="the build request is posted once: its outcome is unknown, so it is looked for",
    ),
    BadInput(
        "Travis throttling build requests (429 Retry later, persistent)",
        "c41/app",
        "SystemUnavailable",
        "throttling",
        faults=_persistent("create_request", status=429),
        travis_check=_posted(18, created=0),
        why="a throttle created nothing: 3 POSTs per submit attempt, 6 attempts",
    ),
    BadInput(
        "request limit reached (429 request_limit_reached)",
        "c27/app",
        "SystemUnavailable",
        "3 build requests per 60 minutes",
        script=quick(rate_limit=3),
        setup=_limit_spent_by_others,
        travis_check=_posted(1, created=0, others=3),
        why="failed at once: posting again before the limit frees up only adds requests",
    ),
    BadInput(
        "token banned for an hour (403 Forbidden after a burst of POSTs)",
        "c38/app",
        "SystemUnavailable",
        "temporarily blocked the API token",
        api_token=BANNED_TOKEN,
        setup=_banned_token,
        travis_check=_posted(1, created=0),
    ),
    BadInput(
        "answer to the build request lost (the request was created)",
        "c42/app",
        SUCCEEDED,
        faults=_once("create_request", drop=True, process_first=True),
        travis_check=_one_build,
        why="the retried submit finds its request instead of posting again",
    ),
    BadInput(
        "answer to the build request slower than the client waits (created at once)",
        "c43/app",
        SUCCEEDED,
        faults=_once("create_request", delay=25.0, process_first=True),
        travis_check=_one_build,
    ),
    BadInput(
        "answer lost, and Travis slow to process the request (2 minutes)",
        "c44/app",
        SUCCEEDED,
        script=quick(processing_delay=120.0),
        faults=_once("create_request", drop=True, process_first=True),
        travis_check=_one_build,
        why="the submit waits for the pending request rather than post a second one",
    ),
    BadInput(
        "answer lost, and Travis never processes the request",
        "c45/app",
        "SystemUnavailable",
        "does not ask for another build",
        script=quick(processing_delay=None),
        faults=_once("create_request", drop=True, process_first=True),
        travis_check=_posted(1, created=1),
    ),
    BadInput(
        "Travis accepts the request but never processes it",
        "c46/app",
        "SystemUnavailable",
        "15 minutes",
        script=quick(processing_delay=None),
        travis_check=_posted(1, created=1),
    ),
    BadInput(
        "continuation token corrupt",
        "c28/app",
        "JobFailed",
        "corrupt",
        continuation_token='{"version": 1, "build_id": ',
    ),
    BadInput(
        "continuation token from another worker version",
        "c29/app",
        "JobFailed",
        "another worker version",
        continuation_token=_token(7, build_id="1", slug="c29/app"),
    ),
    BadInput(
        "continuation token with fields missing",
        "c30/app",
        "JobFailed",
        "incomplete",
        continuation_token=_token(1, build_id="1"),
    ),
    BadInput(
        "unknown action type (version 2 of ours)",
        "c31/app",
        NOT_CLAIMED,
        action_version="2",
        why="the worker polls only the types it registered",
    ),
    BadInput(
        "input artifact without a revision",
        "c32/app",
        SUCCEEDED,
        revision=None,
        travis_check=_request_had(sha=None, branch="main"),
        why="Travis builds the branch head; there is no commit to pin",
    ),
    BadInput(
        "action without input artifact",
        "c33/app",
        SUCCEEDED,
        input_artifact=False,
        travis_check=_request_had(sha=None),
    ),
)


@dataclass
class Answer:
    """What the pipeline user got for one case."""

    case: BadInput
    result: str
    message: str  # the failure message, or the final success summary
    run: ActionRun
    travis_ok: bool
    ends: str = ""  # the end state of each job's execution, e.g. "LinkPublished, BuildPassed"

    @property
    def as_expected(self) -> bool:
        return (
            self.result == self.case.expected
            and self.case.message in self.message
            and self.travis_ok
        )


def catalogue_worker(template: dict[str, Any], time_scale: float = TIME_SCALE) -> LocalWorker:
    """The local worker the catalogue runs in: one virtual clock, a Travis fake that knows the
    worker's token and nothing else (every repository is a case's), default Rack::Attack."""
    clock = VirtualClock(time_scale)
    travis = TravisFake(clock=clock)
    emulator = CodePipelineEmulator(redelivery_timeout_seconds=REDELIVERY_SECONDS, clock=clock)
    return LocalWorker(template, clock=clock, travis=travis, emulator=emulator)


def run_catalogue(
    worker: LocalWorker, cases: tuple[BadInput, ...] = CASES, timeout: float = 90.0
) -> list[Answer]:
    """Run every case at once through one running local worker and collect the answers."""
    for case in cases:
        worker.travis.add_repo(case.slug, case.script)
        if case.faults:
            case.faults(worker.travis, case.slug)
    run_ids: dict[str, str] = {}
    # Cases that prepare Travis (a spent limit, a ban) start first, right after their setup:
    # what they set up lasts an hour of Travis's time, not the whole catalogue.
    for case in sorted(cases, key=lambda c: c.setup is None):
        if case.setup:
            case.setup(worker.travis, case.slug)
        action_type = dict(worker.action_type)
        if case.action_version:
            action_type["version"] = case.action_version
        job_id = worker.emulator.create_job(
            action_type,
            case.config(),
            pipeline_name=case.slug.replace("/", "-").replace(".", "-"),
            input_revision=case.revision,
            input_artifact_name="SourceArtifact" if case.input_artifact else None,
            continuation_token=case.continuation_token,
        )
        run_ids[case.slug] = worker.emulator.job(job_id).action_execution_id
    expected_to_finish = [run_ids[c.slug] for c in cases if c.expected != NOT_CLAIMED]
    worker.wait_for_runs(expected_to_finish, timeout=timeout)
    worker.wait_idle(10)
    executions = worker.executions()
    answers = []
    for case in cases:
        run = worker.emulator.action_run(run_ids[case.slug])
        if not run.finished:
            untouched = all(worker.emulator.job(j).acknowledgements == 0 for j in run.job_ids)
            result = NOT_CLAIMED if untouched else "open"
            message = ""
        elif run.status == "Succeeded":
            result = SUCCEEDED
            message = str((run.results[-1].execution_details or {}).get("summary", ""))
        else:
            failure = run.failure_details or {}
            result, message = str(failure.get("type")), str(failure.get("message", ""))
        travis_ok = case.travis_check(worker.travis, case.slug) if case.travis_check else True
        answers.append(
            Answer(case, result, message, run, travis_ok, _ends(worker, run, executions))
        )
    return answers


def _ends(worker: LocalWorker, run: ActionRun, executions: list[dict[str, Any]]) -> str:
    """Each job's end state, in job order (duplicate hand-outs that ended NotClaimed aside)."""
    ends = []
    for job_id in run.job_ids:
        states = [
            worker.end_state(e["executionArn"])
            for e in executions
            if e["name"].startswith(job_id) and e["status"] != "RUNNING"
        ]
        claimed = [s for s in states if s and s != "NotClaimed"]
        ends.extend(claimed or [s for s in states if s][:1])
    return ", ".join(ends) or "-"


TRAVIS_URL_IN_DOCS = "https://api.travis-ci.com"


def markdown(answers: list[Answer], travis_url: str) -> str:
    lines = [
        "# Bad input: what the pipeline user is told",
        "",
        "Generated by `python -m local.catalogue --markdown` from the cases the end-to-end suite",
        "runs (`tests/e2e/test_bad_input.py`); every row is one action run through the real",
        "worker against the Travis fake's real answers. *Ends* is the end state of each job's",
        "state machine execution; for a success the message is the summary the console shows.",
        "",
        "| # | Input | Result | Ends | Message (as CodePipeline shows it) |",
        "|---|-------|--------|------|------------------------------------|",
    ]
    for number, answer in enumerate(answers, 1):
        note = f" ({answer.case.why})" if answer.case.why else ""
        message = answer.message.replace("|", "\\|").replace("\n", " ")
        message = message.replace(travis_url, TRAVIS_URL_IN_DOCS)
        lines.append(
            f"| {number} | {answer.case.name}{note} | `{answer.result}` | {answer.ends} "
            f"| {message} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the bad-input catalogue locally.")
    parser.add_argument("--markdown", action="store_true", help="print the documentation table")
    parser.add_argument("--time-scale", type=float, default=TIME_SCALE)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    began = time.monotonic()
    worker = catalogue_worker(synthesize(), args.time_scale)
    # Nothing but the table on stdout (some EMF metric lines are printed, not captured).
    with contextlib.redirect_stdout(sys.stderr), worker:
        worker.emulator.add_action_listener(worker.on_action_started)
        worker.start_sweeper(0.05)
        answers = run_catalogue(worker)
        travis_url = worker.travis.base_url
    if args.markdown:
        sys.stdout.write(markdown(answers, travis_url))
    else:
        for answer in answers:
            mark = "ok " if answer.as_expected else "BAD"
            travis = "" if answer.travis_ok else " (Travis saw something else)"
            print(
                f"{mark} {answer.case.name[:60]:<60} {answer.result:<20} {answer.ends:<28} "
                f"{answer.message[:80]}{travis}"
            )
        print(f"{len(answers)} cases in {time.monotonic() - began:.1f}s")
    return 0 if all(a.as_expected for a in answers) else 1


if __name__ == "__main__":
    sys.exit(main())
