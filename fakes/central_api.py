"""The fake Central's endpoints (reference §1–§3, §7–§12): each takes a `Request` and returns a `Reply`.

Plumbing (routing, authentication, error bodies) is in fakes.central; the data in fakes.central_store; OData in
fakes.central_odata. Rights: a web user may do everything; an app user (`/v1/key/<token>/…`) may list the forms it
is assigned to, download them and submit to them — anything else is 403.1, once the resource is known to exist.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape

import orjson

from fakes.central_csv import Export, passphrase_for
from fakes.central_filter import parse_filter
from fakes.central_forms import FormDef
from fakes.central_odata import Answer, Service, etag, system_values
from fakes.central_records import NOT_ALLOWED, Actor, Form, Problem, Submission, iso, not_found
from fakes.central_store import CentralStore
from fakes.central_xml import BadSubmission, local, read_submission

MAX_JSON = 250_000  # bytes (§0: larger JSON bodies are 400.36)
XLSX_TYPES = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/vnd.ms-excel")
OPENROSA_NS = "http://openrosa.org/http/response"


@dataclass
class Request:
    method: str
    path: str  # as requested, without a /v1/key/<token> prefix (nextLinks are built from it)
    args: dict[str, str]  # the route's captures, URL-decoded
    params: dict[str, str]  # the query: the last value of each key
    raw_params: list[tuple[str, str]]
    headers: Message
    body: bytes
    actor: Actor | None
    key_prefix: str = ""  # '/v1/key/<token>' when an app user called


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON, unless `raw` is given
    raw: bytes | None = None
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def xml_reply(text: str, status: int = 200, content_type: str = "application/xml") -> Reply:
    return Reply(status, raw=text.encode("utf-8"), content_type=content_type)


def openrosa(message: str, status: int, *, nature: str = "") -> Reply:
    body = (f'<OpenRosaResponse xmlns="{OPENROSA_NS}" items="0"><message nature="{nature}">{escape(message)}'
            f"</message></OpenRosaResponse>")
    reply = xml_reply(body, status, "text/xml; charset=utf-8")
    reply.headers["X-OpenRosa-Version"] = "1.0"
    return reply


class Api:
    def __init__(self, store: CentralStore, domain: Callable[[], str]):
        self.store = store
        self.domain = domain
        self.odata = Service(domain)

    # -- helpers ---------------------------------------------------------------------------------------------

    @staticmethod
    def json_body(req: Request) -> dict[str, Any]:
        if len(req.body) > MAX_JSON:
            raise Problem(400.36, "The request body is too large.", {"limit": MAX_JSON})
        try:
            data = orjson.loads(req.body or b"{}")
        except orjson.JSONDecodeError:
            raise Problem(400.1, "The request body could not be parsed as JSON.") from None
        if not isinstance(data, dict):
            raise Problem(400.1, "The request body must be a JSON object.")
        return data

    @staticmethod
    def web_user(req: Request) -> Actor:
        if req.actor is None:
            raise Problem(401.2, "Could not authenticate with the provided credentials.")
        if req.actor.type != "user":
            raise Problem(403.1, NOT_ALLOWED)
        return req.actor

    def form(self, req: Request, *, published: bool = False, app_user_may: bool = False) -> Form:
        """The form the route names; 404.1 if unknown (or unpublished when `published`), then 403.1 if the caller
        may not touch it."""
        if req.actor is None:
            raise Problem(401.2, "Could not authenticate with the provided credentials.")
        form = self.store.form(req.args["p"], req.args["f"])
        if published and form.current is None:
            raise not_found()
        if req.actor.type != "user" and not (app_user_may and req.actor.id in form.assigned):
            raise Problem(403.1, NOT_ALLOWED)
        return form

    def submission(self, req: Request, *, deleted: bool = False) -> Submission:
        self.form(req)
        return self.store.submission(req.args["p"], req.args["f"], req.args["id"], deleted=deleted)

    def _v1(self, req: Request) -> str:
        """The API root a link for this caller starts with: `<domain>/v1`, or `<domain>/v1/key/<token>`."""
        return self.domain() + (req.key_prefix or "/v1")

    @staticmethod
    def extended(req: Request) -> bool:
        return req.headers.get("X-Extended-Metadata", "").lower() == "true"

    # -- sessions and users (§1) ------------------------------------------------------------------------------

    def login(self, req: Request) -> Reply:
        data = self.json_body(req)
        session = self.store.login(data.get("email"), data.get("password"))
        expires = session.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
        reply = Reply(200, {"token": session.token, "csrf": session.csrf, "expiresAt": iso(session.expires_at),
                            "createdAt": iso(session.created_at)})
        reply.headers["Set-Cookie"] = f"session={session.token}; Path=/; Expires={expires}; HttpOnly; Secure; " \
                                      f"SameSite=Strict"
        return reply

    def logout(self, req: Request) -> Reply:
        self.web_user(req)
        target = req.args.get("token") or _session_token(req)
        session = self.store.session(target)
        if session is None or (req.args.get("token") and session.actor.id != req.actor.id):  # type: ignore[union-attr]
            raise not_found()
        self.store.end_session(target)
        return Reply(200, {"success": True})

    def restore_session(self, req: Request) -> Reply:
        self.web_user(req)
        session = self.store.session(_session_token(req))
        if session is None:
            raise not_found()
        return Reply(200, {"createdAt": iso(session.created_at), "expiresAt": iso(session.expires_at)})

    def current_user(self, req: Request) -> Reply:
        return Reply(200, self.web_user(req).as_json())

    # -- projects, app users (§1.2, §2, §11) ----------------------------------------------------------------------

    def projects(self, req: Request) -> Reply:
        self.web_user(req)
        if req.method == "POST":
            name = self.json_body(req).get("name")
            if not isinstance(name, str) or not name:
                raise Problem(400.3, "Required parameters name were missing.", {"expected": ["name"]})
            return Reply(200, self.store.create_project(name).as_json())
        return Reply(200, [p.as_json() for p in self.store.projects.values()])

    def project(self, req: Request) -> Reply:
        project = self.store.project(req.args["p"])
        self.web_user(req)
        return Reply(200, project.as_json())

    def project_key(self, req: Request) -> Reply:
        self.store.project(req.args["p"])
        self.web_user(req)
        data = self.json_body(req)
        return Reply(200, self.store.enable_encryption(int(req.args["p"]), data.get("passphrase"),
                                                       data.get("hint")).as_json())

    def app_users(self, req: Request) -> Reply:
        project = self.store.project(req.args["p"])
        self.web_user(req)
        if req.method == "POST":
            name = self.json_body(req).get("displayName")
            if not isinstance(name, str) or not name:
                raise Problem(400.3, "Required parameters displayName were missing.", {"expected": ["displayName"]})
            return Reply(200, self.store.create_app_user(project.id, name).as_json())
        return Reply(200, [a.as_json() for a in project.app_users])

    def assignments(self, req: Request) -> Reply:
        form = self.form(req)
        if req.method == "GET":
            return Reply(200, [{"actorId": a, "roleId": 2} for a in sorted(form.assigned)])
        actor_id = int(req.args["actor"]) if req.args["actor"].isdigit() else -1
        if req.method == "DELETE":
            if actor_id not in form.assigned:
                raise not_found()
            form.assigned.discard(actor_id)
        else:
            self.store.assign(form.project.id, form.xml_form_id, actor_id)
        return Reply(200, {"success": True})

    # -- forms (§2, §3) -------------------------------------------------------------------------------------------

    def form_json(self, form: Form, req: Request, d: FormDef | None = None) -> dict[str, Any]:
        out = form.def_json(d) if d is not None else form.as_json()
        if self.extended(req):
            live = form.live()
            out.update(submissions=len(live), reviewStates={
                "received": sum(1 for s in live if s.review_state is None),
                "hasIssues": sum(1 for s in live if s.review_state == "hasIssues"),
                "edited": sum(1 for s in live if s.review_state == "edited")},
                lastSubmission=iso(max((s.created_at for s in live), default=None)), excelContentType=None,
                entityRelated=False, publicLinks=0, createdBy=self.store.user.as_json())
        return out

    def forms(self, req: Request) -> Reply:
        project = self.store.project(req.args["p"])
        self.web_user(req)
        if req.method == "POST":
            return Reply(200, self.form_json(self.create_form(req, project.id), req))
        deleted = req.params.get("deleted") == "true"
        listed = [f for f in project.forms.values() if (f.deleted_at is not None) == deleted]
        return Reply(200, [self.form_json(f, req) for f in listed])

    def _xform_text(self, req: Request) -> str:
        ctype = req.headers.get_content_type()
        if ctype in XLSX_TYPES:
            return _xlsx_to_xform(req.body, req.headers.get("X-XlsForm-FormId-Fallback"))
        try:
            return req.body.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem(400.2, "The XForm is not UTF-8 text.") from None

    def create_form(self, req: Request, project_id: int) -> Form:
        return self.store.create_form(project_id, self._xform_text(req), publish=req.params.get("publish") == "true")

    def form_detail(self, req: Request) -> Reply:
        form = self.form(req)
        if req.method == "DELETE":
            self.store.delete_form(form.project.id, form.xml_form_id)
            return Reply(200, {"success": True})
        return Reply(200, self.form_json(form, req))

    def restore_form(self, req: Request) -> Reply:
        self.store.project(req.args["p"])
        self.web_user(req)
        return Reply(200, self.store.restore_form(int(req.args["p"]), int(req.args["n"])).as_json())

    def form_xml(self, req: Request) -> Reply:
        form = self.form(req, app_user_may=True)
        if req.args.get("ext") in ("xlsx", "xls"):
            raise not_found()
        return xml_reply(form.shown.xml)

    def form_fields(self, req: Request) -> Reply:
        form = self.form(req)
        return self._fields(form.shown, req)

    @staticmethod
    def _fields(d: FormDef, req: Request) -> Reply:
        odata = req.params.get("odata") == "true"
        return Reply(200, [f.as_json(odata=odata) for f in d.model.fields])

    def _version(self, form: Form, version: str) -> FormDef:
        found = form.version_def("" if version == "___" else version)
        if found is None:
            raise not_found()
        return found

    def versions(self, req: Request) -> Reply:
        form = self.form(req)
        defs = sorted(form.published, key=lambda d: d.published_at or dt.datetime.min, reverse=True)
        return Reply(200, [self.form_json(form, req, d) for d in defs])

    def version(self, req: Request) -> Reply:
        form = self.form(req)
        d = self._version(form, req.args["v"])
        if req.args.get("what") == ".xml":
            return xml_reply(d.xml)
        if req.args.get("what") == "/fields":
            return self._fields(d, req)
        return Reply(200, self.form_json(form, req, d))

    def draft(self, req: Request) -> Reply:
        form = self.form(req)
        if req.method == "POST":
            text = self._xform_text(req) if req.body.strip() else None
            self.store.create_draft(form.project.id, form.xml_form_id, text)
            return Reply(200, {"success": True})
        if form.draft is None:
            raise not_found()
        if req.method == "DELETE":
            form.draft = None
            return Reply(200, {"success": True})
        what = req.args.get("what")
        if what == ".xml":
            return xml_reply(form.draft.xml)
        if what == "/fields":
            return self._fields(form.draft, req)
        return Reply(200, {**self.form_json(form, req, form.draft), "draftToken": form.draft.draft_token})

    def publish(self, req: Request) -> Reply:
        form = self.form(req)
        self.store.publish(form.project.id, form.xml_form_id, version=req.params.get("version"))
        return Reply(200, {"success": True})

    def form_list(self, req: Request) -> Reply:
        project = self.store.project(req.args["p"])
        if req.actor is None:
            raise Problem(401.2, "Could not authenticate with the provided credentials.")
        forms = [f for f in project.forms.values() if f.current is not None and f.deleted_at is None and
                 f.state != "closed" and (req.actor.type == "user" or req.actor.id in f.assigned)]
        items = "".join(
            f"<xform><formID>{escape(f.xml_form_id)}</formID><name>{escape(f.current.xform.title)}</name>"
            f"<version>{escape(f.current.version)}</version><hash>md5:{f.current.hashes['hash']}</hash>"
            f"<downloadUrl>{escape(self._v1(req))}/projects/{project.id}/forms/"
            f"{quote(f.xml_form_id, safe='')}.xml</downloadUrl></xform>"
            for f in forms if f.current is not None)
        reply = xml_reply(f'<?xml version="1.0" encoding="UTF-8"?>\n<xforms xmlns="http://openrosa.org/xforms/'
                          f'xformsList">{items}</xforms>', content_type="text/xml; charset=utf-8")
        reply.headers["X-OpenRosa-Version"] = "1.0"
        return reply

    # -- submissions: OpenRosa (§10) -----------------------------------------------------------------------------

    def openrosa_submission(self, req: Request) -> Reply:
        project = self.store.project(req.args["p"])
        if req.actor is None:
            raise Problem(401.2, "Could not authenticate with the provided credentials.")
        if req.method == "HEAD":
            reply = Reply(204, raw=b"")
            reply.headers.update({"X-OpenRosa-Version": "1.0", "X-OpenRosa-Accept-Content-Length": "100000000"})
            return reply
        parts = _multipart(req)
        xml = parts.pop("xml_submission_file", None)
        if xml is None:
            raise Problem(400.2, "The submission has no xml_submission_file part.")
        form = _form_of(project.forms, xml)
        if form is not None and req.actor.type != "user" and req.actor.id not in form.assigned:
            raise Problem(403.1, NOT_ALLOWED)
        self.store.submit(project.id, xml, parts, submitter=req.actor, device_id=req.params.get("deviceID"),
                          user_agent=req.headers.get("User-Agent"))
        return openrosa("full submission upload was successful!", 201)

    # -- submissions: REST (§7–§10) -------------------------------------------------------------------------------

    def submissions(self, req: Request) -> Reply:
        form = self.form(req)
        if req.method == "POST":
            sub = self.store.submit(form.project.id, req.body, submitter=req.actor, xml_form_id=form.xml_form_id,
                                    user_agent=req.headers.get("User-Agent"),
                                    device_id=req.params.get("deviceID"))
            return Reply(200, sub.as_json())
        deleted = req.params.get("deleted") == "true"
        limit, offset = _int_param(req, "limit"), _int_param(req, "offset")
        subs = sorted((s for s in form.submissions.values() if (s.deleted_at is not None) == deleted),
                      key=lambda s: (s.created_at, s.id), reverse=True)
        tag = etag(subs)
        if req.headers.get("If-None-Match") == tag:
            return Reply(304, raw=b"", headers={"ETag": tag})
        page = subs[offset or 0:][: limit] if limit is not None else subs[offset or 0:]
        return Reply(200, [s.as_json(extended=self.extended(req)) for s in page], headers={"ETag": tag})

    def submission_detail(self, req: Request) -> Reply:
        if req.method == "PATCH":
            self.form(req)
            data = self.json_body(req)
            if "reviewState" not in data:
                sub = self.store.submission(req.args["p"], req.args["f"], req.args["id"])
                return Reply(200, sub.as_json())
            sub = self.store.review(int(req.args["p"]), req.args["f"], req.args["id"], data["reviewState"])
            return Reply(200, sub.as_json())
        if req.method == "PUT":
            form = self.form(req)
            sub = self.store.edit_xml(form.project.id, form.xml_form_id, req.args["id"], req.body,
                                      submitter=req.actor)
            return Reply(200, sub.as_json())
        sub = self.submission(req)
        if req.method == "DELETE":
            self.store.delete(sub.form.project.id, sub.form.xml_form_id, sub.root_id)
            return Reply(200, {"success": True})
        return Reply(200, sub.as_json(extended=self.extended(req)))

    def submission_xml(self, req: Request) -> Reply:
        form = self.form(req)
        iid = req.args["id"]
        sub = form.by_instance.get(iid)
        if sub is None or sub.deleted_at is not None:
            raise not_found()
        if sub.root_id != iid:  # an older or newer version's id: the canonical place of its XML
            location = (f"{self._v1(req)}/projects/{form.project.id}/forms/"
                        f"{quote(form.xml_form_id, safe='')}/submissions/{quote(sub.root_id, safe=':')}/versions/"
                        f"{quote(iid, safe=':')}.xml")
            return Reply(301, raw=b"", headers={"Location": location})
        return xml_reply(sub.current.xml.decode("utf-8"))

    def restore(self, req: Request) -> Reply:
        form = self.form(req)
        self.store.restore(form.project.id, form.xml_form_id, req.args["id"])
        return Reply(200, {"success": True})

    def submission_versions(self, req: Request) -> Reply:
        sub = self.submission(req)
        extended = self.extended(req)
        return Reply(200, [v.as_json(current=v is sub.current, extended=extended) for v in reversed(sub.versions)])

    def submission_version(self, req: Request) -> Reply:
        sub = self.submission(req)
        version = next((v for v in sub.versions if v.instance_id == req.args["iid"]), None)
        if version is None:
            raise not_found()
        if req.args.get("xml"):
            return xml_reply(version.xml.decode("utf-8"))
        return Reply(200, version.as_json(current=version is sub.current, extended=self.extended(req)))

    def diffs(self, req: Request) -> Reply:
        sub = self.submission(req)
        out: dict[str, list[dict[str, Any]]] = {}
        for old, new in zip(sub.versions, sub.versions[1:], strict=False):
            out[new.instance_id] = _diff(old.parsed.root, new.parsed.root)
        return Reply(200, out)

    def attachments(self, req: Request) -> Reply:
        sub = self.submission(req)
        return Reply(200, [{"name": n, "exists": b is not None} for n, b in sub.current.attachments.items()])

    def attachment(self, req: Request) -> Reply:
        sub = self.submission(req)
        name = req.args["name"]
        if req.method == "POST":
            self.store.add_attachment(sub.form.project.id, sub.form.xml_form_id, sub.root_id, name, req.body,
                                      req.headers.get_content_type() if req.headers.get("Content-Type") else None)
            return Reply(200, {"success": True})
        if req.method == "DELETE":
            self.store.remove_attachment(sub.form.project.id, sub.form.xml_form_id, sub.root_id, name)
            return Reply(200, {"success": True})
        blob = sub.current.attachments.get(name)
        if blob is None:
            raise not_found()
        return Reply(200, raw=blob.data, content_type=blob.content_type,
                     headers={"Content-Disposition": f'inline; filename="{name}"'})

    def keys(self, req: Request) -> Reply:
        form = self.form(req)
        used = {s.current.parsed.encrypted for s in form.submissions.values()}
        key = form.project.key
        return Reply(200, [key.as_json()] if key is not None and (True in used or form.shown.key_id) else [])

    def submitters(self, req: Request) -> Reply:
        form = self.form(req)
        seen: dict[int, Actor] = {}
        for s in form.submissions.values():
            if s.submitter is not None:
                seen.setdefault(s.submitter.id, s.submitter)
        return Reply(200, [a.as_json() for a in seen.values()])

    # -- CSV (§12) -----------------------------------------------------------------------------------------------

    def csv(self, req: Request) -> Reply:
        form = self.form(req, published=True)
        assert form.current is not None
        params = dict(req.params)
        if req.method == "POST" and req.headers.get_content_type() == "application/x-www-form-urlencoded":
            params.update(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        decrypt = passphrase_for(form, params)
        keep = parse_filter(params.get("$filter"))
        subs = sorted((s for s in form.submissions.values() if keep(system_values(s))),
                      key=lambda s: (s.created_at, s.id), reverse=True)
        export = Export(form, form.current, subs, decrypt=decrypt, group_paths=params.get("groupPaths") != "false")
        name = form.xml_form_id
        if req.args.get("zip"):
            data = export.zip(attachments=params.get("attachments") != "false")
            return Reply(200, raw=data, content_type="application/zip",
                         headers={"Content-Disposition": f'attachment; filename="{name}.zip"'})
        return Reply(200, raw=export.root_csv().encode("utf-8"), content_type="text/csv; charset=utf-8",
                     headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})

    # -- OData (§4, §5) ------------------------------------------------------------------------------------------

    def _odata_form(self, req: Request) -> tuple[Form, FormDef]:
        form = self.form(req, published=True)
        assert form.current is not None
        return form, form.current

    def service_document(self, req: Request) -> Reply:
        form, d = self._odata_form(req)
        return Reply(200, self.odata.service_document(form, d))

    def metadata(self, req: Request) -> Reply:
        _form, d = self._odata_form(req)
        return xml_reply(self.odata.metadata(d))

    def odata_table(self, req: Request) -> Reply:
        form, d = self._odata_form(req)
        answer = self.odata.table(form, d, req.args["table"], req.params, req.path, req.raw_params,
                                  req.headers.get("If-None-Match"))
        return _from_answer(answer)

    def odata_entity(self, req: Request) -> Reply:
        form, d = self._odata_form(req)
        return _from_answer(self.odata.entity(form, d, req.args["id"], _nav(req.args.get("nav") or ""), req.params))


def _session_token(req: Request) -> str:
    """The caller's session: its Bearer token, else its `session` cookie."""
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    found = re.search(r"(?:^|;\s*)session=([^;]+)", req.headers.get("Cookie", ""))
    return unquote(found.group(1)) if found else ""


