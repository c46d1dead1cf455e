"""A fake KoBoToolbox API v2 server: real HTTP on 127.0.0.1, KoBo's JSON shapes, status codes, errors and paging.

    with FakeKobo(seed=1) as kobo:           # an ephemeral port, a daemon thread
        kobo.base_url, kobo.token, kobo.store

Spec: /work/shared/kobo-api.md (section numbers below); it passes /work/shared/tools/kobo_conformance.py.
Nothing in sync/ knows it talks to a fake. Always answers JSON (KoBo gives a browser HTML); `format` other than
json is 404; no XML/GeoJSON renderers, no Enketo, no duplicates, no asset PATCH/DELETE.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import orjson

from fakes.kobo_query import Query, QueryError, parse_json, parse_sort, project
from fakes.kobo_search import SearchRefused, SearchSyntaxError, compile_search, parse_search
from fakes.kobo_store import KoboApiError, KoboStore, NotFound
from fakes.loopback import LoopbackHandler, LoopbackHTTPServer, LoopbackServer

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000  # DEFAULT_API_PAGE_SIZE, MAX_API_PAGE_SIZE (§1)
DEMO_PASSWORD = "amina-demo"
SERVER_ERROR_PAGE = b"<h1>Server Error (500)</h1>"  # Django's 500 page: unhandled exceptions are not JSON
NOT_LOGGED_IN = {"detail": "Authentication credentials were not provided."}
log = logging.getLogger(__name__)

_ASSET = r"/api/v2/assets/(?P<uid>[^/.]+)"
# (path pattern, who may call it, {method: handler}). "asset": the asset detail; "nested": an asset's nested
# resources (404 for anonymous callers, §0); "login": 401 for anonymous callers; "open": decided by the handler.
ROUTES: list[tuple[re.Pattern[str], str, dict[str, str]]] = [(re.compile(p), kind, handlers) for p, kind, handlers in [
    (r"/token/?", "open", {"GET": "token"}),
    (r"/api/v2/assets/?", "open", {"GET": "asset_list", "POST": "asset_create"}),
    (_ASSET + r"/?", "asset", {"GET": "asset_detail"}),
    (_ASSET + r"/versions/?", "nested", {"GET": "versions"}),
    (_ASSET + r"/versions/(?P<vuid>[^/]+)/?", "nested", {"GET": "version"}),
    (_ASSET + r"/deployment/?", "nested", {"GET": "deployment", "POST": "deploy", "PATCH": "redeploy"}),
    (_ASSET + r"/history/?", "open", {"GET": "history"}),
    (_ASSET + r"/data(?:/|\.json)?", "nested", {"GET": "data_list"}),
    (_ASSET + r"/data/bulk/?", "nested", {"PATCH": "bulk_edit", "DELETE": "bulk_delete"}),
    (_ASSET + r"/data/validation_statuses/?", "nested", {"PATCH": "validation_statuses",
                                                           "DELETE": "validation_statuses"}),
    (_ASSET + r"/data/(?P<sid>[^/]+)/validation_status/?", "nested",
     {"GET": "validation_status", "PATCH": "validation_status", "DELETE": "validation_status"}),
    (_ASSET + r"/data/(?P<sid>[^/]+)/attachments/(?P<att>[^/]+)(?:/(?P<size>small|medium|large|original))?/?",
     "nested", {"GET": "attachment"}),
    (_ASSET + r"/data/(?P<sid>[^/.]+)(?:/|\.json)?", "nested", {"GET": "submission", "DELETE": "submission"}),
    (r"/api/v2/imports/?", "login", {"POST": "import_create"}),
    (r"/api/v2/imports/(?P<iuid>[^/]+)/?", "login", {"GET": "import_status"}),
]]
FAULTS = ("429", "500", "502", "503", "504", "reset", "truncated", "hang", "repeat_next", "empty")


@dataclass
class Tamper:
    """A change to the JSON answers of requests whose path contains `path` (see FakeKobo.tamper)."""

    path: str
    change: Callable[[Any], Any]
    times: int | None = None  # None: every matching answer


@dataclass
class Fault:
    """A misbehaviour to inflict on the next `times` requests whose path contains `path` (see FakeKobo.inject)."""

    kind: str
    times: int = 1
    path: str = "/data/"
    retry_after: int = 1
    hang_seconds: float = 3.0


_TRUE = {"true", "True", "1", "yes", "on", True}  # True == 1
_FALSE = {"false", "False", "0", "no", "off", False}  # False == 0


class Reply(Exception):
    """Answer the request now: `status` with a JSON `body`, or `raw` bytes."""

    def __init__(self, status: int, body: Any = None, *, raw: bytes | None = None, content_type: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.raw, self.headers = status, body, raw, dict(headers or {})
        self.content_type = content_type or ("application/json" if raw is None else "application/octet-stream")


@dataclass(frozen=True, slots=True)
class FormPart:
    filename: str | None
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _boolean(value: Any, name: str) -> bool:
    """DRF's BooleanField parsing."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Reply(400, {name: ["Must be a valid boolean."]})


