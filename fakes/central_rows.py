"""A stored submission's XML → its OData rows, the way Central's `submissionToOData` shapes them (reference §6).

The XML is walked guided by the current form version's fields: every field of a table is present (null when
unanswered or empty — a value is never ""), groups are nested objects under their sanitised names, a repeat is not
in its parent's row but a `<name>@odata.navigationLink` there when the submission has an instance of it (or, with
`$expand=*`, an array of its rows), values are typed by the bind type (int/decimal as numbers, geo fields as GeoJSON
or WKT, `+03` offsets completed to `+03:00`), root rows end with `__id` (the first instanceID) and `__system`, and
repeat rows with their positional sha1 `__id` and their parent's key. Elements the form does not have are ignored.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import Element

from fakes.central_forms import CentralField, FormModel, Table
from fakes.central_records import Submission, iso
from fakes.central_xml import local

_INT = re.compile(r"^\s*([+-]?\d+)")
_FLOAT = re.compile(r"^\s*([+-]?(?:Infinity|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))")
_HOURS_ONLY = re.compile(r"([+-]\d\d)$")


def js_number(x: float) -> int | float | None:
    """A float as JSON.stringify writes it: integral values without '.0', non-finite ones as null."""
    if not math.isfinite(x):
        return None
    return int(x) if x.is_integer() and abs(x) < 1e21 else x


def parse_int(text: str) -> int | None:
    """JavaScript's parseInt(text, 10): the leading integer ('12abc' → 12), None if there is none."""
    found = _INT.match(text)
    return int(found.group(1)) if found else None


def parse_float(text: str) -> int | float | None:
    """JavaScript's parseFloat: the leading number ('70' → 70, '1.5e3x' → 1500), None if there is none."""
    found = _FLOAT.match(text)
    return js_number(float(found.group(1).replace("Infinity", "inf"))) if found else None


def _points(text: str) -> list[list[int | float | None]] | None:
    points = []
    for part in text.split(";"):
        numbers = [parse_float(n) for n in part.split()]
        if len(numbers) < 2 or any(n is None for n in numbers):
            return None
        points.append(numbers)
    return points or None


def _coords(p: list[Any]) -> list[Any]:
    return [p[1], p[0], *p[2:3]]


def _wkt(coords: list[Any]) -> str:
    return " ".join(json.dumps(c) for c in coords)


def geo_value(ftype: str, text: str, *, wkt: bool) -> Any:
    """A geopoint/geotrace/geoshape answer ('lat lon alt acc[;…]') as GeoJSON, or WKT with `$wkt=true`."""
    points = _points(text)
    if points is None:
        return None
    if ftype == "geopoint":
        p = points[0]
        if wkt:
            return f"POINT ({_wkt(_coords(p))})"
        out: dict[str, Any] = {"type": "Point", "coordinates": _coords(p)}
        if len(p) > 3:
            out["properties"] = {"accuracy": p[3]}
        return out
    coords = [_coords(p) for p in points]
    accuracies = [p[3] for p in points if len(p) > 3]
    if ftype == "geotrace":
        if wkt:
            return f"LINESTRING ({', '.join(_wkt(c) for c in coords)})"
        line: dict[str, Any] = {"type": "LineString", "coordinates": coords}
        if accuracies:
            line["properties"] = {"accuracies": accuracies}
        return line
    if wkt:
        return f"POLYGON (({', '.join(_wkt(c) for c in coords)}))"
    polygon: dict[str, Any] = {"type": "Polygon", "coordinates": [coords]}
    if accuracies:
        polygon["properties"] = {"accuracies": accuracies}
    return polygon


def typed_value(ftype: str, text: str | None, *, wkt: bool = False) -> Any:
    if text is None or text == "":
        return None
    if ftype == "int":
        return parse_int(text)
    if ftype == "decimal":
        return parse_float(text)
    if ftype in ("geopoint", "geotrace", "geoshape"):
        return geo_value(ftype, text, wkt=wkt)
    if ftype == "dateTime":
        return _HOURS_ONLY.sub(r"\1:00", text)
    return text


