"""A client of the KoBoToolbox REST API v2: KoBo's endpoints, paging, token and error bodies.

Knows URLs, authentication, paging and KoBo's error bodies; knows nothing about warehouses or
watermarks. The transport (one origin, bounded answers, bounded retries, hostile JSON) is the one every
server client shares: sync.http.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from common.errors import ConfigError, KoboRefused, KoboUnavailable
from common.text import storable
from sync.http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_REDIRECTS,
    RETRY_STATUSES,
    Parsed,
    RetryPolicy,
    ServerClient,
    _is_object,
    _json_param,
    detail_of,
    parse_json,
    path_of,
)
from sync.origin import shown

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "MAX_PAGE_SIZE", "MAX_REDIRECTS", "RETRY_STATUSES", "KoboClient", "Page",
           "Parsed", "RetryPolicy", "check_asset_uid", "is_asset_uid", "parse_json"]

MAX_PAGE_SIZE = 1000  # KoBo caps `limit` at 1000 (MAX_API_PAGE_SIZE) since release 2.026.03
ASSET_UID = re.compile(r"^a[0-9A-Za-z]{10,40}\Z")  # KoBo: "a" + 21 characters of shortuuid's alphabet


def is_asset_uid(value: Any) -> bool:
    return isinstance(value, str) and ASSET_UID.match(value) is not None


def check_asset_uid(value: Any) -> str:
    """The uid, if it looks like a KoBo asset uid; ConfigError otherwise (it goes into URLs and paths)."""
    if not is_asset_uid(value):
        raise ConfigError(f"'{storable(str(value))[:60]}' is not a KoBo asset uid (like aX7Yk3mQ9pLrT2vB8cN4dW)")
    return value


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a KoBo list endpoint: {count, next, previous, results}. `dirty`: its text holds NUL
    characters or lone surrogates, or it needed the lenient JSON reader (sync.http)."""

    count: int
    next: str | None
    results: list[Any]
    dirty: bool = False


