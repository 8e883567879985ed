"""The Travis fake's mutable world: repositories, tokens, requests and builds, and time moving on.

`advance(now)` is the gatekeeper and hub of this world: it processes requests whose time has come
(in the order Travis would have), creates their builds with a planned timeline, and reports the
build events (started, finished, canceled) that happened up to `now`. The HTTP layer calls it
before every answer and a ticker thread calls it between answers (for webhooks), so a request is
processed on time whoever looks first. Callers hold `lock`.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from local.travis.config import (
    UnknownMergeMode,
    config_string,
    load_travis_yml,
    merge,
    padded_travis_yml,
    parse_config,
)
from local.travis.logs import default_log, log_as_of
from local.travis.model import (
    OUTCOMES,
    Commit,
    JobScript,
    RepoScript,
    SeedBuild,
    TokenGrant,
    TravisBuild,
    TravisJob,
    TravisRequest,
    stable_sha,
)


@dataclass
class Access:
    """Who is calling: a token's grant, or nobody (anonymous)."""

    grant: TokenGrant | None
    public_mode: bool

    def visible(self, slug: str, script: RepoScript) -> bool:
        """v3/access_control/generic.rb#repository_visible?: public repos need public mode."""
        if self.grant is not None and self.grant.has_access(slug):
            return True
        return self.public_mode and not script.private


@dataclass(frozen=True)
class BuildEvent:
    """travis-hub model/build.rb events as travis-hub's notification handlers see them."""

    name: str  # build:started | build:finished | build:canceled | build:errored
    build_id: int
    at: float


