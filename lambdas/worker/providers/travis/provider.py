"""Travis CI as a build provider: submit, resolve, follow and cancel builds."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from worker.codepipeline import CodePipelineJobs
from worker.continuation import Continuation
from worker.failures import ConfigurationInvalid, RevisionNotFound, ServiceUnavailable, clip
from worker.job import ExecutionInput
from worker.providers import BuildRef, BuildStatus, Submission
from worker.providers.travis.client import RateLimited, RequestOutcomeUnknown, TravisClient
from worker.providers.travis.configuration import TravisTarget, build_url, read_target
from worker.providers.travis.token import TokenSource
from worker.retry import RetryBudget
from worker.settings import Settings

PROVIDER = "travis"
TERMINAL_STATES = frozenset({"passed", "failed", "errored", "canceled"})
# Build states before the end (Travis v3); anything else is an answer we do not understand.
RUNNING_STATES = frozenset({"created", "received", "queued", "booting", "started"})
MAX_CREATE_ATTEMPTS = 3
_MISSING_COMMIT_WORDS = re.compile(r"commit|\bsha\b", re.IGNORECASE)
_NOT_FOUND_WORDS = re.compile(
    r"not found|not be found|could not find|missing|unknown|does not exist|doesn.t exist", re.I
)


# One HTTP session per Lambda container, made at cold start: warm invocations (the watch loop's
# looks at Travis) reuse its kept-alive connections. The token travels per request, never on it.
_SESSION = requests.Session()


def job_marker(job_id: str) -> str:
    """Put in the Travis request message so a retried submit can find the request it made."""
    return f"[codepipeline-job {job_id}]"


class TravisProvider:
    """The Travis implementation of the BuildProvider seam."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenSource,
        *,
        session: requests.Session | None = None,
        budget: Callable[[], RetryBudget] = RetryBudget,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._session = session or _SESSION
        self._budget = budget
        self._clock = clock

    @classmethod
    def for_settings(cls, settings: Settings) -> TravisProvider:
        tokens = TokenSource(
            CodePipelineJobs(), settings.token_secret_arn, settings.trusted_endpoints
        )
        return cls(settings, tokens)

    def validate(self, configuration: Mapping[str, str]) -> None:
        read_target(configuration, self._settings.default_endpoint)

    def submit(self, job: ExecutionInput) -> Submission:
        target = self._target(job)
        client = self._client(job, target.endpoint)
        marker = job_marker(job.job_id)
        existing = self._find_request(client, target, marker)
        if existing is not None:
            return Submission(request_id=existing, created=False, submitted_at=self._clock())
        body: dict[str, Any] = {"branch": target.branch, "message": _request_message(job, marker)}
        if job.revision:
            body["sha"] = job.revision
        budget = self._budget()
        for attempt in range(MAX_CREATE_ATTEMPTS):
            try:
                answer = client.create_request(target.slug, {"request": body})
            except RateLimited as limited:
                # A 429 created nothing: waiting and posting again is safe.
                # Retry-After 0 means "now"; only a missing header gets our default.
                retry_after = 5.0 if limited.retry_after is None else limited.retry_after
                delay = budget.backoff(attempt, retry_after)
                if delay is None:
                    raise ServiceUnavailable(
                        f"Travis CI's request limit for {target.slug} is reached (HTTP 429); "
                        "the build was not requested."
                    ) from None
                budget.wait(delay)
                continue
            except RequestOutcomeUnknown:
                # The request may exist, or still be in flight (a timed-out POST can land after
                # we look): never post again in this step. Look once; if it is not there yet,
                # the state machine retries the step later, and a retried submit looks first.
                delay = budget.backoff(attempt)
                if delay is not None:
                    budget.wait(delay)
                existing = self._find_request(client, target, marker)
                if existing is not None:
                    return Submission(request_id=existing, created=True, submitted_at=self._clock())
                break
            request_id = _request_id(answer)
            if request_id is None:
                existing = self._find_request(client, target, marker)
                if existing is None:
                    break
                request_id = existing
            return Submission(request_id=request_id, created=True, submitted_at=self._clock())
        raise ServiceUnavailable(f"Travis CI did not confirm the build request for {target.slug}.")

    def resolve(self, job: ExecutionInput, request_id: str) -> BuildRef | None:
        target = self._target(job)
        request = self._client(job, target.endpoint).get_request(target.slug, request_id)
        raw_builds = request.get("builds") or []
        if not isinstance(raw_builds, list) or not isinstance(request.get("state", ""), str):
            raise ServiceUnavailable(
                f"Travis CI answered build request {request_id} of {target.slug} with a "
                "malformed response."
            )
        builds = [b for b in raw_builds if isinstance(b, dict) and b.get("id")]
        if builds:
            build = builds[0]
            build_id = str(build["id"])
            return BuildRef(
                build_id=build_id,
                number=str(build.get("number") or ""),
                url=build_url(target.endpoint, target.slug, build_id),
            )
        if request.get("result") == "rejected" or request.get("state") in ("finished", "errored"):
            reasons = _reasons(request.get("messages"))
            if job.revision and _mentions_missing_commit(reasons):
                raise RevisionNotFound(
                    f"Commit {job.revision} does not exist in {target.slug} (Travis CI: {reasons})."
                )
            raise ConfigurationInvalid(
                f"Travis CI rejected the build request for {target.slug} on branch "
                f"{target.branch}: {reasons or 'no reason given'}."
            )
        return None

    def continuation(
        self, job: ExecutionInput, submission: Submission, build: BuildRef
    ) -> Continuation:
        target = self._target(job)
        return Continuation(
            provider=PROVIDER,
            build_id=build.build_id,
            request_id=submission.request_id,
            endpoint=target.endpoint,
            slug=target.slug,
            started=submission.submitted_at,
            build_number=build.number,
        )

    def status(self, job: ExecutionInput, continuation: Continuation) -> BuildStatus:
        client = self._client(job, continuation.endpoint)
        build = client.get_build(continuation.slug, continuation.build_id)
        state = build.get("state")
        if state not in TERMINAL_STATES and state not in RUNNING_STATES:
            # Waiting on a state we cannot read could last until the watch timeout: say so now.
            raise ServiceUnavailable(
                f"Travis CI answered build {continuation.build_id} of {continuation.slug} "
                "with a malformed response (no build state this worker knows)."
            )
        state = str(state)
        jobs = [j for j in build.get("jobs") or [] if isinstance(j, dict)]
        done = sum(1 for j in jobs if j.get("state") in TERMINAL_STATES)
        finished = state in TERMINAL_STATES
        progress = 100 if finished else int(100 * done / len(jobs)) if jobs else 0
        commit = build.get("commit") if isinstance(build.get("commit"), dict) else {}
        return BuildStatus(
            build_id=continuation.build_id,
            number=str(build.get("number") or continuation.build_number),
            url=build_url(continuation.endpoint, continuation.slug, continuation.build_id),
            state=state,
            finished=finished,
            passed=state == "passed",
            progress=progress,
            commit=str(commit.get("sha")) if commit and commit.get("sha") else None,
        )

    def cancel(self, job: ExecutionInput, continuation: Continuation) -> None:
        client = self._client(job, continuation.endpoint)
        client.cancel_build(continuation.slug, continuation.build_id)

    def _target(self, job: ExecutionInput) -> TravisTarget:
        return read_target(job.configuration, self._settings.default_endpoint)

    def _client(self, job: ExecutionInput, endpoint: str) -> TravisClient:
        token = self._tokens.token_for(job.job_id, endpoint)
        return TravisClient(endpoint, token, session=self._session, budget=self._budget())

    def _find_request(self, client: TravisClient, target: TravisTarget, marker: str) -> str | None:
        for request in client.list_requests(target.slug):
            if marker in str(request.get("message") or "") and request.get("id") is not None:
                return str(request["id"])
        return None


