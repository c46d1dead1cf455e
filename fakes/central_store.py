"""The fake ODK Central's memory: actors and sessions, projects, forms and their versions, submissions kept as XML.

One lock guards everything; HTTP handlers and tests go through the same methods, so a submission loaded by a test
takes the very path an OpenRosa upload takes (`submit`). Times come from `clock`: UTC, millisecond precision like
Central's `timestamptz(3)` columns, and strictly increasing (two events never share a millisecond, so a time read
back always separates what came before from what came after).

Problems are raised as `Problem(code, message)`: the HTTP layer writes them as Central does (reference §0).

The API for tests and demos (all by project id and xmlFormId; `when` is an aware or naive-UTC datetime):

    store.create_project(name) → Project                 store.create_form(p, xml, publish=True) → Form
    store.create_app_user(p, name) → Actor (.token)       store.assign(p, f, actor)
    store.submit(p, xml, attachments={…}, submitter=actor, when=…) → Submission     (the OpenRosa path)
    store.add_answers(p, f, answers, attachments={…}, submitter=…, when=…)         (KoBo-shaped answers → XML)
    store.load(p, f, generated)                     (fakes.generator's submissions, submitted by app users)
    store.edit(p, f, id, changes)   store.review(p, f, id, state)   store.delete / restore (p, f, id)
    store.purge(force=False)        store.add_attachment(p, f, id, name, data)
    store.enable_encryption(p, passphrase, hint)    store.add_encrypted(p, f, answers, upload=True, …)
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import random
import secrets
import threading
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from typing import Any

from common.errors import FormBuildError
from fakes.central_forms import FormDef, inject_key, set_version
from fakes.central_records import (
    BAD_CREDENTIALS,
    PURGE_AFTER,
    REVIEW_STATES,
    SESSION_LIFETIME,
    Actor,
    Blob,
    Clock,
    Form,
    ManagedKey,
    Problem,
    Project,
    Session,
    Submission,
    SubmissionVersion,
    new_token,
    not_found,
    utc,
)
from fakes.central_xml import (
    BadSubmission,
    ParsedSubmission,
    answers_of,
    binary_values,
    encrypted_envelope,
    instance_xml,
    read_submission,
)

# -- the store --------------------------------------------------------------------------------------------------


class CentralStore:
    def __init__(self, *, email: str = "admin@example.org", password: str = "amina-demo-password",
                 session_lifetime: dt.timedelta = SESSION_LIFETIME, seed: int | None = None):
        self.lock = threading.RLock()
        self.clock = Clock()
        self.session_lifetime = session_lifetime
        self._ids = itertools.count(1)  # actors: web users and app users
        self._project_ids, self._form_ids, self._key_ids = itertools.count(1), itertools.count(1), itertools.count(1)
        self._submission_ids = itertools.count(1)
        self._events = itertools.count(1)
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self.actors: dict[int, Actor] = {}
        self.sessions: dict[str, Session] = {}
        self.projects: dict[int, Project] = {}
        self.keys: dict[int, ManagedKey] = {}
        self.user = self.add_user(email, password, display_name=email)
        self.revision = 0  # bumped by every change (caches key on it)

    # -- ids and time ------------------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.clock.now()

    def new_instance_id(self) -> str:
        return f"uuid:{uuidlib.UUID(int=self._rng.getrandbits(128), version=4)}"

    def _touch(self, sub: Submission | None = None) -> None:
        self.revision += 1
        if sub is not None:
            sub.event = next(self._events)

    # -- actors and sessions -----------------------------------------------------------------------------------

    def add_user(self, email: str, password: str, *, display_name: str | None = None) -> Actor:
        with self.lock:
            actor = Actor(id=next(self._ids), type="user", display_name=display_name or email, email=email,
                          password=password, created_at=self.now())
            self.actors[actor.id] = actor
            return actor

    def login(self, email: Any, password: Any) -> Session:
        if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
            raise Problem(400.3, "Required parameters email and password were missing.",
                          {"expected": ["email", "password"]})
        return self.open_session(self.check_password(email, password))

    def check_password(self, email: str, password: str) -> Actor:
        """The web user with this email and password; 401.2 for a wrong password and an unknown email alike."""
        with self.lock:
            user = next((a for a in self.actors.values() if a.type == "user" and a.email and
                         a.email.lower() == email.lower()), None)
            if user is None or not secrets.compare_digest((user.password or "").encode(), password.encode()):
                raise Problem(401.2, BAD_CREDENTIALS)
            return user

    def open_session(self, actor: Actor) -> Session:
        with self.lock:
            now = self.now()
            session = Session(new_token(), new_token(), actor, now, now + self.session_lifetime)
            self.sessions[session.token] = session
            return session

    def session(self, token: str) -> Session | None:
        with self.lock:
            found = self.sessions.get(token)
            if found is None or found.expires_at <= self.now():
                return None
            return found

    def end_session(self, token: str) -> None:
        with self.lock:
            self.sessions.pop(token, None)

    def app_user(self, token: str) -> Actor | None:
        with self.lock:
            return next((a for a in self.actors.values() if a.type == "field_key" and a.token == token), None)

    def create_app_user(self, project_id: int, display_name: str) -> Actor:
        with self.lock:
            project = self.project(project_id)
            actor = Actor(id=next(self._ids), type="field_key", display_name=display_name, token=new_token(),
                          project_id=project.id, created_at=self.now())
            self.actors[actor.id] = actor
            project.app_users.append(actor)
            return actor

    def assign(self, project_id: int, xml_form_id: str, actor: Actor | int) -> None:
        with self.lock:
            form = self.form(project_id, xml_form_id)
            actor_id = actor if isinstance(actor, int) else actor.id
            if actor_id not in self.actors:
                raise not_found()
            form.assigned.add(actor_id)

    # -- projects and forms -------------------------------------------------------------------------------------

    def create_project(self, name: str, *, description: str | None = None) -> Project:
        with self.lock:
            project = Project(id=next(self._project_ids), name=name, description=description, created_at=self.now())
            self.projects[project.id] = project
            self._touch()
            return project

    def project(self, project_id: int | str) -> Project:
        try:
            found = self.projects.get(int(project_id))
        except (TypeError, ValueError):
            found = None
        if found is None:
            raise not_found()
        return found

    def form(self, project_id: int | str, xml_form_id: str, *, deleted: bool = False) -> Form:
        found = self.project(project_id).forms.get(xml_form_id)
        if found is None or (found.deleted_at is not None) != deleted:
            raise not_found()
        return found

    def _def(self, project: Project, xml: str) -> FormDef:
        try:
            d = FormDef.from_xml(xml, self.now())
        except FormBuildError as exc:
            raise Problem(400.2, f"The XForm could not be read: {exc}") from None
        if project.key is not None and d.xform.public_key is None:  # managed encryption: every version encrypted
            d = self._encrypted_def(d, project.key)
        return d

    def _encrypted_def(self, d: FormDef, key: ManagedKey) -> FormDef:
        suffix = "".join(self._rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                         for _ in range(8))
        xml = inject_key(set_version(d.xml, f"{d.version}[encrypted:{suffix}]"), key.public)
        out = FormDef.from_xml(xml, self.now(), key_id=key.id)
        out.published_at, out.draft_token = d.published_at, d.draft_token
        return out

    def create_form(self, project_id: int, xml: str | bytes, *, publish: bool = True) -> Form:
        """A new form from its XForm: a draft, published at once with `publish` (409.3 if the id exists)."""
        text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
        with self.lock:
            project = self.project(project_id)
            d = self._def(project, text)
            form_id = d.xform.form_id
            if form_id.lower().endswith((".xml", ".xls", ".xlsx")):
                raise Problem(400.8, f"The form id '{form_id}' may not end in .xml, .xls or .xlsx.")
            if form_id in project.forms:
                raise Problem(409.3, f"A resource already exists with xmlFormId value(s) of {form_id}.",
                              {"fields": ["projectId", "xmlFormId"], "values": [project.id, form_id]})
            form = Form(id=next(self._form_ids), project=project, xml_form_id=form_id, created_at=self.now())
            d.draft_token = new_token()
            form.draft = d
            project.forms[form_id] = form
            if publish:
                self.publish(project.id, form_id)
            self._touch()
            return form

    def create_draft(self, project_id: int, xml_form_id: str, xml: str | bytes | None = None) -> FormDef:
        """A new draft: from `xml`, or (None / empty) a copy of the published version."""
        with self.lock:
            form = self.form(project_id, xml_form_id)
            text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
            if not text:
                if form.current is None:
                    raise not_found()
                text = form.current.xml
            d = self._def(form.project, text)
            if d.xform.form_id != form.xml_form_id:
                raise Problem(400.8, f"The form id in the XForm ({d.xform.form_id}) is not this form's "
                                     f"({form.xml_form_id}).")
            d.draft_token = new_token()
            form.draft = d
            form.updated_at = self.now()
            self._touch()
            return d

    def publish(self, project_id: int, xml_form_id: str, *, version: str | None = None) -> Form:
        """Publish the draft (optionally setting its version first); 409.6 if that version was published."""
        with self.lock:
            form = self.form(project_id, xml_form_id)
            draft = form.draft
            if draft is None:
                raise not_found()
            if version is not None:
                draft = FormDef.from_xml(set_version(draft.xml, version), draft.created_at, key_id=draft.key_id)
            if any(d.version == draft.version for d in form.published):
                raise Problem(409.6, f"The version '{draft.version}' of this form has already been published; "
                                     f"change the version to publish a new one.",
                              {"xmlFormId": form.xml_form_id, "version": draft.version})
            draft.published_at, draft.draft_token = self.now(), None
            form.published.append(draft)
            form.draft = None
            form.updated_at = draft.published_at if len(form.published) > 1 else None
            self._touch()
            return form

    def delete_form(self, project_id: int, xml_form_id: str) -> None:
        with self.lock:
            form = self.form(project_id, xml_form_id)
            form.deleted_at = self.now()
            self._touch()

    def restore_form(self, project_id: int, numeric_id: int) -> Form:
        with self.lock:
            form = next((f for f in self.project(project_id).forms.values() if f.id == numeric_id and f.deleted_at),
                        None)
            if form is None:
                raise not_found()
            form.deleted_at = None
            self._touch()
            return form

    def enable_encryption(self, project_id: int, passphrase: str, hint: str | None = None) -> Project:
        """Managed encryption for the whole project (§11): every form gets a new version with the key, suffixed
        `[encrypted:XXXXXXXX]`. The key is a stand-in: this fake never encrypts or decrypts."""
        if not isinstance(passphrase, str) or len(passphrase) < 10:
            raise Problem(400.8, "The passphrase must be at least 10 characters long.")
        with self.lock:
            project = self.project(project_id)
            if project.key is not None:
                return project
            now = self.now()
            key = ManagedKey(id=next(self._key_ids), public=base64.b64encode(secrets.token_bytes(294)).decode(),
                             passphrase=passphrase, hint=hint, created_at=now)
            self.keys[key.id] = key
            project.key, project.updated_at = key, now
            for form in project.forms.values():
                if form.current is not None:
                    d = self._encrypted_def(form.current, key)
                    d.published_at = self.now()
                    form.published.append(d)
                    form.updated_at = d.published_at
                if form.draft is not None:
                    form.draft = self._encrypted_def(form.draft, key)
            self._touch()
            return project

    # -- submissions --------------------------------------------------------------------------------------------

    def submit(self, project_id: int, xml: bytes | str, attachments: Mapping[str, bytes | Blob] | None = None, *,
               submitter: Actor | None = None, device_id: str | None = None, user_agent: str | None = None,
               when: dt.datetime | None = None, xml_form_id: str | None = None,
               cleartext: bytes | None = None) -> Submission:
        """An upload, as the OpenRosa endpoint takes it (§10): a new submission, an edit (with `deprecatedID`), or
        the same XML again with more attachments. `xml_form_id`: the form the URL names (REST), if any."""
        data = xml.encode("utf-8") if isinstance(xml, str) else xml
        files = {name: b if isinstance(b, Blob) else Blob(b, _content_type(name)) for name, b in
                 (attachments or {}).items()}
        try:
            parsed = read_submission(data)
        except BadSubmission as exc:
            raise Problem(400.2, f"The submission could not be read: {exc}") from None
        with self.lock:
            project = self.project(project_id)
            if xml_form_id is not None and parsed.form_id != xml_form_id:
                raise Problem(400.8, f"The form id in the submission ({parsed.form_id}) is not the form's "
                                     f"({xml_form_id}).")
            form = project.forms.get(parsed.form_id)
            if form is None or form.deleted_at is not None:
                raise Problem(404.1, "The form you are submitting to could not be found.")
            d = form.version_def(parsed.version)
            if d is None:
                raise Problem(404.6, f"The form version you are submitting to ({parsed.version or 'none'}) does "
                                     f"not exist on this server.", {"formVersion": parsed.version})
            if form.state == "closed":
                raise Problem(409.2, "This form is not accepting submissions.")
            if parsed.deprecated_id is not None:
                return self._edit(form, d, parsed, data, files, submitter, device_id, user_agent)
            existing = form.by_instance.get(parsed.instance_id)
            if existing is not None:
                return self._again(existing, parsed, data, files)
            now = utc(when) if when is not None else self.now()
            version = self._version(d, parsed, data, files, now, submitter, device_id, user_agent, cleartext)
            sub = Submission(id=next(self._submission_ids), form=form, created_at=now, versions=[version])
            form.submissions[sub.root_id] = sub
            form.by_instance[sub.root_id] = sub
            self._touch(sub)
            return sub

    def _version(self, d: FormDef, parsed: ParsedSubmission, data: bytes, files: Mapping[str, Blob],
                 now: dt.datetime, submitter: Actor | None, device_id: str | None, user_agent: str | None,
                 cleartext: bytes | None, previous: SubmissionVersion | None = None) -> SubmissionVersion:
        if parsed.encrypted:
            expected = [*parsed.media, *([parsed.encrypted_xml_file] if parsed.encrypted_xml_file else [])]
        else:
            expected = binary_values(parsed.root, d.xform)
        carried = previous.attachments if previous is not None else {}
        return SubmissionVersion(instance_id=parsed.instance_id, xml=data, parsed=parsed, created_at=now,
                                 submitter=submitter, device_id=device_id, user_agent=user_agent,
                                 form_version=d.version, cleartext=cleartext,
                                 attachments={n: files.get(n) or carried.get(n) for n in expected})

    def _again(self, sub: Submission, parsed: ParsedSubmission, data: bytes, files: Mapping[str, Blob]) -> Submission:
        if sub.deleted_at is not None:
            raise Problem(409.18, "This submission has been deleted. You may not resubmit it.")
        version = next(v for v in sub.versions if v.instance_id == parsed.instance_id)
        if version.xml != data:
            raise Problem(409.1, "A submission already exists with this ID, but with different XML. Resubmissions "
                                 "to attach additional multimedia must not change the submission XML itself.",
                          {"instanceId": parsed.instance_id})
        for name, blob in files.items():
            if name in version.attachments:
                version.attachments[name] = blob
        self._touch(sub)
        return sub

    def _edit(self, form: Form, d: FormDef, parsed: ParsedSubmission, data: bytes, files: Mapping[str, Blob],
              submitter: Actor | None, device_id: str | None, user_agent: str | None,
              root_id: str | None = None) -> Submission:
        sub = form.by_instance.get(parsed.deprecated_id or "")
        if sub is None or sub.deleted_at is not None or (root_id is not None and sub.root_id != root_id):
            raise Problem(404.5, "The submission this edits (its deprecatedID) could not be found.",
                          {"deprecatedId": parsed.deprecated_id})
        if sub.current.instance_id != parsed.deprecated_id:
            raise Problem(409.9, "The submission you are editing has since been edited: its deprecatedID is not "
                                 "the current version.", {"instanceId": parsed.deprecated_id})
        if parsed.instance_id in form.by_instance:
            raise Problem(409.1, "A submission already exists with this ID.", {"instanceId": parsed.instance_id})
        now = self.now()
        sub.versions.append(self._version(d, parsed, data, files, now, submitter, device_id, user_agent, None,
                                          previous=sub.current))
        form.by_instance[parsed.instance_id] = sub
        sub.review_state, sub.updated_at = "edited", now
        self._touch(sub)
        return sub

    def edit_xml(self, project_id: int, xml_form_id: str, root_id: str, xml: bytes | str, *,
                 submitter: Actor | None = None, attachments: Mapping[str, bytes] | None = None) -> Submission:
        """REST `PUT …/submissions/{rootId}` (§7): the XML must carry a deprecatedID (400.19)."""
        data = xml.encode("utf-8") if isinstance(xml, str) else xml
        try:
            parsed = read_submission(data)
        except BadSubmission as exc:
            raise Problem(400.2, f"The submission could not be read: {exc}") from None
        with self.lock:
            form = self.form(project_id, xml_form_id)
            self.submission(project_id, xml_form_id, root_id)
            if parsed.deprecated_id is None:
                raise Problem(400.19, "To edit a submission, its XML must carry a deprecatedID (meta/deprecatedID).")
            if parsed.form_id != form.xml_form_id:
                raise Problem(400.8, "The form id in the submission is not this form's.")
            d = form.version_def(parsed.version)
            if d is None:
                raise Problem(404.6, "The form version you are submitting to does not exist on this server.")
            files = {n: Blob(b, _content_type(n)) for n, b in (attachments or {}).items()}
            return self._edit(form, d, parsed, data, files, submitter, None, None, root_id=root_id)

    def submission(self, project_id: int, xml_form_id: str, root_id: str, *, deleted: bool = False) -> Submission:
        form = self.form(project_id, xml_form_id)
        sub = form.submissions.get(root_id)
        if sub is None or (sub.deleted_at is not None and not deleted):
            raise not_found()
        return sub

    def review(self, project_id: int, xml_form_id: str, root_id: str, state: Any) -> Submission:
        """PATCH reviewState (§9): any other value is 400.8 and changes nothing; every PATCH moves updatedAt."""
        with self.lock:
            sub = self.submission(project_id, xml_form_id, root_id)
            if state not in REVIEW_STATES:
                raise Problem(400.8, f"Unexpected reviewState value {state!r}; expected one of null, hasIssues, "
                                     f"edited, approved, rejected.", {"field": "reviewState", "value": state})
            sub.review_state, sub.updated_at = state, self.now()
            self._touch(sub)
            return sub

    def delete(self, project_id: int, xml_form_id: str, root_id: str) -> None:
        with self.lock:
            sub = self.submission(project_id, xml_form_id, root_id)
            sub.deleted_at = self.now()  # updatedAt stays (§8)
            self._touch(sub)

    def restore(self, project_id: int, xml_form_id: str, root_id: str) -> None:
        with self.lock:
            sub = self.submission(project_id, xml_form_id, root_id, deleted=True)
            if sub.deleted_at is None:
                raise not_found()
            sub.deleted_at = None
            self._touch(sub)

    def purge(self, *, force: bool = False) -> int:
        """Hard-delete submissions deleted more than 30 days ago (every deleted one with `force`, as Central's
        `lib/bin/purge.js --force`); nothing of them remains. Returns how many went."""
        with self.lock:
            limit = self.now() - PURGE_AFTER
            gone = 0
            for project in self.projects.values():
                for form in project.forms.values():
                    for root_id, sub in list(form.submissions.items()):
                        if sub.deleted_at is not None and (force or sub.deleted_at < limit):
                            del form.submissions[root_id]
                            for v in sub.versions:
                                form.by_instance.pop(v.instance_id, None)
                            gone += 1
            if gone:
                self._touch()
            return gone

    def add_attachment(self, project_id: int, xml_form_id: str, root_id: str, name: str, data: bytes,
                       content_type: str | None = None) -> None:
        with self.lock:
            sub = self.submission(project_id, xml_form_id, root_id)
            if name not in sub.current.attachments:
                raise not_found()
            sub.current.attachments[name] = Blob(data, content_type or _content_type(name))
            self._touch(sub)

    def remove_attachment(self, project_id: int, xml_form_id: str, root_id: str, name: str) -> None:
        with self.lock:
            sub = self.submission(project_id, xml_form_id, root_id)
            if sub.current.attachments.get(name) is None:
                raise not_found()
            sub.current.attachments[name] = None
            self._touch(sub)

    # -- loading data (tests, demos) -------------------------------------------------------------------------------

    def add_answers(self, project_id: int, xml_form_id: str, answers: Mapping[str, Any], *,
                    attachments: Mapping[str, bytes] | None = None, submitter: Actor | None = None,
                    when: dt.datetime | None = None, instance_id: str | None = None) -> Submission:
        """A submission from KoBo-shaped answers (fakes.generator's), turned into the XML Collect would send."""
        with self.lock:
            d = self._published(project_id, xml_form_id)
            xml = instance_xml(d.xform, answers, instance_id or self.new_instance_id())
            return self.submit(project_id, xml, attachments, submitter=submitter, when=when)

    def load(self, project_id: int, xml_form_id: str, generated: Iterable[Any]) -> list[Submission]:
        """fakes.generator's submissions, each sent by an app user named after its `submitted_by` (a public link
        for the anonymous ones) at its `submission_time`, with its attachments."""
        out = []
        with self.lock:
            by_name = {a.display_name: a for a in self.project(project_id).app_users}
            for g in generated:
                name = g.submitted_by or "Public link"
                actor = by_name.get(name)
                if actor is None:
                    actor = by_name[name] = self.create_app_user(project_id, name)
                    self.assign(project_id, xml_form_id, actor)
                out.append(self.add_answers(project_id, xml_form_id, g.answers, attachments=g.attachments,
                                            submitter=actor, when=g.submission_time))
        return out

    def edit(self, project_id: int, xml_form_id: str, root_id: str, changes: Mapping[str, Any], *,
             submitter: Actor | None = None) -> Submission:
        """An edit as Central's web form makes one: the current answers with `changes` applied (KoBo-shaped keys;
        None removes an answer), a new instanceID, deprecatedID = the current one."""
        with self.lock:
            sub = self.submission(project_id, xml_form_id, root_id)
            d = sub.form.version_def(sub.current.form_version) or self._published(project_id, xml_form_id)
            answers = answers_of(sub.current.parsed.root, d.xform)
            for key, value in changes.items():
                if value is None:
                    answers.pop(key, None)
                else:
                    answers[key] = value
            xml = instance_xml(d.xform, answers, self.new_instance_id(), deprecated_id=sub.current.instance_id,
                               version=d.version)
            return self.submit(project_id, xml, submitter=submitter or self.user)

    def add_encrypted(self, project_id: int, xml_form_id: str, answers: Mapping[str, Any] | None = None, *,
                      upload: bool = True, submitter: Actor | None = None,
                      when: dt.datetime | None = None) -> Submission:
        """An encrypted submission as a device sends it (§11): the envelope, and its `submission.xml.enc` unless
        `upload` is False (then Central shows `missingEncryptedFormData`). The payload is random bytes; the
        cleartext instance is kept beside it so that the CSV export can show it given the right passphrase."""
        with self.lock:
            d = self._published(project_id, xml_form_id)
            if d.xform.public_key is None:
                raise ValueError(f"form {xml_form_id} is not encrypted: turn on managed encryption first")
            instance_id = self.new_instance_id()
            cleartext = instance_xml(d.xform, answers or {}, instance_id)
            envelope = encrypted_envelope(d.xform, instance_id)
            files = {"submission.xml.enc": secrets.token_bytes(64 + len(cleartext) // 16 * 16)} if upload else {}
            return self.submit(project_id, envelope, files, submitter=submitter, when=when, cleartext=cleartext)

    def _published(self, project_id: int, xml_form_id: str) -> FormDef:
        d = self.form(project_id, xml_form_id).current
        if d is None:
            raise ValueError(f"form {xml_form_id} has no published version")
        return d


_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
          "mp3": "audio/mpeg", "m4a": "audio/mp4", "ogg": "audio/ogg", "wav": "audio/x-wav", "amr": "audio/amr",
          "mp4": "video/mp4", "3gp": "video/3gpp", "pdf": "application/pdf", "csv": "text/csv",
          "txt": "text/plain", "xml": "text/xml", "zip": "application/zip", "enc": "application/octet-stream"}


def _content_type(name: str) -> str:
    return _TYPES.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream") if "." in name else \
        "application/octet-stream"
