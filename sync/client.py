"""A client of the KoBoToolbox REST API v2, on `requests`.

Knows URLs, authentication, paging and KoBo's error bodies; knows nothing about warehouses or
watermarks. Every call has a timeout; transient failures (connection errors, timeouts, 429, 5xx)
are retried a bounded number of times with exponential backoff and jitter, honouring Retry-After.
Messages never contain the token.

Everything the server answers is hostile until checked:
- the token goes only to the configured origin (scheme, host, port): a `next` link or a redirect
  elsewhere (or from https to http) is refused; redirects are followed by hand, within the origin;
- an answer is read in chunks and refused past `max_response_bytes` once decompressed (a small
  gzip bomb cannot take the machine's memory);
- JSON that orjson cannot read (integers beyond 64 bits, lone surrogates, raw control characters)
  is read by the standard library instead, and the page is flagged `dirty` so the warehouse's
  conversion boundary cleans the text it stores.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from common.errors import ConfigError, KoboRefused, KoboUnavailable
from common.gcpause import gc_paused
from common.text import RawNumber, storable, storable_json
from sync.origin import normalize_server_url, resolve, same_origin, shown

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000  # KoBo caps `limit` at 1000 (MAX_API_PAGE_SIZE) since release 2.026.03
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # decompressed; a page of 1,000 submissions is a few MB
MAX_REDIRECTS = 5
ASSET_UID = re.compile(r"^a[0-9A-Za-z]{10,40}\Z")  # KoBo: "a" + 21 characters of shortuuid's alphabet


def is_asset_uid(value: Any) -> bool:
    return isinstance(value, str) and ASSET_UID.match(value) is not None


def check_asset_uid(value: Any) -> str:
    """The uid, if it looks like a KoBo asset uid; ConfigError otherwise (it goes into URLs and paths)."""
    if not is_asset_uid(value):
        raise ConfigError(f"'{storable(str(value))[:60]}' is not a KoBo asset uid (like aX7Yk3mQ9pLrT2vB8cN4dW)")
    return value
_SUSPECT_TEXT = re.compile(rb"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")  # NUL or a surrogate escape
# an integer of 20 digits or more where a JSON value starts: orjson would read it as a double, silently
_BIG_INTEGER = re.compile(rb"[:\[,]\s*-?[0-9]{20,}")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a KoBo list endpoint: {count, next, previous, results}. `dirty`: its text holds NUL
    characters or lone surrogates, or it needed the lenient JSON reader (see the module doc)."""

    count: int
    next: str | None
    results: list[Any]
    dirty: bool = False


@dataclass(frozen=True, slots=True)
class Parsed:
    body: Any
    dirty: bool