class KoboClient(ServerClient):
    """One KoBo server and one API token (sent as `Authorization: Token …`, to that origin only)."""

    label = "KoBo"

    def __init__(self, server_url: str, token: str, **options: Any):
        super().__init__(server_url, **options)
        self._auth = {"Authorization": f"Token {token}"}

    def _auth_headers(self) -> dict[str, str]:
        return self._auth

    def _refusal(self, method: str, url: str, resp: requests.Response) -> KoboRefused:
        status = resp.status_code
        detail = detail_of(resp)
        if status == 401:
            msg = f"KoBo answered 401: {self.token_source} was refused by {self.server_url} ({detail})"
        elif status == 403:
            msg = (f"KoBo answered 403 for {path_of(url)}: the account behind {self.token_source} lacks the "
                   f"permission ({detail})")
        elif status == 404 and "/api/v2/assets/" in url:
            msg = (f"KoBo answered 404 for {path_of(url)}: no such asset on {self.server_url}, or "
                   f"{self.token_source} belongs to an account it is not shared with ({detail})")
        else:
            msg = f"KoBo answered {status} to {method} {path_of(url)}: {detail}"
        return KoboRefused(msg, status=status)

    # -- assets ---------------------------------------------------------------------------------

    def iter_assets(self, q: str = "asset_type:survey") -> Iterator[dict[str, Any]]:
        """Every asset the token can see, matching KoBo's `q` search (default: every survey). Items that are
        not objects are skipped; a `next` link must stay on the server's origin and must not repeat."""
        url: str | None = "/api/v2/assets/"
        params: dict[str, Any] | None = {"q": q, "limit": MAX_PAGE_SIZE}
        seen: set[str] = set()
        while url:
            body = self.get_json(url, params, _is_list_page)
            yield from (item for item in body["results"] if isinstance(item, dict))
            following = body.get("next")
            url, params = (following if isinstance(following, str) and following else None), None
            if url is not None:
                url = self._url(url)
                if url in seen:
                    raise KoboUnavailable(f"{self.server_url}: the asset list's 'next' link repeats a page "
                                          f"({shown(url)}); stopping instead of looping")
                seen.add(url)

    def asset(self, uid: str) -> dict[str, Any]:
        """Asset detail, including `content` (the form's current rows) and `deployed_versions`."""
        return self.get_json(f"/api/v2/assets/{check_asset_uid(uid)}/", check=_is_object("an asset"))

    def asset_version(self, uid: str, version_uid: str) -> dict[str, Any]:
        """One version of a form, with the `content` submissions of that version were collected with."""
        if not re.match(r"^v[0-9A-Za-z]{4,40}\Z", version_uid):
            raise KoboRefused(f"'{storable(version_uid)[:40]}' is not a KoBo form version uid")
        return self.get_json(f"/api/v2/assets/{check_asset_uid(uid)}/versions/{version_uid}/",
                             check=_is_object("a form version"))

    # -- submissions ----------------------------------------------------------------------------

    def data_page(
        self,
        uid: str,
        *,
        query: Mapping[str, Any] | None = None,
        sort: Mapping[str, int] | None = None,
        fields: list[str] | None = None,
        start: int = 0,
        limit: int = MAX_PAGE_SIZE,
    ) -> Page:
        """One page of `/api/v2/assets/{uid}/data/` with KoBo's `query`, `sort`, `fields`, `start`, `limit`."""
        params: dict[str, Any] = {"limit": limit}
        if start:
            params["start"] = start
        if query:
            params["query"] = _json_param(query)
        if sort:
            params["sort"] = _json_param(sort)
        if fields:
            params["fields"] = _json_param(fields)

        def check(body: Any) -> str | None:
            problem = _is_list_page(body)
            if problem:
                return problem
            count = _count(body)
            if not body["results"] and count is not None and count > start:
                return f"KoBo counted {count} submissions but sent none from position {start}"
            return None

        parsed = self.get_parsed(f"/api/v2/assets/{check_asset_uid(uid)}/data/", params, check)
        body = parsed.body
        following = body.get("next")
        if not isinstance(following, str):  # a `next` that is not a link: more only if the page was full
            following = "(more)" if following not in (None, False, "") and len(body["results"]) >= limit else None
        return Page(count=_count(body) or 0, next=following or None, results=body["results"], dirty=parsed.dirty)

    def count(self, uid: str, query: Mapping[str, Any] | None) -> int | None:
        """How many submissions match `query`, from the `count` KoBo computes for any query (§1), in one small
        request (`limit=1`, `fields=["_id"]`). None when the answer's count is not a non-negative integer: a
        count is never guessed."""
        params: dict[str, Any] = {"limit": 1, "fields": _json_param(["_id"])}
        if query:
            params["query"] = _json_param(query)
        body = self.get_json(f"/api/v2/assets/{check_asset_uid(uid)}/data/", params, _is_list_page)
        return _count(body)

    def history_page(self, uid: str, *, q: str, start: int = 0, limit: int = MAX_PAGE_SIZE) -> Page:
        """One page of the project history (`/api/v2/assets/{uid}/history/`, newest first, KoBo's `q` search).
        Needs `manage_asset`: KoboRefused with status 403 without it. The count is 0 when the server gives none."""
        params: dict[str, Any] = {"q": q, "limit": limit}
        if start:
            params["start"] = start
        body = self.get_json(f"/api/v2/assets/{check_asset_uid(uid)}/history/", params, _is_list_page)
        following = body.get("next")
        return Page(count=_count(body) or 0, next=following if isinstance(following, str) and following else None,
                    results=body["results"])

    def iter_data_pages(
        self,
        uid: str,
        *,
        query: Mapping[str, Any] | None = None,
        sort: Mapping[str, int] | None = None,
        fields: list[str] | None = None,
        limit: int = MAX_PAGE_SIZE,
    ) -> Iterator[Page]:
        """Page through a result set with `start` offsets, one page in memory at a time."""
        start = 0
        while True:
            page = self.data_page(uid, query=query, sort=sort, fields=fields, start=start, limit=limit)
            yield page
            start += len(page.results)
            if not page.next or not page.results:
                return


def _is_list_page(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        return "the answer has no 'results' list"
    return None


def _count(body: Mapping[str, Any]) -> int | None:
    value = body.get("count")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