class World:
    """All state of one fake Travis, read and changed under `lock`."""

    def __init__(self, *, clock: Callable[[], float], errored_event: str = "finished") -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.errored_event = errored_event
        self.repos: dict[str, tuple[str, RepoScript]] = {}  # lower slug -> (slug, script)
        self.tokens: dict[str, TokenGrant] = {}
        self.requests: dict[int, TravisRequest] = {}
        self.builds: dict[int, TravisBuild] = {}
        self.jobs: dict[int, TravisJob] = {}
        self.commits: dict[int, Commit] = {}  # build id -> the commit it built
        self.users: dict[int, str] = {}
        self.owners: dict[str, int] = {}  # lower owner login -> user id
        self.auto_repos = False
        self.auto_template = RepoScript()
        self._numbers: dict[str, int] = {}
        self._unfinished: list[int] = []  # request ids not yet finished by gatekeeper
        self._watched: dict[int, bool] = {}  # build id -> "started" already announced
        self._ids = {"repo": 1000, "request": 205000, "build": 900000, "job": 5000000}
        self._ids.update(commit=7000000, user=1)

    def next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    # ----- repositories, owners, tokens -----------------------------------------------------

    def add_repo(self, slug: str, script: RepoScript, now: float) -> RepoScript:
        if slug.count("/") != 1:
            raise ValueError(f"a slug is owner/name, not {slug!r}")
        if not script.repo_id:
            script.repo_id = self.next_id("repo")
        if not script.github_id:
            script.github_id = 30_000_000 + script.repo_id
        self.repos[slug.lower()] = (slug, script)
        self.owner_of(slug)
        for seed in script.history:
            self._seed(slug, script, seed, now)
        return script

    def find_repo(self, slug_or_id: str) -> tuple[str, RepoScript] | None:
        """An existing repository by slug (case-insensitive, queries/repository.rb) or id."""
        if slug_or_id.isdigit():
            for slug, script in self.repos.values():
                if script.repo_id == int(slug_or_id) and script.exists:
                    return slug, script
            return None
        entry = self.repos.get(slug_or_id.lower())
        if entry is None and self.auto_repos and slug_or_id.count("/") == 1:
            template = replace(copy.deepcopy(self.auto_template), repo_id=0, github_id=0)
            self.add_repo(slug_or_id, template, self.clock())
            entry = self.repos[slug_or_id.lower()]
        return entry if entry is not None and entry[1].exists else None

    def script_of(self, slug: str) -> RepoScript:
        return self.repos[slug.lower()][1]

    def owner_of(self, slug: str) -> tuple[int, str]:
        login = slug.split("/", 1)[0]
        uid = self.owners.get(login.lower())
        if uid is None:
            uid = self.owners[login.lower()] = self.next_id("user")
            self.users[uid] = login
        return uid, login

    def add_token(
        self, token: str, repos: frozenset[str] | None, create: bool, cancel: bool
    ) -> None:
        old = self.tokens.get(token)
        uid = old.user_id if old is not None else self.next_id("user")
        self.users.setdefault(uid, f"api-user-{uid}")
        self.tokens[token] = TokenGrant(repos, create, cancel, uid)

    def sender_of(self, build: TravisBuild) -> tuple[int, str]:
        request = self.requests.get(build.request_id) if build.request_id is not None else None
        if request is None:
            return self.owner_of(build.slug)
        return request.user_id, self.users.get(request.user_id, "unknown")

    def commit_of(self, build: TravisBuild) -> Commit | None:
        return self.commits.get(build.id)

    def branches_of(self, slug: str) -> set[str]:
        """Branches Travis has rows for: those it has processed requests or builds on."""
        names = {b.branch for b in self.builds.values() if b.slug == slug}
        names |= {r.branch for r in self.requests.values() if r.slug == slug and r.branch}
        return names

    # ----- requests ---------------------------------------------------------------------------

    def count_recent(self, slug: str, now: float, window: float, branch: str | None) -> int:
        """travis-api v3/queries/requests.rb#count: API requests of the last `window` seconds.

        Counted through `find`, which filters on a top-level `branch` param when the create call
        carried one (a branch Travis has no row for counts nothing).
        """
        recent = [
            r for r in self.requests.values() if r.slug == slug and r.created_at > now - window
        ]
        if branch is not None:
            if branch not in self.branches_of(slug):
                return 0
            recent = [r for r in recent if r.branch == branch]
        return len(recent)

    def create_request(
        self,
        slug: str,
        script: RepoScript,
        fields: dict[str, Any],
        grant: TokenGrant,
        *,
        token_sha: str,
        now: float,
    ) -> TravisRequest:
        """travis-api v3/queries/request.rb#create_request: the row starts pending, no commit."""
        snapshot = copy.deepcopy(script)
        delay = snapshot.processing_delay
        request = TravisRequest(
            id=self.next_id("request"),
            slug=slug,
            repo_id=script.repo_id,
            branch_sent=fields.get("branch"),
            sha_sent=fields.get("sha"),
            message=fields.get("message"),
            config=fields.get("config"),
            merge_mode=fields.get("merge_mode"),
            created_at=now,
            token_sha=token_sha,
            user_id=grant.user_id,
            script=snapshot,
            processes_at=None if delay is None else now + max(0.0, delay),
        )
        self.requests[request.id] = request
        self._unfinished.append(request.id)
        return request

    def advance(self, now: float) -> list[BuildEvent]:
        """Process what is due by `now`; return the build events that happened up to `now`."""
        due = [self.requests[i] for i in self._unfinished]
        due = [r for r in due if r.processes_at is not None and r.processes_at <= now]
        for request in sorted(due, key=lambda r: (r.processes_at or 0.0, r.id)):
            if not request.processed:
                self._process(request)
        ready = [r for r in due if r.finishes_at is not None and r.finishes_at <= now]
        for request in sorted(ready, key=lambda r: (r.finishes_at or 0.0, r.id)):
            self._finish(request)
            self._unfinished.remove(request.id)
            request.state = "finished"
        for request_id in self._unfinished:
            self.requests[request_id].state = self.requests[request_id].state_at(now)
        return self._events(now)

    def _process(self, r: TravisRequest) -> None:
        """Gatekeeper picks the request up (not public: inferred, see the package docstring)."""
        s = r.script
        r.processed = True
        r.finishes_at = (r.processes_at or 0.0) + max(0.0, s.request_started_for)
        branch = str(r.branch_sent or s.default_branch)
        head = s.head_sha or stable_sha(r.slug, branch)
        sha = str(r.sha_sent or head)
        r.branch = branch
        if r.sha_sent and s.known_commits is not None and r.sha_sent not in s.known_commits:
            if s.unknown_sha == "reject":
                # travis-core request/approval.rb#message: 'missing commit' (no commit row)
                r.rejection = "missing commit"
                return
            sha = head  # assumed (switch): legacy code ignored `sha` and built the branch head
        r.commit = Commit(
            id=self.next_id("commit"),
            sha=sha,
            branch=branch,
            message=str(r.message) if r.message is not None else s.commit_message,
            committed_at=(r.processes_at or 0.0) - 60.0,  # assumed: pushed a minute before
            compare_url=f"https://github.com/{r.slug}/commit/{sha}",  # assumed
        )
        r.messages = copy.deepcopy(s.messages)
        api = parse_config(r.config)
        # travis-yml configs/config/api.rb#load: merge_mode may also sit inside the config
        mode = r.merge_mode or api.pop("merge_mode", None)
        yml_text = padded_travis_yml(s.travis_yml, s.config_bytes) if s.travis_yml else None
        if r.config is not None:
            # api.rb#serialize / #source: "api", the config as sent, and the mode
            r.raw_configs.append(
                {"config": config_string(r.config), "source": "api", "merge_mode": mode}
            )
        if yml_text is not None and mode != "replace":  # api.rb#imports skips .travis.yml
            # config/travis_yml.rb: source "<slug>:.travis.yml@<ref>"
            source = f"{r.slug}:.travis.yml@{sha}"
            r.raw_configs.append({"config": yml_text, "source": source, "merge_mode": None})
        try:
            r.merged_config = merge(api, load_travis_yml(yml_text), mode)
        except UnknownMergeMode as exc:
            r.rejection = str(exc)  # assumed: the merge error as the reason
            return
        if not r.merged_config and s.builds_only_with_travis_yml:
            # the reference page's wording for a missing .travis.yml under that setting
            r.rejection = ".travis.yml is missing and builds without .travis.yml are disabled"
        elif s.reject:
            r.rejection = s.reject_message
        for key, value in (("language", "ruby"), ("os", "linux")):
            r.merged_config.setdefault(key, value)  # travis-yml lib/travis/yml.rb DEFAULTS

    def _finish(self, r: TravisRequest) -> None:
        r.finished = True
        if r.rejection is not None or r.commit is None:
            r.result, r.status_message = "rejected", r.rejection
            return
        s = r.script
        r.result = s.approved_result
        # travis-core approval.rb#message: nil when approved, except 'private repository'
        r.status_message = "private repository" if s.private else None
        build = self._new_build(r.slug, s, r, r.finishes_at or 0.0)
        r.build_id = build.id

    # ----- builds -----------------------------------------------------------------------------

    def _job_scripts(self, s: RepoScript) -> list[JobScript]:
        if not isinstance(s.jobs, int):
            return [copy.deepcopy(j) for j in s.jobs] or [JobScript(duration=s.job_duration)]
        jobs = [JobScript(duration=s.job_duration) for _ in range(max(1, s.jobs))]
        jobs[-1].state = s.outcome if s.outcome in OUTCOMES else "errored"
        return jobs

    def _new_build(self, slug: str, s: RepoScript, r: TravisRequest, at: float) -> TravisBuild:
        if r.commit is None:  # _finish creates builds only for requests with a commit
            raise RuntimeError(f"request {r.id} has no commit")
        number = self._numbers.get(slug.lower(), 0) + 1
        self._numbers[slug.lower()] = number
        build_id = self.next_id("build")
        jobs = self._plan_jobs(build_id, str(number), self._job_scripts(s), at, s.queue_delay)
        build = TravisBuild(
            id=build_id,
            number=str(number),
            slug=slug,
            repo_id=s.repo_id,
            request_id=r.id,
            branch=r.commit.branch,
            sha=s.build_sha or r.commit.sha,
            message=r.commit.message,
            event_type="api",
            created_at=at,
            previous_state=self._previous_state(slug, r.commit.branch, at),
            config=copy.deepcopy(r.merged_config),
            jobs=jobs,
            private=s.private,
            queue_states=s.build_queue_states,
        )
        self._register(build, replace(r.commit, sha=build.sha))
        return build

    def _plan_jobs(
        self, build_id: int, number: str, scripts: list[JobScript], at: float, queue: float
    ) -> list[TravisJob]:
        """Jobs of a stage run together (assumed: no concurrency limit); stages run in turn.

        travis-hub model/stage.rb#finish: a stage that did not pass cancels the jobs of the
        stages after it (state canceled, never started).
        """
        staged = any(j.stage for j in scripts)
        # a job without a stage is in the default stage "test" (travis-yml stages.rb)
        names = list(dict.fromkeys(j.stage or "test" for j in scripts)) if staged else [""]
        groups = [[j for j in scripts if (j.stage or "test") == n] for n in names]
        if not staged:
            groups = [scripts]
        jobs: list[TravisJob] = []
        ready, failed_at = at, None
        index = 0
        for stage_no, group in enumerate(groups, 1):
            planned: list[TravisJob] = []
            for script in group:
                index += 1
                start = ready + max(0.0, queue)
                job = TravisJob(
                    id=self.next_id("job"),
                    number=f"{number}.{index}",
                    build_id=build_id,
                    stage_number=stage_no if staged else None,
                    stage_name=names[stage_no - 1] if staged else None,
                    allow_failure=script.allow_failure,
                    scripted_state=script.state,
                    log=script.log,
                    created_at=at,
                    queued_at=ready + queue / 3,
                    received_at=ready + 2 * queue / 3,
                    started_at=start,
                    finishes_at=start + max(0.0, script.duration),
                    canceled_at=failed_at,
                )
                planned.append(job)
            jobs.extend(planned)
            if failed_at is None:
                ready = max(j.finishes_at for j in planned)
                required = [j.scripted_state for j in planned if not j.allow_failure]
                if any(state != "passed" for state in required):
                    failed_at = ready
        return jobs

    def _previous_state(self, slug: str, branch: str, at: float) -> str | None:
        """The state of the branch's latest build when this one is created (assumed timing)."""
        earlier = [b for b in self.builds.values() if b.slug == slug and b.branch == branch]
        return max(earlier, key=lambda b: b.id).state_at(at) if earlier else None

    def _register(self, build: TravisBuild, commit: Commit) -> None:
        self.builds[build.id] = build
        self.commits[build.id] = commit
        for job in build.jobs:
            self.jobs[job.id] = job
        self._watched[build.id] = False

    def _seed(self, slug: str, s: RepoScript, seed: SeedBuild, now: float) -> None:
        number = self._numbers.get(slug.lower(), 0) + 1
        self._numbers[slug.lower()] = number
        finished = now - seed.finished_ago
        per_job = seed.duration / max(1, seed.jobs)
        build_id = self.next_id("build")
        jobs = []
        for i in range(max(1, seed.jobs)):
            start = finished - per_job
            jobs.append(
                TravisJob(
                    id=self.next_id("job"),
                    number=f"{number}.{i + 1}",
                    build_id=build_id,
                    stage_number=None,
                    stage_name=None,
                    allow_failure=False,
                    scripted_state=seed.state if i == 0 else "passed",
                    log=None,
                    created_at=start - 30.0,
                    queued_at=start - 20.0,
                    received_at=start - 10.0,
                    started_at=start,
                    finishes_at=finished,
                )
            )
        sha = stable_sha(slug, "seed", str(number))
        build = TravisBuild(
            id=build_id,
            number=str(number),
            slug=slug,
            repo_id=s.repo_id,
            request_id=None,
            branch=seed.branch,
            sha=sha,
            message=f"Seeded build {number}",
            event_type=seed.event_type,
            created_at=finished - per_job - 30.0,
            previous_state=self._previous_state(slug, seed.branch, finished - per_job - 30.0),
            config={},
            jobs=jobs,
            private=s.private,
        )
        commit = Commit(self.next_id("commit"), sha, seed.branch, build.message, build.created_at)
        self._register(build, commit)
        self._watched.pop(build.id, None)  # history: its events happened before the fake began

    def log_of(self, job: TravisJob, now: float) -> str:
        """The job's log as written by `now` (scripted, or one that looks like Travis's)."""
        build = self.builds[job.build_id]
        full = job.log if job.log is not None else default_log(job, build.slug, build.sha)
        return log_as_of(full, job, now)

    def cancel(self, build: TravisBuild, now: float, delay: float) -> None:
        """travis-hub service/update_build.rb (:cancel) runs `delay` after the API's 202.

        Every job still unfinished then is canceled (job.rb#cancel: finished_at = now, never
        started if it had not); jobs and builds already finished stay as they are.
        """
        build.cancel_requested_at = build.cancel_requested_at or now
        if build.cancel_effective_at is not None:
            return  # already on its way
        effective = now + max(0.0, delay)
        build.cancel_effective_at = effective
        for job in build.jobs:
            if job.end() > effective:
                job.canceled_at = effective

    def _events(self, now: float) -> list[BuildEvent]:
        events: list[BuildEvent] = []
        for build_id, started in list(self._watched.items()):
            build = self.builds[build_id]
            start = build.started_as_of(now)
            if start is not None and not started:
                events.append(BuildEvent("build:started", build_id, start))
                self._watched[build_id] = True
            end = build.finished_as_of(now)
            if end is None:
                continue
            state = build.state_at(now)
            name = "build:canceled" if state == "canceled" else "build:finished"
            if state == "errored" and self.errored_event == "errored":
                name = "build:errored"
            events.append(BuildEvent(name, build_id, end))
            del self._watched[build_id]
        return sorted(events, key=lambda e: (e.at, e.build_id))
