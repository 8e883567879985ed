"""Travis CI as a build provider: submit, resolve, follow, explain and cancel builds."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import requests

from worker import clock
from worker.clock import parse_time
from worker.codepipeline import CodePipelineJobs
from worker.continuation import Continuation
from worker.failures import (
    ConfigurationInvalid,
    JobFailure,
    RequestAmbiguous,
    RequestLimitReached,
    RequestPending,
    RevisionNotFound,
    ServiceUnavailable,
    clip,
)
from worker.job import ExecutionInput
from worker.providers import (
    BuildRef,
    BuildStatus,
    CancelResult,
    JobState,
    Submission,
    SubmitAttempt,
)
from worker.providers.travis import logs
from worker.providers.travis.client import (
    RequestOutcomeUnknown,
    Throttled,
    TravisClient,
)
from worker.providers.travis.configuration import TravisTarget, build_url, read_target
from worker.providers.travis.lookup import Lookup, job_marker
from worker.providers.travis.token import TokenSource
from worker.retry import RetryBudget
from worker.schedule import Expectation
from worker.settings import Settings

PROVIDER = "travis"
TERMINAL_STATES = frozenset({"passed", "failed", "errored", "canceled"})
# Build states before the end (travis-hub lib/travis/hub/model/build.rb); anything else is an
# answer we do not understand.
RUNNING_STATES = frozenset({"created", "queued", "received", "booting", "started"})
MAX_CREATE_ATTEMPTS = 3  # only after a throttle, which created nothing
# Requests of this job are looked for from the submit's first attempt, less this margin for the
# clocks of AWS and Travis disagreeing.
CLOCK_SKEW_SECONDS = 120.0
LOOKUP_PAGE = 10
LOOKUP_PAGES = 10
# A request that may be ours and stays unprocessed this long: give up rather than post again.
PENDING_BOUND_SECONDS = 600.0
# A git commit id as CodePipeline passes it for GitHub/CodeCommit/Bitbucket sources; an S3
# source's revision is a version id and must not be sent as `sha`.
_COMMIT_ID = re.compile(r"[0-9a-f]{7,40}")
_MISSING_COMMIT = re.compile(
    r"missing commit|commit .*(not found|could not be found|does not exist|missing)|"
    r"(unknown|invalid|bad) (sha|commit)|sha .*not found",
    re.IGNORECASE,
)
LOG_TAIL_JOBS = 2  # quote the logs of at most this many failing jobs
LOG_TAIL_LINES = 20
LOG_KEEP_BYTES = 64 * 1024

# One HTTP session per Lambda container, made at cold start: warm invocations (the watch loop's
# looks at Travis) reuse its kept-alive connections. The token travels per request, never on it.
_SESSION = requests.Session()


def is_commit_id(revision: str | None) -> bool:
    return bool(revision) and bool(_COMMIT_ID.fullmatch(str(revision).lower()))


class TravisProvider:
    """The Travis implementation of the BuildProvider seam."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenSource,
        *,
        session: requests.Session | None = None,
        budget: Callable[[], RetryBudget] = RetryBudget,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._session = session or _SESSION
        self._budget = budget

    @classmethod
    def for_settings(cls, settings: Settings) -> TravisProvider:
        tokens = TokenSource(
            CodePipelineJobs(), settings.token_secret_arn, settings.trusted_endpoints
        )
        return cls(settings, tokens)

    def validate(self, configuration: Mapping[str, str]) -> None:
        read_target(configuration, self._settings.default_endpoint)

    # --- phase 1 -------------------------------------------------------------------------------

    def submit(
        self, job: ExecutionInput, attempt: SubmitAttempt, before_post: Callable[[], None]
    ) -> Submission:
        target = self._target(job)
        client = self._client(job, target.endpoint)
        marker = job_marker(job.job_id)
        if not attempt.first:
            found = self._find_own_request(client, target, marker, attempt.window_start)
            if found is not None:
                return Submission(
                    request_id=found,
                    created=False,
                    submitted_at=clock.now(),
                    sha_sent=is_commit_id(job.revision),
                    lost_answer=True,
                    push=self._settings.push,
                    window_start=attempt.window_start,
                )
        before_post()
        body = self._request_body(job, target, marker)
        budget = self._budget()
        for tries in range(MAX_CREATE_ATTEMPTS):
            try:
                answer = client.create_request(target.slug, {"request": body})
            except Throttled as throttled:
                if throttled.limit_reached:
                    raise self._limit_reached(client, target, throttled) from None
                # The global throttle created nothing: posting again after a pause is safe.
                delay = budget.backoff(tries, throttled.retry_after)
                if delay is None:
                    break
                budget.wait(delay)
                continue
            except RequestOutcomeUnknown:
                # The request may exist, or still be in flight: never post again now. The state
                # machine retries the step after longer than the client's read timeout, and a
                # retried submit looks for its request before it posts.
                raise ServiceUnavailable(
                    f"Travis CI did not answer the build request for {target.slug}; the worker "
                    "looks for it before it asks again."
                ) from None
            request_id = _request_id(answer)
            if request_id is None:
                raise ServiceUnavailable(
                    f"Travis CI answered the build request for {target.slug} without a request "
                    "id; the worker looks for it before it asks again."
                )
            return Submission(
                request_id=request_id,
                created=True,
                submitted_at=clock.now(),
                sha_sent="sha" in body,
                lost_answer=not attempt.first,
                push=self._settings.push,
                window_start=attempt.window_start,
            )
        raise ServiceUnavailable(
            f"Travis CI kept throttling the build request for {target.slug} (HTTP 429)."
        )

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
        commit = request.get("commit") if isinstance(request.get("commit"), dict) else {}
        if builds:
            build = builds[0]
            build_id = str(build["id"])
            # The commit Travis builds is the build's, which may differ from the request's.
            built = self._client(job, target.endpoint).get_build(target.slug, build_id)
            built_commit = built.get("commit") if isinstance(built.get("commit"), dict) else {}
            sha = (built_commit or {}).get("sha") or (commit or {}).get("sha")
            return BuildRef(
                build_id=build_id,
                number=str(build.get("number") or built.get("number") or ""),
                url=self._build_url(target.endpoint, target.slug, build_id),
                commit=str(sha) if sha else None,
            )
        if request.get("result") == "rejected" or (
            request.get("state") in ("finished", "rejected", "errored") and request.get("result")
        ):
            reason = _rejection_reason(request)
            if is_commit_id(job.revision) and _MISSING_COMMIT.search(reason):
                raise RevisionNotFound(
                    f"Commit {job.revision} does not exist in {target.slug} on branch "
                    f"{target.branch} (Travis CI: {reason})."
                )
            raise ConfigurationInvalid(
                f"Travis CI rejected the build request for {target.slug} on branch "
                f"{target.branch}: {reason or 'no reason given'}."
            )
        return None

    def expectation(self, job: ExecutionInput) -> Expectation | None:
        target = self._target(job)
        try:
            builds = self._client(job, target.endpoint).recent_builds(target.slug, target.branch)
        except JobFailure:
            return None  # history only tunes the schedule: never fail a job over it
        durations = []
        for build in builds:
            started, finished = (
                parse_time(build.get("started_at")),
                parse_time(build.get("finished_at")),
            )
            if started is not None and finished is not None and finished > started:
                durations.append(finished - started)
        return Expectation.from_durations(durations)

    def continuation(
        self,
        job: ExecutionInput,
        submission: Submission,
        build: BuildRef,
        expectation: Expectation | None,
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
            url=build.url,
            revision=job.revision if submission.sha_sent and job.revision else "",
            branch_head=not submission.sha_sent,
            expected=expectation.seconds if expectation else 0.0,
            spread=expectation.spread if expectation else 0.0,
            lost_answer=submission.lost_answer,
            push=submission.push,
        )

    def cancel_duplicates(
        self, job: ExecutionInput, submission: Submission, window_start: float
    ) -> list[str]:
        target = self._target(job)
        client = self._client(job, target.endpoint)
        lookup = self._read_window(client, target, job_marker(job.job_id), window_start)
        canceled = []
        for request_id in lookup.ours:
            if request_id == submission.request_id:
                continue
            request = client.get_request(target.slug, request_id)
            for build in request.get("builds") or []:
                if isinstance(build, dict) and build.get("id"):
                    client.cancel_build(target.slug, str(build["id"]))
                    canceled.append(str(build["id"]))
        return canceled

    # --- phase 2 -------------------------------------------------------------------------------

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
        commit = build.get("commit") if isinstance(build.get("commit"), dict) else {}
        return BuildStatus(
            build_id=continuation.build_id,
            number=str(build.get("number") or continuation.build_number),
            url=continuation.url
            or self._build_url(continuation.endpoint, continuation.slug, continuation.build_id),
            state=state,
            finished=state in TERMINAL_STATES,
            passed=state == "passed",
            commit=str(commit.get("sha")) if commit and commit.get("sha") else None,
            started_at=parse_time(build.get("started_at")),
            finished_at=parse_time(build.get("finished_at")),
            jobs=tuple(_jobs(build.get("jobs"))),
        )

    def cancel(self, job: ExecutionInput, continuation: Continuation) -> CancelResult:
        client = self._client(job, continuation.endpoint)
        return client.cancel_build(continuation.slug, continuation.build_id)

    def explain_failure(
        self, job: ExecutionInput, continuation: Continuation, status: BuildStatus
    ) -> str:
        failing = [j for j in status.jobs if j.state in ("failed", "errored")]
        if not failing:
            return ""
        token = self._tokens.token_for(job.job_id, continuation.endpoint)
        client = TravisClient(
            continuation.endpoint, token, session=self._session, budget=self._budget()
        )
        parts = []
        for failed in failing[:LOG_TAIL_JOBS]:
            lines = logs.explanation(
                client.job_log(failed.job_id, keep_bytes=LOG_KEEP_BYTES),
                lines=LOG_TAIL_LINES,
                secrets=(token,),
            )
            name = f"Job #{failed.number or failed.job_id} {failed.state}"
            parts.append(f"{name}:\n" + "\n".join(lines) if lines else f"{name}.")
        more = len(failing) - LOG_TAIL_JOBS
        if more > 0:
            parts.append(f"({more} more failing job{'s' if more > 1 else ''} not shown.)")
        return "\n".join(parts)

    # --- helpers -------------------------------------------------------------------------------

    def _target(self, job: ExecutionInput) -> TravisTarget:
        return read_target(job.configuration, self._settings.default_endpoint)

    def _client(self, job: ExecutionInput, endpoint: str) -> TravisClient:
        token = self._tokens.token_for(job.job_id, endpoint)
        return TravisClient(endpoint, token, session=self._session, budget=self._budget())

    def _build_url(self, endpoint: str, slug: str, build_id: str) -> str:
        if endpoint.rstrip("/") == self._settings.default_endpoint.rstrip("/"):
            return f"{self._settings.web_url}/{slug}/builds/{build_id}"
        return build_url(endpoint, slug, build_id)

    def _request_body(
        self, job: ExecutionInput, target: TravisTarget, marker: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"branch": target.branch, "message": _request_message(job, marker)}
        if is_commit_id(job.revision):
            body["sha"] = job.revision
        if self._settings.push:
            # Merged into the repository's .travis.yml with Travis's default deep_merge_append:
            # our URL is appended to the user's webhook URLs (README: the caveats).
            body["config"] = {"notifications": {"webhooks": {"urls": [self._settings.webhook_url]}}}
        return body

    def _read_window(
        self, client: TravisClient, target: TravisTarget, marker: str, window_start: float
    ) -> Lookup:
        since = window_start - CLOCK_SKEW_SECONDS
        lookup = Lookup()
        for page in range(LOOKUP_PAGES):
            entries = client.list_requests(
                target.slug, since=since, limit=LOOKUP_PAGE, offset=page * LOOKUP_PAGE
            )
            lookup.read(entries, marker, since)
            if len(entries) < LOOKUP_PAGE or (
                lookup.oldest_seen is not None and lookup.oldest_seen < since
            ):
                return lookup
        raise RequestAmbiguous(
            f"Travis CI lists more than {LOOKUP_PAGE * LOOKUP_PAGES} build requests of "
            f"{target.slug} since this job started; the worker cannot tell whether one is this "
            "job's, and does not ask again to avoid a second build."
        )

    def _find_own_request(
        self, client: TravisClient, target: TravisTarget, marker: str, window_start: float
    ) -> str | None:
        """The request an earlier attempt made, None when there is certainly none.

        Raises RequestPending while a request that may be ours is unprocessed, RequestAmbiguous
        when one stays so past the bound.
        """
        lookup = self._read_window(client, target, marker, window_start)
        if lookup.found is not None:
            return lookup.found
        if lookup.pending:
            request_id, created = min(lookup.pending, key=lambda p: p[1])
            age = clock.now() - created
            if age > PENDING_BOUND_SECONDS:
                raise RequestAmbiguous(
                    f"Travis CI has not processed build request {request_id} of {target.slug} "
                    f"for {int(age // 60)} minutes; it may be this job's, so the worker does not "
                    "ask for another build (that could run twice). Re-run the stage once Travis "
                    "processes requests again."
                )
            raise RequestPending(
                f"Travis CI has not processed build request {request_id} of {target.slug} yet; "
                "it may be this job's."
            )
        return None

    def _limit_reached(
        self, client: TravisClient, target: TravisTarget, throttled: Throttled
    ) -> RequestLimitReached:
        limit = throttled.max_requests or 10
        window = throttled.per_seconds or 3600
        frees = ""
        try:
            # services/requests/create.rb: the limit counts the repository's API requests of the
            # last hour; the oldest of them is the next to fall out of the window.
            entries = client.list_requests(target.slug, since=clock.now() - window, limit=100)
            created = [
                t
                for e in entries
                if e.get("event_type") in (None, "api")
                and (t := parse_time(e.get("created_at"))) is not None
            ]
            if created:
                frees_at = min(created) + window
                minutes = max(1, int((frees_at - clock.now() + 59) // 60))
                frees = f" The next request is possible in about {minutes} minutes."
        except JobFailure:
            pass
        return RequestLimitReached(
            f"Travis CI's request limit for {target.slug} is reached: {limit} build requests "
            f"per {window // 60} minutes for the repository, counting every API request from "
            f"anyone.{frees} The build was not requested; re-run the stage later, or ask a "
            "repository admin to raise the limit in Travis CI."
        )


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


def _rejection_reason(request: dict[str, Any]) -> str:
    """Travis's reason (the status text in `message`), with config-lint errors as detail."""
    reason = str(request.get("message") or "").strip()
    lint = []
    for entry in request.get("messages") or []:
        if not isinstance(entry, dict) or entry.get("level") not in ("error", "alert"):
            continue
        parts = [str(entry[k]) for k in ("code", "key") if entry.get(k)]
        args = entry.get("args")
        if isinstance(args, dict) and args:
            parts.append(", ".join(f"{k}={v}" for k, v in args.items()))
        if parts:
            lint.append(" ".join(parts))
    if lint:
        reason = f"{reason} (.travis.yml: {'; '.join(lint[:5])})" if reason else "; ".join(lint)
    return clip(reason, 600)


def _jobs(raw: Any) -> list[JobState]:
    jobs = []
    for job in raw if isinstance(raw, list) else []:
        if isinstance(job, dict) and job.get("id") is not None:
            jobs.append(
                JobState(
                    job_id=str(job["id"]),
                    number=str(job.get("number") or ""),
                    state=str(job.get("state") or ""),
                    started_at=parse_time(job.get("started_at")),
                    finished_at=parse_time(job.get("finished_at")),
                )
            )
    return jobs


def cancel_build_of(
    settings: Settings, job_id: str, build_id: str, endpoint: str, slug: str
) -> str:
    """Cancel a build known only by its ids (the abandon handler, with no execution parked).

    The token comes from the job's APIToken when CodePipeline still shows the job, else from
    the worker's secret (trusted endpoints only).
    """
    tokens = TokenSource(CodePipelineJobs(), settings.token_secret_arn, settings.trusted_endpoints)
    token = tokens.token_for(job_id, endpoint)
    client = TravisClient(endpoint, token, session=_SESSION)
    try:
        return client.cancel_build(slug, build_id).value
    except JobFailure as error:
        return f"failed: {error.message}"