def _positive_int(value: str, *, strict: bool) -> int:
    """DRF's `_positive_int`: raises ValueError for non-integers, negatives and (strict) zero."""
    number = int(value)
    if number < 0 or (strict and number == 0):
        raise ValueError(value)
    return number


def multipart(content_type: str, body: bytes) -> dict[str, FormPart]:
    """multipart/form-data → {field name: part}, with the `email` package (`cgi` is gone from Python)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise Reply(400, {"detail": "Multipart form parse error - Invalid boundary in multipart: None"})
    parts: dict[str, FormPart] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            parts[str(name)] = FormPart(part.get_filename(), part.get_payload(decode=True) or b"")
    return parts


class Handler(LoopbackHandler):
    server: _Server
    server_version = "fake-kobo"
    head_as = "GET"

    # -- plumbing ---------------------------------------------------------------------------------------------

    @property
    def store(self) -> KoboStore:
        return self.server.store

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.url_path, self.raw_query = parts.path, parts.query
        self.params = dict(parse_qsl(parts.query, keep_blank_values=True))  # Django's QueryDict.get: the last
        self.body = self._read_body()
        if self.server.latency:  # a real server's time per request (set for benchmarks)
            time.sleep(self.server.latency)
        fault = self.server.take_fault(parts.path)
        try:
            if fault is not None:
                self._fail_early(fault)
            self._route(method)
        except Reply as reply:
            for tamper in self.server.take_tampers(parts.path) if reply.status == 200 else ():  # each in turn
                if reply.status != 200:
                    break
                changed = tamper.change(reply.body if reply.raw is None else reply)  # a file: the Reply itself
                reply = changed if isinstance(changed, Reply) else Reply(200, changed, headers=reply.headers)
            if fault is not None and reply.status == 200 and reply.raw is None:
                self._misbehave(fault, reply)
            else:
                self._send(reply)
        except KoboApiError as exc:
            self._send(Reply(exc.status, exc.body) if exc.body is not None else
                       Reply(exc.status, raw=SERVER_ERROR_PAGE, content_type="text/html"))
        except QueryError as exc:
            self._send(Reply(400, exc.body))
        except Exception:  # a bug in the fake: answer like Django does, and say so on stderr
            log.exception("fake KoBo server failed on %s %s", method, self.path)
            self._send(Reply(500, raw=SERVER_ERROR_PAGE, content_type="text/html"))

    def _route(self, method: str) -> None:
        for pattern, kind, handlers in ROUTES:
            found = pattern.fullmatch(self.url_path)
            if found is None:
                continue
            args = {k: v for k, v in found.groupdict().items() if v is not None}
            self.user = self._authenticate()
            if kind == "nested":  # AssetNestedObjectPermission runs before the method check
                self._visible_asset(args["uid"], "No Asset matches the given query.")
            if method not in handlers:
                raise Reply(405, {"detail": f'Method "{method}" not allowed.'},
                            headers={"Allow": ", ".join([*handlers, "HEAD", "OPTIONS"])})
            if kind == "asset":
                self._visible_asset(args["uid"], "Not found.")
            if kind == "login" and self.user is None:
                raise Reply(401, NOT_LOGGED_IN, headers={"WWW-Authenticate": "Session"})
            if self.params.get("format", "json") not in ("json", "api"):
                raise Reply(404, {"detail": "Not found."})
            getattr(self, f"_{handlers[method]}")(method, **args)
            return
        raise Reply(404, {"detail": "Not found."})

    def _authenticate(self) -> str | None:
        """Token (§0), or Basic with the server's username and password; anything else is anonymous."""
        scheme, _, credentials = self.headers.get("Authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": "Session"}  # the first auth class is SessionAuthentication
        if scheme.lower() == "token":
            if credentials.strip() != self.server.token:
                raise Reply(401, {"detail": "Invalid token."}, headers=challenge)
            return self.store.owner
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(credentials.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Reply(401, {"detail": "Invalid basic header. Credentials not correctly base64 encoded."},
                            headers=challenge) from None
            if user != self.store.owner or password != self.server.password:
                raise Reply(401, {"detail": "Invalid username/password."}, headers=challenge)
            return user
        return None

    def _visible_asset(self, uid: str, unknown: str) -> None:
        if uid not in self.store.assets:
            raise Reply(404, {"detail": unknown})
        if self.user is None:  # a private project looks like it does not exist (§0)
            raise Reply(404, {"detail": "Not found."})

    # -- injected faults (FakeKobo.inject) ----------------------------------------------------------------------

    @staticmethod
    def _fail_early(fault: Fault) -> None:
        """Statuses answer at once (429 with Retry-After, as KoBo's throttles do, §0); `hang` answers late."""
        if fault.kind[0].isdigit():
            headers = {"Retry-After": str(fault.retry_after)} if fault.kind == "429" else {}
            detail = "Request was throttled." if fault.kind == "429" else "Server error"
            raise Reply(int(fault.kind), {"detail": detail}, headers=headers)
        if fault.kind == "hang":
            time.sleep(fault.hang_seconds)

    def _misbehave(self, fault: Fault, reply: Reply) -> None:
        """Damage a good JSON answer: a `next` link to the same page, a page without its results, half a body,
        or half a body and then a dropped connection."""
        body = reply.body
        if fault.kind == "repeat_next" and isinstance(body, dict) and "next" in body:
            body = {**body, "next": self._absolute(parse_qs(self.raw_query, keep_blank_values=True))}
        if fault.kind == "empty" and isinstance(body, dict) and "results" in body:
            body = {**body, "results": []}
        data = orjson.dumps(body)
        if fault.kind not in ("truncated", "reset"):
            self._send(Reply(200, raw=data, content_type="application/json"))
            return
        self._send_half(data, "application/json", reset=fault.kind == "reset")

    def _send(self, reply: Reply) -> None:
        data = reply.raw if reply.raw is not None else b"" if reply.status == 204 else orjson.dumps(reply.body)
        self.send_response(reply.status)
        if reply.status != 204:
            self.send_header("Content-Type", reply.content_type)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _data(self) -> dict[str, Any]:
        """The request body as DRF's parsers give it (JSON, form or multipart)."""
        if not self.body:
            return {}
        ctype = self.headers.get_content_type()
        if ctype == "application/json":
            try:
                data = json.loads(self.body)
            except ValueError as exc:
                raise Reply(400, {"detail": f"JSON parse error - {exc}"}) from None
            if not isinstance(data, dict):
                raise Reply(400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got "
                                                       f"{type(data).__name__}."]})
            return data
        if ctype == "application/x-www-form-urlencoded":
            return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        if ctype == "multipart/form-data":
            parts = multipart(self.headers.get("Content-Type", ""), self.body)
            return {k: (p if p.filename is not None else p.text) for k, p in parts.items()}
        raise Reply(415, {"detail": f'Unsupported media type "{ctype}" in request.'})

    def _origin(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.host_port}"

    def _absolute(self, params: dict[str, list[str]]) -> str:
        """`request.build_absolute_uri()` after DRF's `replace_query_param`: every parameter, sorted by name."""
        query = urlencode(sorted(params.items()), doseq=True)
        return f"{self._origin()}{self.url_path}" + (f"?{query}" if query else "")

    def _paginated(self, results: list[Any], count: int, start: int, limit: int) -> dict[str, Any]:
        """DRF LimitOffsetPagination with `start` as the offset (§1)."""
        params = parse_qs(self.raw_query, keep_blank_values=True)
        params["limit"] = [str(limit)]
        nxt = None
        if start + limit < count:
            nxt = self._absolute({**params, "start": [str(start + limit)]})
        previous = None
        if start > 0:
            back = {k: v for k, v in params.items() if k != "start"}
            if start - limit > 0:
                back["start"] = [str(start - limit)]
            previous = self._absolute(back)
        return {"count": count, "next": nxt, "previous": previous, "results": results}

    def _lenient_page(self) -> tuple[int, int]:
        """`start`/`limit` as DRF's paginator reads them for querysets: bad values fall back to the defaults."""
        try:
            limit = min(_positive_int(self.params["limit"], strict=True), MAX_LIMIT)
        except (KeyError, ValueError):
            limit = DEFAULT_LIMIT
        try:
            start = _positive_int(self.params["start"], strict=False)
        except (KeyError, ValueError):
            start = 0
        return start, limit

    # -- token and assets (§0, §5) ------------------------------------------------------------------------------

    def _token(self, _method: str) -> None:
        if self.user is None:
            raise Reply(401, NOT_LOGGED_IN, headers={"WWW-Authenticate": "Session"})
        raise Reply(200, {"token": self.server.token})

    def _asset_list(self, _method: str) -> None:
        items = self.store.asset_list() if self.user else []
        keep = asset_filter(self.params.get("q", ""))
        items = [item for item in items if keep(item)]
        start, limit = self._lenient_page()
        raise Reply(200, self._paginated(items[start:start + limit], len(items), start, limit))

    def _asset_create(self, _method: str) -> None:
        if self.user is None:
            raise Reply(401, NOT_LOGGED_IN, headers={"WWW-Authenticate": "Session"})
        data = self._data()
        if not data.get("asset_type"):
            raise Reply(400, {"asset_type": ["This field is required."]})
        content = data.get("content") or {}
        if isinstance(content, str):
            try:
                content = json.loads(content)
            except ValueError:
                raise Reply(400, {"content": ["Value must be valid JSON."]}) from None
        settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
        uid = self.store.create_asset(str(data.get("name") or ""), content, owner=self.user,
                                      asset_type=str(data["asset_type"]), settings=settings)
        raise Reply(201, self.store.asset_detail(uid))

    def _asset_detail(self, _method: str, uid: str) -> None:
        raise Reply(200, self.store.asset_detail(uid))

    def _versions(self, _method: str, uid: str) -> None:
        items = self.store.versions(uid, deployed_only=self.params.get("deployed") == "true")
        start, limit = self._lenient_page()
        raise Reply(200, self._paginated(items[start:start + limit], len(items), start, limit))

    def _version(self, _method: str, uid: str, vuid: str) -> None:
        raise Reply(200, self.store.version(uid, vuid))

    # -- project history (§3; fakes.kobo_history) ---------------------------------------------------------------

    def _history(self, _method: str, uid: str) -> None:
        """ViewProjectHistoryLogsPermission: the asset must exist (404), the caller be logged in (401) and hold
        `manage_asset` (403); FastPagination (`start` or `offset`, `limit`), newest first."""
        if uid not in self.store.assets:
            raise Reply(404, {"detail": "No Asset matches the given query."})
        if self.user is None:
            raise Reply(401, NOT_LOGGED_IN, headers={"WWW-Authenticate": "Session"})
        if "offset" in self.params and "start" not in self.params:
            self.params["start"] = self.params["offset"]
        start, limit = self._lenient_page()
        try:
            search = parse_search(self.params.get("q", ""))
            count, results = self.store.history(uid, search, start=start, limit=limit)
        except SearchSyntaxError:  # the parser's ParseError: no results
            count, results = 0, []
        except SearchRefused as exc:
            raise Reply(400, {"detail": exc.detail}) from None
        raise Reply(200, self._paginated(results, count, start, limit))

    # -- deployment (§6) --------------------------------------------------------------------------------------

    def _deployment(self, _method: str, uid: str) -> None:
        raise Reply(200, self.store.deployment(uid))

    def _deploy(self, _method: str, uid: str) -> None:
        data = self._data()
        if data.get("backend", "openrosa") not in ("openrosa", "kobocat"):
            raise Reply(400, {"backend": [f'"{data["backend"]}" is not a valid choice.']})
        active = _boolean(data.get("active", False), "active")  # DeploymentSerializer.create: False by default
        raise Reply(200, self.store.deploy(uid, active=active, version_id=data.get("version_id")))

    def _redeploy(self, _method: str, uid: str) -> None:
        data = self._data()
        if data.get("backend", "openrosa") not in ("openrosa", "kobocat"):
            raise Reply(400, {"backend": ["This field cannot be modified after the initial deployment."]})
        active = _boolean(data["active"], "active") if "active" in data else None
        raise Reply(200, self.store.redeploy(uid, version_id=data.get("version_id"), active=active))

    # -- data (§1, §3, §4) ------------------------------------------------------------------------------------

    def _json_param(self, name: str) -> Any:
        if name not in self.params:
            return None
        try:
            return parse_json(self.params[name])
        except ValueError:
            raise Reply(400, {name: "Value must be valid JSON."}) from None

    def _fields(self) -> list[str]:
        fields = self._json_param("fields")
        if fields is None:
            return []
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise QueryError()
        return fields

    def _data_list(self, _method: str, uid: str) -> None:
        """`validate_submission_list_params` order: deployment, count, query, sort, start, limit, fields (§1)."""
        self.store.require_deployment(uid)
        if "count" in self.params:
            raise Reply(400, {"count": "This param is not implemented. Use `count` property of the response "
                                       "instead."})
        query, sort = self._json_param("query"), self._json_param("sort")
        try:
            start = _positive_int(self.params.get("start", "0"), strict=False)
        except ValueError:
            raise Reply(400, {"start": "A positive integer is required."}) from None
        try:
            limit = min(_positive_int(self.params.get("limit", str(DEFAULT_LIMIT)), strict=True), MAX_LIMIT)
        except ValueError:
            raise Reply(400, {"limit": "A positive integer is required"}) from None
        fields = self._fields()
        page = self.store.query_submissions(uid, query=Query(query), sort=parse_sort(sort) if sort is not None
                                            else None, start=start, limit=limit)
        results = [project(doc, fields) for doc in page.results] if fields else page.results
        raise Reply(200, self._paginated(results, page.count, start, limit))

    def _submission(self, method: str, uid: str, sid: str) -> None:
        doc = self.store.submission(uid, sid)
        if method == "DELETE":
            self.store.delete_submissions(uid, [doc["_id"]])
            raise Reply(204)
        fields = self._fields()
        raise Reply(200, project(doc, fields) if fields else doc)

    def _payload(self) -> dict[str, Any]:
        payload = self._data().get("payload")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                raise Reply(400, {"payload": ["Value must be valid JSON."]}) from None
        if not isinstance(payload, dict):
            raise Reply(400, {"payload": ["This field is required."]})
        return payload

    def _selected_ids(self, uid: str, payload: dict[str, Any]) -> list[int]:
        """`payload.submission_ids`, or the matches of `payload.query`, or all with `payload.confirm` (§3, §4)."""
        if payload.get("submission_ids"):
            ids = payload["submission_ids"]
            if not isinstance(ids, list):
                raise Reply(400, {"payload": ["`submission_ids` must be a list."]})
            return ids
        if payload.get("query"):
            page = self.store.query_submissions(uid, query=Query(payload["query"]))
            return [doc["_id"] for doc in page.results]
        if payload.get("confirm") is True:
            return [doc["_id"] for doc in self.store.submissions(uid)]
        raise Reply(400, {"detail": "Confirmation is required"})

    def _bulk_delete(self, _method: str, uid: str) -> None:
        self.store.require_deployment(uid)
        count = self.store.delete_submissions(uid, self._selected_ids(uid, self._payload()))
        raise Reply(200, {"detail": f"{count} submissions have been deleted"})

    def _bulk_edit(self, _method: str, uid: str) -> None:
        self.store.require_deployment(uid)
        payload = self._payload()
        changes = payload.get("data")
        if not isinstance(changes, dict) or not changes:
            raise Reply(400, {"payload": ["`data` is required."]})
        changes = {k: v for k, v in changes.items() if not k.startswith(("formhub", "meta", "__version__"))}
        results = []
        for sid in self._selected_ids(uid, payload):
            try:
                doc = self.store.edit_submission(uid, sid, changes)
            except NotFound:
                results.append({"uuid": None, "status_code": 404, "message": "Not found"})
                continue
            results.append({"uuid": doc["_uuid"], "root_uuid": doc["meta/rootUuid"].removeprefix("uuid:"),
                            "status_code": 201, "message": "Successful submission"})
        successes = sum(1 for r in results if r["status_code"] == 201)
        body = {"count": len(results), "successes": successes, "failures": len(results) - successes,
                "results": results}
        raise Reply(200 if successes else 400, body)

    def _validation_statuses(self, method: str, uid: str) -> None:
        self.store.require_deployment(uid)
        payload = self._payload()
        ids = self._selected_ids(uid, payload)
        status = payload.get("validation_status.uid") if method == "PATCH" else None
        self.store.set_validation_status(uid, ids, status, by_whom=self.user or "")
        raise Reply(200, {"detail": f"{len(ids)} submissions have been updated"})

    def _validation_status(self, method: str, uid: str, sid: str) -> None:
        doc = self.store.submission(uid, sid)
        if method == "GET":
            raise Reply(200, doc.get("_validation_status", {}))
        status = self._data().get("validation_status.uid") if method == "PATCH" else None
        if method == "PATCH" and status is None:
            raise Reply(400, {"detail": "Invalid validation status: `None`"})
        self.store.set_validation_status(uid, [doc["_id"]], status, by_whom=self.user or "")
        if method == "DELETE":
            raise Reply(204)
        raise Reply(200, self.store.submission(uid, doc["_id"])["_validation_status"])

    def _attachment(self, _method: str, uid: str, sid: str, att: str, size: str | None = None) -> None:
        """The attached file's bytes (§7); thumbnails (`small|medium|large`) only for images (same bytes here)."""
        attachment, content = self.store.attachment(uid, sid, att)
        if size not in (None, "original") and not attachment.mimetype.startswith("image/"):
            raise NotFound()
        inline = attachment.mimetype.split("/")[0] in ("image", "audio", "video")
        raise Reply(200, raw=content, content_type=attachment.mimetype, headers={
            "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename={attachment.basename}"})

    # -- imports (§6) -----------------------------------------------------------------------------------------

    def _import_create(self, _method: str) -> None:
        data = self._data()
        upload = data.get("file")
        if isinstance(upload, FormPart):
            content, filename = upload.data, upload.filename or str(data.get("name") or "upload.xlsx")
        elif data.get("base64Encoded"):
            encoded = str(data["base64Encoded"]).split(",", 1)[-1].removeprefix("base64:")
            try:
                content = base64.b64decode(encoded)
            except binascii.Error:
                raise Reply(400, {"base64Encoded": ["Invalid base64 data."]}) from None
            filename = str(data.get("name") or "upload.xlsx")
        elif data.get("url"):
            raise Reply(400, {"url": ["This fake KoBo server cannot fetch a URL; upload the file instead."]})
        else:
            raise Reply(400, {"detail": "Specify a `file`, `base64Encoded` data or a `url`."})
        library = data.get("library") not in ("false", False) and data.get("desired_type") != "survey"
        destination = str(data.get("destination") or "").rstrip("/").rsplit("/", 1)[-1] or None
        uid = self.store.import_xlsform(content, filename, library=library, destination_uid=destination)
        raise Reply(201, {"uid": uid, "url": f"{self._origin()}/api/v2/imports/{uid}/", "status": "processing"})

    def _import_status(self, _method: str, iuid: str) -> None:
        raise Reply(200, self.store.import_status(iuid))


