"""The fake KoBo server's memory: assets, versions, deployments, imports and submissions (thread-safe, one lock).

Spec: /work/shared/kobo-api.md. Uids carry KoBo's prefixes and alphabet (§0); submissions carry KoBo's system
keys in KoBo's order and types (§2); edits keep `_id`, rootUuid and `_submission_time` and change `_uuid` (§3);
deletes are hard (§4); validation statuses carry an int timestamp (§3); imports are asynchronous and a POSTed
deployment is archived unless `active` is sent (§6). Everything random comes from one generator seeded by
`seed`, so the same calls with the same seed give the same uids.

Documents are never changed in place: an edit or a review stores a new dict, so the server can serialize
what it read under the lock after letting the lock go.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import uuid as uuidlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import orjson

from common.errors import FormBuildError
from common.gcpause import gc_paused
from fakes.kobo_history import ADD, DELETE, MODIFY, LogEntry, ProjectHistory, entry_json, metadata_of
from fakes.kobo_query import Candidates, Query, sort_documents
from fakes.kobo_search import Node
from forms.content import TRANSLATABLE
from forms.schema import FormSchema, Kind
from forms.types import TYPES

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # shortuuid, KpiUidField (§0)
_UID_BYTES = bytes(ord(ALPHABET[b % len(ALPHABET)]) for b in range(256))  # a random byte → a uid character
VALIDATION_STATUSES = {"validation_status_not_approved": "Not Approved",  # DEFAULT_VALIDATION_STATUSES (§2)
                       "validation_status_approved": "Approved",
                       "validation_status_on_hold": "On Hold"}
MEDIA_TYPES = frozenset(t.name for t in TYPES.values() if t.media)  # answers that are files: attachments
MIMETYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
             "mp3": "audio/mpeg", "m4a": "audio/mp4", "ogg": "audio/ogg", "wav": "audio/x-wav", "amr": "audio/amr",
             "mp4": "video/mp4", "3gp": "video/3gpp", "pdf": "application/pdf", "csv": "text/csv",
             "txt": "text/plain", "xml": "text/xml", "zip": "application/zip"}
SYSTEM_KEYS = frozenset({"_id", "_uuid", "_xform_id_string", "_attachments", "_status", "_geolocation",
                         "_submission_time", "_validation_status", "_submitted_by", "_tags", "_notes",
                         "_userform_id", "_supplementalDetails"})
KOBO_TIME = "%Y-%m-%dT%H:%M:%S"  # MONGO_STRFTIME
UNDEPLOYED = {"detail": "The specified asset has not been deployed"}
INVALID_IDS = {"detail": "One or more submission ids are invalid"}


class KoboApiError(Exception):
    """What KoBo answers instead: HTTP `status` with JSON `body` (None: Django's HTML 500 page)."""

    def __init__(self, status: int, body: Any):
        super().__init__(f"{status} {body}")
        self.status, self.body = status, body


class NotFound(KoboApiError):
    def __init__(self, detail: str = "Not found."):
        super().__init__(404, {"detail": detail})


class KoboImportRefused(ValueError):
    """What KoBo's importer refuses in a form pyxform may accept (forms.content.kobo_refusals)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


class DoesNotExist(LookupError):
    """Django's `Asset.DoesNotExist`, as an import task reports it (`messages.error_type`)."""


def iso(t: dt.datetime) -> str:
    """DRF's datetime format: `2026-03-01T08:30:00.600000Z`."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def kobo_time(t: dt.datetime) -> str:
    """`_submission_time`: UTC, second precision, no zone (§2); a naive datetime is taken as UTC."""
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t.replace(microsecond=0).isoformat()


# -- records --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Version:
    uid: str
    content: dict[str, Any]
    content_hash: str
    date_modified: dt.datetime
    date_deployed: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class FormFacts:
    """What the store needs to know of one form version: its geopoints outside repeats, its media questions."""

    geopoints: tuple[str, ...] = ()
    media: frozenset[str] = frozenset()
    top_media: tuple[str, ...] = ()  # media questions outside repeats, in form order


@dataclass(slots=True)
class Attachment:
    id: int
    uid: str
    submission_id: int
    basename: str
    mimetype: str
    content: bytes | None  # None: the device's file is not kept; a placeholder is served


@dataclass(slots=True)
class Asset:
    uid: str
    name: str
    asset_type: str
    owner: str
    settings: dict[str, Any]
    date_created: dt.datetime
    date_modified: dt.datetime
    versions: list[Version] = field(default_factory=list)  # oldest first
    has_deployment: bool = False
    active: bool = False
    deployed_version_id: str | None = None
    date_deployed: dt.datetime | None = None
    deployment_uuid: str | None = None
    last_submission_time: dt.datetime | None = None
    submissions: dict[int, dict[str, Any]] = field(default_factory=dict)  # _id → document, in _id order
    id_keys: list[tuple[int]] = field(default_factory=list)  # sorted (_id,)
    time_keys: list[tuple[str, int]] | None = None  # sorted (_submission_time, _id), built when first needed
    by_root: dict[str, int] = field(default_factory=dict)  # rootUuid without 'uuid:' → _id
    attachments: dict[str, Attachment] = field(default_factory=dict)  # attachment uid → file
    facts: dict[str, FormFacts] = field(default_factory=dict)  # version uid → facts
    history: ProjectHistory = field(default_factory=ProjectHistory)  # submission actions, oldest first
    manage_asset: bool = True  # may the token's account read the project history? (owners may)

    @property
    def version_id(self) -> str | None:
        return self.versions[-1].uid if self.versions else None

    @property
    def content(self) -> dict[str, Any]:
        return self.versions[-1].content if self.versions else {}

    def version(self, vuid: str) -> Version:
        for v in self.versions:
            if v.uid == vuid:
                return v
        raise NotFound()

    @property
    def deployment_status(self) -> str:
        if self.asset_type != "survey":
            return "-"
        if not self.has_deployment:
            return "draft"
        return "deployed" if self.active else "archived"

    def by_time(self) -> list[tuple[str, int]]:
        if self.time_keys is None:
            with gc_paused():
                self.time_keys = sorted((d["_submission_time"], i) for i, d in self.submissions.items())
        return self.time_keys


@dataclass(slots=True)
class ImportTask:
    uid: str
    data: bytes
    filename: str
    library: bool
    destination_uid: str | None
    date_created: dt.datetime
    status: str = "processing"
    messages: dict[str, Any] = field(default_factory=dict)
    polls: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    count: int
    results: list[dict[str, Any]]


# -- content and answers ----------------------------------------------------------------------------------------


def normalize_content(content: Mapping[str, Any]) -> dict[str, Any]:
    """KoBo's stored shape of `content` (§5): schema "1", survey/choices/settings, `translations` (`[None]` when
    untranslated) and translated columns as lists aligned with it."""
    out = orjson.loads(orjson.dumps(content))
    out.setdefault("schema", "1")
    for key, default in (("survey", []), ("choices", []), ("settings", {})):
        if out.get(key) is None:
            out[key] = default
    translations = out.get("translations") or [None]
    out["translations"] = translations
    translated = set(out.get("translated") or ())
    for row in [*out["survey"], *out["choices"]]:
        for column in TRANSLATABLE:
            value = row.get(column)
            if isinstance(value, str):
                row[column] = [value, *([None] * (len(translations) - 1))]
            if isinstance(row.get(column), list):
                translated.add(column)
    out["translated"] = sorted(translated)
    return out


def _text(value: Any) -> str | None:
    """An answer as the XML carries it: text; unanswered (None, "") is left out (§2)."""
    if type(value) is str:
        return value or None
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) or None


def clean_answers(answers: Mapping[str, Any]) -> dict[str, Any]:
    """Answers as KoBo stores them: strings, repeats as lists of dicts, nothing empty, no system keys (§2)."""
    out: dict[str, Any] = {}
    for key, value in answers.items():
        kind = type(value)
        if key in SYSTEM_KEYS:
            continue
        if kind is str:
            if value:
                out[key] = value
        elif kind is list or kind is tuple:
            items = [item for item in (clean_answers(i) for i in value if type(i) is dict or isinstance(i, Mapping))
                     if item]
            if items:
                out[key] = items
        elif isinstance(value, Mapping):
            raise ValueError(f"answer '{key}' is an object: KoBo answers are flat 'group/question' keys")
        else:
            text = _text(value)
            if text is not None:
                out[key] = text
    return out


def _is_answer_key(key: str) -> bool:
    return not (key in SYSTEM_KEYS or key == "formhub/uuid" or key == "__version__" or key.startswith("meta/"))


def answer_paths(doc: Mapping[str, Any], values: AbstractSet[str] = frozenset(),
                 paths: AbstractSet[str] | None = None) -> list[tuple[str, str]]:
    """(question path, text) of the answers, repeats included, in document order: all of them, or (with
    `values`/`paths`) those whose text is in `values` or whose path is in `paths`."""
    out: list[tuple[str, str]] = []
    _collect(doc, values, paths, out)
    return out


def _collect(doc: Mapping[str, Any], values: AbstractSet[str], paths: AbstractSet[str] | None,
             out: list[tuple[str, str]]) -> None:
    for key, value in doc.items():
        kind = type(value)
        if kind is str:
            if (paths is None or value in values or key in paths) and _is_answer_key(key):
                out.append((key, value))
        elif kind is list and _is_answer_key(key):
            for item in value:
                if type(item) is dict:
                    _collect(item, values, paths, out)


def form_facts(content: Mapping[str, Any]) -> FormFacts:
    try:
        schema = FormSchema.from_content(content)
    except FormBuildError:
        return FormFacts()
    return FormFacts(
        geopoints=tuple(f.path for f in schema.fields if f.kind is Kind.GEOPOINT and f.repeat is None),
        media=frozenset(f.path for f in schema.fields if f.type in MEDIA_TYPES),
        top_media=tuple(f.path for f in schema.fields if f.type in MEDIA_TYPES and f.repeat is None),
    )


def geolocation(doc: Mapping[str, Any], facts: FormFacts) -> list[float | None]:
    """`_geolocation`: [lat, lng] of the first answered geopoint outside repeats, else [null, null] (§2)."""
    for path in facts.geopoints:
        parts = str(doc.get(path, "")).split()
        try:
            return [float(parts[0]), float(parts[1])]
        except (IndexError, ValueError):
            continue
    return [None, None]


def mimetype(basename: str) -> str:
    return MIMETYPES.get(basename.rsplit(".", 1)[-1].lower(), "application/octet-stream")


# -- the store ----------------------------------------------------------------------------------------------------


class KoboStore:
    """Everything the fake KoBo server holds. Every public method takes the lock."""

    def __init__(self, *, seed: int = 0, owner: str = "amina_demo", base_url: str = "http://127.0.0.1",
                 clock: Callable[[], dt.datetime] | None = None):
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.owner = owner
        self.base_url = base_url  # absolute URLs (attachments, assets) start with it; the server sets it
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.assets: dict[str, Asset] = {}
        self.imports: dict[str, ImportTask] = {}
        self._next_id = 1  # logger_instance.id: server-wide, increasing, never reused
        self._next_attachment_id = 1
        self.history_lookback_days = 30  # the plan's LOG_LOOKBACK_DAYS: how far back the history is listed

    # -- identifiers (§0) -----------------------------------------------------------------------------------

    def _uid(self, prefix: str) -> str:
        """prefix + 21 characters of the shortuuid alphabet, from the seeded generator."""
        return prefix + self.rng.randbytes(21).translate(_UID_BYTES).decode("ascii")

    def _uuid4(self) -> str:
        return str(uuidlib.UUID(int=self.rng.getrandbits(128), version=4))

    def now(self) -> dt.datetime:
        return self.clock()

    # -- assets (§5) ------------------------------------------------------------------------------------------

    def create_asset(self, name: str, content: Mapping[str, Any], *, owner: str | None = None,
                     asset_type: str = "survey", settings: Mapping[str, Any] | None = None) -> str:
        """A new asset with one version of `content` (POST /api/v2/assets/); returns its uid."""
        with self.lock:
            now = self.now()
            asset = Asset(uid=self._uid("a"), name=name, asset_type=asset_type, owner=owner or self.owner,
                          settings=dict(settings or {}), date_created=now, date_modified=now)
            self._save_content(asset, content)
            self.assets[asset.uid] = asset
            return asset.uid

    def _save_content(self, asset: Asset, content: Mapping[str, Any]) -> Version:
        """Every content save makes a new version (`Asset.version_id` changes, §5)."""
        stored = normalize_content(content)
        digest = hashlib.sha1(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS)).hexdigest()
        version = Version(uid=self._uid("v"), content=stored, content_hash=digest, date_modified=self.now())
        asset.versions.append(version)
        asset.date_modified = version.date_modified
        return version

    def replace_content(self, uid: str, content: Mapping[str, Any]) -> str:
        """Save new content for an asset (a new, undeployed version); returns the version uid."""
        with self.lock:
            return self._save_content(self.asset(uid), content).uid

    def asset(self, uid: str) -> Asset:
        """The internal record of an asset (`.version_id`, `.content`, `.deployed_version_id`, …); the API's
        JSON is `asset_detail(uid)`."""
        asset = self.assets.get(uid)
        if asset is None:
            raise NotFound()
        return asset

    # -- imports (§6 option A) -------------------------------------------------------------------------------

    def import_xlsform(self, data: bytes, filename: str, *, library: bool = True,
                       destination_uid: str | None = None) -> str:
        """Queue an XLSForm import; returns the import uid. Like KoBo's Celery task it is still `processing` at
        the first poll; the work is done, and its result shown, at the next one."""
        with self.lock:
            task = ImportTask(uid=self._uid("i"), data=data, filename=filename, library=library,
                              destination_uid=destination_uid, date_created=self.now())
            self.imports[task.uid] = task
            return task.uid

    def import_status(self, import_uid: str) -> dict[str, Any]:
        """`GET /api/v2/imports/{uid}/`: `processing` first, then `complete` or `error` with `messages`."""
        with self.lock:
            task = self.imports.get(import_uid)
            if task is None:
                raise NotFound()
            task.polls += 1
            if task.status == "processing" and task.polls > 1:
                self._run_import(task)
            return {"url": f"{self.base_url}/api/v2/imports/{task.uid}/", "status": task.status,
                    "messages": task.messages, "uid": task.uid, "date_created": iso(task.date_created)}

    def _run_import(self, task: ImportTask) -> None:
        from forms.content import kobo_refusals, to_content
        from forms.source import read_xlsx

        try:
            content = to_content(read_xlsx(task.data, task.filename))
            refused = kobo_refusals(content)
            if refused:
                error_type, message = refused[0]
                raise KoboImportRefused(error_type, message)
            if task.destination_uid:
                asset = self.assets.get(task.destination_uid)
                if asset is None:
                    raise DoesNotExist("Asset matching query does not exist.")
                version = self._save_content(asset, content)
                task.messages = {"updated": [self._import_summary(asset)],
                                 "audit_logs": [{"asset_uid": asset.uid, "latest_version_uid": version.uid,
                                                 "ip_address": "127.0.0.1", "source": "fake KoBo",
                                                 "old_name": asset.name, "new_name": asset.name}]}
            else:
                asset = self.assets[self.create_asset(self._import_name(content, task.filename), content,
                                                      asset_type=self._import_type(content, task.library))]
                task.messages = {"created": [self._import_summary(asset)]}
            task.status = "complete"
        except KoboImportRefused as exc:
            task.messages = {"error_type": exc.error_type, "error": str(exc)}
            task.status = "error"
        except Exception as exc:  # the task boundary: KoBo records any failure as error_type/error
            task.messages = {"error_type": type(exc).__name__, "error": str(exc)}
            task.status = "error"
        task.data = b""

    @staticmethod
    def _import_type(content: Mapping[str, Any], library: bool) -> str:
        """`library` (the default!) makes a `block` (more than one survey row) or a `question`, not a survey."""
        if not library:
            return "survey"
        return "block" if len(content.get("survey") or []) > 1 else "question"

    @staticmethod
    def _import_name(content: Mapping[str, Any], filename: str) -> str:
        title = (content.get("settings") or {}).get("form_title")
        return str(title) if title else PurePath(filename).stem

    def _import_summary(self, asset: Asset) -> dict[str, Any]:
        return {"uid": asset.uid, "summary": self._summary(asset), "kind": "asset",
                "owner__username": asset.owner}

    # -- deployment (§6) ------------------------------------------------------------------------------------

    def deploy(self, uid: str, *, active: bool = False, version_id: str | None = None) -> dict[str, Any]:
        """`POST …/deployment/`. `active` defaults to False: the form is deployed archived, as in KoBo."""
        with self.lock:
            asset = self.asset(uid)
            if asset.has_deployment:
                raise KoboApiError(405, {"detail": "Use PATCH to update an existing deployment"})
            if asset.asset_type != "survey":
                raise KoboApiError(500, None)  # BadAssetTypeException
            if version_id is not None and version_id != asset.version_id:
                raise KoboApiError(500, None)  # NotImplementedError: only the current version can be deployed
            self._check_form(asset)
            asset.has_deployment = True
            asset.deployment_uuid = f"{self.rng.getrandbits(128):032x}"
            self._deploy_latest(asset, active)
            return self.deployment(uid)

    def redeploy(self, uid: str, *, version_id: str | None = None, active: bool | None = None) -> dict[str, Any]:
        """`PATCH …/deployment/`: with `version_id` (which must be the current `version_id`, else 500) the latest
        content is deployed again; with `active` alone the deployment is archived or unarchived."""
        with self.lock:
            asset = self.asset(uid)
            if not asset.has_deployment:
                raise KoboApiError(405, {"detail": "Use POST to create a new deployment"})
            if version_id is not None:
                if version_id != asset.version_id:
                    raise KoboApiError(500, None)
                self._check_form(asset)
                self._deploy_latest(asset, asset.active if active is None else active)
            elif active is not None:
                asset.active = active
            return self.deployment(uid)

    def _check_form(self, asset: Asset) -> None:
        try:
            FormSchema.from_content(asset.content)
        except FormBuildError as exc:
            raise KoboApiError(400, {"error": str(exc)}) from exc

    def _deploy_latest(self, asset: Asset, active: bool) -> None:
        version = asset.versions[-1]
        now = self.now()
        version.date_deployed = now
        asset.deployed_version_id = version.uid
        asset.date_deployed = now
        asset.date_modified = now
        asset.active = active

    def deployment(self, uid: str) -> dict[str, Any]:
        """`GET …/deployment/` (404 when not deployed)."""
        with self.lock:
            asset = self.asset(uid)
            if not asset.has_deployment:
                raise NotFound()
            return {"backend": "openrosa", "active": asset.active, "version_id": asset.deployed_version_id,
                    "asset": self.asset_detail(uid)}

    def _facts(self, asset: Asset, version_uid: str | None) -> FormFacts:
        known = {v.uid: v for v in asset.versions}
        vuid = version_uid if version_uid in known else asset.deployed_version_id
        if vuid is None or vuid not in known:
            return FormFacts()
        if vuid not in asset.facts:
            asset.facts[vuid] = form_facts(known[vuid].content)
        return asset.facts[vuid]

    # -- submissions (§2) ----------------------------------------------------------------------------------

    def require_deployment(self, uid: str) -> Asset:
        """The asset, which must be deployed: KoBo's data endpoints answer 400 otherwise (§0)."""
        asset = self.asset(uid)
        if not asset.has_deployment:
            raise KoboApiError(400, UNDEPLOYED)
        return asset

    def add_submission(self, uid: str, answers: Mapping[str, Any], *, submission_time: dt.datetime | None = None,
                       submitted_by: str | None = None, attachments: Mapping[str, bytes] | None = None,
                       version_uid: str | None = None) -> dict[str, Any]:
        """Store one submission as KoBo does after an OpenRosa POST; returns the document.

        `answers` are keyed as KoBo returns them (flat `group/q`, repeats as lists of dicts keyed by full
        paths). `attachments` maps file basenames to bytes: each one whose basename is an answer becomes an
        `_attachments` item. Left out (None), every answer to a media question (image, audio, …) gets one,
        served as a placeholder file. The form must be deployed and active (else 400 / 405 as KoBo).
        """
        with self.lock:
            asset = self._accepting(uid)
            doc = self._insert(asset, answers, submission_time, submitted_by, attachments, version_uid)
            asset.time_keys = None
            return doc

    def add_submissions(self, uid: str, items: Iterable[Any]) -> list[int]:
        """Bulk `add_submission`; each item is a mapping of answers, or an object with `answers` and optionally
        `submission_time`, `submitted_by`, `attachments`, `version_uid`. Returns the new `_id`s, in the order of
        `items`.

        The batch is received as a server receives submissions: in order of their `submission_time` (KoBo gives
        `_id` and `_submission_time` when it saves the submission (kobo-api.md §9), so the two rise together; only a
        back-dated import breaks that, and `add_submission` with an earlier time does it one at a time)."""
        with self.lock, gc_paused():
            asset = self._accepting(uid)
            batch = list(items)
            now = self.now()

            def received(index: int) -> dt.datetime:
                item = batch[index]
                when = None if isinstance(item, Mapping) else getattr(item, "submission_time", None)
                when = when or now
                return when if when.tzinfo else when.replace(tzinfo=dt.UTC)

            ids: list[int] = [0] * len(batch)
            try:
                for index in sorted(range(len(batch)), key=received):
                    item = batch[index]
                    if isinstance(item, Mapping):
                        doc = self._insert(asset, item, None, None, None, None)
                    else:
                        doc = self._insert(asset, item.answers, getattr(item, "submission_time", None),
                                           getattr(item, "submitted_by", None), getattr(item, "attachments", None),
                                           getattr(item, "version_uid", None))
                    ids[index] = doc["_id"]
            finally:
                asset.time_keys = None
            return ids

    def _accepting(self, uid: str) -> Asset:
        asset = self.require_deployment(uid)
        if not asset.active:
            raise KoboApiError(405, {"detail": "Form is not active"})  # OpenRosa: archived forms refuse data
        return asset

    def _insert(self, asset: Asset, answers: Mapping[str, Any], when: dt.datetime | None, submitted_by: str | None,
                files: Mapping[str, bytes] | None, version_uid: str | None) -> dict[str, Any]:
        clean = clean_answers(answers)
        meta = {k: clean.pop(k) for k in [k for k in clean if k.startswith("meta/")]}
        instance_id = meta.pop("meta/instanceID", None) or f"uuid:{self._uuid4()}"
        root_uuid = meta.pop("meta/rootUuid", None) or instance_id
        bare_root = root_uuid.removeprefix("uuid:")
        version = version_uid or clean.pop("__version__", None) or asset.deployed_version_id
        clean.pop("__version__", None)
        doc: dict[str, Any] = {"formhub/uuid": clean.pop("formhub/uuid", asset.deployment_uuid), **clean,
                               "__version__": version, "meta/instanceID": instance_id, **meta}
        sid = self._next_id
        self._next_id += 1
        facts = self._facts(asset, version)
        when = when or self.now()
        doc.update({
            "_xform_id_string": asset.uid,
            "_uuid": instance_id.removeprefix("uuid:"),
            "meta/rootUuid": root_uuid,
            "_id": sid,
            "_attachments": self._attachments(asset, doc, sid, facts, files, {}),
            "_status": "submitted_via_web",
            "_geolocation": geolocation(doc, facts),
            "_submission_time": kobo_time(when),
            "_validation_status": {},
            "_submitted_by": submitted_by,
        })
        asset.submissions[sid] = doc
        asset.id_keys.append((sid,))
        asset.by_root.setdefault(bare_root, sid)  # a (legacy) double upload: lookups find the first
        asset.history.record(self.now(), ADD, bare_root, submitted_by, submitted_by or "AnonymousUser")
        asset.last_submission_time = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        return doc

    def _attachments(self, asset: Asset, doc: Mapping[str, Any], sid: int, facts: FormFacts,
                     files: Mapping[str, bytes] | None, keep: Mapping[str, Attachment]) -> list[dict[str, Any]]:
        """`_attachments` (§2): one item per attached file whose basename is an answer, in document order."""
        media = facts.media if files is None else frozenset()
        if not keep and not files and not media:
            return []
        found = self._attached_answers(doc, facts, keep.keys() | (files or {}).keys(), media)
        items, seen = [], set()
        for xpath, value in found:
            if value in seen:
                continue
            if value in keep:
                att = keep[value]
            elif files is not None and value in files:
                att = self._new_attachment(asset, sid, value, files[value])
            elif xpath in media:
                att = self._new_attachment(asset, sid, value, None)
            else:
                continue
            seen.add(value)
            items.append(self._attachment_json(asset, doc, sid, att, xpath))
        return items

    @staticmethod
    def _attached_answers(doc: Mapping[str, Any], facts: FormFacts, names: AbstractSet[str],
                          media: AbstractSet[str]) -> list[tuple[str, str]]:
        """(path, basename) of the answers naming a file. Files usually answer media questions outside repeats:
        look there first, and walk the whole document only if some file is not found there."""
        if not media:
            found = [(p, v) for p in facts.top_media if (v := doc.get(p)) in names and type(v) is str]
            if names <= {v for _, v in found}:
                return found
        return answer_paths(doc, names, media)

    def _new_attachment(self, asset: Asset, sid: int, basename: str, content: bytes | None) -> Attachment:
        att = Attachment(id=self._next_attachment_id, uid=self._uid("att"), submission_id=sid, basename=basename,
                         mimetype=mimetype(basename), content=content)
        self._next_attachment_id += 1
        asset.attachments[att.uid] = att
        return att

    def _attachment_json(self, asset: Asset, doc: Mapping[str, Any], sid: int, att: Attachment,
                         xpath: str) -> dict[str, Any]:
        url = f"{self.base_url}/api/v2/assets/{asset.uid}/data/{sid}/attachments/{att.uid}/"
        root = str(doc.get("meta/rootUuid") or doc["meta/instanceID"]).removeprefix("uuid:")
        item: dict[str, Any] = {
            "download_url": url, "mimetype": att.mimetype,
            "filename": f"{asset.owner}/attachments/{doc.get('formhub/uuid')}/{root}/{att.basename}",
            "media_file_basename": att.basename, "uid": att.uid, "is_deleted": False,
        }
        if att.mimetype.startswith("image/"):
            for size in ("large", "medium", "small"):
                item[f"download_{size}_url"] = f"{url}{size}/"
        item["question_xpath"] = xpath
        return item

    def attachment(self, uid: str, submission: int | str, attachment: int | str) -> tuple[Attachment, bytes]:
        """A submission's attached file (by attachment uid or int id) and its bytes."""
        with self.lock:
            doc = self.submission(uid, submission)
            asset = self.asset(uid)
            for item in doc.get("_attachments", []):
                att = asset.attachments.get(item["uid"])
                if att is not None and str(attachment) in (att.uid, str(att.id)):
                    content = att.content
                    if content is None:
                        content = f"placeholder for {att.basename} of submission {doc['_id']}\n".encode()
                    return att, content
            raise NotFound()

    def submissions(self, uid: str) -> list[dict[str, Any]]:
        """Every submission of an asset, in `_id` order."""
        with self.lock:
            return list(self.asset(uid).submissions.values())

    def submission(self, uid: str, key: int | str) -> dict[str, Any]:
        """One submission by `_id`, or by rootUuid (with or without `uuid:`), else by `_uuid` (§1)."""
        with self.lock:
            asset = self.require_deployment(uid)
            text = str(key)
            if text.isdigit() and int(text) in asset.submissions:
                return asset.submissions[int(text)]
            bare = text.removeprefix("uuid:")
            if bare in asset.by_root:
                return asset.submissions[asset.by_root[bare]]
            for doc in asset.submissions.values():
                if doc.get("_uuid") == bare:
                    return doc
            raise NotFound()

    def query_submissions(self, uid: str, *, query: Query | Mapping[str, Any] | None = None,
                          sort: list[tuple[str, int]] | None = None, start: int = 0,
                          limit: int | None = None) -> Page:
        """`count` and one page of the submissions matching `query`, in `sort` order (default `_id` ascending).

        Sorted on `_id`, or on `_submission_time` (then `_id`), a page is found by bisection in an index; other
        orders filter and sort in full."""
        query = query if isinstance(query, Query) else Query(query)
        order = list(sort or [("_id", 1)])
        with self.lock, gc_paused():  # no collector passes over the documents while sorting
            asset = self.require_deployment(uid)
            fields, keys = self._index_for(asset, order)
            if keys is None:
                found = query.candidates(("_id",), asset.id_keys)
                docs = [asset.submissions[asset.id_keys[p][0]] for p in found.positions()]
                docs = sort_documents([d for d in docs if query(d)] if not found.exact else docs, order)
                end = None if limit is None else start + limit
                return Page(len(docs), docs[start:end])
            found = query.candidates(fields, keys)
            return self._page(asset, keys, found, query, start, limit, reverse=order[0][1] < 0)

    @staticmethod
    def _index_for(asset: Asset, order: list[tuple[str, int]]) -> tuple[tuple[str, ...], list[Any] | None]:
        if len(order) == 1 and order[0][0] == "_id":
            return ("_id",), asset.id_keys
        if order[0][0] == "_submission_time" and (
                len(order) == 1 or (len(order) == 2 and order[1] == ("_id", order[0][1]))):
            return ("_submission_time", "_id"), asset.by_time()
        return (), None

    @staticmethod
    def _page(asset: Asset, keys: list[Any], found: Candidates, query: Query, start: int, limit: int | None,
              *, reverse: bool) -> Page:
        if found.exact:
            positions = found.page(start, limit, reverse=reverse)
            return Page(found.size, [asset.submissions[keys[p][-1]] for p in positions])
        count, results = 0, []
        for p in found.positions(reverse=reverse):
            doc = asset.submissions[keys[p][-1]]
            if query(doc):
                if count >= start and (limit is None or len(results) < limit):
                    results.append(doc)
                count += 1
        return Page(count, results)

    def edit_submission(self, uid: str, submission_id: int | str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """An edit (§3): same `_id`, rootUuid, `_submission_time`, `_submitted_by` and validation status; a new
        `_uuid`/`meta/instanceID`; `meta/deprecatedID` = the previous instanceID. A None value removes an answer;
        keys under `formhub`, `meta`, `__version__` and system keys are ignored, as in a bulk edit."""
        with self.lock:
            asset = self.require_deployment(uid)
            old = self.submission(uid, submission_id)
            answers = {k: v for k, v in old.items() if _is_answer_key(k)}
            answers.update({k: v for k, v in changes.items() if _is_answer_key(k) and not k.startswith("formhub")})
            clean = clean_answers(answers)
            instance_id = f"uuid:{self._uuid4()}"
            meta = {k: v for k, v in old.items()
                    if k.startswith("meta/") and k not in ("meta/instanceID", "meta/deprecatedID", "meta/rootUuid")}
            doc: dict[str, Any] = {"formhub/uuid": old.get("formhub/uuid"), **clean,
                                   "__version__": old.get("__version__"), "meta/instanceID": instance_id,
                                   "meta/deprecatedID": old["meta/instanceID"], **meta}
            sid = old["_id"]
            files = [asset.attachments[i["uid"]] for i in old["_attachments"] if i["uid"] in asset.attachments]
            kept = {a.basename: a for a in files}
            facts = self._facts(asset, doc["__version__"])
            doc["_xform_id_string"] = old["_xform_id_string"]
            doc["_uuid"] = instance_id.removeprefix("uuid:")
            doc["meta/rootUuid"] = old["meta/rootUuid"]
            doc["_id"] = sid
            doc["_attachments"] = self._attachments(asset, doc, sid, facts, None, kept)
            used = {a["uid"] for a in doc["_attachments"]}
            for att in kept.values():
                if att.uid not in used:
                    del asset.attachments[att.uid]
            doc["_status"] = old["_status"]
            doc["_geolocation"] = geolocation(doc, facts)
            for key in ("_submission_time", "_validation_status", "_submitted_by"):
                doc[key] = old[key]
            asset.submissions[sid] = doc
            asset.history.record(self.now(), MODIFY, doc["meta/rootUuid"], doc["_submitted_by"], self.owner)
            return doc

    def delete_submissions(self, uid: str, ids: Iterable[int | str]) -> int:
        """Hard delete (§4): all the ids must belong to the asset, or nothing is deleted (400)."""
        with self.lock:
            asset = self.require_deployment(uid)
            wanted = self._ids(asset, ids)
            for sid in wanted:
                doc = asset.submissions.pop(sid)
                del asset.id_keys[bisect_left(asset.id_keys, (sid,))]
                root = str(doc["meta/rootUuid"]).removeprefix("uuid:")
                if asset.by_root.get(root) == sid:
                    del asset.by_root[root]
                for item in doc.get("_attachments", []):
                    asset.attachments.pop(item["uid"], None)
                asset.history.record(self.now(), DELETE, str(doc["meta/rootUuid"]), doc.get("_submitted_by"),
                                     self.owner)
            asset.time_keys = None
            return len(wanted)

    def set_validation_status(self, uid: str, ids: Iterable[int | str], status_uid: str | None, *,
                              by_whom: str) -> None:
        """Set (or, with None, clear to `{}`) the validation status of submissions (§3), timestamp in int seconds."""
        with self.lock:
            asset = self.require_deployment(uid)
            wanted = self._ids(asset, ids)
            if status_uid is not None and status_uid not in VALIDATION_STATUSES:
                raise KoboApiError(400, {"detail": f"Invalid validation status: `{status_uid}`"})
            status = {} if status_uid is None else {
                "timestamp": int(self.now().timestamp()), "uid": status_uid, "by_whom": by_whom,
                "label": VALIDATION_STATUSES[status_uid]}
            label = VALIDATION_STATUSES[status_uid] if status_uid is not None else "None"
            for sid in wanted:
                doc = asset.submissions[sid] = {**asset.submissions[sid], "_validation_status": dict(status)}
                asset.history.record(self.now(), MODIFY, str(doc["meta/rootUuid"]), doc.get("_submitted_by"),
                                     by_whom or self.owner, status=label)

    # -- project history (§3; fakes.kobo_history) -----------------------------------------------------------

    def set_manage_asset(self, uid: str, allowed: bool) -> None:
        """Grant (True, as owners have it) or withhold `manage_asset` from the token's account on this asset: the
        project history answers 403 without it. Models a token of an account the project is shared with."""
        with self.lock:
            self.asset(uid).manage_asset = allowed

    def history(self, uid: str, search: Node, *, start: int = 0, limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """`GET /api/v2/assets/{uid}/history/`: how many entries match, and entries `start…start+limit` of them,
        newest first, within the look-back (KoboApiError 403 without `manage_asset`; SearchRefused for a field
        KoBo refuses)."""
        with self.lock:
            asset = self.asset(uid)
            if not asset.manage_asset:
                raise KoboApiError(403, {"detail": "You do not have permission to perform this action."})
            now = self.now().astimezone(dt.UTC)
            horizon = now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
                days=self.history_lookback_days)

            def metadata(entry: LogEntry) -> dict[str, Any]:
                return metadata_of(entry, uid, asset.owner)

            found = asset.history.search(search, not_before=horizon, metadata=metadata)
            return len(found), [entry_json(e, asset_uid=uid, owner=asset.owner, base_url=self.base_url)
                                for e in found[start:start + limit]]

    @staticmethod
    def _ids(asset: Asset, ids: Iterable[int | str]) -> list[int]:
        try:
            wanted = list(dict.fromkeys(int(i) for i in ids))
        except (TypeError, ValueError):
            raise KoboApiError(400, INVALID_IDS) from None
        if any(sid not in asset.submissions for sid in wanted):
            raise KoboApiError(400, INVALID_IDS)
        return wanted

    # -- representations (§5) ------------------------------------------------------------------------------

    def asset_url(self, uid: str) -> str:
        return f"{self.base_url}/api/v2/assets/{uid}/"

    def _summary(self, asset: Asset) -> dict[str, Any]:
        content = asset.content
        rows = [r for r in content.get("survey", []) if not str(r.get("type", "")).startswith("end_")]
        labels = [r["label"][0] for r in rows if isinstance(r.get("label"), list) and r["label"] and r["label"][0]]
        return {"geo": any(r.get("type") in ("geopoint", "geotrace", "geoshape") for r in rows),
                "labels": labels[:5], "columns": sorted({k for r in rows for k in r if not k.startswith("$")}),
                "languages": [t for t in content.get("translations", []) if t],
                "row_count": len(content.get("survey", [])), "default_translation": None,
                "lock_all": False, "lock_any": False}

    def asset_list_item(self, uid: str) -> dict[str, Any]:
        """One item of `GET /api/v2/assets/` (AssetListSerializer's keys)."""
        with self.lock:
            return self._list_item(self.asset(uid))

    def _list_item(self, a: Asset) -> dict[str, Any]:
        uid = a.uid
        url = self.asset_url(uid)
        return {
            "url": url, "date_created": iso(a.date_created), "date_modified": iso(a.date_modified),
            "date_deployed": iso(a.date_deployed) if a.date_deployed else None,
            "owner": f"{self.base_url}/api/v2/users/{a.owner}/", "summary": self._summary(a),
            "owner__username": a.owner, "parent": None, "uid": uid, "tag_string": "", "settings": a.settings,
            "kind": "asset", "name": a.name, "asset_type": a.asset_type, "version_id": a.version_id,
            "has_deployment": a.has_deployment, "deployed_version_id": a.deployed_version_id,
            "deployment__active": a.has_deployment and a.active,
            "deployment__submission_count": len(a.submissions) if a.has_deployment else 0,
            "deployment__last_submission_time": iso(a.last_submission_time) if a.last_submission_time else None,
            "deployment__encrypted": False, "deployment__uuid": a.deployment_uuid,
            "deployment_status": a.deployment_status, "permissions": [], "export_settings": [],
            "downloads": [{"format": "xls", "url": f"{self.base_url}/api/v2/assets/{uid}.xls"},
                          {"format": "xml", "url": f"{self.base_url}/api/v2/assets/{uid}.xml"}],
            "data": f"{url}data/", "subscribers_count": 0, "status": "private",
            "access_types": None, "children": {"count": 0}, "data_sharing": {}, "owner_label": a.owner,
            "last_modified_by": a.owner, "created_by": a.owner,
        }

    def asset_detail(self, uid: str) -> dict[str, Any]:
        """`GET /api/v2/assets/{uid}/` (AssetSerializer): the list item plus `content`, `deployed_versions`, …"""
        with self.lock:
            return self._detail(self.asset(uid))

    def _detail(self, a: Asset) -> dict[str, Any]:
        uid = a.uid
        url = self.asset_url(uid)
        deployed = [self.version_item(uid, v) for v in reversed(a.versions) if v.date_deployed]
        detail = self._list_item(a)
        detail.update({
            "content": a.content, "files": [], "version__content_hash": a.versions[-1].content_hash,
            "version_count": len(a.versions),
            "deployed_versions": {"count": len(deployed), "next": None, "previous": None, "results": deployed},
            "deployment__links": ({"url": f"{self.base_url}/x/{uid}", "offline_url": f"{self.base_url}/x/{uid}"}
                                  if a.has_deployment and a.active else {}),
            "deployment__data_download_links": (
                {"xls": f"{url}exports/", "csv": f"{url}exports/"} if a.has_deployment else {}),
            "report_styles": {}, "report_custom": {}, "advanced_features": {}, "map_styles": {}, "map_custom": {},
            "embeds": [], "analysis_form_json": {"engines": {}, "additional_fields": []},
            "xform_link": f"{url}xform/", "hooks_link": f"{url}hooks/", "xls_link": f"{url}xls/",
            "assignable_permissions": [], "effective_permissions": [], "exports": f"{url}exports/",
            "paired_data": f"{url}paired-data/", "project_ownership": None,
        })
        return detail

    def version_item(self, uid: str, v: Version) -> dict[str, Any]:
        """A version as `…/versions/` lists it (newest first there); `date_deployed` is false for drafts."""
        return {"uid": v.uid, "url": f"{self.asset_url(uid)}versions/{v.uid}/", "content_hash": v.content_hash,
                "date_deployed": iso(v.date_deployed) if v.date_deployed else False,
                "date_modified": iso(v.date_modified), "version_number": self._version_number(uid, v.uid)}

    def _version_number(self, uid: str, vuid: str) -> str:
        """"12" for the 12th deployed version, "11.4" for the 4th draft after it."""
        deployed = drafts = 0
        for v in self.asset(uid).versions:
            if v.date_deployed:
                deployed, drafts = deployed + 1, 0
                label = str(deployed)
            else:
                drafts += 1
                label = f"{deployed}.{drafts}"
            if v.uid == vuid:
                return label
        raise NotFound()

    def versions(self, uid: str, *, deployed_only: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            asset = self.asset(uid)
            return [self.version_item(uid, v) for v in reversed(asset.versions)
                    if v.date_deployed or not deployed_only]

    def version(self, uid: str, vuid: str) -> dict[str, Any]:
        with self.lock:
            v = self.asset(uid).version(vuid)
            return {**self.version_item(uid, v), "content": v.content}

    def asset_list(self) -> list[dict[str, Any]]:
        """Every asset as listed, KoBo's default order: deployment status, then newest change first."""
        with self.lock:
            items = [self.asset_list_item(uid) for uid in self.assets]
        items.sort(key=lambda i: i["date_modified"], reverse=True)
        items.sort(key=lambda i: i["deployment_status"])
        return items
