"""The HTTP side every server client shares: one origin, bounded answers, bounded retries.

A `ServerClient` talks to one server (KoBoToolbox or ODK Central) on `requests`. Every call has a timeout;
transient failures (connection errors, timeouts, 429, 5xx, damaged 2xx answers) are retried a bounded
number of times with exponential backoff and jitter, honouring Retry-After. Everything the server answers
is hostile until checked:
- credentials go only to the configured origin (scheme, host, port): a link or a redirect elsewhere (or
  from https to http) is refused; redirects are followed by hand, within the origin (files may follow them
  to origins the config allows, without the credentials);
- an answer is read in chunks and refused past `max_response_bytes` once decompressed (a small gzip bomb
  cannot take the machine's memory);
- JSON that orjson cannot read (integers beyond 64 bits, lone surrogates, raw control characters) is read
  by the standard library instead and flagged `dirty`, so the warehouse's conversion boundary cleans the
  text it stores.
Messages never carry a credential or a whole response body. A subclass says how it authenticates
(`_auth_headers`, `_reauthenticate`) and how it words a refusal (`_refusal`).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from common.errors import KoboRefused, KoboUnavailable
from common.gcpause import gc_paused
from common.text import RawNumber, storable_json
from sync.origin import normalize_server_url, resolve, same_origin, shown

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # decompressed; a page of 1,000 submissions is a few MB
MAX_REDIRECTS = 5
_SUSPECT_TEXT = re.compile(rb"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")  # NUL or a surrogate escape
# an integer of 20 digits or more where a JSON value starts: orjson would read it as a double, silently
_BIG_INTEGER = re.compile(rb"[:\[,]\s*-?[0-9]{20,}")


@dataclass(frozen=True, slots=True)
class Parsed:
    body: Any
    dirty: bool
    etag: str | None = None  # the answer's ETag header, when it has one


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


class ServerClient:
    """One server, one set of credentials. Cheap to create; reuses one HTTP connection pool."""

    label = "the server"  # how messages name the server's kind ("KoBo", "Central")

    def __init__(
        self,
        server_url: str,
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
        self.requests_made = 0
        self.bytes_received = 0  # bodies as read, decompressed: what the sweep's cost figures count
        self._lock = threading.RLock()

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}({self.server_url!r})"

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
                json: Any = None, files: Any = None, data: Any = None,
                headers: Mapping[str, str] | None = None) -> requests.Response:
        """Send one request, retrying transient failures; raise KoboRefused/KoboUnavailable."""
        return self._send(method, path, params=params, json=json, files=files, data=data, headers=headers)

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
              elsewhere: Callable[[str], bool] | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """The retry loop. `parse` turns a 2xx answer into a value, raising _Transient when the answer is
        damaged (half a JSON body, a page missing its results): that is retried like a 503."""
        url = path if any_origin else self._url(path)
        with self._lock:  # one request at a time per client (the sync fetches its next page from a thread)
            return self._send_locked(method, url, params=params, json=json, files=files, data=data, parse=parse,
                                     authorized=authorized, elsewhere=elsewhere, headers=headers)

    def _send_locked(self, method: str, url: str, *, params: Mapping[str, Any] | None, json: Any, files: Any,
                     data: Any, parse: Callable[[requests.Response], Any] | None, authorized: bool,
                     elsewhere: Callable[[str], bool] | None, headers: Mapping[str, str] | None) -> Any:
        last_problem = ""
        reauthenticated = False
        for attempt in range(1, self.retry.attempts + 1):
            self.requests_made += 1
            retry_after = None
            try:
                resp = self._exchange(method, url, params=params, json=json, files=files, data=data,
                                      authorized=authorized, elsewhere=elsewhere, extra_headers=headers)
                if resp.status_code == 304:  # not modified (If-None-Match): nothing to parse
                    return None if parse else resp
                if resp.status_code < 400:
                    return parse(resp) if parse else resp
                if resp.status_code == 401 and authorized and not reauthenticated and self._reauthenticate():
                    reauthenticated = True  # e.g. an expired session: log in again, once, and ask again
                    continue
                if resp.status_code not in RETRY_STATUSES:
                    raise self._refusal(method, url, resp)
                last_problem = f"{self.label} answered {resp.status_code}"
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
                log.warning("%s %s: %s; retry %d of %d in %.1f s", method, path_of(url), last_problem,
                            attempt, self.retry.attempts - 1, wait)
                self._sleep(wait)
        raise KoboUnavailable(
            f"{method} {shown(url)}: {last_problem}, still failing after {self.retry.attempts} tries; "
            "check that the server URL is right and the server is up, then run again"
        )

    def _exchange(self, method: str, url: str, *, params: Mapping[str, Any] | None, json: Any, files: Any,
                  data: Any, authorized: bool, elsewhere: Callable[[str], bool] | None,
                  extra_headers: Mapping[str, str] | None = None) -> requests.Response:
        """One request and the redirects it meets, followed by hand: within the server's origin with the token;
        elsewhere only where `elsewhere(url)` allows (files), and then without the token; else refused."""
        for _hop in range(MAX_REDIRECTS + 1):
            headers = self._auth_headers() if authorized else None
            if extra_headers:
                headers = {**(headers or {}), **extra_headers}
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
        """The error for a status retrying will not fix, in the server's own words (subclasses word it better)."""
        return KoboRefused(f"{self.label} answered {resp.status_code} to {method} {path_of(url)}: {detail_of(resp)}",
                           status=resp.status_code)

    def _auth_headers(self) -> dict[str, str]:
        """The credentials of a request to the server's own origin."""
        return {}

    def _reauthenticate(self) -> bool:
        """After a 401: get new credentials (True) or not (False: the 401 is final)."""
        return False

    def get_json(self, path: str, params: Mapping[str, Any] | None = None,
                 check: Callable[[Any], str | None] | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """GET and parse JSON; a damaged body (or one `check` finds wrong) is retried, then refused. Text that no
        database can store (NUL, lone surrogates) is replaced (see get_parsed to keep it)."""
        parsed = self.get_parsed(path, params, check, headers=headers)
        if parsed.dirty:
            log.warning("GET %s: the answer holds text no database can store (NUL or lone surrogates); replaced",
                        path_of(self._url(path)))
            return _clean(parsed.body)
        return parsed.body

    def get_parsed(self, path: str, params: Mapping[str, Any] | None = None,
                   check: Callable[[Any], str | None] | None = None,
                   headers: Mapping[str, str] | None = None) -> Parsed:
        def parse(resp: requests.Response) -> Parsed:
            try:
                parsed = parse_json(resp.content)
            except ValueError:
                if "json" not in resp.headers.get("Content-Type", "json"):
                    raise KoboUnavailable(f"GET {path_of(self._url(path))}: the answer is not JSON "
                                          f"({_short(resp.headers.get('Content-Type'))}); is {self.server_url} a "
                                          f"{self.label} server?") from None
                raise _Transient(f"the JSON answer was cut short ({len(resp.content)} bytes)") from None
            problem = check(parsed.body) if check else None
            if problem:
                raise _Transient(problem)
            etag = resp.headers.get("ETag")
            return Parsed(parsed.body, parsed.dirty, etag if isinstance(etag, str) and len(etag) < 200 else None)
        return self._send("GET", path, params=params, parse=parse, headers=headers)


def _is_object(what: str) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        return None if isinstance(body, dict) else f"the answer is not {what} (a JSON object)"
    return check


def _clean(value: Any) -> Any:
    return storable_json(value)


def _short(text: str | None) -> str:
    return (text or "none")[:60]


def detail_of(resp: requests.Response) -> str:
    """The server's own short reason (KoBo: {'detail': ...}, {'param': msg} or ['msg']; Central: {'message': ...,
    'code': ...}); never a whole body."""
    try:
        body = parse_json(resp.content).body
    except ValueError:
        return one_line(resp.reason or "no JSON body")
    if isinstance(body, dict):
        if "detail" in body:
            return one_line(str(body["detail"]))
        if "message" in body:
            code = body.get("code")
            return one_line(f"{body['message']}" + (f" (code {code})" if isinstance(code, int | float) else ""))
        return one_line("; ".join(f"{k}: {v}" for k, v in list(body.items())[:3]))
    if isinstance(body, list):
        return one_line("; ".join(str(x) for x in body[:3]))
    return one_line(str(body))


def one_line(text: str) -> str:
    """A server's message as one short printable line."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:200]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset"):
        if marker in text:
            return marker.lower()
    return exc.__class__.__name__