def _from_answer(answer: Answer) -> Reply:
    headers = dict(answer.headers or {})
    if answer.status == 304:
        return Reply(304, raw=b"", headers=headers)
    return Reply(answer.status, answer.body, headers=headers)


def _nav(text: str) -> list[tuple[str, str | None]]:
    """'/hh/member('abc')/trip' → [('hh', None), ('member', 'abc'), ('trip', None)]; 404.1 if malformed."""
    out: list[tuple[str, str | None]] = []
    for seg in [s for s in text.split("/") if s]:
        if seg.endswith("')") and "('" in seg:
            name, _, key = seg[:-2].partition("('")
            out.append((name, key))
        elif "(" in seg or ")" in seg:
            raise not_found()
        else:
            out.append((seg, None))
    return out


def _int_param(req: Request, name: str) -> int | None:
    if name not in req.params:
        return None
    value = req.params[name]
    if not value.lstrip("-").isdigit():
        raise Problem(400.11, f"The value '{value}' for {name} is not a valid integer.", {"value": value})
    return max(0, int(value))


def _multipart(req: Request) -> dict[str, bytes]:
    """multipart/form-data → {part name: bytes} (Central matches attachments by part name, else file name)."""
    ctype = req.headers.get("Content-Type", "")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body)
    if not message.is_multipart():
        raise Problem(400.2, "The submission is not multipart/form-data with an xml_submission_file part.")
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition") or part.get_filename()
        if name:
            parts[str(name)] = part.get_payload(decode=True) or b""
    return parts


