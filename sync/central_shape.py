"""ODK Central's OData rows, reshaped as KoBo's data API shapes a submission (what the warehouse reads).

Central (odk-central-api.md §6) gives typed JSON: groups as nested objects keyed by OData-sanitised names,
repeats inlined as arrays with `$expand=*`, numbers as numbers, geopoints as GeoJSON, every field present
and `null` when unanswered, and a `__system` block. KoBo gives flat `group/question` keys, repeats as lists
of dicts keyed by full paths, every answer as text, unanswered questions left out. This module turns the
first into the second, guided by the form's schema (the question's own path for each sanitised name):

| Central | KoBo-shaped |
|---|---|
| `__id` (the first instanceID, stable) | `meta/rootUuid`, and `_id`: a positive 63-bit integer from its SHA-256 |
| `meta.instanceID` (the current version) | `meta/instanceID`, `_uuid` (without `uuid:`: it changes on edit) |
| `__system.submissionDate` | `_submission_time` |
| `__system.submitterName` | `_submitted_by` |
| `__system.formVersion` | `__version__` |
| `__system.reviewState`, `updatedAt` | `_validation_status` `{"uid": state, "label": state, "timestamp"}` |
| GeoJSON Point `[lon, lat, alt]` + accuracy | `"lat lon alt accuracy"` |
| a media question's file name | `_attachments` items, downloadable from Central's REST endpoint |

The row as Central sent it is kept as the submission's raw JSON.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from forms.schema import FormSchema
from warehouse.convert import INT64_MAX

MEDIA_TYPES = frozenset({"image", "audio", "video", "file", "background-audio", "background-video",
                         "audit", "photo", "big-image"})


def odata_name(name: str) -> str:
    """Central's OData identifier for a name (lib/util/util.js sanitizeOdataIdentifier, as §2 describes it)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", re.sub(r"^([^A-Za-z_])", r"_\1", name))


def odata_path(path: str) -> str:
    return "/".join(odata_name(part) for part in path.split("/"))


def submission_number(root_id: str) -> int:
    """The warehouse's `_id` of a Central submission: a positive 63-bit integer from its first instanceID."""
    return int.from_bytes(hashlib.sha256(root_id.encode("utf-8")).digest()[:8], "big") & INT64_MAX or 1


@dataclass(frozen=True, slots=True)
class Node:
    path: str  # the question's (or group's, repeat's) own path, as KoBo keys it
    repeat: bool = False
    media: bool = False


