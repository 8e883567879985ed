"""The v3 router and services of the fake (the legacy v2 answers are in app.py).

Routes are those of travis-api `lib/travis/api/v3/routes.rb` that a CI worker uses; services
follow `v3/services/**` and `v3/queries/**` (each function names its file). The router matches
the raw path (Rack's PATH_INFO is not decoded): a slug must be `owner%2Fname` (routes.rb captures
`[^/]+%2[fF][^/]+`), so `/repo/owner/name/requests` matches no route and answers 404.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from local.travis import errors
from local.travis.errors import Reply
from local.travis.model import TERMINAL, Json, TravisBuild, TravisRequest
from local.travis.pagination import collection
from local.travis.render import Renderer, WrongParams
from local.travis.v3 import Answer, V3Call, finish, param
from local.travis.world import World

_REPO = r"/repo/(?:(?P<provider>[^/]+)/)?(?P<repo>\d+|[^/]+%2[fF][^/]+)"
ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(r"/build/(?P<build_id>\d+)\Z"), {"GET": "get_build"}),
    (re.compile(r"/build/(?P<build_id>\d+)/cancel\Z"), {"POST": "cancel_build"}),
    (re.compile(r"/job/(?P<job_id>\d+)/log(?P<txt>\.txt)?\Z"), {"GET": "get_log"}),
    (re.compile(_REPO + r"/builds\Z"), {"GET": "list_builds"}),
    (re.compile(_REPO + r"/requests\Z"), {"GET": "list_requests", "POST": "create_request"}),
    (re.compile(_REPO + r"/request/(?P<request_id>[^/]+)\Z"), {"GET": "get_request"}),
]


def route(method: str, path: str) -> tuple[str, dict[str, str]]:
    """routes/dsl.rb#factory_for: the first matching route; a wrong verb is 405."""
    for pattern, verbs in ROUTES:
        match = pattern.match(path)
        if match:
            kind = verbs.get(method)
            captures = {k: v for k, v in match.groupdict().items() if v is not None}
            return (kind, captures) if kind else ("method_not_allowed", captures)
    return "unknown", {}


def answer(world: World, call: V3Call, kind: str, captures: dict[str, str]) -> Reply:
    """Run one v3 service and render its result (router.rb#call)."""
    ctype = call.content_type
    if kind == "unknown":
        return errors.not_found(ctype=ctype)
    if kind == "method_not_allowed":
        return errors.method_not_allowed(ctype)
    include = str(call.params.get("include") or "")
    renderer = Renderer(
        world, call.now, call.access, [i for i in include.split(",") if i], call.script_name
    )
    service = _SERVICES[kind]
    try:
        reply = service(world, call, captures, renderer)
    except Answer as exc:
        return exc.reply
    except WrongParams as exc:
        return errors.wrong_params(str(exc), ctype)
    return reply


def _repo_or_404(world: World, call: V3Call, captures: dict[str, str]) -> tuple[str, Any]:
    found = world.find_repo(unquote(captures["repo"]))
    if found is None or not call.access.visible(*found):
        raise Answer(errors.not_found("repository", call.content_type))
    return found


# ----- requests ------------------------------------------------------------------------------


def _create_request(world: World, call: V3Call, captures: dict[str, str], r: Renderer) -> Reply:
    """services/requests/create.rb#run, in its order of checks."""
    grant = call.access.grant
    if grant is None:
        raise Answer(errors.login_required())  # check_login_and_find
    slug, script = _repo_or_404(world, call, captures)
    # renderer/error.rb renders the error payload without `include`; accepted.rb renders the 202
    # payload with no options at all (so its hrefs lack SCRIPT_NAME)
    repo = _plain(world, call, call.script_name).render(r.repo(slug))
    if not (grant.has_access(slug) and grant.can_create):
        raise Answer(errors.insufficient_access("create_request", "repository", repo))
    if not script.active:
        raise Answer(errors.repository_inactive(repo))
    max_requests = script.rate_limit
    top_branch = call.params.get("branch")  # queries/requests.rb#find filters on it
    count = world.count_recent(
        slug, call.now, script.rate_window, top_branch if isinstance(top_branch, str) else None
    )
    remaining = 0 if count > max_requests else max_requests - count  # create.rb#remaining_requests
    if remaining == 0:
        raise Answer(errors.request_limit_reached(repo, max_requests, int(script.rate_window)))
    fields = {n: param(call.params, "request", n) for n in ("message", "branch", "sha", "config")}
    fields["merge_mode"] = param(call.params, "request", "merge_mode")
    tag = param(call.params, "request", "tag_name")
    made = world.create_request(
        slug, script, fields, grant, token_sha=call.token_sha or "", now=call.now
    )
    owner, name = slug.split("/", 1)
    config = fields["config"]
    payload = {  # queries/request.rb#schedule, compacted
        "repository": {
            "id": script.github_id,
            "vcs_type": "GithubRepository",
            "owner_name": owner,
            "name": name,
        },
        "user": {"id": grant.user_id},
        "id": made.id,
        "message": fields["message"],
        "branch": fields["branch"] or script.default_branch,
        "tag_name": tag,
        "sha": fields["sha"],
        "configs": [{"config": _to_str(config), "mode": fields["merge_mode"]}] if config else None,
        "merge_mode": fields["merge_mode"],
        "config": _to_str(config),
    }
    body = {  # renderer/accepted.rb: {"@type": "pending", ...payload}
        "@type": "pending",
        "remaining_requests": remaining,
        "repository": _plain(world, call, "").render(r.repo(slug)),
        "request": {k: v for k, v in payload.items() if v is not None},
        "resource_type": "request",
    }
    return finish(call, "create_request", 202, body)