def _form_of(forms: Mapping[str, Form], xml: bytes) -> Form | None:
    try:
        return forms.get(read_submission(xml).form_id)
    except BadSubmission:
        return None


def _leaves(el: Any, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], str]:
    out: dict[tuple[Any, ...], str] = {}
    counts: dict[str, int] = {}
    for c in el:
        name = local(c.tag)
        counts[name] = counts.get(name, -1) + 1
        siblings = sum(1 for x in el if local(x.tag) == name)
        step: Any = [name, counts[name]] if siblings > 1 else name
        key = (*prefix, tuple(step) if isinstance(step, list) else step)
        if len(c):
            out.update(_leaves(c, key))
        else:
            out[key] = (c.text or "").strip()
    return out


def _diff(old: Any, new: Any) -> list[dict[str, Any]]:
    """The fields whose value changed between two versions: [{old, new, path}] (a repeat step as [name, index])."""
    a, b = _leaves(old), _leaves(new)
    out = []
    for key in [*a, *(k for k in b if k not in a)]:
        before, after = a.get(key), b.get(key)
        if before != after:
            out.append({"old": before or None, "new": after or None,
                        "path": [list(s) if isinstance(s, tuple) else s for s in key]})
    return out


def _xlsx_to_xform(data: bytes, fallback_id: str | None) -> str:
    """Central hands an XLSForm to pyxform-http; the fake runs pyxform itself (400.15 when it refuses the form)."""
    from common.errors import FormBuildError
    from forms.build import compile_xform
    from forms.source import read_xlsx

    try:
        source = read_xlsx(data, f"{fallback_id or 'form'}.xlsx")
        xml, _warnings = compile_xform(source, data, validate=False)
    except FormBuildError as exc:
        raise Problem(400.15, f"The given XLSForm file was not valid: {exc}", {"error": str(exc)}) from None
    return xml

