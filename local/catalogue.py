"""The bad-input catalogue: what the worker answers to each kind of bad input, run end to end.

Each case is one pipeline action run through the real worker (local runner, emulators). The
end-to-end suite asserts every row; `python -m local.catalogue --markdown` prints the table that
docs/bad-input.md holds, so the documentation is generated from the cases that are tested.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.codepipeline_emulator import ActionRun
from local.runner import LocalWorker, synthesize
from local.travis_fake import RepoScript, TravisFake

SHA = "5d41402abc4b2a76b9719d911017c592ae7f3c1d"
NOT_CLAIMED = "not claimed"
SUCCEEDED = "Succeeded"
PERSISTENT = 10_000  # "times" for a fault that never clears


@dataclass(frozen=True)
class BadInput:
    """One kind of bad input and the answer a pipeline user must get."""

    name: str
    slug: str
    expected: str  # a failureDetails.type, "Succeeded", or "not claimed"
    message: str = ""  # a fragment the failure message must contain
    configuration: dict[str, str] | None = None
    revision: str | None = SHA
    script: RepoScript = field(default_factory=RepoScript)
    faults: Callable[[TravisFake, str], None] | None = None
    continuation_token: str | None = None
    action_version: str | None = None  # another version of the action type
    input_artifact: bool = True
    travis_check: Callable[[TravisFake, str], bool] | None = None  # what Travis must have seen
    why: str = ""

    def config(self) -> dict[str, str]:
        if self.configuration is not None:
            return self.configuration
        owner, project = self.slug.split("/")
        return {"Owner": owner, "ProjectName": project, "Branch": "main"}


def _persistent(kind: str, **fault: Any) -> Callable[[TravisFake, str], None]:
    def apply(travis: TravisFake, slug: str) -> None:
        if "malformed" in fault:
            travis.malformed_next(
                kind, fault["malformed"], times=PERSISTENT, slug=slug, status=fault.get("status")
            )
        else:
            travis.fail_next(
                kind,
                fault["status"],
                times=PERSISTENT,
                slug=slug,
                retry_after=fault.get("retry_after"),
            )

    return apply


def _request_had(**expected: Any) -> Callable[[TravisFake, str], bool]:
    """Travis received exactly one build request, whose body had these fields (None: absent)."""

    def check(travis: TravisFake, slug: str) -> bool:
        posted = [
            c.body["request"]
            for c in travis.calls
            if c.kind == "create_request" and c.slug == slug.lower() and c.status == 202
        ]
        return len(posted) == 1 and all(posted[0].get(k) == v for k, v in expected.items())

    return check


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
        "token refused (401)",
        "c16/app",
        "PermissionError",
        "HTTP 401",
        script=RepoScript(auth_error=401),
    ),
    BadInput(
        "token without access (403)",
        "c17/app",
        "PermissionError",
        "HTTP 403",
        script=RepoScript(auth_error=403),
    ),
    BadInput(
        "repository unknown (404)",
        "c18/app",
        "ConfigurationError",
        "ProjectName",
        script=RepoScript(exists=False),
    ),
    BadInput(
        "commit unknown",
        "c19/app",
        "RevisionUnavailable",
        SHA,
        script=RepoScript(known_commits={"0" * 40}),
    ),
    BadInput(
        "request rejected: .travis.yml missing",
        "c20/app",
        "ConfigurationError",
        ".travis.yml: missing",
        script=RepoScript(reject=True, reject_messages=[".travis.yml: missing"]),
    ),
    BadInput(
        "request rejected: branch excluded",
        "c21/app",
        "ConfigurationError",
        "branch main is excluded",
        script=RepoScript(reject=True, reject_messages=["branch main is excluded"]),
    ),
    BadInput(
        "HTML instead of JSON (a proxy's 502 page, persistent)",
        "c22/app",
        "SystemUnavailable",
        "unavailable",
        faults=_persistent("get_request", malformed="html"),
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
        "Travis down (503, persistent)",
        "c26/app",
        "SystemUnavailable",
        "unavailable",
        faults=_persistent("list_requests", status=503),
    ),
    BadInput(
        "request limit reached (429, long Retry-After)",
        "c27/app",
        "SystemUnavailable",
        "request limit",
        faults=_persistent("create_request", status=429, retry_after=3600),
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
    message: str
    run: ActionRun
    travis_ok: bool

    @property
    def as_expected(self) -> bool:
        return (
            self.result == self.case.expected
            and self.case.message in self.message
            and self.travis_ok
        )


def run_catalogue(
    worker: LocalWorker, cases: tuple[BadInput, ...] = CASES, timeout: float = 60.0
) -> list[Answer]:
    """Run every case at once through one local worker and collect the answers."""
    for case in cases:
        if case.faults:
            case.faults(worker.travis, case.slug)
        worker.travis.add_repo(case.slug, case.script)
    run_ids: list[str] = []
    for case in cases:
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
        run_ids.append(worker.emulator.job(job_id).action_execution_id)
    expected_to_finish = [
        r for r, c in zip(run_ids, cases, strict=True) if c.expected != NOT_CLAIMED
    ]
    worker.wait_for_runs(expected_to_finish, timeout=timeout)
    worker.wait_idle(10)
    answers = []
    for run_id, case in zip(run_ids, cases, strict=True):
        run = worker.emulator.action_run(run_id)
        if not run.finished:
            untouched = all(worker.emulator.job(j).acknowledgements == 0 for j in run.job_ids)
            result = NOT_CLAIMED if untouched else "open"
            message = ""
        elif run.status == "Succeeded":
            result, message = SUCCEEDED, ""
        else:
            failure = run.failure_details or {}
            result, message = str(failure.get("type")), str(failure.get("message", ""))
        travis_ok = case.travis_check(worker.travis, case.slug) if case.travis_check else True
        answers.append(Answer(case, result, message, run, travis_ok))
    return answers


TRAVIS_URL_IN_DOCS = "https://api.travis-ci.com"


def markdown(answers: list[Answer], travis_url: str) -> str:
    lines = [
        "# Bad input: what the pipeline user is told",
        "",
        "Generated by `python -m local.catalogue --markdown` from the cases the end-to-end suite",
        "runs (`tests/e2e/test_bad_input.py`); every row is one action run through the real",
        "worker.",
        "",
        "| # | Input | Result | Message (as CodePipeline shows it) |",
        "|---|-------|--------|------------------------------------|",
    ]
    for number, answer in enumerate(answers, 1):
        note = f" ({answer.case.why})" if answer.case.why else ""
        message = answer.message.replace("|", "\\|").replace("\n", " ")
        message = message.replace(travis_url, TRAVIS_URL_IN_DOCS)
        lines.append(f"| {number} | {answer.case.name}{note} | `{answer.result}` | {message} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the bad-input catalogue locally.")
    parser.add_argument("--markdown", action="store_true", help="print the documentation table")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    began = time.monotonic()
    travis = TravisFake()
    worker = LocalWorker(synthesize(), travis=travis)
    with worker:
        worker.emulator.add_action_listener(worker.on_action_started)
        worker.start_sweeper(0.05)
        answers = run_catalogue(worker)
        travis_url = travis.base_url
    if args.markdown:
        sys.stdout.write(markdown(answers, travis_url))
    else:
        for answer in answers:
            mark = "ok " if answer.as_expected else "BAD"
            print(f"{mark} {answer.case.name:<55} {answer.result:<20} {answer.message[:90]}")
        print(f"{len(answers)} cases in {time.monotonic() - began:.1f}s")
    return 0 if all(a.as_expected for a in answers) else 1


if __name__ == "__main__":
    sys.exit(main())
