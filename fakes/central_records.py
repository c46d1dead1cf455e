"""The fake ODK Central's records: problems, times, tokens, actors and sessions, projects, forms, submissions.

Plain data with the JSON Central gives for each (reference §1, §2, §7, §10, §11); `fakes.central_store` keeps and
changes them under one lock.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fakes.central_forms import FormDef
from fakes.central_xml import ParsedSubmission

SESSION_LIFETIME = dt.timedelta(seconds=86400)  # config default sessionLifetime (reference §1.1)
PURGE_AFTER = dt.timedelta(days=30)  # PURGE_DAY_RANGE (§8)
REVIEW_STATES = (None, "hasIssues", "edited", "approved", "rejected")
NOT_FOUND = "Could not find the resource you were looking for."
NOT_ALLOWED = "The authenticated actor does not have rights to perform that action."
BAD_CREDENTIALS = "Could not authenticate with the provided credentials."


class Problem(Exception):
    """An answer Central gives instead: HTTP status = the integer part of `code` (reference §0)."""

    def __init__(self, code: float, message: str, details: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, dict(details) if details else None

    @property
    def status(self) -> int:
        return int(self.code)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out


def not_found() -> Problem:
    return Problem(404.1, NOT_FOUND)


def iso(t: dt.datetime | None) -> str | None:
    """Central's timestamps: ISO 8601 UTC with milliseconds, `2026-11-29T11:15:51.088Z`."""
    if t is None:
        return None
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def utc(t: dt.datetime) -> dt.datetime:
    """A datetime as Central stores it: aware UTC, truncated to the millisecond (a naive one is taken as UTC)."""
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def new_token() -> str:
    """64 characters of [A-Za-z0-9!$]: 48 random bytes in base64 with `/`→`!` and `+`→`$` (§1.1)."""
    return base64.b64encode(secrets.token_bytes(48)).decode().replace("/", "!").replace("+", "$")


