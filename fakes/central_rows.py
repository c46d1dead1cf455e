"""A stored submission's XML → its OData rows, the way Central's `submissionToOData` shapes them (reference §6).

The XML is read in document order, guided by the current form version's fields: every field of a table is present
(null when unanswered or empty — a value is never ""), groups are nested objects under their sanitised names,
values are typed by the bind type (int/decimal as numbers, geo fields as GeoJSON or WKT, `+03` offsets completed to
`+03:00`); root rows have `__id` (the first instanceID) and `__system` after the form's fields, repeat rows `__id`
(sha1 of the instance's place: `repeat_id`) and, in their own table, their parent's key. A repeat is not part of
the frame: its first instance adds `<name>@odata.navigationLink` at the end of the object it is in (after
`__system` for a repeat at the top), followed with `$expand=*` by the array of its rows; a repeat without instances
leaves no key at all. Elements the form does not have are ignored. Key order is Central's: clients may keep the JSON
verbatim.
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

from fakes.central_forms import CentralField, FormModel
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
    """The points of a geo answer; a part without a latitude and a longitude (a trailing ';') is skipped, as
    Central skips it."""
    points = []
    for part in re.split(r"; ?", text):
        numbers = [parse_float(n) for n in part.split()]
        if len(numbers) < 2 or numbers[0] is None or numbers[1] is None:
            continue
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
    # one accuracy per point, so that they line up; a missing or zero accuracy is null (Central's `accuracy || null`)
    accuracies = [(p[3] or None) if len(p) > 3 else None for p in points]
    if not any(a is not None for a in accuracies):
        accuracies = []
    if ftype == "geotrace":
        if wkt:
            return f"LINESTRING ({','.join(_wkt(c) for c in coords)})"
        line: dict[str, Any] = {"type": "LineString", "coordinates": coords}
        if accuracies:
            line["properties"] = {"accuracies": accuracies}
        return line
    if wkt:
        return f"POLYGON (({','.join(_wkt(c) for c in coords)}))"
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
        return _HOURS_ONLY.sub(r"\1:00", text.strip())
    return text


def repeat_id(root_id: str, stack: tuple[tuple[CentralField, int | None], ...]) -> str:
    """A repeat row's `__id` as Central computes it: the sha1 (hex) of `Submissions#<root instanceID>` and, for each
    field from the root down to this repeat, `<group name>#` or `<repeat name>#<index>`, joined by `%%` (raw names;
    the index counts the repeat's instances within the enclosing repeat instance, or the submission, from 0)."""
    parts = [f"Submissions#{root_id}"]
    parts += [f"{f.name}#" if index is None else f"{f.name}#{index}" for f, index in stack]
    return hashlib.sha1("%%".join(parts).encode("utf-8")).hexdigest()


def entity_key(root_id: str) -> str:
    """The root id in a navigation link, escaped as JavaScript's encodeURIComponent escapes it."""
    return quote(root_id, safe="!'()*~")


def navigation_link(root_id: str, stack: tuple[tuple[CentralField, int | None], ...]) -> str:
    """The link to the rows of the repeat at the end of `stack`: `Submissions('<root>')`, then every field's
    OData name, each repeat but the last keyed by its instance's `__id`."""
    out = [f"Submissions('{entity_key(root_id)}')"]
    for i, (f, index) in enumerate(stack):
        keyed = index is not None and i < len(stack) - 1
        out.append(f"{f.odata_name}('{repeat_id(root_id, stack[: i + 1])}')" if keyed else f.odata_name)
    return "/".join(out)


def system_block(sub: Submission) -> dict[str, Any]:
    present, expected = sub.attachment_counts()
    first = sub.versions[0]
    return {"submissionDate": iso(sub.created_at), "updatedAt": iso(sub.updated_at),
            "submitterId": str(first.submitter.id) if first.submitter else None,
            "submitterName": first.submitter.display_name if first.submitter else None,
            "attachmentsPresent": present, "attachmentsExpected": expected, "status": sub.status(),
            "reviewState": sub.review_state, "deviceId": first.device_id, "edits": sub.edits,
            "formVersion": first.form_version, "deletedAt": iso(sub.deleted_at)}


@dataclass
class Rows:
    """One submission's rows: the root row and, per repeat table, its rows in document order."""

    root: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    parents: dict[str, list[str | None]] = field(default_factory=dict)  # table → each row's parent row id


_TYPED = frozenset({"int", "decimal", "geopoint", "geotrace", "geoshape", "dateTime"})
_GEO = frozenset({"geopoint", "geotrace", "geoshape"})


class Converter:
    """Builds the rows of one form version's tables from submission XML.

    Like Central, a row starts as a frame of the table's fields (null; groups as nested frames, repeats left
    out), root rows then get `__id` and `__system`, repeat rows `__id` (and, in their own table, the parent key).
    The XML is then read in document order: a value goes into its field's place; the first instance of a repeat
    adds, at the end of the object it is in, `<name>@odata.navigationLink` and, with `$expand=*`, the array of its
    rows — so a repeat without instances is not there at all. Without `$expand`, each instance is a row of the
    repeat's own table instead."""

    def __init__(self, model: FormModel):
        self.model = model
        self.by_path = {f.path: f for f in model.fields}
        self.children: dict[str, list[CentralField]] = {}
        for f in model.fields:
            self.children.setdefault(f.path.rsplit("/", 1)[0], []).append(f)

    def frame(self, path: str) -> dict[str, Any]:
        """The empty object of the group, repeat or root at `path` ('' for the root)."""
        out: dict[str, Any] = {}
        for f in self.children.get(path, ()):
            if f.type == "structure":
                out[f.odata_name] = self.frame(f.path)
            elif f.type != "repeat":
                out[f.odata_name] = None
        return out

    def rows(self, sub: Submission, *, wkt: bool = False, expand: bool = False) -> Rows:
        root_id = sub.root_id
        if sub.encrypted:  # Central never decrypts for OData: the id and the system block, no repeat rows
            return Rows({"__id": root_id, "__system": system_block(sub)})
        body = self.frame("")
        body["__id"] = root_id
        body["__system"] = system_block(sub)
        walk = _Walk(self, root_id, wkt=wkt, expand=expand)
        walk.children(sub.current.parsed.root, "", body, {}, ())
        return Rows(body, walk.tables, walk.parents)


class _Walk:
    """One reading of a submission's XML. Without `expand`, every repeat instance also becomes a row of its table
    (with its parent key, and only the links of the repeats inside it)."""

    def __init__(self, conv: Converter, root_id: str, *, wkt: bool, expand: bool):
        self.conv, self.root_id, self.wkt, self.expand = conv, root_id, wkt, expand
        self.tables: dict[str, list[dict[str, Any]]] = {t: [] for t in conv.model.tables if t != "Submissions"}
        self.parents: dict[str, list[str | None]] = {t: [] for t in self.tables}

    def children(self, el: Element, path: str, out: dict[str, Any], counts: dict[str, int],
                 stack: tuple[tuple[CentralField, int | None], ...]) -> None:
        """Read the child elements of `el` (the element of `path`) into `out`. `counts`: the instances of each
        repeat seen so far in the enclosing repeat instance (or the submission); `stack`: the groups and repeat
        instances from the root down to `el`."""
        for child in el:
            f = self.conv.by_path.get(f"{path}/{local(child.tag)}")
            if f is None:  # not in the form: ignored, with all it holds
                continue
            if f.type == "structure":
                inner = out.get(f.odata_name)
                if not isinstance(inner, dict):
                    inner = out[f.odata_name] = {}
                self.children(child, f.path, inner, counts, (*stack, (f, None)))
            elif f.type == "repeat":
                self.instance(child, f, out, counts, stack)
            else:
                for text in (child.text, *(c.tail for c in child)):
                    if text:
                        self.write(out, f, text)

    def instance(self, el: Element, f: CentralField, out: dict[str, Any], counts: dict[str, int],
                 stack: tuple[tuple[CentralField, int | None], ...]) -> None:
        index = counts[f.path] = counts.get(f.path, -1) + 1
        here = (*stack, (f, index))
        out[f"{f.odata_name}@odata.navigationLink"] = navigation_link(self.root_id, here)
        row = self.conv.frame(f.path)
        row["__id"] = repeat_id(self.root_id, here)
        if self.expand:
            items = out.get(f.odata_name)
            if not isinstance(items, list):
                items = out[f.odata_name] = []
            items.append(row)
        else:
            table = self.conv.model.table_of_repeat[f.path[1:]]
            parent = next((i for i in range(len(stack) - 1, -1, -1) if stack[i][1] is not None), None)
            parent_id = self.root_id if parent is None else repeat_id(self.root_id, stack[: parent + 1])
            row[table.parent_key or ""] = parent_id
            self.tables[table.name].append(row)
            self.parents[table.name].append(parent_id)
        self.children(el, f.path, row, {}, here)

    def write(self, out: dict[str, Any], f: CentralField, text: str) -> None:
        """A text node of a field: typed values replace (an unreadable geo value is not written), text is
        appended (Central appends every text node of an element)."""
        if f.type in _TYPED:
            value = typed_value(f.type, text, wkt=self.wkt)
            if value is not None or f.type not in _GEO:
                out[f.odata_name] = value
        else:
            out[f.odata_name] = (out.get(f.odata_name) or "") + text
