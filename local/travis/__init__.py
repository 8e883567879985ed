"""A fake of the Travis CI API v3, built from Travis's own source, served over real HTTP.

Unit tests of the Travis client, the end-to-end suite and `make demo` talk to it as they would to
api.travis-ci.com. Every behaviour names its source beside the code (travis-ci/travis-api,
travis-tasks, travis-hub, travis-yml, travis-build, travis-core, travis-web, rack-attack, or
/work/shared/reference/travis-api-v3.md); what no source settles is marked `# assumed:` and is a
switch, so a test can run against each reading.

Modules: `model` (scripts, requests, builds, jobs and their timelines), `world` (the mutable state
and time moving on: gatekeeper and hub), `config` (travis-yml merge modes, webhook settings),
`render` (v3 representations), `pagination`, `v3` and `api` (the v3 router and services),
`middleware` (body parser, token check, Rack::Attack), `app` (the middleware stack),
`errors` (the error table), `webhooks` (notify rules, payload, signing, delivery), `faults`,
`logs`, `server` (HTTP plumbing) and `fake` (TravisFake, the public API).

Time: the fake reads a `local.clock.VirtualClock` (default: real time). A request is `pending`
(no commit, no branch, no builds, message null) until `RepoScript.processing_delay` virtual
seconds after its creation, then `finished` with `result` approved/rejected, `message` Travis's
status text and the POSTed message as `commit.message`; its build then runs a planned timeline:
jobs created -> queued -> received -> started -> passed|failed|errored|canceled (stages in turn;
a failed stage cancels the later ones), the build created -> started -> its matrix state,
`duration` the sum of the jobs' run times. Processing happens before every answer and from a
ticker thread (every `tick_seconds` real seconds), which also fires webhooks.

Changed from the old fake (local/travis_fake.py, which this package replaced):
  - progress follows the clock, not GET counts: `polls_until_build`/`polls_until_done` are gone
    (`processing_delay`, `queue_delay`, `job_duration`/`jobs=[JobScript(...)]`, `cancel_delay`);
  - `request.message` is Travis's status text; the POSTed message is `commit.message` and only
    once processed (the recording `TravisRequest.message` is still what the client POSTed);
  - request states are pending -> finished (optionally started); rejections carry their reason in
    `message`; `reject_messages` became `reject_message` (text) and `messages` (lint entries,
    no text); `missing_commit_message`/`reject_message()` helpers are gone;
  - unknown or revoked tokens: 403 plain-text "access denied" (never 401); no token: 403
    login_required on create/cancel, reads allowed on public repositories (`public_mode`);
    `RepoScript.auth_error` is gone: script tokens instead (`add_token(..., can_create=,
    can_cancel=)`, `revoke_token`, private repositories);
  - the request limit answers 429 request_limit_reached **without** Retry-After, and
    `remaining_requests` is counted before the request (10, 9, ...);
  - no Travis-API-Version: 3 header -> the legacy API (404 {"file": "not found"}), not a 400;
    an unencoded slug (`/repo/o/r/...`) -> 404;
  - `Fault.delay` and `slow_next` are in virtual seconds of the fake's clock; status faults answer
    the bodies Travis's layers send (500 text, 429 "Retry later", 502-504 a proxy page);
  - builds list jobs as `{id}` only unless `include=build.jobs`; `number` is a string; the clock
    argument is a VirtualClock (not a callable).

Switches (constructor unless noted; RepoScript fields are per repository):
  processing_delay (number | None = never), request_started_for (show travis-core's "started"),
  approved_result ("approved" | None), unknown_sha ("reject" | "build_head"), build_sha (build
  another commit), builds_only_with_travis_yml, build_queue_states, cancel_delay,
  log_before_start ("missing" | "empty"), public_mode, enterprise (no Rack::Attack),
  attack=AttackLimits(...) (ban and throttle numbers, None disables a throttle),
  require_user_agent, errored_event ("finished" | "errored"), web_host, webhook_delay /
  drop_webhooks (on the fake).
"""

from local.travis.cli import main
from local.travis.fake import TravisFake
from local.travis.faults import KINDS, MALFORMED_STYLES, RANDOM_FAULTS, REAL_FAILURE_MODES, Fault
from local.travis.middleware import AttackLimits
from local.travis.model import (
    ALL,
    DEFAULT_TOKEN,
    MERGE_MODES,
    OUTCOMES,
    TERMINAL,
    JobScript,
    RecordedCall,
    RepoScript,
    SeedBuild,
    TravisBuild,
    TravisJob,
    TravisRequest,
    WebhookDelivery,
    token_fingerprint,
)

__all__ = [
    "ALL",
    "DEFAULT_TOKEN",
    "KINDS",
    "MALFORMED_STYLES",
    "MERGE_MODES",
    "OUTCOMES",
    "RANDOM_FAULTS",
    "REAL_FAILURE_MODES",
    "TERMINAL",
    "AttackLimits",
    "Fault",
    "JobScript",
    "RecordedCall",
    "RepoScript",
    "SeedBuild",
    "TravisBuild",
    "TravisFake",
    "TravisJob",
    "TravisRequest",
    "WebhookDelivery",
    "main",
    "token_fingerprint",
]