def _plain(world: World, call: V3Call, script_name: str) -> Renderer:
    return Renderer(world, call.now, call.access, [], script_name)


def _to_str(config: Any) -> Any:
    from local.travis.config import config_string

    return config_string(config)


def _list_requests(world: World, call: V3Call, captures: dict[str, str], r: Renderer) -> Reply:
    """services/requests/find.rb + queries/requests.rb#find: newest first, filters, paginated."""
    slug, _ = _repo_or_404(world, call, captures)
    p = call.params
    mine = [q for q in world.requests.values() if q.slug == slug]
    branch = param(p, "request", "branch")
    if branch is not None:
        # a branch Travis has no row for yields nothing; pending requests have no branch yet
        known = branch in world.branches_of(slug)
        mine = [q for q in mine if known and q.branch == branch and q.processed]
    for name in ("from", "to"):
        value = param(p, "request", name)
        if value is not None:
            bound = _timestamp(value)
            mine = [
                q
                for q in mine
                if (q.created_at >= bound if name == "from" else q.created_at <= bound)
            ]
    for name in ("result", "state"):
        value = param(p, "request", name)
        if value is not None:
            mine = [
                q
                for q in mine
                if str(getattr(q, name) if name == "result" else q.state_at(call.now)) == str(value)
            ]
    mine.sort(key=lambda q: -q.id)
    return collection(call, "list_requests", "requests", [r.request(q) for q in mine], r)


def _timestamp(value: Any) -> float:
    """created_at >= ? in SQL: Postgres parses the string, or the query fails (500)."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise Answer(errors.SERVER_ERROR) from None


def _get_request(world: World, call: V3Call, captures: dict[str, str], r: Renderer) -> Reply:
    """services/request/find.rb + queries/request.rb#find: by id alone, whatever the path's repo."""
    rid = captures["request_id"]
    request = world.requests.get(int(rid)) if rid.isdigit() else None
    if request is None or not _request_visible(world, call, request):
        raise Answer(errors.not_found("request", call.content_type))
    return finish(call, "get_request", 200, r.render(r.request(request), "standard"))


def _request_visible(world: World, call: V3Call, request: TravisRequest) -> bool:
    script = world.script_of(request.slug)
    return script.exists and call.access.visible(request.slug, script)


# ----- builds --------------------------------------------------------------------------------


def _build_or_404(world: World, call: V3Call, captures: dict[str, str]) -> TravisBuild:
    build = world.builds.get(int(captures["build_id"]))
    if build is None:
        raise Answer(errors.not_found("build", call.content_type))
    script = world.script_of(build.slug)
    if not (script.exists and call.access.visible(build.slug, script)):
        raise Answer(errors.not_found("build", call.content_type))
    return build


def _get_build(world: World, call: V3Call, captures: dict[str, str], r: Renderer) -> Reply:
    build = _build_or_404(world, call, captures)  # services/build/find.rb
    return finish(call, "get_build", 200, r.render(r.build(build), "standard"))


def _cancel_build(world: World, call: V3Call, captures: dict[str, str], r: Renderer) -> Reply:
    """services/build/cancel.rb: login, find, cancel permission, then queries/build.rb#cancel."""
    grant = call.access.grant
    if grant is None:
        raise Answer(errors.login_required())
    build = _build_or_404(world, call, captures)
    if not (grant.has_access(build.slug) and grant.can_cancel):
        minimal = _plain(world, call, call.script_name).render(r.build(build))
        raise Answer(errors.insufficient_access("cancel", "build", minimal))
    if build.state_at(call.now) in TERMINAL:
        raise Answer(errors.build_not_cancelable())
    request = world.requests.get(build.request_id) if build.request_id is not None else None
    script = request.script if request is not None else world.script_of(build.slug)
    world.cancel(build, call.now, script.cancel_delay)
    body = {
        "@type": "pending",
        "build": _plain(world, call, "").render(r.build(build)),
        "state_change": "cancel",
        "resource_type": "build",
    }
    return finish(call, "cancel_build", 202, body)