def repeat_id(root_id: str, chain: tuple[tuple[str, int], ...]) -> str:
    """A repeat row's `__id`: sha1 of the submission's id and the name and 0-based position of every repeat
    instance from the top down to this one. Stable for a given XML; positional, so an edit that inserts or removes
    an earlier instance changes it (as on Central)."""
    text = root_id + "".join(f"/{name}[{index}]" for name, index in chain)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def system_block(sub: Submission) -> dict[str, Any]:
    present, expected = sub.attachment_counts()
    first = sub.versions[0]
    return {"submissionDate": iso(sub.created_at), "updatedAt": iso(sub.updated_at), "deletedAt": iso(sub.deleted_at),
            "submitterId": str(first.submitter.id) if first.submitter else None,
            "submitterName": first.submitter.display_name if first.submitter else None,
            "attachmentsPresent": present, "attachmentsExpected": expected, "status": sub.status(),
            "reviewState": sub.review_state, "deviceId": first.device_id, "edits": sub.edits,
            "formVersion": first.form_version}


@dataclass
class Rows:
    """One submission's rows: the root row and, per repeat table, its rows in document order."""

    root: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    parents: dict[str, list[str | None]] = field(default_factory=dict)  # table → each row's parent row id


class Converter:
    """Builds the rows of one form version's tables from submission XML."""

    def __init__(self, model: FormModel):
        self.model = model
        self.children: dict[str, list[CentralField]] = {}
        for f in model.fields:
            parent = f.path[1:].rsplit("/", 1)[0] if "/" in f.path[1:] else ""
            self.children.setdefault(parent, []).append(f)

    def rows(self, sub: Submission, *, wkt: bool = False, expand: bool = False) -> Rows:
        root_id = sub.root_id
        if sub.encrypted:  # Central never decrypts for OData: the id and the system block, no repeat rows
            return Rows({"__id": root_id, "__system": system_block(sub)})
        walk = _Walk(self, root_id, wkt=wkt, expand=expand)
        body = walk.object("", sub.current.parsed.root, (), f"Submissions('{quote(root_id, safe='')}')", ())
        body["__id"] = root_id
        body["__system"] = system_block(sub)
        return Rows(body, walk.tables, walk.parents)


class _Walk:
    def __init__(self, conv: Converter, root_id: str, *, wkt: bool, expand: bool):
        self.conv, self.root_id, self.wkt, self.expand = conv, root_id, wkt, expand
        self.tables: dict[str, list[dict[str, Any]]] = {t: [] for t in conv.model.tables if t != "Submissions"}
        self.parents: dict[str, list[str | None]] = {t: [] for t in self.tables}

    def object(self, path: str, el: Element | None, chain: tuple[tuple[str, int], ...], link: str,
               context: tuple[str, ...], trailing: dict[str, Any] | None = None) -> dict[str, Any]:
        """The object of a group, a repeat instance or the root (`path`), from its element (None: not sent).
        `link`: the navigation prefix of the enclosing row; `context`: that row's table segments; `trailing`: where
        a repeat row collects the navigation links of the repeats directly inside it (they follow its key)."""
        out: dict[str, Any] = {}
        found: dict[str, list[Element]] = {}
        for c in el if el is not None else ():
            found.setdefault(local(c.tag), []).append(c)
        for f in self.conv.children.get(path, ()):
            key, instances = f.odata_name, found.get(f.name, [])
            raw = f.path[1:]
            if f.type == "repeat":
                table = self.conv.model.table_of_repeat[raw]
                rows = self.repeat(table, raw, instances, chain, link, context)
                if self.expand:
                    out[key] = rows
                elif instances:
                    target = trailing if trailing is not None else out
                    target[f"{key}@odata.navigationLink"] = link + "/" + "/".join(table.segments[len(context):])
            elif f.type == "structure":
                out[key] = self.object(raw, instances[0] if instances else None, chain, link, context)
            else:
                node = instances[0] if instances else None
                text = node.text if node is not None and not len(node) else None
                out[key] = typed_value(f.type, text, wkt=self.wkt)
        return out

    def repeat(self, table: Table, raw: str, instances: list[Element], chain: tuple[tuple[str, int], ...],
               link: str, context: tuple[str, ...]) -> list[dict[str, Any]]:
        parent_id = _parent_id(self.root_id, chain)
        rows = []
        for index, el in enumerate(instances):
            here = (*chain, (raw.rsplit("/", 1)[-1], index))
            rid = repeat_id(self.root_id, here)
            own_link = link + "/" + "/".join(table.segments[len(context):]) + f"('{rid}')"
            trailing: dict[str, Any] = {}
            body = self.object(raw, el, here, own_link, table.segments, None if self.expand else trailing)
            body["__id"] = rid
            if not self.expand:
                self.tables[table.name].append({**body, table.parent_key or "": parent_id, **trailing})
                self.parents[table.name].append(parent_id)
            rows.append(body)
        return rows


def _parent_id(root_id: str, chain: tuple[tuple[str, int], ...]) -> str:
    return repeat_id(root_id, chain) if chain else root_id

