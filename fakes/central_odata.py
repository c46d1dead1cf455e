"""The fake Central's OData service for one form (reference §4, §5): service document, `$metadata`, the tables.

Query options as Central runs them: no default page size; `$top` with an absolute nextLink carrying a `$skiptoken`
("01" + base64 JSON cursor: `{instanceId}` on Submissions, `{repeatId}` on repeat tables), built on the configured
`domain` from the request's path and its other options (`$` written `%24`, spaces `+`); newest first; `$count`;
`$filter` (fakes.central_filter) with the implicit not-deleted filter; `$orderby` (not with `$skiptoken`: 501.1);
`$select` (400.23 unknown, 400.24 into a repeat); `$expand=*` only (501.6; with `$select` 501.11); `$wkt`; the
weak ETag over the selected rows' event stamps, with `If-None-Match` → 304. Central's quirks a client must survive
are kept: `$skip` makes a nextLink even on the last page, `$orderby` + `$top` makes a nextLink that fails with
501.1, `$top=0&$count=true` on a repeat table makes a nextLink that fails with 400.34, `$top=-1` and `now()` are 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from fakes.central_filter import Filter, InternalError, parse_filter, parse_orderby
from fakes.central_forms import FormDef, FormModel, Table, odata_name
from fakes.central_records import Form, Problem, Submission, not_found
from fakes.central_rows import Converter, Rows

OPTIONS = ("$format", "$count", "$skip", "$top", "$filter", "$wkt", "$expand", "$select", "$skiptoken", "$orderby",
           "$search")
SYSTEM_KEYS = ("submissionDate", "updatedAt", "submitterId", "submitterName", "attachmentsPresent",
               "attachmentsExpected", "status", "reviewState", "deviceId", "edits", "formVersion", "deletedAt")
EDM = {"int": "Edm.Int64", "decimal": "Edm.Decimal", "boolean": "Edm.Boolean", "geopoint": "Edm.GeographyPoint",
       "geotrace": "Edm.GeographyLineString", "geoshape": "Edm.GeographyPolygon", "date": "Edm.Date",
       "dateTime": "Edm.DateTimeOffset"}
EMPTY_ETAG = 'W/"eventhash:' + "0" * 32 + '"'


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None  # JSON
    headers: Mapping[str, str] | None = None


def check_options(keys: Sequence[str]) -> None:
    """Any query parameter outside OData's list is 501.1 (Central checks this before authenticating)."""
    for key in keys:
        if key not in OPTIONS:
            raise Problem(501.1, f"The requested feature {key} is not supported by this server.", {"feature": key})


def system_values(sub: Submission) -> dict[str, Any]:
    """What `$filter` and `$orderby` read of a submission."""
    return {"__id": sub.root_id, "submissionDate": sub.created_at, "updatedAt": sub.updated_at,
            "submitterId": sub.submitter.id if sub.submitter else None, "reviewState": sub.review_state,
            "deletedAt": sub.deleted_at}


def etag(subs: Sequence[Submission]) -> str:
    if not subs:
        return EMPTY_ETAG
    stamps = "|".join(f"{s.id}:{s.event}" for s in sorted(subs, key=lambda s: s.id))
    return f'W/"eventhash:{hashlib.md5(stamps.encode()).hexdigest()}"'


def default_order(subs: Sequence[Submission]) -> list[Submission]:
    """Newest first: `ORDER BY createdAt DESC, id DESC`."""
    return sorted(subs, key=lambda s: (s.created_at, s.id), reverse=True)


# -- options ---------------------------------------------------------------------------------------------------


@dataclass
class Options:
    top: int | None = None
    skip: int | None = None
    count: bool = False
    filter: Filter | None = None
    orderby: list[tuple[str, bool]] | None = None
    select: list[str] | None = None
    expand: bool = False
    wkt: bool = False
    skiptoken: dict[str, Any] | None = None


