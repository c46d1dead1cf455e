"""A fake ODK Central: real HTTP on 127.0.0.1, Central's REST, OpenRosa and OData API, shapes and problem codes.

    with FakeCentral() as central:            # an ephemeral port, a daemon thread
        central.base_url, central.email, central.password, central.store
        project = central.store.create_project("amina")
        central.store.create_form(project.id, xform_xml)           # published
        central.store.load(project.id, "vot_screening", generate(schema, 100))

Spec: /work/shared/odk-central-api.md (section numbers below); it passes /work/shared/tools/central_conformance.py.
Submissions are kept as XML and read into OData rows through the form's XForm (forms.xform). Authentication (§1):
sessions (`POST /v1/sessions`, 64-character tokens, 24 h unless `session_lifetime` says otherwise), Bearer only —
Basic and cookies over plain HTTP are 401.3 unless `X-Forwarded-Proto: https`; app users by `/v1/key/<token>/…` or
`?st=`. nextLinks, formList download URLs and `@odata.context` are built on `domain` (default: the server's own
address), which may differ from the address a client calls, as on a real deployment.

Not implemented: the draft test endpoints (`draft.svc`, draft submissions), entity lists (§14), comments and audits,
Enketo, public links and roles other than administrator and app user; and of §13 the leaked database connections
(#1) are not reproduced. Faults can be injected like on the fake KoBo (`inject`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime as dt
import logging
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from fakes.central_api import Api, Reply, Request, openrosa
from fakes.central_filter import InternalError
from fakes.central_odata import check_options
from fakes.central_records import BAD_CREDENTIALS, NOT_ALLOWED, SESSION_LIFETIME, Actor, Problem
from fakes.central_store import CentralStore
from fakes.loopback import LoopbackHandler, LoopbackHTTPServer, LoopbackServer

log = logging.getLogger(__name__)
DEMO_EMAIL, DEMO_PASSWORD = "admin@example.org", "amina-demo-password"
TOKEN = re.compile(r"^[A-Za-z0-9!$]{64}$")
FAULTS = ("429", "500", "502", "503", "504", "reset", "truncated", "hang")

_P = r"/v1/projects/(?P<p>[^/]+)"
_F = _P + r"/forms/(?P<f>[^/]+?)"
_S = _F + r"/submissions/(?P<id>[^/]+?)"
# (methods, path pattern, Api method, kind): kind 'open' needs no credentials; 'odata' checks its query options
# before authenticating; 'metadata' answers problems as XML; 'openrosa' as an OpenRosaResponse.
ROUTES: list[tuple[frozenset[str], re.Pattern[str], str, str]] = [
    (frozenset(m.split()), re.compile(p), h, k) for m, p, h, k in [
        ("POST", r"/v1/sessions", "login", "open"),
        ("GET", r"/v1/sessions/restore", "restore_session", "api"),
        ("DELETE", r"/v1/sessions/current", "logout", "api"),
        ("DELETE", r"/v1/sessions/(?P<token>[^/]+)", "logout", "api"),
        ("GET", r"/v1/users/current", "current_user", "api"),
        ("GET POST", r"/v1/projects", "projects", "api"),
        ("GET", _P, "project", "api"),
        ("POST", _P + r"/key", "project_key", "api"),
        ("GET POST", _P + r"/app-users", "app_users", "api"),
        ("GET", _P + r"/formList", "form_list", "openrosa"),
        ("HEAD POST", _P + r"/submission", "openrosa_submission", "openrosa"),
        ("GET POST", _P + r"/forms", "forms", "api"),
        ("POST", _P + r"/forms/(?P<n>\d+)/restore", "restore_form", "api"),
        ("GET", _F + r"\.svc", "service_document", "odata"),
        ("GET", _F + r"\.svc/\$metadata", "metadata", "metadata"),
        ("GET", _F + r"\.svc/Submissions\('(?P<id>[^']*)'\)(?P<nav>(?:/[^/]+)*)", "odata_entity", "odata"),
        ("GET", _F + r"\.svc/(?P<table>[^/(]+)", "odata_table", "odata"),
        ("GET", _F + r"\.(?P<ext>xml|xlsx|xls)", "form_xml", "api"),
        ("GET DELETE", _F, "form_detail", "api"),
        ("GET", _F + r"/fields", "form_fields", "api"),
        ("GET", _F + r"/versions", "versions", "api"),
        ("GET", _F + r"/versions/(?P<v>[^/]+?)(?P<what>\.xml|/fields)?", "version", "api"),
        ("GET POST DELETE", _F + r"/draft(?P<what>\.xml|/fields)?", "draft", "api"),
        ("POST", _F + r"/draft/publish", "publish", "api"),
        ("GET", _F + r"/assignments", "assignments", "api"),
        ("POST DELETE", _F + r"/assignments/(?P<role>[^/]+)/(?P<actor>[^/]+)", "assignments", "api"),
        ("GET POST", _F + r"/submissions\.csv(?P<zip>\.zip)?", "csv", "api"),
        ("GET", _F + r"/submissions/keys", "keys", "api"),
        ("GET", _F + r"/submissions/submitters", "submitters", "api"),
        ("GET POST", _F + r"/submissions", "submissions", "api"),
        ("GET", _S + r"\.xml", "submission_xml", "api"),
        ("GET PUT PATCH DELETE", _S, "submission_detail", "api"),
        ("POST", _S + r"/restore", "restore", "api"),
        ("GET", _S + r"/versions", "submission_versions", "api"),
        ("GET", _S + r"/versions/(?P<iid>[^/]+?)(?P<xml>\.xml)?", "submission_version", "api"),
        ("GET", _S + r"/diffs", "diffs", "api"),
        ("GET", _S + r"/attachments", "attachments", "api"),
        ("GET POST DELETE", _S + r"/attachments/(?P<name>[^/]+)", "attachment", "api"),
    ]]


@dataclass
class Fault:
    """A misbehaviour for the next `times` requests whose path contains `path` (see FakeCentral.inject)."""

    kind: str
    times: int = 1
    path: str = ".svc/"
    retry_after: int = 1
    hang_seconds: float = 3.0


class Handler(LoopbackHandler):
    server: _Server
    server_version = "fake-central"

    # -- dispatch --------------------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        kind = "api"
        try:
            fault = self.server.take_fault(parts.path)
            if fault is not None and self._fail_early(fault):
                return
            path, prefix, actor_from_key = self._key_prefix(parts.path)
            raw_params = parse_qsl(parts.query, keep_blank_values=True)
            params = dict(raw_params)
            route = self._route(method, path)
            if route is None:
                raise self._unknown_path(path)
            handler, kind, args = route
            if kind in ("odata", "metadata"):
                check_options([k for k, _ in raw_params])  # before authentication, as on Central
            actor = actor_from_key if prefix else self._authenticate(params)
            if kind in ("odata", "metadata"):
                if actor is None:
                    raise Problem(401.2, BAD_CREDENTIALS)
                self._negotiate(kind, params)
            req = Request(method=method, path=path, args=args, params=params, raw_params=raw_params,
                          headers=self.headers, body=body, actor=actor, key_prefix=prefix)
            if kind == "openrosa" and self.headers.get("X-OpenRosa-Version") != "1.0":
                raise Problem(400.6, "This is an OpenRosa endpoint: send the header X-OpenRosa-Version: 1.0.")
            with self.server.store.lock:
                reply = getattr(self.server.api, handler)(req)
            if kind in ("odata", "metadata"):
                reply.headers["OData-Version"] = "4.0"
            if fault is not None and fault.kind in ("truncated", "reset") and reply.status == 200:
                self._misbehave(fault, reply)
                return
            self._send(reply, method)
        except Problem as problem:
            self._send(self._problem_reply(problem, kind), method)
        except InternalError:
            self._send(Reply(500, {"message": "Internal Server Error"}), method)
        except Exception:  # a bug in the fake: Central's 500, and the traceback on stderr
            log.exception("fake Central failed on %s %s", method, self.path)
            self._send(Reply(500, {"message": "Internal Server Error"}), method)

    def _route(self, method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
        for methods, pattern, handler, kind in ROUTES:
            found = pattern.fullmatch(path)
            if found is None or method not in methods:
                continue
            args = {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
            return handler, kind, args
        return None

    @staticmethod
    def _unknown_path(path: str) -> Problem:
        if re.match(r"^/v\d+(/|$)", path) and not path.startswith(("/v1/", "/v1")):
            return Problem(404.3, "Expected API version v1 at the start of the request URL.")
        if not (path == "/v1" or path.startswith("/v1/")):
            return Problem(404.2, "Expected an API version (eg /v1) at the start of the request URL.")
        return Problem(404.1, "Could not find the resource you were looking for.")

    # -- authentication (§1) -------------------------------------------------------------------------------------

    def _key_prefix(self, path: str) -> tuple[str, str, Actor | None]:
        """`/v1/key/<token>/…` → ('/v1/…', '/v1/key/<token>', the app user); 401.2 malformed, 403.1 unknown."""
        found = re.match(r"^/v1/key/([^/]+)(/.*)$", path)
        if found is None:
            return path, "", None
        token = unquote(found.group(1))
        if not TOKEN.match(token):
            raise Problem(401.2, BAD_CREDENTIALS)
        actor = self.server.store.app_user(token)
        if actor is None:
            raise Problem(403.1, NOT_ALLOWED)
        return "/v1" + found.group(2), f"/v1/key/{found.group(1)}", actor

    def _https(self) -> bool:
        return self.headers.get("X-Forwarded-Proto", "").lower() == "https"

    def _authenticate(self, params: dict[str, str]) -> Actor | None:
        store = self.server.store
        if "st" in params:
            token = params["st"]
            if not TOKEN.match(token):
                raise Problem(401.2, BAD_CREDENTIALS)
            actor = store.app_user(token)
            if actor is None:
                raise Problem(403.1, NOT_ALLOWED)
            return actor
        header = self.headers.get("Authorization")
        if header is not None:
            scheme, _, credentials = header.partition(" ")
            if scheme.lower() == "bearer":
                session = store.session(credentials.strip())
                if session is None:
                    raise Problem(401.2, BAD_CREDENTIALS)
                return session.actor
            if scheme.lower() == "basic":
                if not self._https():
                    raise Problem(401.3, "This authentication method is only available over HTTPS.")
                try:
                    email, _, password = base64.b64decode(credentials.strip()).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    raise Problem(401.2, BAD_CREDENTIALS) from None
                if not email or not password:
                    raise Problem(401.2, BAD_CREDENTIALS)
                return store.check_password(email, password)
            raise Problem(401.2, BAD_CREDENTIALS)
        cookie = self.headers.get("Cookie", "")
        found = re.search(r"(?:^|;\s*)session=([^;]+)", cookie)
        if found:
            if not self._https():
                raise Problem(401.3, "This authentication method is only available over HTTPS.")
            session = store.session(unquote(found.group(1)))
            if session is None:
                raise Problem(401.2, BAD_CREDENTIALS)
            return session.actor
        return None

    def _negotiate(self, kind: str, params: dict[str, str]) -> None:
        """OData answers data as JSON and `$metadata` as XML only (406.1 otherwise, §5.7)."""
        fmt = params.get("$format", "").lower()
        accept = self.headers.get("Accept", "*/*").lower()
        max_version = self.headers.get("OData-MaxVersion")
        if max_version:
            with contextlib.suppress(ValueError):
                if float(max_version) < 4.0:
                    raise Problem(404.1, "Could not find the resource you were looking for.")
        if kind == "metadata":
            wants_json = fmt in ("json", "application/json") or (not fmt and not _accepts(accept, "xml"))
            if wants_json:
                raise Problem(406.1, "Requested format not acceptable; this resource allows: application/xml.",
                              {"allowed": "[object Object]"})
        else:
            wants_xml = fmt in ("xml", "atom", "application/xml") or (not fmt and not _accepts(accept, "json"))
            if wants_xml:
                raise Problem(406.1, "Requested format not acceptable; this resource allows: application/json, "
                                     "json.", {"allowed": ["application/json", "json"]})

    # -- answering ------------------------------------------------------------------------------------------------

    @staticmethod
    def _problem_reply(problem: Problem, kind: str) -> Reply:
        if kind == "metadata":
            details = "[object Object]" if problem.details else ""  # Central's rendering of its details (§13.6)
            text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<error code="{problem.code}"><message>'
                    f"{_xml_escape(problem.message)}</message><details>{details}</details></error>")
            return Reply(problem.status, raw=text.encode(), content_type="application/xml")
        if kind == "openrosa":
            return openrosa(problem.message, problem.status, nature="error")
        return Reply(problem.status, problem.body())

    def _send(self, reply: Reply, method: str) -> None:
        if reply.raw is not None:
            data = reply.raw
        elif reply.status in (204, 304):
            data = b""
        else:
            data = orjson.dumps(reply.body)
        self.send_response(reply.status)
        if reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type)
        if method in ("GET", "HEAD"):
            self.send_header("Cache-Control", "private, no-cache")
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    # -- injected faults ---------------------------------------------------------------------------------------

    def _fail_early(self, fault: Fault) -> bool:
        if fault.kind[0].isdigit():
            headers = {"Retry-After": str(fault.retry_after)} if fault.kind == "429" else {}
            self._send(Reply(int(fault.kind), {"message": "Injected fault", "code": float(fault.kind)},
                             headers=headers), "GET")
            return True
        if fault.kind == "hang":
            time.sleep(fault.hang_seconds)
        return False

    def _misbehave(self, fault: Fault, reply: Reply) -> None:
        data = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
        self._send_half(data, reply.content_type, reset=fault.kind == "reset")


def _accepts(accept: str, kind: str) -> bool:
    for item in accept.split(","):
        media = item.split(";")[0].strip()
        if media in ("*/*", "application/*", f"application/{kind}", f"text/{kind}", f"*/{kind}", ""):
            return True
    return False


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Server(LoopbackHTTPServer):
    store: CentralStore
    api: Api


class FakeCentral(LoopbackServer):
    """The fake Central server. Start it, log in with `email`/`password` at `base_url`, fill `store`."""

    label = "fake Central server"

    def __init__(self, *, port: int = 0, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD,
                 domain: str | None = None, session_lifetime: dt.timedelta = SESSION_LIFETIME,
                 seed: int | None = None):
        super().__init__(port)
        self.email, self.password = email, password
        self.domain = domain
        self.store = CentralStore(email=email, password=password, session_lifetime=session_lifetime, seed=seed)
        self.api = Api(self.store, lambda: (self.domain or self.base_url).rstrip("/"))

    def start(self) -> FakeCentral:
        httpd = _Server(("127.0.0.1", self.port), Handler)
        httpd.store, httpd.api = self.store, self.api
        self._serve(httpd, "fake-central")
        return self

    def inject(self, kind: str, *, times: int = 1, path: str = ".svc/", retry_after: int = 1,
               hang_seconds: float = 3.0) -> Fault:
        """Make the next `times` requests to paths containing `path` fail with `kind`: an HTTP status (429 with
        Retry-After, 5xx), `reset` (half a body, then the connection dropped), `truncated` (half a body), `hang`
        (answer after `hang_seconds`)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        fault = Fault(kind, times, path, retry_after, hang_seconds)
        with self._faults_lock:
            self.faults.append(fault)
        return fault



def main(argv: list[str] | None = None) -> int:
    """`python -m fakes.central --port 8383 [-n 100]`: serve a fake ODK Central until Ctrl-C, with a project
    holding the programme's four forms (and `-n` generated submissions each)."""
    parser = argparse.ArgumentParser(prog="python -m fakes.central", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8383)
    parser.add_argument("--email", default=DEMO_EMAIL)
    parser.add_argument("--password", default=DEMO_PASSWORD)
    parser.add_argument("--domain", help="the address nextLinks and download URLs are built on (default: the server's)")
    parser.add_argument("-n", "--submissions", type=int, default=0, help="generated submissions per form")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--empty", action="store_true", help="no project, no forms")
    args = parser.parse_args(argv)
    with FakeCentral(port=args.port, email=args.email, password=args.password, domain=args.domain,
                     seed=args.seed) as central:
        if not args.empty:
            from fakes.central_demo import fill

            project = fill(central.store, n=args.submissions, seed=args.seed)
            print(f"project {project.id} '{project.name}': {', '.join(project.forms)}", flush=True)
        print(f"fake ODK Central on {central.base_url} (user {args.email}, password {args.password}); Ctrl-C stops it",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
