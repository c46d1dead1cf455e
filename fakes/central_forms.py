"""A form version as the fake ODK Central holds it: the XForm text, and the fields and OData tables derived from it.

Central knows a form only by its XForm. Its `fields` (reference §2) are the primary instance's elements in document
order — the bind type as written, `structure` for a group, `repeat` for a repeat, `unknown` for an element with
neither bind nor children — with `binary` and `selectMultiple` true or null; `?odata=true` sanitises every name and
path segment into an OData identifier. Its OData service has one table per repeat (§4): `Submissions.hh.member`,
keyed to its parent by `__Submissions-id` or `__Submissions-<parent repeat path>-id`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from forms.xform import XForm, XNode, parse_xform

_LEAD = re.compile(r"^([^A-Za-z_])")
_RUN = re.compile(r"[^A-Za-z0-9_]+")


def odata_name(name: str) -> str:
    """An OData identifier: `_` before a first character that is not a letter or `_`, each run of other
    characters one `_` (so `hh-id` → `hh_id`, `1st` → `_1st`; two names may collide)."""
    return _RUN.sub("_", _LEAD.sub(r"_\1", name))


@dataclass(frozen=True, slots=True)
class CentralField:
    path: str  # '/hh/member/name', raw names
    name: str
    type: str  # the bind type as written; 'structure', 'repeat' or 'unknown'
    binary: bool | None
    select_multiple: bool | None
    node: XNode
    odata_path: str
    repeat: str | None  # raw path ('hh/member') of the innermost enclosing repeat, the field itself excluded

    @property
    def odata_name(self) -> str:
        return odata_name(self.name)

    def as_json(self, *, odata: bool) -> dict[str, Any]:
        return {"path": self.odata_path if odata else self.path, "name": self.odata_name if odata else self.name,
                "type": self.type, "binary": self.binary, "selectMultiple": self.select_multiple}


def central_fields(xform: XForm) -> list[CentralField]:
    out: list[CentralField] = []

    def walk(nodes: tuple[XNode, ...], raw: str, sane: str, repeat: str | None) -> None:
        for node in nodes:
            path, opath = f"{raw}/{node.name}", f"{sane}/{odata_name(node.name)}"
            if node.kind == "repeat":
                ftype = "repeat"
            elif node.kind == "group":
                ftype = "structure"
            else:
                ftype = node.bind.get("type") or ("string" if node.bind else "unknown")
            binary = True if node.kind == "field" and node.bind_type == "binary" else None
            select_multiple = True if node.kind == "field" and node.control == "select" else None
            out.append(CentralField(path=path, name=node.name, type=ftype, binary=binary,
                                    select_multiple=select_multiple, node=node, odata_path=opath, repeat=repeat))
            if node.kind != "field":
                walk(node.children, path, opath, node.path if node.kind == "repeat" else repeat)

    walk(xform.nodes, "", "", None)
    return out


@dataclass(frozen=True)
class Table:
    """An OData entity set: `Submissions`, or one per repeat."""

    name: str
    repeat: str | None  # raw path of the repeat ('hh/member'); None for Submissions
    parent: str | None  # the parent table's name
    parent_key: str | None  # '__Submissions-id' / '__Submissions-hh-member-id'
    segments: tuple[str, ...] = ()  # the repeat's sanitised path segments ('hh', 'member')


class FormModel:
    """Everything the OData side derives from one form version's XForm (built once, then read-only)."""

    def __init__(self, xform: XForm):
        self.xform = xform
        self.fields = central_fields(xform)
        self.by_path = {f.path[1:]: f for f in self.fields}  # raw path without the leading '/'
        self.tables: dict[str, Table] = {"Submissions": Table("Submissions", None, None, None)}
        self.table_of_repeat: dict[str, Table] = {}
        for f in self.fields:
            if f.type != "repeat":
                continue
            segments = tuple(f.odata_path[1:].split("/"))
            parent = self.table_of_repeat.get(f.repeat) if f.repeat else None
            key = "__Submissions-id" if parent is None else "__Submissions-" + "-".join(parent.segments) + "-id"
            table = Table("Submissions." + ".".join(segments), f.path[1:], parent.name if parent else "Submissions",
                          key, segments)
            self.tables[table.name] = table
            self.table_of_repeat[f.path[1:]] = table

    def fields_of(self, table: Table) -> list[CentralField]:
        """The fields that belong to a table: those whose innermost repeat is the table's (groups included)."""
        return [f for f in self.fields if f.repeat == table.repeat and f.path[1:] != table.repeat]

    def binary_paths(self) -> set[str]:
        return {f.path[1:] for f in self.fields if f.binary}


@dataclass
class FormDef:
    """One version of a form (published or draft): its XForm as uploaded, and what is derived from it."""

    xml: str
    xform: XForm
    created_at: dt.datetime
    published_at: dt.datetime | None = None
    key_id: int | None = None
    draft_token: str | None = None
    hashes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_xml(cls, xml: str, created_at: dt.datetime, *, key_id: int | None = None) -> FormDef:
        data = xml.encode("utf-8")
        return cls(xml=xml, xform=parse_xform(data), created_at=created_at, key_id=key_id,
                   hashes={"hash": hashlib.md5(data).hexdigest(), "sha": hashlib.sha1(data).hexdigest(),
                           "sha256": hashlib.sha256(data).hexdigest()})

    @property
    def version(self) -> str:
        return self.xform.version or ""

    @cached_property
    def model(self) -> FormModel:
        return FormModel(self.xform)


# -- rewriting an XForm's text ---------------------------------------------------------------------------------

_INSTANCE_OPEN = re.compile(r"<(?:[\w.\-]+:)?instance(\s[^>]*)?>")
_START_TAG = re.compile(r"<([^\s/>!?]+)([^>]*?)(/?)>")
_VERSION_ATTR = re.compile(r"""(\sversion\s*=\s*)(["'])(.*?)\2""", re.S)
_MODEL_OPEN = re.compile(r"<(?:[\w.\-]+:)?model(\s[^>]*)?>")


def _primary_root(xml: str) -> re.Match[str]:
    for opened in _INSTANCE_OPEN.finditer(xml):
        if re.search(r"\sid\s*=", opened.group(1) or ""):
            continue
        root = _START_TAG.search(xml, opened.end())
        if root is not None:
            return root
    raise ValueError("the XForm has no primary instance")


def set_version(xml: str, version: str) -> str:
    """The XForm with its primary instance's `version` attribute set to `version` (added if missing)."""
    root = _primary_root(xml)
    attrs = root.group(2)
    escaped = version.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    if _VERSION_ATTR.search(attrs):
        attrs = _VERSION_ATTR.sub(lambda m: f'{m.group(1)}"{escaped}"', attrs, count=1)
    else:
        attrs = f'{attrs} version="{escaped}"'
    return xml[: root.start()] + f"<{root.group(1)}{attrs}{root.group(3)}>" + xml[root.end():]


def inject_key(xml: str, public_key: str) -> str:
    """The XForm with a `<submission base64RsaPublicKey=…/>` in its model: devices then encrypt submissions."""
    model = _MODEL_OPEN.search(xml)
    if model is None:
        raise ValueError("the XForm has no model")
    tag = (f'<submission method="post" base64RsaPublicKey="{public_key}" orx:auto-delete="true" '
           f'xmlns:orx="http://openrosa.org/xforms"/>')
    return xml[: model.end()] + tag + xml[model.end():]

