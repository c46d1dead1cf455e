"""A fake KoBoToolbox API v2 server: real HTTP on 127.0.0.1, KoBo's JSON shapes, codes and paging.

    with FakeKobo(seed=1) as kobo:          # an ephemeral port
        kobo.base_url, kobo.token, kobo.store

Endpoints and behaviour follow ../shared/kobo-api.md, section by section; it passes
../shared/tools/kobo_conformance.py. Nothing in sync/ knows it is talking to a fake.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from sync.fake.query import QueryError, compile_filter, project, sort_documents
from sync.fake.store import BadRequest, KoboStore, NotFound

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000  # DEFAULT_API_PAGE_SIZE, MAX_API_PAGE_SIZE (§1)
DEMO_PASSWORD = "amina-demo"

_ASSET = r"/api/v2/assets/(?P<uid>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p + r"$"), name) for m, p, name in [
        ("GET", r"/token/?", "token"),
        ("GET", r"/api/v2/assets/?", "asset_list"),
        ("POST", r"/api/v2/assets/?", "asset_create"),
        ("GET", _ASSET + r"/", "asset_detail"),
        ("GET", _ASSET + r"/versions/", "versions"),
        ("GET", _ASSET + r"/versions/(?P<vuid>[^/]+)/", "version"),
        ("GET", _ASSET + r"/deployment/", "deployment_get"),
        ("POST", _ASSET + r"/deployment/", "deployment_post"),
        ("PATCH", _ASSET + r"/deployment/", "deployment_patch"),
        ("GET", _ASSET + r"/data(?:/|\.json)", "data_list"),
        ("PATCH", _ASSET + r"/data/bulk/", "bulk_edit"),
        ("DELETE", _ASSET + r"/data/bulk/", "bulk_delete"),
        ("PATCH", _ASSET + r"/data/validation_statuses/", "bulk_validation"),
        ("DELETE", _ASSET + r"/data/validation_statuses/", "bulk_validation_clear"),
        ("GET", _ASSET + r"/data/(?P<sid>[^/]+)/validation_status/", "validation_get"),
        ("PATCH", _ASSET + r"/data/(?P<sid>[^/]+)/validation_status/", "validation_patch"),
        ("DELETE", _ASSET + r"/data/(?P<sid>[^/]+)/validation_status/", "validation_delete"),
        ("GET", _ASSET + r"/data/(?P<sid>[^/]+)/attachments/(?P<att>[^/]+)/(?:(?:small|medium|large|original)/)?",
         "attachment"),
        ("GET", _ASSET + r"/data/(?P<sid>[^/.]+)(?:/|\.json)", "submission_get"),
        ("DELETE", _ASSET + r"/data/(?P<sid>[^/]+)/", "submission_delete"),
        ("POST", r"/api/v2/imports/?", "import_create"),
        ("GET", r"/api/v2/imports/(?P<iuid>[^/]+)/", "import_get"),
    ]
]
NESTED = {"versions", "version", "deployment_get", "deployment_post", "deployment_patch", "data_list", "bulk_edit",
          "bulk_delete", "bulk_validation", "bulk_validation_clear", "validation_get", "validation_patch",
          "validation_delete", "attachment", "submission_get", "submission_delete"}


FAULTS = ("429", "500", "502", "503", "504", "reset", "truncated", "hang", "repeat_next", "empty")


@dataclass
class Fault:
    """A misbehaviour to inflict on the next `times` requests whose path contains `path`."""

    kind: str
    times: int = 1
    path: str = "/data/"
    retry_after: int = 1
    hang_seconds: float = 3.0


class Reply(Exception):
    """Answer the request with this status and JSON body (or raw bytes)."""

    def __init__(self, status: int, body: Any = None, *, raw: bytes | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.raw, self.headers = status, body, raw, headers or {}


def _positive(value: str, name: str, *, zero_ok: bool, message: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise Reply(400, {name: message}) from None
    if number < 0 or (number == 0 and not zero_ok):
        raise Reply(400, {name: message})
    return number


def _json_param(params: dict[str, str], name: str) -> Any:
    if name not in params:
        return None
    try:
        return orjson.loads(params[name])
    except orjson.JSONDecodeError:
        raise Reply(400, {name: "Value must be valid JSON."}) from None


class Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out as two writes: without this, Nagle's algorithm waits for the client's
        # delayed ACK and every request costs ~40 ms on loopback
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def store(self) -> KoboStore:
        return self.server.store

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        fault = self.server.take_fault(parts.path)
        try:
            if fault and fault.kind[0].isdigit():
                headers = {"Retry-After": str(fault.retry_after)} if fault.kind == "429" else {}
                raise Reply(int(fault.kind), {"detail": "Request was throttled." if fault.kind == "429" else
                                              "Server error"}, headers=headers)
            if fault and fault.kind == "hang":
                time.sleep(fault.hang_seconds)
            self._route(method, parts.path)
        except Reply as reply:
            if fault and reply.status == 200 and reply.raw is None:
                self._misbehave(fault, reply)
                return
            self._send(reply)
        except QueryError as exc:
            self._send(Reply(400, exc.body))
        except BadRequest as exc:
            self._send(Reply(exc.status, exc.body))
        except NotFound:
            self._send(Reply(404, {"detail": "Not found."}))

    def _route(self, method: str, path: str) -> None:
        allowed = []
        for m, pattern, name in ROUTES:
            found = pattern.match(path)
            if not found:
                continue
            if m != method:
                allowed.append(m)
                continue
            self.user = self._authenticate(name)
            kwargs = found.groupdict()
            if name in NESTED or name == "asset_detail":
                self._check_asset(kwargs["uid"], nested=name in NESTED)
            getattr(self, f"_{name}")(**kwargs)
            return
        if allowed:
            raise Reply(405, {"detail": f'Method "{method}" not allowed.'})
        raise Reply(404, {"detail": "Not found."})

    def _authenticate(self, route: str) -> str | None:
        header = self.headers.get("Authorization", "")
        if header.startswith("Token "):
            if header[6:].strip() != self.server.token:
                raise Reply(401, {"detail": "Invalid token."}, headers={"WWW-Authenticate": "Session"})
            return self.store.owner
        if header.startswith("Basic ") and route == "token":
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user = password = ""
            if user == self.store.owner and password == DEMO_PASSWORD:
                return user
            raise Reply(401, {"detail": "Invalid username/password."}, headers={"WWW-Authenticate": "Session"})
        if route in ("token", "import_create", "asset_create"):
            raise Reply(401, {"detail": "Authentication credentials were not provided."},
                        headers={"WWW-Authenticate": "Session"})
        return None

    def _check_asset(self, uid: str, *, nested: bool) -> None:
        if uid not in self.store.assets:
            raise Reply(404, {"detail": "No Asset matches the given query."} if nested else {"detail": "Not found."})
        if self.user is None:  # anonymous: private projects look like they do not exist (§0)
            raise Reply(404, {"detail": "Not found."})

    def _misbehave(self, fault: Fault, reply: Reply) -> None:
        body = reply.body
        if fault.kind == "repeat_next" and isinstance(body, dict) and "next" in body:
            body = {**body, "next": self._url(urlsplit(self.path).path, sorted(self.params.items()))}
        if fault.kind == "empty" and isinstance(body, dict) and "results" in body:
            body = {**body, "results": []}
        data = orjson.dumps(body)
        if fault.kind == "truncated":
            data = data[: len(data) // 2]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if fault.kind == "reset":  # promise the whole body, send half, drop the connection
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send(self, reply: Reply) -> None:
        data = reply.raw if reply.raw is not None else (b"" if reply.status == 204 else orjson.dumps(reply.body))
        self.send_response(reply.status)
        if reply.raw is None and reply.status != 204:
            self.send_header("Content-Type", "application/json")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _ok(self, body: Any, status: int = 200) -> None:
        raise Reply(status, body)

    def _json_body(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else {}
        except orjson.JSONDecodeError:
            raise Reply(400, {"detail": "JSON parse error"}) from None

    def _url(self, path: str, params: list[tuple[str, str]]) -> str:
        host = self.headers.get("Host") or self.server.host_port
        query = urlencode(sorted(params))
        return f"http://{host}{path}" + (f"?{query}" if query else "")

    def _paginate(self, items: list[Any], count: int | None = None) -> dict[str, Any]:
        """DRF LimitOffsetPagination with `start` as the offset (§1)."""
        if "count" in self.params:
            raise Reply(400, {"count": "This param is not implemented. Use `count` property of the response "
                                       "instead."})
        limit = DEFAULT_LIMIT
        if "limit" in self.params:
            limit = min(_positive(self.params["limit"], "limit", zero_ok=False,
                                  message="A positive integer is required"), MAX_LIMIT)
        start = 0
        if "start" in self.params:
            start = _positive(self.params["start"], "start", zero_ok=True, message="A positive integer is required.")
        total = len(items) if count is None else count
        page = items[start:start + limit]
        path = urlsplit(self.path).path
        others = [(k, v) for k, v in self.params.items() if k not in ("start", "limit")]
        nxt = None if start + limit >= total else self._url(path, [*others, ("limit", str(limit)),
                                                                     ("start", str(start + limit))])
        prev = None
        if start > 0:
            back = start - limit
            prev = self._url(path, [*others, ("limit", str(limit))] + ([("start", str(back))] if back > 0 else []))
        return {"count": total, "next": nxt, "previous": prev, "results": page}

    # -- token, assets ----------------------------------------------------------------------------

    def _token(self) -> None:
        self._ok({"token": self.server.token})

    def _asset_list(self) -> None:
        uids = list(self.store.assets) if self.user else []
        terms = [t.strip() for t in self.params.get("q", "").split(" AND ") if t.strip()]
        items = []
        for uid in uids:
            summary = self.store.asset_summary(uid)
            if all(_asset_matches(summary, t) for t in terms):
                items.append(summary)
        self._ok(self._paginate(items))

    def _asset_create(self) -> None:
        body = self._json_body()
        content = body.get("content") or {"survey": [], "choices": [], "settings": {}}
        if isinstance(content, str):
            content = orjson.loads(content)
        uid = self.store.create_asset(str(body.get("name", "Untitled")), content,
                                      asset_type=str(body.get("asset_type", "survey")))
        self._ok(self.store.asset_detail(uid), 201)

    def _asset_detail(self, uid: str) -> None:
        self._ok(self.store.asset_detail(uid))

    def _versions(self, uid: str) -> None:
        asset = self.store.asset(uid)
        versions = list(reversed(asset.versions))
        if self.params.get("deployed") == "true":
            versions = [v for v in versions if v.deployed]
        self._ok(self._paginate([self.store.version_summary(uid, v) for v in versions]))

    def _version(self, uid: str, vuid: str) -> None:
        v = self.store.asset(uid).version(vuid)
        self._ok({**self.store.version_summary(uid, v), "content": v.content})

    def _deployment_get(self, uid: str) -> None:
        self._ok(self.store.deployment(uid))

    def _deployment_post(self, uid: str) -> None:
        body = self._json_body()
        version = body.get("version_id")
        if version and version != self.store.asset(uid).version_id:
            raise Reply(500, {"detail": "Server error"})
        self._ok(self.store.deploy(uid, active=bool(body.get("active", False))))

    def _deployment_patch(self, uid: str) -> None:
        body = self._json_body()
        active = body.get("active")
        self._ok(self.store.redeploy(uid, version_id=body.get("version_id"),
                                     active=None if active is None else bool(active)))

    # -- data (§1) --------------------------------------------------------------------------------

    def _deployed(self, uid: str) -> Any:
        asset = self.store.asset(uid)
        if not asset.has_deployment:
            raise Reply(400, {"detail": "The specified asset has not been deployed"})
        return asset

    def _data_list(self, uid: str) -> None:
        asset = self._deployed(uid)
        query = _json_param(self.params, "query")
        sort = _json_param(self.params, "sort")
        fields = _json_param(self.params, "fields")
        if query is not None and not isinstance(query, dict):
            raise Reply(400, ["Unsupported query"])
        if sort is not None and not isinstance(sort, dict):
            raise Reply(400, {"sort": "Value must be valid JSON."})
        with self.store.lock:
            docs = list(asset.submissions.values())  # already in _id order
        keep = compile_filter(query)
        docs = [d for d in docs if keep(d)]
        order = [(k, int(v)) for k, v in (sort or {"_id": 1}).items()]
        if order != [("_id", 1)]:
            docs = sort_documents(docs, order)
        body = self._paginate(docs)
        if isinstance(fields, list) and fields:
            body["results"] = [project(d, [str(f) for f in fields]) for d in body["results"]]
        self._ok(body)

    def _submission(self, uid: str, sid: str) -> dict[str, Any]:
        self._deployed(uid)
        try:
            return self.store.submission(uid, sid)
        except NotFound:
            raise Reply(404, {"detail": "Not found."}) from None

    def _submission_get(self, uid: str, sid: str) -> None:
        self._ok(self._submission(uid, sid))

    def _submission_delete(self, uid: str, sid: str) -> None:
        doc = self._submission(uid, sid)
        self.store.delete_submissions(uid, [doc["_id"]])
        raise Reply(204)

    def _payload_ids(self, uid: str, payload: dict[str, Any]) -> list[int]:
        if "submission_ids" in payload:
            return [int(i) for i in payload["submission_ids"]]
        if "query" in payload:
            keep = compile_filter(payload["query"])
            return [d["_id"] for d in self.store.submissions(uid) if keep(d)]
        if payload.get("confirm"):
            return [d["_id"] for d in self.store.submissions(uid)]
        raise Reply(400, {"detail": "Confirmation is required"})

    def _bulk_delete(self, uid: str) -> None:
        self._deployed(uid)
        payload = self._json_body().get("payload") or {}
        n = self.store.delete_submissions(uid, self._payload_ids(uid, payload))
        self._ok({"detail": f"{n} submissions have been deleted"})

    def _bulk_edit(self, uid: str) -> None:
        self._deployed(uid)
        payload = self._json_body().get("payload") or {}
        ids = self._payload_ids(uid, payload)
        results = []
        for sid in ids:
            doc = self.store.edit_submission(uid, sid, payload.get("data") or {})
            results.append({"uuid": doc["_uuid"], "root_uuid": doc["meta/rootUuid"].removeprefix("uuid:"),
                            "status_code": 201, "message": "Successful submission"})
        status = 200 if results else 400
        self._ok({"count": len(ids), "successes": len(results), "failures": 0, "results": results}, status)

    def _bulk_validation(self, uid: str) -> None:
        self._deployed(uid)
        payload = self._json_body().get("payload") or {}
        ids = self._payload_ids(uid, payload)
        self.store.set_validation_status(uid, ids, payload.get("validation_status.uid"), by_whom=self.user or "")
        self._ok({"detail": f"{len(ids)} submissions have been updated"})

    def _bulk_validation_clear(self, uid: str) -> None:
        self._deployed(uid)
        payload = self._json_body().get("payload") or {}
        ids = self._payload_ids(uid, payload)
        self.store.set_validation_status(uid, ids, None, by_whom=self.user or "")
        self._ok({"detail": f"{len(ids)} submissions have been updated"})

    def _validation_get(self, uid: str, sid: str) -> None:
        self._ok(self._submission(uid, sid).get("_validation_status", {}))

    def _validation_patch(self, uid: str, sid: str) -> None:
        doc = self._submission(uid, sid)
        status = self._json_body().get("validation_status.uid")
        self.store.set_validation_status(uid, [doc["_id"]], status, by_whom=self.user or "")
        self._ok(doc["_validation_status"])

    def _validation_delete(self, uid: str, sid: str) -> None:
        doc = self._submission(uid, sid)
        self.store.set_validation_status(uid, [doc["_id"]], None, by_whom=self.user or "")
        raise Reply(204)

    def _attachment(self, uid: str, sid: str, att: str) -> None:
        doc = self._submission(uid, sid)
        asset = self.store.asset(uid)
        if att not in asset.files or not any(a["uid"] == att for a in doc.get("_attachments", [])):
            raise Reply(404, {"detail": "Not found."})
        name, mime, data = asset.files[att]
        raise Reply(200, raw=data, headers={"Content-Type": mime, "Content-Disposition": f"inline; filename={name}"})

    # -- imports (§6) -----------------------------------------------------------------------------

    def _import_create(self) -> None:
        form = _multipart(self.headers.get("Content-Type", ""), self.body)
        library = form.get("library", b"true").decode() not in ("false", "False")
        if form.get("desired_type", b"").decode() == "survey":
            library = False
        data = form.get("file")
        if data is None and form.get("base64Encoded"):
            encoded = form["base64Encoded"].decode().split(",", 1)[-1].removeprefix("base64:")
            data = base64.b64decode(encoded)
        if data is None:
            raise Reply(400, {"detail": "Specify a file, base64Encoded data or a url"})
        destination = form.get("destination", b"").decode().rstrip("/").rsplit("/", 1)[-1] or None
        if destination and destination not in self.store.assets:
            raise Reply(400, {"detail": "Destination asset not found"})
        name = form.get("name", b"form.xlsx").decode() or "form.xlsx"
        uid = self.store.import_xlsform(data, name, library=library, destination_uid=destination)
        self._ok({"uid": uid, "url": f"{self._url('/api/v2/imports/' + uid + '/', [])}", "status": "processing"},
                 201)

    def _import_get(self, iuid: str) -> None:
        self._ok(self.store.import_status(iuid))


def _asset_matches(summary: dict[str, Any], term: str) -> bool:
    key, _, value = term.partition(":")
    if not value:
        return term.lower() in f"{summary['name']} {summary['uid']} {summary['owner__username']}".lower()
    if key == "_deployment_status":
        return summary["deployment_status"] == value
    return str(summary.get(key)) == value


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """multipart/form-data → {field name: bytes} (the `cgi` module is gone from recent Pythons)."""
    if not content_type.startswith("multipart/form-data"):
        raise Reply(415, {"detail": f'Unsupported media type "{content_type}" in request.'})
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    out: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            out[str(name)] = part.get_payload(decode=True) or b""
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    store: KoboStore
    token: str
    host_port: str
    faults: list[Fault]
    faults_lock: threading.Lock

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-answer (a killed sync, a timeout) is normal here: stay quiet."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def take_fault(self, path: str) -> Fault | None:
        with self.faults_lock:
            for fault in self.faults:
                if fault.path in path and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None


class FakeKobo:
    """The fake server: start it, point a KoboClient at `base_url` with `token`, fill `store`."""

    def __init__(self, *, port: int = 0, token: str | None = None, username: str = "amina_demo", seed: int = 0):
        self.port = port
        self.token = token or hashlib.sha1(f"amina-fake-token-{seed}".encode()).hexdigest()
        self.store = KoboStore(seed=seed, owner=username)
        self.faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake KoBo server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeKobo:
        httpd = _Server(("127.0.0.1", self.port), Handler)
        httpd.store, httpd.token = self.store, self.token
        httpd.faults, httpd.faults_lock = self.faults, self._faults_lock
        self._httpd = httpd
        httpd.host_port = f"127.0.0.1:{httpd.server_address[1]}"
        self.store.base_url = self.base_url
        self._thread = threading.Thread(target=httpd.serve_forever, name="fake-kobo", daemon=True)
        self._thread.start()
        return self

    def inject(self, kind: str, *, times: int = 1, path: str = "/data/", retry_after: int = 1,
               hang_seconds: float = 3.0) -> Fault:
        """Make the next `times` requests to paths containing `path` fail with `kind` (see FAULTS):
        an HTTP status (429 with Retry-After, 5xx), `reset` (connection dropped mid-body), `truncated`
        (half a JSON body), `hang` (answer after `hang_seconds`), `repeat_next` (a `next` link to the
        same page), `empty` (a page with its results missing)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        fault = Fault(kind, times, path, retry_after, hang_seconds)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._faults_lock:
            self.faults.clear()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeKobo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake KoBoToolbox API v2 server (empty; see `amina fake-server`).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with FakeKobo(port=args.port, token=args.token, seed=args.seed) as kobo:
        print(f"fake KoBo on {kobo.base_url} token {kobo.token}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