class Shaper:
    """Reshapes the rows of one form (one schema) into KoBo-shaped submissions."""

    def __init__(self, schema: FormSchema, *, attachment_base: str):
        self.nodes: dict[str, Node] = {}
        for group in schema.groups:
            self.nodes[odata_path(group.path)] = Node(group.path, repeat=group.is_repeat)
        for repeat in schema.repeats:
            self.nodes[odata_path(repeat.path)] = Node(repeat.path, repeat=True)
        for f in schema.fields:
            self.nodes.setdefault(odata_path(f.path), Node(f.path, media=f.type in MEDIA_TYPES))
        self.attachment_base = attachment_base  # …/forms/{f}/submissions

    def shape(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The KoBo-shaped submission of one `Submissions` row (with `$expand=*`)."""
        out: dict[str, Any] = {}
        media: list[tuple[str, str]] = []
        self._walk(row, "", "", out, media)
        root_id = row.get("__id")
        system = row.get("__system") if isinstance(row.get("__system"), Mapping) else {}
        if isinstance(root_id, str):
            out["_id"] = submission_number(root_id)
            out["meta/rootUuid"] = root_id
        instance = out.get("meta/instanceID")
        if not isinstance(instance, str) and isinstance(root_id, str):
            instance = root_id
        if isinstance(instance, str):
            out["meta/instanceID"] = instance
            out["_uuid"] = instance.removeprefix("uuid:")
        if isinstance(system.get("submissionDate"), str):
            out["_submission_time"] = system["submissionDate"]
        if isinstance(system.get("submitterName"), str):
            out["_submitted_by"] = system["submitterName"]
        if isinstance(system.get("formVersion"), str):
            out["__version__"] = system["formVersion"]
        if isinstance(system.get("status"), str):
            out["_status"] = system["status"]
        state = system.get("reviewState")
        status: dict[str, Any] = {}
        if isinstance(state, str):
            status = {"uid": state, "label": state}
            stamp = _epoch(system.get("updatedAt"))
            if stamp is not None:
                status["timestamp"] = stamp
        out["_validation_status"] = status
        if media and isinstance(root_id, str):
            out["_attachments"] = [self._attachment(root_id, path, name) for path, name in media]
        return out

    def _walk(self, obj: Mapping[str, Any], sprefix: str, oprefix: str, out: dict[str, Any],
              media: list[tuple[str, str]]) -> None:
        for key, value in obj.items():
            if not isinstance(key, str) or key.startswith("__") or "@odata." in key:
                continue
            spath = f"{sprefix}/{key}" if sprefix else key
            node = self.nodes.get(spath)
            opath = node.path if node else (f"{oprefix}/{key}" if oprefix else key)
            if value is None:
                continue
            if isinstance(value, list):
                items = []
                for item in value:
                    if isinstance(item, Mapping):
                        shaped: dict[str, Any] = {}
                        self._walk(item, spath, opath, shaped, media)
                        items.append(shaped)
                    else:
                        items.append(item)  # not an instance: the warehouse reports it
                if items:
                    out[opath] = items
            elif isinstance(value, Mapping) and not _is_geojson(value):
                self._walk(value, spath, opath, out, media)
            else:
                text = answer_text(value)
                out[opath] = text
                if node is not None and node.media and isinstance(text, str):
                    media.append((opath, text))

    def _attachment(self, root_id: str, path: str, name: str) -> dict[str, Any]:
        return {"uid": hashlib.sha1(f"{root_id}/{name}".encode()).hexdigest(), "filename": name,
                "media_file_basename": name, "question_xpath": path,
                "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream",
                "download_url": f"{self.attachment_base}/{quote(root_id, safe='')}/attachments/{quote(name, safe='')}"}


def answer_text(value: Any) -> Any:
    """An answer as KoBo writes it: text. Numbers as their shortest text, GeoJSON as ODK's geo text; anything
    else is passed on for the warehouse to judge (and report)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e16 else str(int(value))
    if isinstance(value, Mapping) and _is_geojson(value):
        return _geo_text(value)
    return value


def _is_geojson(value: Mapping[str, Any]) -> bool:
    return value.get("type") in ("Point", "LineString", "Polygon") and "coordinates" in value


def _geo_text(value: Mapping[str, Any]) -> Any:
    """GeoJSON (lon, lat[, alt]) → ODK's "lat lon alt accuracy" (points joined by ';' for a trace or shape)."""
    kind, coordinates = value.get("type"), value.get("coordinates")
    props = value.get("properties") if isinstance(value.get("properties"), Mapping) else {}
    if kind == "Point":
        return _point(coordinates, props.get("accuracy"))
    points = coordinates[0] if kind == "Polygon" and isinstance(coordinates, list) and coordinates else coordinates
    if not isinstance(points, list):
        return value
    accuracies = props.get("accuracies") if isinstance(props.get("accuracies"), list) else []
    texts = [_point(p, accuracies[i] if i < len(accuracies) else None) for i, p in enumerate(points)]
    return value if any(not isinstance(t, str) for t in texts) else ";".join(texts)


def _point(coordinates: Any, accuracy: Any) -> Any:
    if not isinstance(coordinates, list) or not 2 <= len(coordinates) <= 3 or \
            not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coordinates):
        return {"type": "Point", "coordinates": coordinates}  # not a point: left for the warehouse to report
    lon, lat, *alt = coordinates
    parts = [lat, lon, alt[0] if alt else 0.0, accuracy if isinstance(accuracy, int | float) else 0.0]
    return " ".join(answer_text(p) for p in parts)


def _epoch(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())