def _integer(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise Problem(400.11, f"The value '{value}' for {name} is not a valid integer.", {"value": value}) from None
    if number < 0:
        raise InternalError()  # Central: 500 on a negative $top (§13)
    return number


def parse_skiptoken(token: str) -> dict[str, Any]:
    if not token.startswith("01"):
        raise Problem(400.35, "Unexpected $skiptoken format.", {"skiptoken": token})
    try:
        decoded = json.loads(base64.b64decode(token[2:], validate=False))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Problem(400.35, "Unexpected $skiptoken format.", {"skiptoken": token}) from None
    if not isinstance(decoded, dict):
        raise Problem(400.35, "Unexpected $skiptoken format.", {"skiptoken": token})
    return decoded


def make_skiptoken(cursor: Mapping[str, Any]) -> str:
    return "01" + base64.b64encode(json.dumps(dict(cursor), separators=(",", ":")).encode()).decode()


def parse_options(params: Mapping[str, str], *, root_table: bool) -> Options:
    opts = Options()
    if "$top" in params:
        opts.top = _integer(params["$top"], "$top")
    if "$skip" in params:
        opts.skip = _integer(params["$skip"], "$skip")
    opts.count = params.get("$count") == "true"
    opts.wkt = params.get("$wkt") == "true"
    if "$expand" in params:
        if params["$expand"] != "*":
            raise Problem(501.6, f"The requested feature $expand={params['$expand']} is not supported by this "
                                 f"server: only $expand=* is.")
        if "$select" in params:
            raise Problem(501.11, "The requested feature using $select together with $expand is not supported by "
                                  "this server.")
        opts.expand = True
    if "$select" in params and params["$select"].strip() not in ("", "*"):
        opts.select = [s.strip() for s in params["$select"].split(",") if s.strip()]
    opts.filter = parse_filter(params.get("$filter"), root_table=root_table)
    if "$skiptoken" in params:
        opts.skiptoken = parse_skiptoken(params["$skiptoken"])
    if "$orderby" in params:
        if opts.skiptoken is not None:
            raise Problem(501.1, "The requested feature using $orderby together with $skiptoken is not supported by "
                                 "this server.")
        opts.orderby = parse_orderby(params["$orderby"], root_table=root_table)
    return opts


def _sort(subs: list[Submission], orderby: list[tuple[str, bool]]) -> list[Submission]:
    """`$orderby`: asc puts nulls first, desc nulls last; `submissions.id` breaks ties."""
    out = sorted(subs, key=lambda s: s.id)
    for key, desc in reversed(orderby):
        out.sort(key=lambda s, k=key: (system_values(s)[k] is not None, system_values(s)[k] or 0), reverse=desc)
    return out


# -- $select ---------------------------------------------------------------------------------------------------


def select_tree(names: Sequence[str], allowed: Mapping[str, str]) -> dict[str, Any]:
    """{key: True (whole) | {sub-key: …}} from `$select` paths; `allowed`: path → 'ok' | 'repeat' (400.24)."""
    tree: dict[str, Any] = {}
    for name in names:
        kind = allowed.get(name)
        if kind is None:
            raise Problem(400.23, f"Could not find a property named '{name}'.", {"property": name})
        if kind == "repeat":
            raise Problem(400.24, f"The given property '{name}' reaches into a repeat, which has its own table.",
                          {"property": name})
        node = tree
        parts = name.split("/")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if child is True:
                break
            node = child
        else:
            node[parts[-1]] = True
    return tree


def apply_select(row: Mapping[str, Any], tree: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        wanted = tree.get(key)
        if wanted is True:
            out[key] = value
        elif isinstance(wanted, dict) and isinstance(value, dict):
            out[key] = apply_select(value, wanted)
    return out


def selectable(model: FormModel, table: Table) -> dict[str, str]:
    """The `$select` paths of a table: its fields (relative to the repeat), groups, `__id`, the parent key or
    `__system` and its keys; paths into a nested repeat are 'repeat' (400.24)."""
    prefix = "" if table.repeat is None else f"/{'/'.join(table.segments)}/"
    out: dict[str, str] = {"__id": "ok"}
    if table.repeat is None:
        out["__system"] = "ok"
        out.update({f"__system/{k}": "ok" for k in SYSTEM_KEYS})
    else:
        out[table.parent_key or ""] = "ok"
    for f in model.fields:
        inside = f.odata_path.startswith(prefix) if prefix else True
        if not inside or (table.repeat is not None and f.path[1:] == table.repeat):
            continue
        rel = f.odata_path[len(prefix):] if prefix else f.odata_path[1:]
        mine = f.repeat == table.repeat and f.type != "repeat"
        out.setdefault(rel, "ok" if mine else "repeat")
    return out


# -- answers ---------------------------------------------------------------------------------------------------


class Service:
    """The OData answers for one form; rows are converted from XML once per (submission state, form version)."""

    def __init__(self, domain: Callable[[], str]):
        self.domain = domain
        self._converters: dict[str, Converter] = {}
        self._rows: dict[tuple[Any, ...], Rows] = {}

    def converter(self, d: FormDef) -> Converter:
        key = d.hashes["sha256"]
        if key not in self._converters:
            self._converters[key] = Converter(d.model)
        return self._converters[key]

    def rows(self, d: FormDef, sub: Submission, *, wkt: bool = False, expand: bool = False) -> Rows:
        key = (d.hashes["sha256"], sub.id, sub.event, wkt, expand)
        found = self._rows.get(key)
        if found is None:
            if len(self._rows) > 200_000:
                self._rows.clear()
            found = self._rows[key] = self.converter(d).rows(sub, wkt=wkt, expand=expand)
        return found

    def svc_url(self, form: Form) -> str:
        return f"{self.domain()}/v1/projects/{form.project.id}/forms/{quote(form.xml_form_id, safe='')}.svc"

    def service_document(self, form: Form, d: FormDef) -> dict[str, Any]:
        return {"@odata.context": f"{self.svc_url(form)}/$metadata",
                "value": [{"name": t.name, "kind": "EntitySet", "url": t.name} for t in d.model.tables.values()]}

    # -- tables ------------------------------------------------------------------------------------------------

    def table(self, form: Form, d: FormDef, name: str, params: Mapping[str, str], path: str, raw_params: Sequence[
            tuple[str, str]], if_none_match: str | None) -> Answer:
        table = d.model.tables.get(name)
        if table is None:
            raise not_found()
        opts = parse_options(params, root_table=table.repeat is None)
        tree = select_tree(opts.select, selectable(d.model, table)) if opts.select is not None else None
        subs = [s for s in default_order(form.submissions.values()) if opts.filter(system_values(s))]  # type: ignore[misc]
        if opts.orderby:
            subs = _sort(subs, opts.orderby)
        # Central hashes the events of the submissions of *this page* (after its skiptoken, $skip and $top; for a
        # repeat table, of every selected submission): an ETag stands for the whole answer only when one page
        # holds it (getODataSelectionEtag, lib/model/query/submissions.js)
        tag = etag(self._paged(form, subs, opts) if table.repeat is None else subs)
        if if_none_match is not None and if_none_match == tag:
            return Answer(304, headers={"ETag": tag})
        if table.repeat is None:
            return self._submissions(form, d, subs, opts, tree, path, raw_params, tag)
        rows = [r for s in subs for r in self.rows(d, s).tables.get(table.name, [])]
        return self._repeat_rows(form, table, rows, opts, tree, path, raw_params, tag)

    @staticmethod
    def _after_cursor(form: Form, subs: list[Submission], opts: Options) -> list[Submission]:
        """The submissions after the $skiptoken's, or after the first $skip."""
        if opts.skiptoken is not None:
            cursor_id = opts.skiptoken.get("instanceId")
            cursor = form.submissions.get(cursor_id) if isinstance(cursor_id, str) else None
            return [] if cursor is None else [s for s in subs
                                              if (s.created_at, s.id) < (cursor.created_at, cursor.id)]
        return subs[opts.skip:] if opts.skip else subs

    def _paged(self, form: Form, subs: list[Submission], opts: Options) -> list[Submission]:
        rest = self._after_cursor(form, subs, opts)
        return rest if opts.top is None else rest[: opts.top]

    def _submissions(self, form: Form, d: FormDef, subs: list[Submission], opts: Options, tree: Any, path: str,
                     raw_params: Sequence[tuple[str, str]], tag: str) -> Answer:
        total = len(subs)
        rest = self._after_cursor(form, subs, opts)
        page = rest if opts.top is None else rest[: opts.top]
        # Central's "remaining" ignores an offset: with $skip a nextLink comes even on the last page (§5.1)
        remaining = (total if opts.skip and opts.skiptoken is None else len(rest)) - len(page)
        body: dict[str, Any] = {"value": [self._root_row(d, s, opts, tree) for s in page],
                                "@odata.context": f"{self.svc_url(form)}/$metadata#Submissions"}
        if page and remaining > 0 and (opts.top or opts.skip):
            body["@odata.nextLink"] = self._next(path, raw_params, {"instanceId": page[-1].root_id})
        if opts.count:
            body["@odata.count"] = total
        return Answer(200, body, {"ETag": tag})

    def _root_row(self, d: FormDef, sub: Submission, opts: Options, tree: Any) -> dict[str, Any]:
        row = self.rows(d, sub, wkt=opts.wkt, expand=opts.expand).root
        return apply_select(row, tree) if tree is not None else row

    def _repeat_rows(self, form: Form, table: Table, rows: list[dict[str, Any]], opts: Options, tree: Any, path: str,
                     raw_params: Sequence[tuple[str, str]], tag: str) -> Answer:
        total = len(rows)
        rest = rows
        if opts.skiptoken is not None:
            cursor = opts.skiptoken.get("repeatId")
            index = next((i for i, r in enumerate(rows) if r["__id"] == cursor), None) if cursor else None
            if index is None:
                raise Problem(400.34, "The $skiptoken names a repeat row that no longer exists.",
                              {"repeatId": cursor})
            rest = rows[index + 1:]
        elif opts.skip:
            rest = rows[opts.skip:]
        page = rest if opts.top is None else rest[: opts.top]
        remaining = len(rest) - len(page)
        body: dict[str, Any] = {"value": [apply_select(r, tree) if tree is not None else r for r in page],
                                "@odata.context": f"{self.svc_url(form)}/$metadata#{table.name}"}
        if opts.top == 0 and opts.count and total:  # Central's bogus link: its page fails with 400.34 (§13.5)
            body["@odata.nextLink"] = self._next(path, raw_params, {"repeatId": None})
        elif page and remaining > 0 and opts.top is not None:
            body["@odata.nextLink"] = self._next(path, raw_params, {"repeatId": page[-1]["__id"]})
        if opts.count:
            body["@odata.count"] = total
        return Answer(200, body, {"ETag": tag})

    def _next(self, path: str, raw_params: Sequence[tuple[str, str]], cursor: Mapping[str, Any]) -> str:
        kept = [(k, v) for k, v in raw_params if k not in ("$skip", "$skiptoken")]
        kept.append(("$skiptoken", make_skiptoken(cursor)))
        return f"{self.domain()}{path}?" + "&".join(f"{_form_encode(k)}={_form_encode(v)}" for k, v in kept)

    # -- one submission and its navigation links ------------------------------------------------------------------

    def entity(self, form: Form, d: FormDef, root_id: str, nav: Sequence[tuple[str, str | None]],
               params: Mapping[str, str]) -> Answer:
        sub = form.submissions.get(root_id)
        if sub is None or sub.deleted_at is not None:
            raise not_found()
        if not nav:
            opts = parse_options({k: v for k, v in params.items() if k in ("$select", "$expand", "$wkt")},
                                 root_table=True)
            tree = select_tree(opts.select, selectable(d.model, d.model.tables["Submissions"])) if opts.select \
                else None
            return Answer(200, {"value": [self._root_row(d, sub, opts, tree)],
                                "@odata.context": f"{self.svc_url(form)}/$metadata#Submissions"})
        segments = tuple(seg for seg, _ in nav)
        table = d.model.tables.get("Submissions." + ".".join(segments))
        keyed = [(i, key) for i, (_, key) in enumerate(nav) if key is not None]
        if table is None or (nav[-1][1] is not None):
            raise not_found()
        rows = self.rows(d, sub).tables.get(table.name, [])
        if keyed:  # the innermost keyed repeat instance is the parent of the rows asked for
            parent = d.model.tables.get("Submissions." + ".".join(segments[: keyed[-1][0] + 1]))
            if parent is None or parent.name != table.parent:
                raise not_found()
            rows = [r for r in rows if r.get(table.parent_key or "") == keyed[-1][1]]
        elif table.parent != "Submissions":
            raise not_found()
        opts = parse_options({k: v for k, v in params.items() if k in ("$select", "$wkt")}, root_table=False)
        tree = select_tree(opts.select, selectable(d.model, table)) if opts.select else None
        return Answer(200, {"value": [apply_select(r, tree) if tree is not None else r for r in rows],
                            "@odata.context": f"{self.svc_url(form)}/$metadata#{table.name}"})

    # -- $metadata ---------------------------------------------------------------------------------------------

    def metadata(self, d: FormDef) -> str:
        return edmx(d)


def _form_encode(text: str) -> str:
    """application/x-www-form-urlencoded as URLSearchParams writes it: `$` → `%24`, space → `+`."""
    return quote(text, safe="*-._").replace("%20", "+")


# -- EDMX ------------------------------------------------------------------------------------------------------

_SYSTEM_SCHEMA = """<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="org.opendatakit.submission">
<ComplexType Name="metadata">
<Property Name="submissionDate" Type="Edm.DateTimeOffset"/>
<Property Name="updatedAt" Type="Edm.DateTimeOffset"/>
<Property Name="deletedAt" Type="Edm.DateTimeOffset"/>
<Property Name="submitterId" Type="Edm.String"/>
<Property Name="submitterName" Type="Edm.String"/>
<Property Name="attachmentsPresent" Type="Edm.Int64"/>
<Property Name="attachmentsExpected" Type="Edm.Int64"/>
<Property Name="status" Type="org.opendatakit.submission.Status"/>
<Property Name="reviewState" Type="org.opendatakit.submission.ReviewState"/>
<Property Name="deviceId" Type="Edm.String"/>
<Property Name="edits" Type="Edm.Int64"/>
<Property Name="formVersion" Type="Edm.String"/>
</ComplexType>
<EnumType Name="Status">
<Member Name="notDecrypted"/>
<Member Name="missingEncryptedFormData"/>
</EnumType>
<EnumType Name="ReviewState">
<Member Name="hasIssues"/>
<Member Name="edited"/>
<Member Name="rejected"/>
<Member Name="approved"/>
</EnumType>
</Schema>"""
_CAPABILITIES = """<Annotation Term="Org.OData.Capabilities.V1.ConformanceLevel" EnumMember="Org.OData.Capabilities.V1.\
ConformanceLevelType/Minimal"/>
<Annotation Term="Org.OData.Capabilities.V1.BatchSupported" Bool="false"/>
<Annotation Term="Org.OData.Capabilities.V1.CountRestrictions"><Record><PropertyValue Property="Countable" \
Bool="true"/></Record></Annotation>
<Annotation Term="Org.OData.Capabilities.V1.FilterRestrictions"><Record><PropertyValue Property="Filterable" \
Bool="true"/><PropertyValue Property="RequiresFilter" Bool="false"/><PropertyValue Property="NonFilterableProperties">\
<Collection><PropertyPath>meta</PropertyPath></Collection></PropertyValue></Record></Annotation>
<Annotation Term="Org.OData.Capabilities.V1.SortRestrictions"><Record><PropertyValue Property="Sortable" \
Bool="false"/></Record></Annotation>
<Annotation Term="Org.OData.Capabilities.V1.ExpandRestrictions"><Record><PropertyValue Property="Expandable" \
Bool="false"/></Record></Annotation>"""


def edmx(d: FormDef) -> str:
    """`$metadata`: the system schema, then the form's: EntityType `Submissions`, a ComplexType per group, an
    EntityType per repeat (keyed on `__id`, with its parent key), NavigationProperties for repeats."""
    model = d.model
    ns = f"org.opendatakit.user.{odata_name(d.xform.form_id)}"
    types: list[str] = []
    complexes: list[str] = []

    def members(parent_raw: str) -> list[str]:
        out = []
        for f in model.fields:
            here = f.path[1:].rsplit("/", 1)[0] if "/" in f.path[1:] else ""
            if here != parent_raw:
                continue
            dotted = ".".join(f.odata_path[1:].split("/"))
            if f.type == "repeat":
                out.append(f'<NavigationProperty Name={quoteattr(f.odata_name)} '
                           f'Type={quoteattr(f"Collection({ns}.Submissions.{dotted})")}/>')
            elif f.type == "structure":
                out.append(f'<Property Name={quoteattr(f.odata_name)} Type={quoteattr(f"{ns}.{dotted}")}/>')
                complexes.append(f'<ComplexType Name={quoteattr(dotted)}>\n' + "\n".join(members(f.path[1:]))
                                 + "\n</ComplexType>")
            else:
                out.append(f'<Property Name={quoteattr(f.odata_name)} Type="{EDM.get(f.type, "Edm.String")}"/>')
        return out

    root = members("")
    types.append('<EntityType Name="Submissions">\n<Key><PropertyRef Name="__id"/></Key>\n'
                 '<Property Name="__id" Type="Edm.String"/>\n'
                 '<Property Name="__system" Type="org.opendatakit.submission.metadata"/>\n' + "\n".join(root)
                 + "\n</EntityType>")
    for table in list(model.tables.values())[1:]:
        body = members(table.repeat or "")
        types.append(f'<EntityType Name={quoteattr(table.name)}>\n<Key><PropertyRef Name="__id"/></Key>\n'
                     f'<Property Name="__id" Type="Edm.String"/>\n'
                     f'<Property Name={quoteattr(table.parent_key or "")} Type="Edm.String"/>\n' + "\n".join(body)
                     + "\n</EntityType>")
    sets = [f'<EntitySet Name="Submissions" EntityType="{ns}.Submissions">\n{_CAPABILITIES}\n</EntitySet>']
    sets += [f'<EntitySet Name={quoteattr(t.name)} EntityType={quoteattr(f"{ns}.{t.name}")}/>'
             for t in list(model.tables.values())[1:]]
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n<edmx:DataServices>\n'
            f"{_SYSTEM_SCHEMA}\n"
            f'<Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace={quoteattr(ns)}>\n'
            + "\n".join(types + complexes)
            + '\n<EntityContainer Name="SubmissionsService">\n' + "\n".join(sets) + "\n</EntityContainer>\n"
            "</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n")
