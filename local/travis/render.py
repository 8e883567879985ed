"""Representations of Travis API v3 resources, after travis-api's ModelRenderer.

How travis-api renders (v3/model_renderer.rb, v3/renderer.rb, v3/collection_renderer.rb): each
type has named representations (lists of fields); the top resource is `standard`, nested resources
are `minimal` unless the query's `include=type.field` asks for a field, which then renders in
`standard`; a resource already rendered higher up the tree becomes `{"@href": ...}` (or is left
out when it has no href); `@permissions` appear on standard representations of types that have a
permissions class. The field lists below are copied from the renderer files named beside them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local.travis.model import Commit, Json, TravisBuild, TravisJob, TravisRequest, iso, iso_ms

if TYPE_CHECKING:
    from local.travis.world import Access, World


class WrongParams(Exception):
    """v3.rb WrongParams raised while rendering (a bad `include`); answered 400 wrong_params."""


@dataclass(frozen=True)
class Ref:
    """A resource to render: its type, the object, and an identity for the `included` chain."""

    type: str
    obj: Any
    key: tuple[str, Any]


@dataclass(frozen=True)
class Lazy:
    """A field value built only when rendered (a branch's repository names the branch back)."""

    make: Callable[[], Any]


_REDUNDANT = object()
_INCLUDE = re.compile(r"\A(\w+)\.(@?\w+)\Z")  # model_renderer.rb: illegal format check

_REPO_MIN = ["id", "name", "slug"]
_REPO_STD = [
    *_REPO_MIN, "description", "github_id", "vcs_id", "vcs_type", "github_language", "active",
    "private", "owner", "owner_name", "vcs_name", "default_branch", "starred",
    "managed_by_installation", "active_on_org", "migration_status", "history_migration_status",
    "shared", "config_validation", "server_type", "scan_failed_at", "build_count",
]  # fmt: skip
_REQ_MIN = ["id", "state", "result", "message", "pull_request_mergeable"]
_REQ_STD = [
    *_REQ_MIN, "repository", "branch_name", "commit", "builds", "owner", "created_at",
    "event_type", "base_commit", "head_commit", "messages", "config", "raw_configs",
]  # fmt: skip
_BUILD_MIN = [
    "id", "number", "state", "duration", "event_type", "previous_state", "pull_request_title",
    "pull_request_number", "started_at", "finished_at", "private", "priority",
]  # fmt: skip
_BUILD_STD = [
    *_BUILD_MIN, "repository", "branch", "tag", "commit", "jobs", "stages", "created_by",
    "updated_at",
]  # fmt: skip
_JOB_STD = [
    "id", "allow_failure", "number", "state", "started_at", "finished_at", "build", "queue",
    "repository", "commit", "owner", "stage", "created_at", "updated_at", "private",
    "restarted_at", "restarted_by", "vm_size",
]  # fmt: skip
_COMMIT_MIN = ["id", "sha", "ref", "message", "compare_url", "committed_at"]
_STAGE_MIN = ["id", "number", "name", "state", "started_at", "finished_at"]
_MESSAGE = ["id", "level", "key", "code", "args", "src", "line"]
_RAW = ["config", "source", "merge_mode"]

# type -> (representations, extra available attributes)
REPRESENTATIONS: dict[str, tuple[dict[str, list[str]], list[str]]] = {
    "repository": ({"minimal": _REPO_MIN, "standard": _REPO_STD}, []),  # renderer/repository.rb
    "user": ({"minimal": ["id", "login", "name", "vcs_type", "ro_mode"]}, []),  # owner.rb
    "request": ({"minimal": _REQ_MIN, "standard": _REQ_STD}, ["yaml_config"]),  # request.rb
    "commit": ({"minimal": _COMMIT_MIN, "standard": [*_COMMIT_MIN, "committer", "author"]}, []),
    "build": ({"minimal": _BUILD_MIN, "standard": _BUILD_STD}, ["request", "log_complete"]),
    "job": ({"minimal": ["id"], "standard": _JOB_STD}, ["config", "log_complete"]),  # job.rb
    "branch": (
        {
            "minimal": ["name"],
            "standard": ["name", "repository", "default_branch", "exists_on_github", "last_build"],
        },
        [],
    ),
    "stage": ({"minimal": _STAGE_MIN, "standard": [*_STAGE_MIN, "jobs"]}, []),  # stage.rb
    "message": ({"minimal": _MESSAGE, "standard": _MESSAGE}, []),  # message.rb
    "request_raw_configuration": ({"minimal": _RAW, "standard": _RAW}, []),
}
# v3/permissions/*.rb: the public `x?` methods of each class, plus Generic#read?
PERMISSIONS = {
    "build": ("read", "cancel", "restart", "prioritize"),
    "job": ("read", "cancel", "restart", "debug", "delete_log", "view_log", "prioritize"),
}


def available(type_: str) -> set[str]:
    reps, extra = REPRESENTATIONS[type_]
    return {f for fields in reps.values() for f in fields} | set(extra)


class Renderer:
    """Renders resources as of virtual time `t` for one caller (`access`) and one `include`."""

    def __init__(
        self, world: World, t: float, access: Access, include: list[str], script_name: str = ""
    ) -> None:
        self.world, self.t, self.access, self.include = world, t, access, include
        self.script_name = script_name  # renderer.rb#href prefixes every href with SCRIPT_NAME

    # ----- the generic machinery (model_renderer.rb#render) ----------------------------------

    def render(
        self, ref: Ref, representation: str = "minimal", included: tuple[Any, ...] = ()
    ) -> Any:
        href = self.href(ref)
        if ref.key in included:
            return {"@href": href} if href else _REDUNDANT
        reps, _ = REPRESENTATIONS[ref.type]
        fields = list(reps.get(representation, reps["minimal"]))
        result: Json = {"@type": ref.type}
        if href:
            result["@href"] = href
        result["@representation"] = representation
        perms = PERMISSIONS.get(ref.type)
        if perms and (representation != "minimal" or f"{ref.type}.@permissions" in self.include):
            result["@permissions"] = self.permissions(ref, perms)
        modes: dict[str, str] = {}
        for qualified in self.include:
            match = _INCLUDE.match(qualified)
            if not match:
                raise WrongParams("illegal format for include parameter")
            prefix, name = match.groups()
            if prefix != ref.type:
                continue
            if name in available(ref.type):
                if name not in fields:
                    fields.append(name)
                modes[name] = "standard"
            elif name not in result:
                raise WrongParams(f'no field "{qualified}" to include')
        nested = (*included, ref.key)
        for name in fields:
            value = self.value(self.field(ref, name), modes.get(name), nested)
            if value is not _REDUNDANT:
                result[name] = value
        return result

    def value(self, value: Any, mode: str | None, included: tuple[Any, ...]) -> Any:
        """renderer.rb#render_value: models render minimal unless the include asked for more."""
        if isinstance(value, Lazy):
            value = value.make()
        if isinstance(value, Ref):
            return self.render(value, mode or "minimal", included)
        if isinstance(value, list):
            return [
                v for v in (self.value(i, mode, included) for i in value) if v is not _REDUNDANT
            ]
        if isinstance(value, dict):
            return {k: self.value(v, mode, included) for k, v in value.items()}
        return value

    def href(self, ref: Ref) -> str | None:
        path = self._path(ref)
        return self.script_name + path if path is not None else None

    def _path(self, ref: Ref) -> str | None:
        o = ref.obj
        if isinstance(o, dict):
            return o.get("@path")  # repository, user, branch: built with their route
        if ref.type == "request":
            return f"/repo/{o.repo_id}/request/{o.id}"
        if ref.type in ("build", "job"):
            return f"/{ref.type}/{o.id}"
        return None  # commit, stage, message, raw configuration: no find route (routes.rb)

    def permissions(self, ref: Ref, names: tuple[str, ...]) -> dict[str, bool]:
        slug = (
            ref.obj.slug if isinstance(ref.obj, TravisBuild) else self._build_of_job(ref.obj).slug
        )
        grant = self.access.grant
        has = grant is not None and grant.has_access(slug)
        cancel = has and grant is not None and grant.can_cancel
        create = has and grant is not None and grant.can_create
        values = {"read": True, "cancel": cancel, "restart": cancel, "prioritize": create}
        values.update(debug=False, delete_log=has, view_log=True)
        return {name: values[name] for name in names}

    # ----- refs --------------------------------------------------------------------------------

    def repo(self, slug: str) -> Ref:
        """renderer/repository.rb (the fields a worker could ask for with include=)."""
        script = self.world.script_of(slug)
        uid, login = self.world.owner_of(slug)
        owner, name = slug.split("/", 1)
        obj = {
            "@path": f"/repo/{script.repo_id}",
            "id": script.repo_id,
            "name": name,
            "slug": slug,
            "github_id": script.github_id,
            "vcs_id": str(script.github_id),
            "vcs_type": "GithubRepository",
            "active": script.active,
            "private": script.private,
            # repository.rb#owner: a hand-made minimal owner
            "owner": {"@type": "user", "id": uid, "login": login, "ro_mode": False,
                      "@href": f"{self.script_name}/user/{uid}"},
            "owner_name": owner,
            "vcs_name": name,
            "default_branch": Lazy(lambda: self.branch(slug, script.default_branch)),
            "starred": False,
            "managed_by_installation": True,
            "active_on_org": False,
            "migration_status": None,
            "history_migration_status": None,
            "shared": False,
            "server_type": "git",
            "build_count": Lazy(lambda: sum(b.slug == slug for b in self.world.builds.values())),
        }  # fmt: skip
        return Ref("repository", obj, ("repository", script.repo_id))

    def branch(self, slug: str, name: str) -> Ref:
        """renderer/branch.rb."""
        script = self.world.script_of(slug)

        def last() -> Ref | None:
            mine = [b for b in self.world.builds.values() if b.slug == slug and b.branch == name]
            return self.build(max(mine, key=lambda b: b.id)) if mine else None

        obj = {
            "@path": f"/repo/{script.repo_id}/branch/{name}",
            "name": name,
            "repository": Lazy(lambda: self.repo(slug)),
            "default_branch": script.default_branch == name,
            "exists_on_github": True,
            "last_build": Lazy(last),
        }
        return Ref("branch", obj, ("branch", (slug, name)))

    def request(self, r: TravisRequest) -> Ref:
        return Ref("request", r, ("request", r.id))

    def build(self, b: TravisBuild) -> Ref:
        return Ref("build", b, ("build", b.id))

    def job(self, j: TravisJob) -> Ref:
        return Ref("job", j, ("job", j.id))

    def owner(self, slug: str) -> Ref:
        """renderer/owner.rb minimal: id, login, name, vcs_type, ro_mode."""
        uid, login = self.world.owner_of(slug)
        obj = {"@path": f"/user/{uid}", "id": uid, "login": login, "name": login,
               "vcs_type": "GithubUser", "ro_mode": False}  # fmt: skip
        return Ref("user", obj, ("user", uid))

    def stage(self, b: TravisBuild, number: int, name: str | None) -> Ref:
        """renderer/stage.rb; travis-hub model/stage.rb for its state."""
        jobs = [j for j in b.jobs if j.stage_number == number]
        starts = [s for j in jobs if (s := j.started_as_of(self.t)) is not None]
        ends = [j.finished_as_of(self.t) for j in jobs]
        obj = {
            "id": b.id * 100 + number,
            "number": number,
            "name": name,
            "state": b.stage_state_at(number, self.t),
            "started_at": iso(min(starts)) if starts else None,
            "finished_at": iso(max(e for e in ends if e)) if ends and all(ends) else None,
            "jobs": [self.job(j) for j in jobs],
        }
        return Ref("stage", obj, ("stage", (b.id, number)))

    def commit(self, c: Commit | None) -> Ref | None:
        return Ref("commit", c, ("commit", c.id)) if c is not None else None

    def _build_of_job(self, j: TravisJob) -> TravisBuild:
        return self.world.builds[j.build_id]

    # ----- fields ------------------------------------------------------------------------------

    def field(self, ref: Ref, name: str) -> Any:
        getter = getattr(self, f"_{ref.type}_{name}", None)
        if getter is not None:
            return getter(ref.obj)
        if isinstance(ref.obj, dict):
            return ref.obj.get(name)
        return getattr(ref.obj, name, None)

    # request (renderer/request.rb; models/request.rb#branch_name comes from the commit)
    def _request_state(self, r: TravisRequest) -> str:
        return r.state_at(self.t)

    def _request_message(self, r: TravisRequest) -> str | None:
        return r.status_message  # Travis's status text, never what the client sent

    def _request_repository(self, r: TravisRequest) -> Ref:
        return self.repo(r.slug)

    def _request_branch_name(self, r: TravisRequest) -> str | None:
        return r.commit.branch if r.commit is not None else None

    def _request_commit(self, r: TravisRequest) -> Ref | None:
        return self.commit(r.commit)

    def _request_builds(self, r: TravisRequest) -> list[Ref]:
        if r.build_id is None or r.state_at(self.t) != "finished":
            return []
        return [self.build(self.world.builds[r.build_id])]

    def _request_owner(self, r: TravisRequest) -> Ref:
        return self.owner(r.slug)

    def _request_created_at(self, r: TravisRequest) -> str | None:
        return iso(r.created_at)

    def _request_event_type(self, r: TravisRequest) -> str:
        return "api"

    def _request_config(self, r: TravisRequest) -> Json:
        # request.rb#config: the merged config without `.result`; {} until processed
        return {k: v for k, v in r.merged_config.items() if k != ".result"}

    def _request_raw_configs(self, r: TravisRequest) -> list[Ref]:
        return [
            Ref("request_raw_configuration", c, ("raw", (r.id, i)))
            for i, c in enumerate(r.raw_configs)
        ]

    def _request_messages(self, r: TravisRequest) -> list[Ref]:
        return [Ref("message", m, ("message", (r.id, i))) for i, m in enumerate(r.messages)]

    def _request_yaml_config(self, r: TravisRequest) -> str | None:
        return None

    # commit (renderer/commit.rb)
    def _commit_committed_at(self, c: Commit) -> str | None:
        return iso(c.committed_at)

    def _commit_committer(self, c: Commit) -> Json:
        return {"name": c.author_name, "avatar_url": None}

    _commit_author = _commit_committer

    # build (renderer/build.rb)
    def _build_state(self, b: TravisBuild) -> str:
        return b.state_at(self.t)

    def _build_duration(self, b: TravisBuild) -> int | None:
        return b.duration_as_of(self.t)

    def _build_started_at(self, b: TravisBuild) -> str | None:
        return iso(b.started_as_of(self.t))

    def _build_finished_at(self, b: TravisBuild) -> str | None:
        return iso(b.finished_as_of(self.t))

    def _build_priority(self, b: TravisBuild) -> bool:
        return False

    def _build_repository(self, b: TravisBuild) -> Ref:
        return self.repo(b.slug)

    def _build_branch(self, b: TravisBuild) -> Ref:
        return self.branch(b.slug, b.branch)

    def _build_commit(self, b: TravisBuild) -> Ref | None:
        return self.commit(self.world.commit_of(b))

    def _build_request(self, b: TravisBuild) -> Ref | None:
        r = self.world.requests.get(b.request_id) if b.request_id is not None else None
        return self.request(r) if r is not None else None

    def _build_jobs(self, b: TravisBuild) -> list[Any]:
        full = "build.jobs" in self.include or any(i.startswith("job.") for i in self.include)
        if full:
            return [self.job(j) for j in b.jobs]
        # build.rb#job(id): minimal jobs without a state
        return [
            {
                "@type": "job",
                "@href": f"{self.script_name}/job/{j.id}",
                "@representation": "minimal",
                "id": j.id,
            }
            for j in b.jobs
        ]

    def _build_stages(self, b: TravisBuild) -> list[Ref]:
        return [self.stage(b, n, name) for n, name in b.stages()]

    def _build_created_by(self, b: TravisBuild) -> Json:
        uid, login = self.world.sender_of(b)
        href = f"{self.script_name}/user/{uid}"
        return {
            "@type": "user",
            "@href": href,
            "@representation": "minimal",
            "id": uid,
            "login": login,
        }

    def _build_updated_at(self, b: TravisBuild) -> str | None:
        times = [b.created_at, b.started_as_of(self.t), b.finished_as_of(self.t)]
        return iso_ms(max(x for x in times if x is not None))

    def _build_log_complete(self, b: TravisBuild) -> bool:
        return b.finished_as_of(self.t) is not None

    # job (renderer/job.rb)
    def _job_state(self, j: TravisJob) -> str:
        return j.state_at(self.t)

    def _job_started_at(self, j: TravisJob) -> str | None:
        return iso(j.started_as_of(self.t))

    def _job_finished_at(self, j: TravisJob) -> str | None:
        return iso(j.finished_as_of(self.t))

    def _job_build(self, j: TravisJob) -> Ref:
        return self.build(self.world.builds[j.build_id])

    def _job_queue(self, j: TravisJob) -> str:
        return "builds.gce"  # assumed: the queue name of a hosted Linux job

    def _job_repository(self, j: TravisJob) -> Ref:
        return self.repo(self.world.builds[j.build_id].slug)

    def _job_commit(self, j: TravisJob) -> Ref | None:
        return self.commit(self.world.commit_of(self.world.builds[j.build_id]))

    def _job_owner(self, j: TravisJob) -> Ref:
        return self.owner(self.world.builds[j.build_id].slug)

    def _job_stage(self, j: TravisJob) -> Ref | None:
        if j.stage_number is None:
            return None
        return self.stage(self.world.builds[j.build_id], j.stage_number, j.stage_name)

    def _job_created_at(self, j: TravisJob) -> str | None:
        return iso_ms(j.created_at)

    def _job_updated_at(self, j: TravisJob) -> str | None:
        marks = [j.created_at, j.queued_at, j.received_at, j.started_at, j.end()]
        return iso_ms(
            max(m for m in marks if m <= self.t) if j.created_at <= self.t else j.created_at
        )

    def _job_private(self, j: TravisJob) -> bool:
        return self.world.builds[j.build_id].private

    def _job_config(self, j: TravisJob) -> Json:
        return {
            k: v for k, v in self.world.builds[j.build_id].config.items() if k != "notifications"
        }

    def _job_log_complete(self, j: TravisJob) -> bool:
        return j.finished_as_of(self.t) is not None


def render_top(renderer: Renderer, ref: Ref) -> Json:
    """A single resource answered by a find service: standard representation."""
    out = renderer.render(ref, "standard")
    return out if isinstance(out, dict) else {}
