"""Pagination of v3 collections: travis-api v3/paginator.rb and v3/paginator/url_generator.rb."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from local.travis import errors
from local.travis.errors import Reply
from local.travis.model import Json
from local.travis.render import Ref, Renderer
from local.travis.v3 import Answer, V3Call, finish


def _integer(value: Any, key: str) -> int:
    """paginator.rb#Integer: anything Ruby's Integer() rejects is wrong_params."""
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise Answer(errors.wrong_params(f"{key} must be an integer"))
    return int(text)


def collection(
    call: V3Call,
    kind: str,
    key: str,
    refs: list[Ref],
    r: Renderer,
    *,
    warnings: list[Json] | None = None,
) -> Reply:
    """paginator.rb#paginate + collection_renderer.rb#render (+ paginator/url_generator.rb)."""
    p = call.params
    limit = _integer(p["limit"], "limit") if p.get("limit") is not None else 25
    if limit < 0:
        limit = 25
    if limit > 100 or limit < 1:
        limit = 100  # not full access: the max, also for limit=0
    offset = _integer(p["offset"], "offset") if p.get("offset") is not None else 0
    offset = max(offset, 0)
    count = offset + limit * 2 if p.get("skip_count") == "true" else len(refs)
    page = refs[offset : offset + limit]
    representation = str(p.get("representation") or "standard")
    # collection_renderer.rb#filtered_include drops includes of the collection key itself
    r.include = [i for i in r.include if i.split(".", 1)[-1] != key]
    entries = [r.render(ref, representation) for ref in page]
    href = call.location
    body: Json = {"@type": key, "@href": href, "@representation": representation}
    body["@pagination"] = {
        "limit": limit,
        "offset": offset,
        "count": count,
        **_pages(href, limit, offset, count),
    }
    body[key] = entries
    if warnings:
        body = {"@warnings": warnings, **body}
    return finish(call, kind, 200, body)


def _pages(href: str, limit: int, offset: int, count: int) -> Json:
    """paginator/url_generator.rb#to_h, including its arithmetic for an empty collection."""

    def uri(off: int, lim: int) -> str:
        if off == offset and lim == limit:
            return href
        path, _, query = href.partition("?")
        if not query or re.fullmatch(r"(?:&?(?:limit|offset)=[^=]*)*", query):  # FastParser
            return f"{path}?limit={lim}&offset={off}"
        values = {k: v for k, _, v in (pair.partition("=") for pair in query.split("&"))}
        values.update(offset=str(off), limit=str(lim))  # FancyParser: Addressable sorts keys
        return f"{path}?{urlencode(sorted(values.items()), safe='%,.:')}"

    def info(off: int, lim: int) -> Json:
        return {"@href": uri(off, lim), "offset": off, "limit": lim}

    last = count <= offset + limit
    prev = None
    if offset:
        prev = info(0, offset) if offset <= limit else info(offset - limit, limit)
    last_offset = count // limit * limit
    if last_offset == count:
        last_offset -= limit
    return {
        "is_first": offset == 0,
        "is_last": last,
        "next": None if last else info(offset + limit, limit),
        "prev": prev,
        "first": info(0, limit),
        "last": info(last_offset, limit),
    }
