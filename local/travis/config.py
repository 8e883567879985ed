"""Build configs as Travis assembles them: the API's config merged into the repo's .travis.yml.

travis-yml loads the API config first and the repository's `.travis.yml` after it; the merge
(`lib/travis/yml/support/merge.rb`, driven by `parts/merge.rb`) lets the API's side win under the
request's `merge_mode`. Here `lft` is always the API's config and `rgt` the user's, as there.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from local.travis.model import MERGE_MODES, Json


class UnknownMergeMode(ValueError):
    """travis-yml support/merge.rb#unknown_merge_mode!: "Unknown merge mode <mode>"."""


def merge(lft: Json, rgt: Json, mode: str | None) -> Json:
    """Merge the API's config `lft` over the user's `rgt` (travis-yml support/merge.rb#apply)."""
    mode = (mode or "deep_merge_append").replace("-", "_")  # merge.rb#normalize
    if mode not in MERGE_MODES:
        raise UnknownMergeMode(f"Unknown merge mode {mode}")
    lft, rgt = copy.deepcopy(lft), copy.deepcopy(rgt)
    if mode == "replace":
        return lft  # merge.rb#replace; api.rb does not even load .travis.yml then
    if mode == "merge":
        # merge.rb#merge: top-level keys only, the API's value wins
        return {key: lft[key] if key in lft else rgt[key] for key in _keys(lft, rgt)}
    return _deep(lft, rgt, mode)


def _keys(lft: Json, rgt: Json) -> list[str]:
    return list(dict.fromkeys([*lft, *rgt]))  # merge.rb#keys: lft's keys first, uniq


def _deep(lft: Json, rgt: Json, mode: str) -> Json:
    out: Json = {}
    for key in _keys(lft, rgt):
        a, b = lft.get(key), rgt.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out[key] = _deep(a, b, mode)
        elif isinstance(a, list) and isinstance(b, list) and mode != "deep_merge":
            # merge.rb#append is `rgt + lft` (the API's entries after the user's), #prepend the
            # other way round; deep_merge keeps the API's list
            out[key] = b + a if mode == "deep_merge_append" else a + b
        elif key in lft:
            out[key] = a  # scalars, and a string/list meeting a hash: the API's value replaces
        else:
            out[key] = b
    return out


def parse_config(raw: Any) -> Json:
    """The API's `config` param: a hash, or a YAML/JSON string (travis-yml config/api.rb)."""
    if isinstance(raw, dict):
        return copy.deepcopy(raw)
    if isinstance(raw, str) and raw.strip():
        loaded = yaml.safe_load(raw)
        return loaded if isinstance(loaded, dict) else {}
    return {}


def config_string(raw: Any) -> Any:
    """travis-api v3/queries/request.rb#to_str: a hash is sent on as a JSON string."""
    return json.dumps(raw, separators=(",", ":")) if isinstance(raw, dict) else raw


def padded_travis_yml(text: str, size: int) -> str:
    """Pad a .travis.yml with env.global entries until it has at least `size` bytes.

    Real large configs are large in both forms (raw YAML and the parsed config), so the padding
    is data, not comments.
    """
    if len(text.encode()) >= size:
        return text
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        data = {}
    env = data.setdefault("env", {})
    if not isinstance(env, dict):
        env = data["env"] = {"jobs": env}
    entries = env.setdefault("global", [])
    if not isinstance(entries, list):
        entries = env["global"] = [entries]
    base = yaml.safe_dump(data, sort_keys=False)
    n = max(1, (size - len(base.encode())) // 80 + 1)
    entries.extend(f"PAD_{i:06d}={'x' * 64}" for i in range(n))
    return yaml.safe_dump(data, sort_keys=False)


def load_travis_yml(text: str | None) -> Json:
    loaded = yaml.safe_load(text) if text else None
    return loaded if isinstance(loaded, dict) else {}


_FREQUENCY = {"true": "always", "false": "never", "changed": "change"}


def _frequency(value: Any) -> Any:
    """travis-yml schema/def/notification.rb Frequency: always|never|change (true/false/changed)."""
    if isinstance(value, bool):
        return "always" if value else "never"
    if isinstance(value, str):
        return _FREQUENCY.get(value, value)
    return value


def webhook_entries(config: Json) -> list[Json]:
    """`notifications.webhooks` as the list of entries travis-hub iterates over.

    travis-yml schema/def/notification/webhooks.rb: alias `webhook`, prefix `urls` (a string or a
    list of strings means urls), `to: :seq` (one hash or a list of hashes); notification.rb
    `change :inherit` copies the top-level on_success/on_failure into each entry.
    """
    notifications = config.get("notifications")
    if not isinstance(notifications, dict):
        return []
    raw = notifications.get("webhooks", notifications.get("webhook"))
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    entries: list[Json] = []
    if items and all(not isinstance(i, dict) for i in items):
        entries.append({"urls": list(items)})  # a list of urls is one entry's urls
    else:
        for item in items:
            entries.append(dict(item) if isinstance(item, dict) else {"urls": [item]})
    for entry in entries:
        if isinstance(entry.get("urls"), str):
            entry["urls"] = [entry["urls"]]
        for key in ("on_success", "on_failure"):
            if key not in entry and key in notifications:
                entry[key] = notifications[key]
        for key in ("on_success", "on_failure", "on_start", "on_cancel", "on_error"):
            if key in entry:
                entry[key] = _frequency(entry[key])
    return entries


def webhook_targets(entry: Json) -> list[str]:
    """travis-hub addons/handlers/webhook.rb#targets: urls as strings or {url: ...} hashes."""
    urls = entry.get("urls")
    if isinstance(urls, str):
        return [u.strip() for u in urls.split(",") if u.strip()]
    out: list[str] = []
    for item in urls if isinstance(urls, list) else []:
        url = item.get("url") if isinstance(item, dict) else item
        if url:
            out.append(str(url))
    return out