class Clock:
    """UTC now, millisecond precision, strictly increasing; `offset` moves it (tests of expiry and purge)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()
        self._last: dt.datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            t = utc(dt.datetime.now(dt.UTC) + self.offset)
            if self._last is not None and t <= self._last:
                t = self._last + dt.timedelta(milliseconds=1)
            self._last = t
            return t

    def advance(self, delta: dt.timedelta) -> None:
        with self._lock:
            self.offset += delta


# -- records ----------------------------------------------------------------------------------------------------


@dataclass
class Actor:
    id: int
    type: str  # 'user' | 'field_key' | 'public_link'
    display_name: str
    created_at: dt.datetime
    email: str | None = None
    password: str | None = None
    token: str | None = None  # an app user's key
    project_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type, "displayName": self.display_name,
                               "createdAt": iso(self.created_at), "updatedAt": None, "deletedAt": None}
        if self.type == "user":
            out["email"] = self.email
        if self.type == "field_key":
            out.update(token=self.token, projectId=self.project_id)
        return out


@dataclass
class Session:
    token: str
    csrf: str
    actor: Actor
    created_at: dt.datetime
    expires_at: dt.datetime


@dataclass
class ManagedKey:
    id: int
    public: str
    passphrase: str
    hint: str | None
    created_at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "public": self.public, "managed": True, "hint": self.hint,
                "createdAt": iso(self.created_at)}


@dataclass
class Blob:
    data: bytes
    content_type: str


@dataclass
class SubmissionVersion:
    instance_id: str
    xml: bytes
    parsed: ParsedSubmission
    created_at: dt.datetime
    submitter: Actor | None
    device_id: str | None
    user_agent: str | None
    form_version: str
    attachments: dict[str, Blob | None]  # every expected file name → its bytes once uploaded
    cleartext: bytes | None = None  # an envelope the store built itself: the instance it stands for

    def as_json(self, *, current: bool, extended: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"instanceId": self.instance_id, "instanceName": self.parsed.instance_name,
                               "createdAt": iso(self.created_at),
                               "submitterId": self.submitter.id if self.submitter else None, "current": current,
                               "deviceId": self.device_id, "userAgent": self.user_agent}
        if extended:
            out["submitter"] = self.submitter.as_json() if self.submitter else None
        return out


@dataclass
class Submission:
    id: int
    form: Form
    created_at: dt.datetime
    versions: list[SubmissionVersion]  # oldest first; the last is current
    review_state: str | None = None
    updated_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    event: int = 0  # bumped by every create, edit, review, delete, restore: the ETag's stamp

    @property
    def root_id(self) -> str:
        return self.versions[0].instance_id

    @property
    def current(self) -> SubmissionVersion:
        return self.versions[-1]

    @property
    def submitter(self) -> Actor | None:
        return self.versions[0].submitter

    @property
    def encrypted(self) -> bool:
        return self.current.parsed.encrypted

    @property
    def edits(self) -> int:
        return len(self.versions) - 1

    def attachment_counts(self) -> tuple[int, int]:
        files = self.current.attachments
        return sum(1 for b in files.values() if b is not None), len(files)

    def status(self) -> str | None:
        """`notDecrypted` (the envelope's payload is uploaded) or `missingEncryptedFormData`; None if not encrypted."""
        if not self.encrypted:
            return None
        payload = self.current.parsed.encrypted_xml_file
        return "notDecrypted" if payload and self.current.attachments.get(payload) is not None \
            else "missingEncryptedFormData"

    def as_json(self, *, extended: bool = False) -> dict[str, Any]:
        first = self.versions[0]
        out: dict[str, Any] = {"instanceId": self.root_id, "submitterId": first.submitter.id if first.submitter
                               else None, "deviceId": first.device_id, "createdAt": iso(self.created_at),
                               "updatedAt": iso(self.updated_at), "reviewState": self.review_state,
                               "userAgent": first.user_agent, "deletedAt": iso(self.deleted_at),
                               "currentVersion": self.current.as_json(current=True, extended=extended)}
        if extended:
            out["submitter"] = first.submitter.as_json() if first.submitter else None
            out["formVersion"] = first.form_version
        return out


@dataclass
class Form:
    id: int
    project: Project
    xml_form_id: str
    created_at: dt.datetime
    published: list[FormDef] = field(default_factory=list)  # oldest first; the last is current
    draft: FormDef | None = None
    updated_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    state: str = "open"
    submissions: dict[str, Submission] = field(default_factory=dict)  # root instanceId → submission
    by_instance: dict[str, Submission] = field(default_factory=dict)  # every version's instanceId → submission
    assigned: set[int] = field(default_factory=set)  # app users' actor ids

    @property
    def current(self) -> FormDef | None:
        return self.published[-1] if self.published else None

    @property
    def shown(self) -> FormDef:
        """The definition the form's JSON describes: the published one, else the draft."""
        found = self.current or self.draft
        assert found is not None
        return found

    def version_def(self, version: str) -> FormDef | None:
        return next((d for d in reversed(self.published) if d.version == version), None)

    def as_json(self) -> dict[str, Any]:
        d = self.shown
        return {"projectId": self.project.id, "xmlFormId": self.xml_form_id, "state": self.state, "enketoId": None,
                "enketoOnceId": None, "createdAt": iso(self.created_at), "updatedAt": iso(self.updated_at),
                "webformsEnabled": False, "keyId": d.key_id, "version": d.version, "hash": d.hashes["hash"],
                "sha": d.hashes["sha"], "sha256": d.hashes["sha256"], "draftToken": self.draft.draft_token
                if self.draft else None, "publishedAt": iso(d.published_at), "name": d.xform.title or None}

    def def_json(self, d: FormDef) -> dict[str, Any]:
        return {**self.as_json(), "keyId": d.key_id, "version": d.version, "hash": d.hashes["hash"],
                "sha": d.hashes["sha"], "sha256": d.hashes["sha256"], "publishedAt": iso(d.published_at),
                "name": d.xform.title or None}

    def live(self) -> list[Submission]:
        return [s for s in self.submissions.values() if s.deleted_at is None]


@dataclass
class Project:
    id: int
    name: str
    created_at: dt.datetime
    description: str | None = None
    key: ManagedKey | None = None
    updated_at: dt.datetime | None = None
    forms: dict[str, Form] = field(default_factory=dict)
    app_users: list[Actor] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "archived": False,
                "keyId": self.key.id if self.key else None, "createdAt": iso(self.created_at),
                "updatedAt": iso(self.updated_at), "deletedAt": None}