_SORTABLE = ("id", "created_at", "started_at", "finished_at", "number")  # queries/builds.rb


def _list_builds(world: World, call: V3Call, captures: dict[str, str], r: Renderer) -> Reply:
    """services/builds/find.rb + queries/builds.rb#filter, #sort (default number:desc,id:desc)."""
    slug, _ = _repo_or_404(world, call, captures)
    p, t = call.params, call.now
    builds = [b for b in world.builds.values() if b.slug == slug]
    for name in ("state", "previous_state", "event_type"):
        value = param(p, "build", name)
        if value is not None:
            wanted = str(value).split(",")
            builds = [
                b for b in builds
                if str(b.state_at(t) if name == "state" else getattr(b, name)) in wanted
            ]  # fmt: skip
    branch = p.get("branch.name")
    if branch is None and isinstance(p.get("branch"), dict):
        branch = p["branch"].get("name")
    if branch is not None:
        builds = [b for b in builds if b.branch in str(branch).split(",")]
    warnings: list[Json] = []
    order = str(p.get("sort_by") or "number:desc,id:desc")
    keys: list[tuple[str, str]] = []
    for entry in order.split(","):
        name, _, direction = entry.partition(":")
        direction = direction or "asc"
        if name in _SORTABLE and direction in ("asc", "desc"):
            keys.append((name, direction))
        else:  # query.rb#sort: ignored_value
            warnings.append({
                "@type": "warning",
                "message": f"query value {entry} for sort_by not a valid sort mode, ignored",
                "warning_type": "ignored_value", "parameter": "sort_by", "value": entry,
            })  # fmt: skip
    builds.sort(key=lambda b: b.id)
    for name, direction in reversed(keys):
        builds = _sorted(builds, name, direction, t)
    return collection(
        call, "list_builds", "builds", [r.build(b) for b in builds], r, warnings=warnings
    )


def _sorted(builds: list[TravisBuild], name: str, direction: str, t: float) -> list[TravisBuild]:
    """One ORDER BY key; Postgres puts NULLs last ascending and first descending."""

    def value(b: TravisBuild) -> float | None:
        if name == "number":
            return float(b.number)
        if name == "id":
            return float(b.id)
        if name == "created_at":
            return b.created_at
        return b.started_as_of(t) if name == "started_at" else b.finished_as_of(t)

    present = [b for b in builds if value(b) is not None]
    missing = [b for b in builds if value(b) is None]
    present.sort(key=lambda b: value(b) or 0.0, reverse=direction == "desc")
    return missing + present if direction == "desc" else present + missing


# ----- logs ----------------------------------------------------------------------------------


def _get_log(world: World, call: V3Call, captures: dict[str, str], r: Renderer) -> Reply:
    """services/log/find.rb + queries/log.rb#find + renderer/log.rb."""
    job = world.jobs.get(int(captures["job_id"]))
    if job is None:
        raise Answer(errors.SERVER_ERROR)  # Models::Job.find raises RecordNotFound: not rescued
    build = world.builds[job.build_id]
    script = world.script_of(build.slug)
    if not (script.exists and call.access.visible(build.slug, script)):
        raise Answer(errors.not_found("log", call.content_type))
    started = job.started_as_of(call.now) is not None
    if not started and world.script_of(build.slug).log_before_start == "missing":
        # assumed: travis-logs has no log until the job starts (queries/log.rb: 'log not found')
        raise Answer(errors.not_found(message="log not found", ctype=call.content_type))
    content = world.log_of(job, call.now) if started else ""
    if captures.get("txt") or call.accept == "text/plain":
        # renderer/log.rb#render: the content as is; the whole log, Range is not looked at
        return errors.plain(200, content)
    href = f"{call.script_name}/job/{job.id}/log"
    raw = f"{href}.txt" if href.startswith("/v3") else f"/v3{href}.txt"
    body = {
        "@type": "log",
        "@href": href,
        "@representation": "standard",
        "id": job.id + 100_000_000,
        "content": content,
        "log_parts": [
            {"content": content, "final": job.finished_as_of(call.now) is not None, "number": 0}
        ],
        "@raw_log_href": raw,
    }
    return finish(call, "get_log", 200, body)


_SERVICES = {
    "create_request": _create_request,
    "list_requests": _list_requests,
    "get_request": _get_request,
    "get_build": _get_build,
    "cancel_build": _cancel_build,
    "list_builds": _list_builds,
    "get_log": _get_log,
}