# -- the asset list's `q` (§5): field:value terms, AND / OR / NOT, parentheses (fakes.kobo_search) ----------------

_Q_FIELDS = {"_deployment_status": "deployment_status", "asset_type": "asset_type", "uid": "uid", "name": "name",
             "owner__username": "owner__username", "owner": "owner__username", "status": "status",
             "parent": "parent", "kind": "kind"}
AssetTest = Callable[[dict[str, Any]], bool]


def asset_filter(q: str) -> AssetTest:
    """KoBo's search `q` for the asset list; an expression it cannot read matches nothing."""
    try:
        return compile_search(parse_search(q), _asset_term)
    except SearchSyntaxError:
        return lambda _item: False


def _asset_term(name: str | None, value: str) -> AssetTest:
    if name is None:  # a bare word searches name, uid and owner
        word = value.lower()
        return lambda item: word in f"{item['name']} {item['uid']} {item['owner__username']}".lower()
    key = _Q_FIELDS.get(name)
    if key is None:
        return lambda _item: False
    wanted = None if value == "null" else value
    return lambda item: item.get(key) == wanted


# -- the server -------------------------------------------------------------------------------------------------


class _Server(LoopbackHTTPServer):
    store: KoboStore
    token: str
    password: str
    host_port: str
    tampers: list[Tamper]
    latency: float = 0.0

    def take_tampers(self, path: str) -> list[Tamper]:
        taken = []
        with self.faults_lock:
            for tamper in self.tampers:
                if tamper.path in path and (tamper.times is None or tamper.times > 0):
                    if tamper.times is not None:
                        tamper.times -= 1
                    taken.append(tamper)
        return taken


