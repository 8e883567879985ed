"""The Travis fake's world as data: repository scripts, tokens, requests, builds, jobs, recordings.

Everything that changes with time is planned when it is created and read *as of* a virtual time
`t`: a job knows when it is queued, received, started and finishes, so "what does Travis show at
12:04:10" is a pure function of the plan, the clock and (for cancellation) when the cancel takes
effect. Nothing here locks; `world.World` owns the lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]

OUTCOMES = ("passed", "failed", "errored", "canceled")
# travis-hub lib/travis/hub/model/build.rb FINISHED_STATES
TERMINAL = frozenset(OUTCOMES)
# travis-yml lib/travis/yml/support/merge.rb MERGE_MODES (append/prepend are list-only modes)
MERGE_MODES = ("replace", "merge", "deep_merge", "deep_merge_append", "deep_merge_prepend")
ALL = "all"
DEFAULT_TOKEN = "fake-travis-token"

DEFAULT_TRAVIS_YML = "language: python\npython:\n  - '3.11'\nscript: pytest\n"


def token_fingerprint(token: str) -> str:
    """Short sha256 prefix: recordings identify tokens without ever holding one."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def iso(ts: float | None) -> str | None:
    """travis-api v3/renderer.rb#render_value: Time is rendered as %Y-%m-%dT%H:%M:%SZ."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ts: float | None) -> str | None:
    """travis-api v3/model_renderer.rb#json_format_time_with_ms (build/job updated_at, ...)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def stable_sha(*parts: str) -> str:
    """A 40-hex commit sha that is the same for the same inputs (branch heads, seeded builds)."""
    return hashlib.sha1("/".join(parts).encode(), usedforsecurity=False).hexdigest()


@dataclass
class JobScript:
    """One job of a scripted build. Durations are virtual seconds of the fake's clock."""

    duration: float = 60.0
    state: str = "passed"  # passed|failed|errored|canceled: how the job ends by itself
    stage: str | None = None  # jobs with a stage run stage after stage, in order of appearance
    allow_failure: bool = False  # travis-hub build/matrix.rb: ignored for the build's state
    log: str | None = None  # None: a generated log that looks like a real one


@dataclass
class SeedBuild:
    """A finished build in a repository's history (GET /repo/{slug}/builds learns from these)."""

    branch: str = "main"
    state: str = "passed"
    duration: float = 600.0  # virtual seconds, the sum of its jobs' run times
    finished_ago: float = 3600.0  # virtual seconds before the repository was added
    jobs: int = 1
    event_type: str = "push"


@dataclass
class RepoScript:
    """How one repository behaves. Snapshotted per request at creation: edits affect later ones.

    Times are virtual seconds of the fake's clock. Fields marked "assumed" choose between
    behaviours the Travis sources leave open (see the package docstring).
    """

    exists: bool = True
    active: bool = True  # False: 406 repository_inactive on create
    private: bool = False
    default_branch: str = "main"
    repo_id: int = 0  # 0: assigned by the fake
    github_id: int = 0  # 0: assigned by the fake (the 202 body names the repository by it)
    rate_limit: int = 10  # travis-api services/requests/create.rb LIMIT (admins: up to 200)
    rate_window: float = 3600.0  # create.rb TIME_FRAME = 1.hour; scriptable only to test expiry
    # request processing (gatekeeper, not public)
    processing_delay: float | None = 5.0  # assumed: None = never processed (stays pending)
    request_started_for: float = 0.0  # assumed: >0 shows travis-core's "started" state first
    approved_result: str | None = "approved"  # assumed: travis-web request.js knows null too
    reject: bool = False
    reject_message: str = "branch not included or excluded"  # travis-core approval.rb#message
    messages: list[Json] = field(default_factory=list)  # config-lint entries (no text)
    known_commits: set[str] | None = None  # None: every sha exists
    unknown_sha: str = "reject"  # assumed: "reject" (missing commit) or "build_head" (legacy)
    head_sha: str | None = None  # the branch head; None: a stable sha per branch
    build_sha: str | None = None  # assumed: Travis builds this commit instead of the one asked
    commit_message: str = "Update README.md"  # the commit's own message when none is sent
    # the .travis.yml and its size
    travis_yml: str | None = DEFAULT_TRAVIS_YML  # None: the repository has no .travis.yml
    builds_only_with_travis_yml: bool = False  # travis-api repository/settings.rb: default false
    config_bytes: int = 0  # pad .travis.yml to at least this many bytes (env.global entries)
    # the build
    outcome: str = "passed"  # with `jobs` an int: the last job ends so, the others pass
    jobs: int | list[JobScript] = 2
    job_duration: float = 60.0  # per job, with `jobs` an int
    queue_delay: float = 10.0  # assumed: created -> queued (1/3) -> received (2/3) -> started
    cancel_delay: float = 5.0  # assumed: a cancel takes effect this long after the 202
    build_queue_states: bool = False  # assumed: True lets the build show queued/received
    log_before_start: str = "missing"  # assumed: "missing" (404 log not found) or "empty" ("")
    history: list[SeedBuild] = field(default_factory=list)