def parse_json(content: bytes) -> Parsed:
    """orjson, else the standard library (integers beyond 64 bits kept exact, numbers beyond a double kept as
    their text, lone surrogates, raw control characters, invalid UTF-8 replaced); raises ValueError when
    neither can read it."""
    if not _BIG_INTEGER.search(content):
        try:
            with gc_paused():  # a page is ~100k new objects: a collection in the middle only costs time
                body = orjson.loads(content)
            return Parsed(body, _SUSPECT_TEXT.search(content) is not None)
        except orjson.JSONDecodeError:
            pass
    text = content.decode("utf-8", errors="replace")
    try:
        return Parsed(json.loads(text, strict=False, parse_float=_float, parse_constant=RawNumber), True)
    except (ValueError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


def _float(text: str) -> float | RawNumber:
    value = float(text)
    return value if math.isfinite(value) else RawNumber(text)


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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ):
        self.server_url = normalize_server_url(server_url)
        self.token_source = token_source
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_response_bytes = max_response_bytes
        self._sleep = sleep
        self._session = session or requests.Session()
        self._session.headers.update({"Accept": "application/json"})
        self._auth = {"Authorization": f"Token {token}"}  # sent per request, only to the server's own origin
        self.requests_made = 0
        self.bytes_received = 0  # bodies as read, decompressed: what the sweep's cost figures count
        self._lock = threading.RLock()

    def __repr__(self) -> str:  # never show the token
        return f"KoboClient({self.server_url!r})"

    def close(self) -> None:
        self._session.close()

    # -- transport ------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        """An absolute URL on this server: a path, or a link the server gave that stays on its origin."""
        if not path.startswith(("http://", "https://", "//")):
            return f"{self.server_url}{path}"
        url = resolve(self.server_url, path)
        if not same_origin(url, self.server_url):
            raise KoboRefused(f"{self.server_url} answered with a link to {shown(url)}, another origin (or plain "
                              f"http); amina sends {self.token_source} only to {self.server_url}, so it stops here. "
                              "If the server is behind a proxy that rewrites links, configure the URL the links "
                              "use.")
        return url

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, files: Any = None, data: Any = None) -> requests.Response:
        """Send one request, retrying transient failures; raise KoboRefused/KoboUnavailable."""
        return self._send(method, path, params=params, json=json, files=files, data=data)

    def fetch_file(self, url: str, *, allowed: Callable[[str], bool]) -> bytes:
        """GET a file (an attachment), bounded in size. On the server's origin it carries the token; elsewhere, and
        after any redirect elsewhere, it goes only where `allowed(url)` says, and never with the token."""
        own = same_origin(url, self.server_url)
        if not own and not allowed(url):
            raise KoboRefused(f"{shown(url)} is on another origin that [attachments] allowed_origins does not list")
        return self._send("GET", url, parse=lambda resp: resp.content, authorized=own, any_origin=not own,
                          elsewhere=allowed)

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
              files: Any = None, data: Any = None, parse: Callable[[requests.Response], Any] | None = None,
              authorized: bool = True, any_origin: bool = False,
              elsewhere: Callable[[str], bool] | None = None) -> Any:
        """The retry loop. `parse` turns a 2xx answer into a value, raising _Transient when the answer is
        damaged (half a JSON body, a page missing its results): that is retried like a 503."""
        url = path if any_origin else self._url(path)
        with self._lock:  # one request at a time per client (the sync fetches its next page from a thread)
            return self._send_locked(method, url, params=params, json=json, files=files, data=data, parse=parse,
                                     authorized=authorized, elsewhere=elsewhere)

    def _send_locked(self, method: str, url: str, *, params: Mapping[str, Any] | None, json: Any, files: Any,
                     data: Any, parse: Callable[[requests.Response], Any] | None, authorized: bool,
                     elsewhere: Callable[[str], bool] | None) -> Any:
        last_problem = ""
        for attempt in range(1, self.retry.attempts + 1):
            self.requests_made += 1
            retry_after = None
            try:
                resp = self._exchange(method, url, params=params, json=json, files=files, data=data,
                                      authorized=authorized, elsewhere=elsewhere)
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
            except requests.RequestException as exc:  # an answer requests cannot even read (bad headers …)
                last_problem = f"an answer that cannot be read ({exc.__class__.__name__})"
            except _Transient as exc:
                last_problem = str(exc)
            wait = self._backoff(attempt, retry_after)
            if attempt < self.retry.attempts:
                log.warning("%s %s: %s; retry %d of %d in %.1f s", method, _path(url), last_problem,
                            attempt, self.retry.attempts - 1, wait)
                self._sleep(wait)
        raise KoboUnavailable(
            f"{method} {shown(url)}: {last_problem}, still failing after {self.retry.attempts} tries; "
            "check that the server URL is right and the server is up, then run again"
        )

    def _exchange(self, method: str, url: str, *, params: Mapping[str, Any] | None, json: Any, files: Any,
                  data: Any, authorized: bool, elsewhere: Callable[[str], bool] | None) -> requests.Response:
        """One request and the redirects it meets, followed by hand: within the server's origin with the token;
        elsewhere only where `elsewhere(url)` allows (files), and then without the token; else refused."""
        for _hop in range(MAX_REDIRECTS + 1):
            headers = self._auth if authorized else None
            resp = self._session.request(method, url, params=params, json=json, files=files, data=data,
                                         headers=headers, timeout=self.timeout, allow_redirects=False, stream=True)
            self._read_bounded(resp, url)
            if resp.status_code not in (301, 302, 303, 307, 308) or "Location" not in resp.headers:
                return resp
            target = resolve(url, resp.headers["Location"])
            if not target.startswith(("http://", "https://")):
                raise KoboRefused(f"{shown(url)} redirected to something that is not a web address")
            authorized = authorized and same_origin(target, self.server_url)
            if not same_origin(target, self.server_url) and not (elsewhere and elsewhere(target)):
                raise KoboRefused(f"{shown(url)} redirected to {shown(target)}, another origin (or plain http); "
                                  f"amina sends {self.token_source} only to {self.server_url}")
            url, params = target, None
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                method, json, files, data = "GET", None, None, None
        raise KoboUnavailable(f"{shown(url)}: more than {MAX_REDIRECTS} redirects")

    def _read_bounded(self, resp: requests.Response, url: str) -> None:
        """Read the body now, decompressed, refusing it past max_response_bytes."""
        size = 0
        chunks: list[bytes] = []
        try:
            for chunk in resp.iter_content(chunk_size=1 << 20):
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise KoboRefused(
                        f"{shown(url)}: the answer is larger than {self.max_response_bytes / 2**20:,.0f} MB once "
                        "decompressed; amina stopped reading it. If a page of your forms really is that large, "
                        "raise [sync] max_response_mb (or lower page_size)")
                chunks.append(chunk)
        finally:
            resp.close()
            self.bytes_received += size
        resp._content = b"".join(chunks)  # what resp.content returns from now on
        resp._content_consumed = True

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
        """GET and parse JSON; a damaged body (or one `check` finds wrong) is retried, then refused. Text that no
        database can store (NUL, lone surrogates) is replaced (see get_parsed to keep it)."""
        parsed = self.get_parsed(path, params, check)
        if parsed.dirty:
            log.warning("GET %s: the answer holds text no database can store (NUL or lone surrogates); replaced",
                        _path(self._url(path)))
            return _clean(parsed.body)
        return parsed.body

    def get_parsed(self, path: str, params: Mapping[str, Any] | None = None,
                   check: Callable[[Any], str | None] | None = None) -> Parsed:
        def parse(resp: requests.Response) -> Parsed:
            try:
                parsed = parse_json(resp.content)
            except ValueError:
                if "json" not in resp.headers.get("Content-Type", "json"):
                    raise KoboUnavailable(f"GET {_path(self._url(path))}: the answer is not JSON "
                                          f"({_short(resp.headers.get('Content-Type'))}); is {self.server_url} a KoBo "
                                          "server?") from None
                raise _Transient(f"the JSON answer was cut short ({len(resp.content)} bytes)") from None
            problem = check(parsed.body) if check else None
            if problem:
                raise _Transient(problem)
            return parsed
        return self._send("GET", path, params=params, parse=parse)

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


def _is_object(what: str) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        return None if isinstance(body, dict) else f"the answer is not {what} (a JSON object)"
    return check


def _count(body: Mapping[str, Any]) -> int | None:
    value = body.get("count")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _clean(value: Any) -> Any:
    return storable_json(value)


def _short(text: str | None) -> str:
    return (text or "none")[:60]


def _detail(resp: requests.Response) -> str:
    """KoBo's own short reason ({'detail': ...}, {'param': msg}, or ['msg']); never a whole body."""
    try:
        body = parse_json(resp.content).body
    except ValueError:
        return _one_line(resp.reason or "no JSON body")
    if isinstance(body, dict):
        if "detail" in body:
            return _one_line(str(body["detail"]))
        return _one_line("; ".join(f"{k}: {v}" for k, v in list(body.items())[:3]))
    if isinstance(body, list):
        return _one_line("; ".join(str(x) for x in body[:3]))
    return _one_line(str(body))


def _one_line(text: str) -> str:
    """A server's message as one short printable line."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:200]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset"):
        if marker in text:
            return marker.lower()
    return exc.__class__.__name__