class FakeKobo(LoopbackServer):
    """The fake KoBo server. Start it, point a KoboClient at `base_url` with `token`, fill `store`."""

    label = "fake KoBo server"

    def __init__(self, *, port: int = 0, token: str | None = None, username: str = "amina_demo", seed: int = 0,
                 password: str = DEMO_PASSWORD, latency: float = 0.0):
        super().__init__(port)
        self._latency = latency
        self.token = token or hashlib.sha1(f"amina-fake-token-{seed}".encode()).hexdigest()
        self.password = password
        self.store = KoboStore(seed=seed, owner=username)
        self.tampers: list[Tamper] = []

    @property
    def latency(self) -> float:
        """Seconds every request waits before it is answered (0: none), to imitate a real server's time."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency = seconds
        if self._httpd is not None:
            self._httpd.latency = seconds

    def start(self) -> FakeKobo:
        httpd = _Server(("127.0.0.1", self.port), Handler)
        httpd.store, httpd.token, httpd.password = self.store, self.token, self.password
        httpd.tampers = self.tampers
        httpd.latency = self._latency
        httpd.host_port = f"127.0.0.1:{httpd.server_address[1]}"
        self.store.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self._serve(httpd, "fake-kobo")
        return self

    def inject(self, kind: str, *, times: int = 1, path: str = "/data/", retry_after: int = 1,
               hang_seconds: float = 3.0) -> Fault:
        """Make the next `times` requests to paths containing `path` fail with `kind` (see FAULTS): an HTTP
        status (429 with Retry-After, 5xx), `reset` (connection dropped mid-body), `truncated` (half a JSON
        body), `hang` (answer after `hang_seconds`), `repeat_next` (a `next` link to the same page), `empty`
        (a page with its results missing)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        fault = Fault(kind, times, path, retry_after, hang_seconds)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def tamper(self, path: str, change: Callable[[Any], Any], *, times: int | None = None) -> Tamper:
        """Rewrite the answers (status 200) of requests whose path contains `path`: `change(body)` (a file's answer:
        `change(reply)`) returns the new JSON body, or a `Reply` (raw bytes, another status, headers) — a hostile
        server for the tests."""
        tamper = Tamper(path, change, times)
        with self._faults_lock:
            self.tampers.append(tamper)
        return tamper

    def clear_faults(self) -> None:
        with self._faults_lock:
            self.faults.clear()
            self.tampers.clear()


def main(argv: list[str] | None = None) -> int:
    """`python -m fakes.kobo --port 8765 --token …`: serve an empty fake KoBo until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m fakes.kobo", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", help="the API token to accept (default: derived from --seed)")
    parser.add_argument("--username", default="amina_demo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with FakeKobo(port=args.port, token=args.token, username=args.username, seed=args.seed) as kobo:
        print(f"fake KoBo server on {kobo.base_url} (user {args.username}, token {kobo.token}); Ctrl-C stops it",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