@dataclass
class TokenGrant:
    """What a token may do. `repos` None: every repository (lower-case slugs otherwise)."""

    repos: frozenset[str] | None
    can_create: bool
    can_cancel: bool
    user_id: int

    def has_access(self, slug: str) -> bool:
        return self.repos is None or slug.lower() in self.repos


@dataclass
class Commit:
    """travis-api v3/renderer/commit.rb fields (plus what hub's webhook serializer reads)."""

    id: int
    sha: str
    branch: str
    message: str
    committed_at: float
    ref: str | None = None  # assumed: API requests carry no ref
    compare_url: str = ""
    author_name: str = "Octo Cat"
    author_email: str = "octocat@example.com"


@dataclass
class TravisJob:
    """A job and its planned timeline (virtual epoch seconds)."""

    id: int
    number: str  # "<build number>.<index>"
    build_id: int
    stage_number: int | None
    stage_name: str | None
    allow_failure: bool
    scripted_state: str
    log: str | None
    created_at: float
    queued_at: float
    received_at: float
    started_at: float
    finishes_at: float
    canceled_at: float | None = None  # set by a cancel (API or a failed earlier stage)

    def end(self) -> float:
        if self.canceled_at is not None and self.canceled_at < self.finishes_at:
            return self.canceled_at
        return self.finishes_at

    def canceled(self) -> bool:
        return self.canceled_at is not None and self.canceled_at < self.finishes_at

    def started_as_of(self, t: float) -> float | None:
        if self.started_at <= t and self.started_at < self.end():
            return self.started_at
        return None

    def finished_as_of(self, t: float) -> float | None:
        return self.end() if self.end() <= t else None

    def state_at(self, t: float) -> str:
        """travis-hub model/job.rb: created -> queued -> received -> started -> finished."""
        if self.end() <= t:
            return "canceled" if self.canceled() else self.scripted_state
        if self.started_as_of(t) is not None:
            return "started"
        if self.received_at <= t and self.received_at < self.end():
            return "received"
        if self.queued_at <= t and self.queued_at < self.end():
            return "queued"
        return "created"

    def duration_as_of(self, t: float) -> int | None:
        """travis-hub model/job.rb#duration: finished_at - started_at (nil until both exist)."""
        start, end = self.started_as_of(t), self.finished_as_of(t)
        return int(end - start) if start is not None and end is not None else None


def matrix_state(jobs: list[TravisJob], t: float) -> str:
    """travis-hub model/build/matrix.rb#state over the required (not allow_failure) jobs."""
    states = [j.state_at(t) for j in jobs if not j.allow_failure]
    if not states:
        return "passed"
    for state in ("canceled", "errored", "failed"):
        if state in states:
            return state
    return "passed"


