"""The fake KoBo server's memory: assets, versions, deployments, imports and submissions.

Behaviour follows ../shared/kobo-api.md (KoBo's source): uids with KoBo's prefixes and alphabet,
server-wide increasing `_id`s, system keys in KoBo's order and types (§2), edits that keep `_id`,
rootUuid and `_submission_time` but change `_uuid` (§3), hard deletes (§4), validation statuses with
an int timestamp (§3), asynchronous imports and `active`-defaults-to-false deployments (§6).
Everything random comes from one seeded generator, so a run with a given seed is reproducible.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from amina.errors import FormBuildError
from forms.schema import FormSchema, Kind

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
VALIDATION_LABELS = {"validation_status_approved": "Approved", "validation_status_not_approved": "Not Approved",
                     "validation_status_on_hold": "On Hold"}
MIME = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "mp3": "audio/mpeg", "m4a": "audio/mp4",
        "mp4": "video/mp4", "pdf": "application/pdf", "csv": "text/csv"}


class NotFound(Exception):
    pass


class BadRequest(Exception):
    def __init__(self, body: Any, status: int = 400):
        super().__init__(str(body))
        self.body, self.status = body, status


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Version:
    uid: str
    content: dict[str, Any]
    date_modified: dt.datetime
    deployed: bool = False
    content_hash: str = ""


@dataclass
class Asset:
    uid: str
    name: str
    asset_type: str
    owner: str
    date_created: dt.datetime
    versions: list[Version] = field(default_factory=list)  # oldest first
    has_deployment: bool = False
    active: bool = False
    deployed_version_id: str | None = None
    date_deployed: dt.datetime | None = None
    deployment_uuid: str = ""
    submissions: dict[int, dict[str, Any]] = field(default_factory=dict)  # _id → document, in _id order
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # att uid → (basename, mime, bytes)
    geo_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)  # version → first geopoint path

    @property
    def version_id(self) -> str:
        return self.versions[-1].uid

    @property
    def content(self) -> dict[str, Any]:
        return self.versions[-1].content

    def version(self, vuid: str) -> Version:
        for v in self.versions:
            if v.uid == vuid:
                return v
        raise NotFound(vuid)


@dataclass
class ImportTask:
    uid: str
    status: str
    messages: dict[str, Any]
    date_created: dt.datetime
    polls: int = 0


class KoboStore:
    def __init__(self, *, seed: int = 0, owner: str = "amina_demo", base_url: str = "http://127.0.0.1"):
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.owner = owner
        self.base_url = base_url
        self.assets: dict[str, Asset] = {}
        self.imports: dict[str, ImportTask] = {}
        self._next_id = 1

    # -- identifiers ------------------------------------------------------------------------------

    def _uid(self, prefix: str, length: int = 21) -> str:
        return prefix + "".join(self.rng.choice(ALPHABET) for _ in range(length))

    def _uuid(self) -> str:
        return str(uuidlib.UUID(int=self.rng.getrandbits(128), version=4))

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)

    # -- assets -----------------------------------------------------------------------------------

    def create_asset(self, name: str, content: Mapping[str, Any], *, owner: str | None = None,
                     asset_type: str = "survey") -> str:
        with self.lock:
            uid = self._uid("a")
            now = self.now()
            asset = Asset(uid=uid, name=name, asset_type=asset_type, owner=owner or self.owner, date_created=now)
            self._new_version(asset, dict(content))
            self.assets[uid] = asset
            return uid

    def _new_version(self, asset: Asset, content: dict[str, Any]) -> Version:
        blob = repr(sorted(content.items())).encode()
        version = Version(uid=self._uid("v"), content=content, date_modified=self.now(),
                          content_hash=hashlib.sha1(blob).hexdigest())
        asset.versions.append(version)
        return version

    def asset(self, uid: str) -> Asset:
        try:
            return self.assets[uid]
        except KeyError:
            raise NotFound(uid) from None

    def replace_content(self, uid: str, content: Mapping[str, Any]) -> Version:
        with self.lock:
            return self._new_version(self.asset(uid), dict(content))

    # -- imports (§6 option A) --------------------------------------------------------------------

    def import_xlsform(self, data: bytes, filename: str, *, library: bool = True,
                       destination_uid: str | None = None) -> str:
        """Start an import; like KoBo's Celery task, it is still 'processing' at the first poll."""
        from forms.content import to_content
        from forms.source import read_xlsx

        with self.lock:
            task = ImportTask(uid=self._uid("i"), status="processing", messages={}, date_created=self.now())
            self.imports[task.uid] = task
            try:
                content = to_content(read_xlsx(data, filename))
                FormSchema.from_content(content)
                title = (content.get("settings") or {}).get("form_title") or filename.rsplit(".", 1)[0]
                if destination_uid:
                    asset = self.asset(destination_uid)
                    self._new_version(asset, content)
                    key = "updated"
                else:
                    rows = [r for r in content["survey"] if not str(r.get("type", "")).startswith("end_")]
                    kind = "survey" if not library else ("block" if len(rows) > 1 else "question")
                    asset = self.asset(self.create_asset(title, content, asset_type=kind))
                    key = "created"
                task.messages = {key: [{"uid": asset.uid, "kind": "asset", "owner__username": asset.owner,
                                        "summary": {"row_count": len(content["survey"])}}]}
                task.result = "complete"  # type: ignore[attr-defined]
            except (FormBuildError, NotFound, KeyError, ValueError) as exc:
                task.messages = {"error_type": exc.__class__.__name__, "error": str(exc)}
                task.result = "error"  # type: ignore[attr-defined]
            return task.uid

    def import_status(self, uid: str) -> dict[str, Any]:
        with self.lock:
            task = self.imports.get(uid)
            if task is None:
                raise NotFound(uid)
            task.polls += 1
            if task.polls > 1:
                task.status = task.result  # type: ignore[attr-defined]
            return {"uid": task.uid, "url": f"{self.base_url}/api/v2/imports/{task.uid}/", "status": task.status,
                    "messages": task.messages if task.status != "processing" else {},
                    "date_created": _iso(task.date_created)}

    # -- deployment (§6) --------------------------------------------------------------------------

    def deploy(self, uid: str, *, active: bool = False) -> dict[str, Any]:
        with self.lock:
            asset = self.asset(uid)
            if asset.asset_type != "survey":
                raise BadRequest({"detail": "Only surveys may be deployed"}, 500)
            if asset.has_deployment:
                raise BadRequest({"detail": "Use PATCH to update an existing deployment"}, 405)
            asset.has_deployment = True
            asset.deployment_uuid = f"{self.rng.getrandbits(128):032x}"
            return self._deploy_version(asset, active)

    def redeploy(self, uid: str, *, version_id: str | None = None, active: bool | None = None) -> dict[str, Any]:
        with self.lock:
            asset = self.asset(uid)
            if not asset.has_deployment:
                raise BadRequest({"detail": "Use POST to create a new deployment"}, 405)
            if version_id is None:  # only `active`: archive or unarchive
                asset.active = bool(active)
                return self.deployment(uid)
            if version_id != asset.version_id:
                raise BadRequest({"detail": "Deploying a version other than the latest is not implemented"}, 500)
            return self._deploy_version(asset, True if active is None else active)

    def _deploy_version(self, asset: Asset, active: bool) -> dict[str, Any]:
        version = asset.versions[-1]
        version.deployed = True
        asset.deployed_version_id = version.uid
        asset.active = active
        asset.date_deployed = self.now()
        schema = FormSchema.from_content(version.content)
        asset.geo_fields[version.uid] = tuple(f.path for f in schema.fields
                                              if f.kind is Kind.GEOPOINT and f.repeat is None)[:1]
        return self.deployment(asset.uid)

    def deployment(self, uid: str) -> dict[str, Any]:
        asset = self.asset(uid)
        if not asset.has_deployment:
            raise NotFound(uid)
        return {"backend": "openrosa", "active": asset.active, "version_id": asset.deployed_version_id,
                "asset": self.asset_detail(uid)}

    # -- submissions (§2) -------------------------------------------------------------------------

    def add_submission(self, uid: str, answers: Mapping[str, Any], *, submission_time: dt.datetime | None = None,
                       submitted_by: str | None = None, attachments: Mapping[str, bytes] | None = None,
                       version_uid: str | None = None) -> dict[str, Any]:
        with self.lock:
            asset = self.asset(uid)
            if not asset.has_deployment:
                raise BadRequest({"detail": "The specified asset has not been deployed"})
            version = version_uid or asset.deployed_version_id or asset.version_id
            doc: dict[str, Any] = {"formhub/uuid": asset.deployment_uuid}
            doc.update(answers)
            doc["__version__"] = version
            instance_id = str(doc.get("meta/instanceID") or f"uuid:{self._uuid()}")
            doc["meta/instanceID"] = instance_id
            sid = self._next_id
            self._next_id += 1
            doc["_xform_id_string"] = uid
            doc["_uuid"] = instance_id.removeprefix("uuid:")
            doc["meta/rootUuid"] = instance_id
            doc["_id"] = sid
            doc["_attachments"] = self._attachments(asset, sid, instance_id, doc, attachments or {})
            doc["_status"] = "submitted_via_web"
            doc["_geolocation"] = self._geolocation(asset, version, doc)
            when = submission_time or self.now()
            doc["_submission_time"] = when.strftime("%Y-%m-%dT%H:%M:%S")
            doc["_validation_status"] = {}
            doc["_submitted_by"] = submitted_by
            asset.submissions[sid] = doc
            return doc

    def add_submissions(self, uid: str, items: Iterable[Any]) -> int:
        """Bulk load: each item is a mapping of answers, or an object with `answers`, `submission_time`,
        `submitted_by` and `attachments` (sync.fake.generator.GeneratedSubmission)."""
        count = 0
        for item in items:
            if isinstance(item, Mapping):
                self.add_submission(uid, item)
            else:
                self.add_submission(uid, item.answers, submission_time=item.submission_time,
                                    submitted_by=item.submitted_by, attachments=item.attachments)
            count += 1
        return count

    def _attachments(self, asset: Asset, sid: int, instance_id: str, doc: Mapping[str, Any],
                     files: Mapping[str, bytes]) -> list[dict[str, Any]]:
        out = []
        for xpath, value in _answers_with_paths(doc):
            if value not in files:
                continue
            att_uid = self._uid("att")
            ext = value.rsplit(".", 1)[-1].lower()
            mime = MIME.get(ext, "application/octet-stream")
            asset.files[att_uid] = (value, mime, files[value])
            url = f"{self.base_url}/api/v2/assets/{asset.uid}/data/{sid}/attachments/{att_uid}/"
            item = {"download_url": url, "mimetype": mime,
                    "filename": f"{asset.owner}/attachments/{asset.deployment_uuid}/"
                                f"{instance_id.removeprefix('uuid:')}/{value}",
                    "media_file_basename": value, "uid": att_uid, "is_deleted": False}
            if mime.startswith("image/"):
                item.update({f"download_{size}_url": f"{url}{size}/" for size in ("large", "medium", "small")})
            item["question_xpath"] = xpath
            out.append(item)
        return out

    def _geolocation(self, asset: Asset, version: str, doc: Mapping[str, Any]) -> list[float | None]:
        paths = asset.geo_fields.get(version) or asset.geo_fields.get(asset.deployed_version_id or "", ())
        for path in paths:
            parts = str(doc.get(path, "")).split()
            try:
                return [float(parts[0]), float(parts[1])]
            except (IndexError, ValueError):
                break
        return [None, None]

    def submissions(self, uid: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.asset(uid).submissions.values())

    def submission(self, uid: str, key: str | int) -> dict[str, Any]:
        """By `_id`, or by rootUuid (with or without 'uuid:'), falling back to `_uuid` (§1)."""
        asset = self.asset(uid)
        text = str(key)
        if text.isdigit() and int(text) in asset.submissions:
            return asset.submissions[int(text)]
        bare = text.removeprefix("uuid:")
        for doc in asset.submissions.values():
            if str(doc.get("meta/rootUuid", "")).removeprefix("uuid:") == bare:
                return doc
        for doc in asset.submissions.values():
            if doc.get("_uuid") == bare:
                return doc
        raise NotFound(key)

    def edit_submission(self, uid: str, submission_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """An Enketo/bulk edit (§3): same `_id`, rootUuid and submission time; new `_uuid`/instanceID."""
        with self.lock:
            doc = self.submission(uid, submission_id)
            old_instance = doc["meta/instanceID"]
            new_instance = f"uuid:{self._uuid()}"
            for key, value in changes.items():
                if key.startswith(("formhub", "meta", "__version__", "_")):
                    continue
                if value is None:
                    doc.pop(key, None)
                else:
                    doc[key] = value
            doc["meta/instanceID"] = new_instance
            doc["meta/deprecatedID"] = old_instance
            doc["_uuid"] = new_instance.removeprefix("uuid:")
            return doc

    def delete_submissions(self, uid: str, ids: Iterable[int]) -> int:
        with self.lock:
            asset = self.asset(uid)
            wanted = [int(i) for i in ids]
            if any(i not in asset.submissions for i in wanted):
                raise BadRequest({"detail": "One or more submission ids are invalid"})
            for i in wanted:
                del asset.submissions[i]
            return len(wanted)

    def set_validation_status(self, uid: str, ids: Iterable[int], status_uid: str | None, *,
                              by_whom: str) -> None:
        with self.lock:
            asset = self.asset(uid)
            wanted = [int(i) for i in ids]
            if any(i not in asset.submissions for i in wanted):
                raise BadRequest({"detail": "One or more submission ids are invalid"})
            if status_uid is not None and status_uid not in VALIDATION_LABELS:
                raise BadRequest({"detail": f"Invalid validation status: `{status_uid}`"})
            for i in wanted:
                asset.submissions[i]["_validation_status"] = {} if status_uid is None else {
                    "timestamp": int(self.now().replace(tzinfo=dt.UTC).timestamp()), "uid": status_uid,
                    "by_whom": by_whom, "label": VALIDATION_LABELS[status_uid]}

    # -- representations (§5) ---------------------------------------------------------------------

    def asset_url(self, uid: str) -> str:
        return f"{self.base_url}/api/v2/assets/{uid}/"

    def asset_summary(self, uid: str) -> dict[str, Any]:
        a = self.asset(uid)
        latest = a.versions[-1]
        return {
            "url": self.asset_url(uid), "date_created": _iso(a.date_created),
            "date_modified": _iso(latest.date_modified),
            "date_deployed": _iso(a.date_deployed) if a.date_deployed else None,
            "owner": f"{self.base_url}/api/v2/users/{a.owner}/", "owner__username": a.owner,
            "summary": {"row_count": len(latest.content.get("survey", [])),
                        "languages": [t for t in latest.content.get("translations", []) if t]},
            "parent": None, "uid": uid, "tag_string": "", "settings": {}, "kind": "asset", "name": a.name,
            "asset_type": a.asset_type, "version_id": a.version_id, "has_deployment": a.has_deployment,
            "deployed_version_id": a.deployed_version_id, "deployment__active": a.has_deployment and a.active,
            "deployment__submission_count": len(a.submissions) if a.has_deployment else 0,
            "deployment__last_submission_time": max((d["_submission_time"] for d in a.submissions.values()),
                                                    default=None),
            "deployment__encrypted": False, "deployment__uuid": a.deployment_uuid or None,
            "deployment_status": ("deployed" if a.active else "archived") if a.has_deployment else "draft",
            "data": f"{self.asset_url(uid)}data/",
            "downloads": [{"format": "xls", "url": f"{self.base_url}/api/v2/assets/{uid}.xls"},
                          {"format": "xml", "url": f"{self.base_url}/api/v2/assets/{uid}.xml"}],
            "permissions": [], "status": "private",
        }

    def asset_detail(self, uid: str) -> dict[str, Any]:
        a = self.asset(uid)
        deployed = [v for v in reversed(a.versions) if v.deployed]
        detail = self.asset_summary(uid)
        detail.update({
            "content": a.content, "files": [], "version__content_hash": a.versions[-1].content_hash,
            "version_count": len(a.versions),
            "deployed_versions": {"count": len(deployed), "next": None, "previous": None,
                                  "results": [self.version_summary(uid, v) for v in deployed]},
            "deployment__links": {}, "deployment__data_download_links": {},
        })
        return detail

    def version_summary(self, uid: str, v: Version) -> dict[str, Any]:
        return {"uid": v.uid, "url": f"{self.asset_url(uid)}versions/{v.uid}/", "content_hash": v.content_hash,
                "date_deployed": _iso(v.date_modified) if v.deployed else False,
                "date_modified": _iso(v.date_modified)}


def _answers_with_paths(doc: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(question path, value) of every string answer, inside repeats too."""
    for key, value in doc.items():
        if isinstance(value, str) and not key.startswith("_"):
            yield key, value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    yield from _answers_with_paths(item)
