"""A client of the KoBoToolbox REST API v2, on `requests`.

Knows URLs, authentication, paging and KoBo's error bodies; knows nothing about warehouses or
watermarks. Every call has a timeout; transient failures (connection errors, timeouts, 429, 5xx)
are retried a bounded number of times with exponential backoff and jitter, honouring Retry-After.
Messages never contain the token.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from common.errors import KoboRefused, KoboUnavailable
from common.gcpause import gc_paused

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000  # KoBo caps `limit` at 1000 (MAX_API_PAGE_SIZE) since release 2.026.03
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a KoBo list endpoint: {count, next, previous, results}."""

    count: int
    next: str | None
    results: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # total tries of one request
    base_delay: float = 0.5  # seconds before the first retry; doubles each time
    max_delay: float = 30.0  # cap of one wait (also caps Retry-After)


def _json_param(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class _Transient(Exception):
    """A 2xx answer that is damaged; retried like a 503."""


class KoboClient:
    """One KoBo server and one token. Cheap to create; reuses one HTTP connection pool."""

    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        token_source: str = "the token",
        timeout: tuple[float, float] = (10.0, 120.0),
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise KoboRefused(f"'{server_url}' is not a server URL: expected e.g. https://kf.kobotoolbox.org")
        self.server_url = server_url.rstrip("/")
        self.token_source = token_source
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._session = session or requests.Session()
        self._session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})
        self.requests_made = 0
        self._lock = threading.RLock()

    def __repr__(self) -> str:  # never show the token
        return f"KoboClient({self.server_url!r})"

    def close(self) -> None:
        self._session.close()

    # -- transport ------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.server_url}{path}"

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, files: Any = None, data: Any = None) -> requests.Response:
        """Send one request, retrying transient failures; raise KoboRefused/KoboUnavailable."""
        return self._send(method, path, params=params, json=json, files=files, data=data)

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
              files: Any = None, data: Any = None, parse: Callable[[requests.Response], Any] | None = None) -> Any:
        """The retry loop. `parse` turns a 2xx answer into a value, raising _Transient when the answer is
        damaged (half a JSON body, a page missing its results): that is retried like a 503."""
        with self._lock:  # one request at a time per client (the sync fetches its next page from a thread)
            return self._send_locked(method, path, params=params, json=json, files=files, data=data, parse=parse)

    def _send_locked(self, method: str, path: str, *, params: Mapping[str, Any] | None, json: Any, files: Any,
                     data: Any, parse: Callable[[requests.Response], Any] | None) -> Any:
        url = self._url(path)
        last_problem = ""
        for attempt in range(1, self.retry.attempts + 1):
            self.requests_made += 1
            retry_after = None
            try:
                resp = self._session.request(method, url, params=params, json=json, files=files,
                                             data=data, timeout=self.timeout)
                if resp.status_code < 400:
                    return parse(resp) if parse else resp
                if resp.status_code not in RETRY_STATUSES:
                    raise self._refusal(method, url, resp)
                last_problem = f"KoBo answered {resp.status_code}"
                retry_after = resp.headers.get("Retry-After")
            except requests.Timeout:
                last_problem = f"no answer within {self.timeout[1]:.0f} s"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                last_problem = f"cannot connect ({_reason(exc)})" if isinstance(exc, requests.ConnectionError) \
                    else "the connection broke in the middle of the answer"
            except _Transient as exc:
                last_problem = str(exc)
            wait = self._backoff(attempt, retry_after)
            if attempt < self.retry.attempts:
                log.warning("%s %s: %s; retry %d of %d in %.1f s", method, _path(url), last_problem,
                            attempt, self.retry.attempts - 1, wait)
                self._sleep(wait)
        raise KoboUnavailable(
            f"{method} {url}: {last_problem}, still failing after {self.retry.attempts} tries; "
            "check that the server URL is right and the server is up, then run again"
        )

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), self.retry.max_delay)
            except ValueError:
                pass
        delay = min(self.retry.base_delay * 2 ** (attempt - 1), self.retry.max_delay)
        return delay * (0.5 + random.random() / 2)  # jitter: between half and all of it

    def _refusal(self, method: str, url: str, resp: requests.Response) -> KoboRefused:
        status = resp.status_code
        detail = _detail(resp)
        if status == 401:
            msg = f"KoBo answered 401: {self.token_source} was refused by {self.server_url} ({detail})"
        elif status == 403:
            msg = (f"KoBo answered 403 for {_path(url)}: the account behind {self.token_source} lacks the "
                   f"permission ({detail})")
        elif status == 404 and "/api/v2/assets/" in url:
            msg = (f"KoBo answered 404 for {_path(url)}: no such asset on {self.server_url}, or "
                   f"{self.token_source} belongs to an account it is not shared with ({detail})")
        else:
            msg = f"KoBo answered {status} to {method} {_path(url)}: {detail}"
        return KoboRefused(msg, status=status)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None,
                 check: Callable[[Any], str | None] | None = None) -> Any:
        """GET and parse JSON; a damaged body (or one `check` finds wrong) is retried, then refused."""
        def parse(resp: requests.Response) -> Any:
            try:
                with gc_paused():  # a page is ~100k new objects: a collection in the middle only costs time
                    body = orjson.loads(resp.content)
            except orjson.JSONDecodeError:
                if "json" not in resp.headers.get("Content-Type", "json"):
                    raise KoboUnavailable(f"GET {_path(self._url(path))}: the answer is not JSON "
                                          f"({resp.headers.get('Content-Type')}); is {self.server_url} a KoBo "
                                          "server?") from None
                raise _Transient(f"the JSON answer was cut short ({len(resp.content)} bytes)") from None
            problem = check(body) if check else None
            if problem:
                raise _Transient(problem)
            return body
        return self._send("GET", path, params=params, parse=parse)

    # -- assets ---------------------------------------------------------------------------------

    def iter_assets(self, q: str = "asset_type:survey") -> Iterator[dict[str, Any]]:
        """Every asset the token can see, matching KoBo's `q` search (default: every survey)."""
        url: str | None = "/api/v2/assets/"
        params: dict[str, Any] | None = {"q": q, "limit": MAX_PAGE_SIZE}
        seen: set[str] = set()
        while url:
            body = self.get_json(url, params)
            yield from body.get("results", [])
            url, params = body.get("next"), None
            if url in seen:
                raise KoboUnavailable(f"{self.server_url}: the asset list's 'next' link repeats a page ({url})")
            seen.add(url or "")

    def asset(self, uid: str) -> dict[str, Any]:
        """Asset detail, including `content` (the form's current rows) and `deployed_versions`."""
        return self.get_json(f"/api/v2/assets/{uid}/")

    def asset_version(self, uid: str, version_uid: str) -> dict[str, Any]:
        """One version of a form, with the `content` submissions of that version were collected with."""
        return self.get_json(f"/api/v2/assets/{uid}/versions/{version_uid}/")

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
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                return "the answer has no 'results' list"
            if not body["results"] and int(body.get("count") or 0) > start:
                return f"KoBo counted {body['count']} submissions but sent none from position {start}"
            return None

        body = self.get_json(f"/api/v2/assets/{uid}/data/", params, check)
        return Page(count=int(body.get("count") or 0), next=body.get("next"), results=body["results"])

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


def _detail(resp: requests.Response) -> str:
    """KoBo's own short reason ({'detail': ...}, {'param': msg}, or ['msg']); never a whole body."""
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return resp.reason or "no JSON body"
    if isinstance(body, dict):
        if "detail" in body:
            return str(body["detail"])[:200]
        return "; ".join(f"{k}: {v}" for k, v in list(body.items())[:3])[:200]
    if isinstance(body, list):
        return "; ".join(str(x) for x in body[:3])[:200]
    return str(body)[:200]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset"):
        if marker in text:
            return marker.lower()
    return exc.__class__.__name__