@dataclass
class TravisBuild:
    """A build; its state at time t follows from its jobs' plans (travis-hub model/build.rb)."""

    id: int
    number: str  # travis-api v3 renderer/build.rb: a string
    slug: str
    repo_id: int
    request_id: int | None
    branch: str
    sha: str
    message: str
    event_type: str
    created_at: float
    previous_state: str | None
    config: Json
    jobs: list[TravisJob]
    private: bool = False
    queue_states: bool = False  # RepoScript.build_queue_states at creation
    cancel_requested_at: float | None = None
    cancel_effective_at: float | None = None
    state: str = "created"  # snapshot: filled in when the fake hands out a copy

    def stages(self) -> list[tuple[int, str]]:
        seen: dict[int, str] = {}
        for job in self.jobs:
            if job.stage_number is not None:
                seen.setdefault(job.stage_number, job.stage_name or "")
        return sorted(seen.items())

    def finished_as_of(self, t: float) -> float | None:
        """travis-hub build.rb#finish? once every job is finished (matrix.finished?)."""
        ends = [j.finished_as_of(t) for j in self.jobs]
        if not ends or any(e is None for e in ends):
            return None
        return max(e for e in ends if e is not None)

    def started_as_of(self, t: float) -> float | None:
        starts = [s for j in self.jobs if (s := j.started_as_of(t)) is not None]
        return min(starts) if starts else None

    def canceled_as_of(self, t: float) -> bool:
        """A cancel that took effect while jobs were still running (build.rb#cancel?)."""
        eff = self.cancel_effective_at
        return eff is not None and eff <= t and any(j.canceled_at == eff for j in self.jobs)

    def state_at(self, t: float) -> str:
        if self.finished_as_of(t) is not None:
            if self.canceled_as_of(t):
                return "canceled"
            # travis-hub build.rb#matrix_state: the state of the first stage that did not pass
            for number, _ in self.stages():
                stage_state = matrix_state([j for j in self.jobs if j.stage_number == number], t)
                if stage_state != "passed":
                    return stage_state
            return matrix_state(self.jobs, t)
        if self.started_as_of(t) is not None:
            return "started"
        if self.queue_states and self.jobs:
            return self.jobs[0].state_at(t)  # assumed (switch): the reference's queued/received
        return "created"

    def duration_as_of(self, t: float) -> int | None:
        """travis-hub build/matrix.rb#duration: the sum of the jobs' run times, once finished."""
        if self.finished_as_of(t) is None:
            return None
        return sum(j.duration_as_of(t) or 0 for j in self.jobs)

    def stage_state_at(self, number: int, t: float) -> str:
        """travis-hub model/stage.rb: started with its first job, finished with its matrix."""
        jobs = [j for j in self.jobs if j.stage_number == number]
        if all(j.finished_as_of(t) is not None for j in jobs):
            return matrix_state(jobs, t)
        if any(j.started_as_of(t) is not None for j in jobs):
            return "started"
        return "created"


@dataclass
class TravisRequest:
    """A request created through POST /repo/{slug}/requests.

    `message` is what the client POSTed (the recording's truth); what Travis shows as
    `request.message` is `status_message`, and the POSTed message becomes `commit.message`.
    """

    id: int
    slug: str
    repo_id: int
    branch_sent: str | None
    sha_sent: str | None
    message: str | None
    config: Any
    merge_mode: str | None
    created_at: float
    token_sha: str | None
    user_id: int
    script: RepoScript = field(repr=False)
    processes_at: float | None = None  # when gatekeeper picks it up (None: never)
    finishes_at: float | None = None
    processed: bool = False
    finished: bool = False
    rejection: str | None = None  # decided when processed, shown once finished
    state: str = "pending"  # snapshot as of the last time the world advanced
    result: str | None = None
    status_message: str | None = None
    commit: Commit | None = None
    branch: str | None = None  # branch_name: only once processed (travis-api models/request.rb)
    build_id: int | None = None
    merged_config: Json = field(default_factory=dict)
    raw_configs: list[Json] = field(default_factory=list)
    messages: list[Json] = field(default_factory=list)

    def state_at(self, t: float) -> str:
        if self.finished and self.finishes_at is not None and self.finishes_at <= t:
            return "finished"
        if self.processed:
            return "started"
        return "pending"


@dataclass
class RecordedCall:
    """One HTTP call as the fake saw it. `token_sha` is a fingerprint, never the token."""

    method: str
    path: str  # raw request path, query excluded
    query: dict[str, list[str]]
    kind: str  # one of KINDS or "unknown"
    slug: str | None  # resolved repository slug when known
    body: Any  # parsed JSON body (None if absent or unparsable)
    token_present: bool
    token_sha: str | None
    header_problems: list[str]
    status: int | None = None  # None: connection dropped without an answer
    fault: str | None = None
    timestamp: float = 0.0  # virtual epoch seconds
    api: str = "v3"  # "v3" or "legacy" (no Travis-API-Version: 3) or "" (answered before)


@dataclass
class WebhookDelivery:
    """One webhook POST (or a dropped one) as travis-tasks would have sent it."""

    url: str
    event: str  # build:started|finished|canceled|errored
    build_id: int
    payload: str  # the JSON string of the form field `payload`, exactly as signed
    signature: str
    headers: dict[str, str]
    status: int | None = None  # the receiver's status; None: dropped or unreachable
    error: str | None = None
    dropped: bool = False
    timestamp: float = 0.0  # virtual epoch seconds of the POST