def _request_message(job: ExecutionInput, marker: str) -> str:
    pipeline = job.pipeline
    where = "/".join(p for p in (pipeline.name, pipeline.stage, pipeline.action) if p)
    execution = f" execution {pipeline.execution_id}" if pipeline.execution_id else ""
    return clip(f"AWS CodePipeline {where}{execution} {marker}", 1000)


def _request_id(answer: dict[str, Any]) -> str | None:
    request = answer.get("request")
    if isinstance(request, dict) and request.get("id") is not None:
        return str(request["id"])
    return None


def _reasons(messages: Any) -> str:
    """Travis's explanation of a rejected request, as one short line.

    Entries are strings or message objects ({level, key, code, args}, sometimes with text).
    """
    texts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, str):
            texts.append(message)
        elif isinstance(message, dict):
            text = message.get("text") or message.get("message")
            if isinstance(text, str) and text:
                texts.append(text)
                continue
            parts = [str(message[k]) for k in ("key", "code") if message.get(k)]
            args = message.get("args")
            if isinstance(args, dict):
                parts.extend(f"{k}={v}" for k, v in args.items())
            texts.append(" ".join(parts))
    return clip("; ".join(t for t in texts if t), 600)


def _mentions_missing_commit(reasons: str) -> bool:
    return bool(_MISSING_COMMIT_WORDS.search(reasons) and _NOT_FOUND_WORDS.search(reasons))
