"""Submission JSON → the form's tables as Arrow columns, a page at a time, driven by the `FormTables` plan.

The row flattener (`warehouse.flatten`) walks each submission and builds a dict per row. Here each table is
built a column at a time for the whole page: the answers of one question are gathered from every submission
(or every repeat instance, at any depth) in one pass, converted by `warehouse.vectorised` once per distinct
value, and kept as an Arrow array; repeat keys (`_row_id`, `_parent_row_id`, `_position`) and the rows of
select_multiple bridges are derived from list offsets; sensitive answers become pseudonyms (one HMAC per
distinct value) and rows of `restricted_values`.

A submission with anything the row flattener would describe in `_issues` — a value that does not convert,
a key that is not a question of the form version, a list where an answer belongs, text scrubbed of NUL
characters — is taken out of the columnar batch and flattened by the row flattener instead, so its rows and
its `_issues` text are exactly what they always were. The rest have no issues by construction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from forms.schema import SYSTEM_PREFIXES, Kind
from warehouse.arrowtypes import arrow_schema
from warehouse.convert import BadValue, from_unix_seconds
from warehouse.flatten import _AS_IS, RESTRICTED, FlatPage, Flattener, _geopoint
from warehouse.load import Incoming
from warehouse.protect import COARSE_DIGITS, Pseudonymizer
from warehouse.tables import FormTables, TablePlan
from warehouse.vectorised import _BAD, Converters, PerValue, answer_texts, rows_of

RESTRICTED_SCHEMA = pa.schema([("table_name", pa.string()), ("submission_id", pa.int64()), ("row_id", pa.string()),
                               ("path", pa.string()), ("value", pa.string())])
_NULL_TEXT = pa.scalar(None, pa.string())


@dataclass(slots=True)
class ColumnarPage:
    """Every table of a form for a batch of submissions, as Arrow tables (only tables that got rows)."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    restricted: pa.Table | None = None  # table_name, submission_id, row_id, path, value
    issues: int = 0
    by_rows: int = 0  # submissions the row flattener took (they had issues)


@dataclass(slots=True)
class _Built:
    """Columns gathered so far, per table, with the submission (index in the batch) each row belongs to."""

    columns: dict[str, dict[str, pa.Array]] = field(default_factory=dict)
    owners: dict[str, np.ndarray] = field(default_factory=dict)
    restricted: list[tuple[pa.Array, ...]] = field(default_factory=list)
    restricted_owners: list[np.ndarray] = field(default_factory=list)
    bad: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def add(self, table: str, owner: np.ndarray, columns: dict[str, pa.Array]) -> None:
        self.columns[table] = columns
        self.owners[table] = owner

    def mark(self, owner: np.ndarray, rows: np.ndarray | None) -> None:
        if rows is not None and rows.any():
            self.bad[owner[rows]] = True


def _values(dicts: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    try:
        return list(map(dict.get, dicts, repeat(key)))  # type: ignore[arg-type]
    except TypeError:  # a Mapping that is not a dict
        return [d.get(key) for d in dicts]


def _system_texts(dicts: Sequence[Mapping[str, Any]], key: str) -> tuple[pa.Array, np.ndarray | None]:
    """A system value as `flatten._system_text` reads it (text, a number spelled out, else an issue)."""
    return answer_texts(_values(dicts, key))


class ColumnarFlattener:
    """The columnar counterpart of `Flattener` for one form version; same tables, same values."""

    def __init__(self, tables: FormTables, pseudonymizer: Pseudonymizer | None, rows: Flattener):
        self.tables = tables
        self.rows = rows
        self.schemas = {name: arrow_schema(table) for name, table in tables.tables.items()}
        self.converters = Converters()
        self.pseudonyms = PerValue(pseudonymizer.pseudonym) if pseudonymizer is not None else None
        self.geopoints = PerValue(_geopoint)
        self.codes = PerValue(str.split)
        schema = tables.schema
        self.struct_types = {plan.name: pa.struct([(cp.field.path, pa.string()) for cp in plan.columns])
                             for plan in tables.plans.values()}
        self.known: dict[str | None, frozenset[str]] = {
            path: frozenset({f.path for f in schema.fields_in(path)} | set(plan.children))
            for path, plan in tables.plans.items()}

    # -- a page ---------------------------------------------------------------------------------

    def flatten(self, items: Sequence[Incoming], synced_at: dt.datetime, *, dirty: bool = False) -> ColumnarPage:
        """The rows of `items` (whose `_id`s the caller has checked). `dirty`: the page needed the client's
        lenient parser (numbers kept as text, text scrubbed), so every submission takes the row flattener."""
        n = len(items)
        built = _Built(bad=np.fromiter((dirty or bool(i.issues) for i in items), dtype=bool, count=n))
        if built.bad.all():
            return self._assemble(items, built, synced_at)
        dicts = [i.data for i in items]
        sids = pa.array([i.sid for i in items], pa.int64())
        owner = np.arange(n, dtype=np.int64)
        root_plan = self.tables.plans[None]
        columns = self._system_columns(dicts, sids, owner, built, synced_at)
        self._level(root_plan, dicts, owner, sids, [None] * n, built, columns, is_root=True)
        return self._assemble(items, built, synced_at)

    def _system_columns(self, dicts: list[Mapping[str, Any]], sids: pa.Array, owner: np.ndarray, built: _Built,
                        synced_at: dt.datetime) -> dict[str, pa.Array]:
        n = len(dicts)
        texts: dict[str, pa.Array] = {}
        for key in ("_uuid", "meta/rootUuid", "meta/instanceID", "_submitted_by", "__version__", "_status"):
            texts[key], bad = _system_texts(dicts, key)
            built.mark(owner, bad)
        statuses = _values(dicts, "_validation_status")
        uid: list[Any] = [None] * n
        by: list[Any] = [None] * n
        at: list[dt.datetime | None] = [None] * n
        odd = np.zeros(n, dtype=bool)
        for i, status in enumerate(statuses):
            if not status:
                continue
            if not isinstance(status, Mapping):
                odd[i] = True
                continue
            uid[i], by[i] = status.get("uid"), status.get("by_whom")
            stamp = status.get("timestamp")
            if stamp is not None:
                try:
                    at[i] = from_unix_seconds(stamp)
                except BadValue:
                    odd[i] = True
        built.mark(owner, odd)
        uid_texts, bad_uid = answer_texts(uid)
        by_texts, bad_by = answer_texts(by)
        built.mark(owner, bad_uid)
        built.mark(owner, bad_by)
        whens = [None if not w else w if type(w) is str else str(w) for w in _values(dicts, "_submission_time")]
        when_texts = pa.array(whens, pa.string())
        submitted, bad_when = self.converters.convert(Kind.DATETIME, when_texts)
        built.mark(owner, bad_when)
        root_uuid = texts["meta/rootUuid"]
        root_uuid = pc.if_else(pc.fill_null(pc.not_equal(root_uuid, ""), False), root_uuid, texts["meta/instanceID"])
        root_uuid = pc.if_else(pc.fill_null(pc.equal(root_uuid, ""), False), _NULL_TEXT, root_uuid)
        return {
            "_id": sids,
            "_uuid": pc.fill_null(texts["_uuid"], ""),
            "_root_uuid": pc.replace_substring_regex(root_uuid, "^uuid:", ""),
            "_instance_id": texts["meta/instanceID"],
            "_submission_time": submitted,
            "_submitted_by": texts["_submitted_by"],
            "_version": texts["__version__"],
            "_status": texts["_status"],
            "_validation_status": uid_texts,
            "_validation_by": by_texts,
            "_validation_at": pa.array(at, pa.timestamp("us")),
            "_synced_at": pa.array([synced_at] * n, pa.timestamp("us")),
        }

    def _level(self, plan: TablePlan, dicts: list[Mapping[str, Any]], owner: np.ndarray, sids: pa.Array,
               row_ids: list[str | None], built: _Built, columns: dict[str, pa.Array], *, is_root: bool) -> None:
        """The rows of one table for every instance at this level (`dicts`), then its child repeats."""
        self._unknown_keys(plan, dicts, owner, built, is_root=is_root)
        bridges = {b.field.path: b.table for b in plan.bridges}
        row_id_array = pa.array(row_ids, pa.string())
        answers = self._answers(plan, dicts)
        for index, cp in enumerate(plan.columns):
            f = cp.field
            if answers is not None:
                texts = answers.field(index)
            else:
                texts, bad = answer_texts(_values(dicts, f.path))
                built.mark(owner, bad)
            if f.sensitive:
                self._sensitive(plan, cp.columns, f.path, f.kind is Kind.GEOPOINT, texts, owner, sids, row_id_array,
                                built, columns)
            elif f.kind is Kind.GEOPOINT:
                parts, bad = self._geopoint_parts(texts)
                built.mark(owner, bad)
                columns.update(zip(cp.columns, parts, strict=True))
            elif f.path in bridges:
                columns[cp.columns[0]] = texts
                self._bridge(bridges[f.path], texts, owner, sids, row_id_array, built)
            elif f.kind in _AS_IS or f.kind is Kind.SELECT_MULTIPLE:
                columns[cp.columns[0]] = texts
            else:
                columns[cp.columns[0]], bad = self.converters.convert(f.kind, texts)
                built.mark(owner, bad)
        built.add(plan.name, owner, columns)
        for child_path in plan.children:
            self._children(child_path, dicts, owner, sids, row_ids, built)

    def _answers(self, plan: TablePlan, dicts: list[Mapping[str, Any]]) -> pa.StructArray | None:
        """Every answer of the level in one pass through Arrow's converter, when each is text or missing (None:
        some answer is another JSON type, and the columns are gathered one by one, as the row flattener reads
        them)."""
        if not plan.columns:
            return None
        try:
            return pa.array(dicts, type=self.struct_types[plan.name])
        except (pa.ArrowTypeError, pa.ArrowInvalid, TypeError):
            return None

    def _unknown_keys(self, plan: TablePlan, dicts: list[Mapping[str, Any]], owner: np.ndarray, built: _Built, *,
                      is_root: bool) -> None:
        known = self.known[plan.repeat.path if plan.repeat else None]
        extra = set().union(*dicts) - known
        if is_root:
            extra = {k for k in extra if not k.startswith(SYSTEM_PREFIXES)}
        if not extra:
            return
        odd = np.fromiter((not extra.isdisjoint(d) for d in dicts), dtype=bool, count=len(dicts))
        built.mark(owner, odd)

    def _children(self, child_path: str, dicts: list[Mapping[str, Any]], owner: np.ndarray, sids: pa.Array,
                  row_ids: list[str | None], built: _Built) -> None:
        instances: list[Mapping[str, Any]] = []
        parents: list[int] = []
        positions: list[int] = []
        odd = np.zeros(len(dicts), dtype=bool)
        for index, listed in enumerate(_values(dicts, child_path)):
            if listed is None:
                continue
            if type(listed) is not list:
                odd[index] = True
                continue
            for position, item in enumerate(listed, start=1):
                if type(item) is dict or isinstance(item, Mapping):
                    instances.append(item)
                    parents.append(index)
                    positions.append(position)
                else:
                    odd[index] = True
        built.mark(owner, odd)
        parent = np.array(parents, dtype=np.int64)
        child_ids = [f"{row_ids[p]}.{pos}" if row_ids[p] else str(pos) for p, pos in zip(parents, positions,
                                                                                          strict=True)]
        child_sids = sids.take(pa.array(parent, pa.int64()))
        columns: dict[str, pa.Array] = {
            "_submission_id": child_sids,
            "_row_id": pa.array(child_ids, pa.string()),
            "_parent_row_id": pa.array([row_ids[p] for p in parents], pa.string()),
            "_position": pa.array(positions, pa.int64()),
        }
        self._level(self.tables.plans[child_path], instances, owner[parent], child_sids, child_ids, built, columns,
                    is_root=False)

    # -- answers that become more than one value ------------------------------------------------

    def _geopoint_parts(self, texts: pa.Array) -> tuple[list[pa.Array], np.ndarray]:
        encoded = pc.dictionary_encode(texts)
        results = [self.geopoints(t) for t in encoded.dictionary.to_pylist()]
        failed = np.fromiter((r is _BAD for r in results), dtype=bool, count=len(results))
        indices = encoded.indices
        parts = [pa.array([None if r is _BAD else r[k] for r in results], pa.float64()).take(indices)
                 for k in range(4)]
        return parts, rows_of(failed, indices)

    def _bridge(self, table: str, texts: pa.Array, owner: np.ndarray, sids: pa.Array, row_ids: pa.Array,
                built: _Built) -> None:
        """One row per chosen code: `str.split` of each distinct answer, spread over the rows by list offsets."""
        encoded = pc.dictionary_encode(texts)
        lists = pa.array([self.codes(t) for t in encoded.dictionary.to_pylist()], pa.list_(pa.string()))
        per_row = lists.take(encoded.indices)
        lengths = pc.fill_null(pc.list_value_length(per_row), 0).to_numpy(zero_copy_only=False)
        parent = np.repeat(np.arange(len(per_row), dtype=np.int64), lengths)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        position = np.arange(len(parent), dtype=np.int64) - starts + 1
        take = pa.array(parent, pa.int64())
        built.add(table, owner[parent], {
            "_submission_id": sids.take(take),
            "_parent_row_id": row_ids.take(take),
            "_position": pa.array(position, pa.int64()),
            "code": pc.list_flatten(per_row),
        })

    def _sensitive(self, plan: TablePlan, names: tuple[str, ...], path: str, geopoint: bool, texts: pa.Array,
                   owner: np.ndarray, sids: pa.Array, row_ids: pa.Array, built: _Built,
                   columns: dict[str, pa.Array]) -> None:
        """The value to `restricted_values`; the column gets its pseudonym (a geopoint: rounded to 0.1°)."""
        present = texts.is_valid()
        keep = pa.array(np.flatnonzero(present.to_numpy(zero_copy_only=False)), pa.int64())
        built.restricted.append((pa.array([plan.name] * len(keep), pa.string()), sids.take(keep),
                                 pc.fill_null(row_ids.take(keep), ""), pa.array([path] * len(keep), pa.string()),
                                 texts.take(keep)))
        built.restricted_owners.append(owner[keep.to_numpy()])
        if geopoint:
            parts, bad = self._geopoint_parts(texts)
            built.mark(owner, bad)
            lat, lon = (pa.array([None if v is None else round(v, COARSE_DIGITS) for v in part.to_pylist()],
                                 pa.float64()) for part in parts[:2])
            nothing = pa.nulls(len(texts), pa.float64())
            columns.update(zip(names, (lat, lon, nothing, nothing), strict=True))
        elif self.pseudonyms is None:
            columns[names[0]] = pa.nulls(len(texts), pa.string())
        else:
            encoded = pc.dictionary_encode(texts)
            hidden = pa.array([self.pseudonyms(t) for t in encoded.dictionary.to_pylist()], pa.string())
            columns[names[0]] = hidden.take(encoded.indices)

    # -- the batch, and the submissions the row flattener takes ----------------------------------

    def _assemble(self, items: Sequence[Incoming], built: _Built, synced_at: dt.datetime) -> ColumnarPage:
        page = ColumnarPage()
        good = ~built.bad
        flat = FlatPage()
        for index in np.flatnonzero(built.bad):
            item = items[int(index)]
            self.rows.flatten_into(flat, item.data, item.sid, synced_at, list(item.issues))
        page.issues = flat.issues
        page.by_rows = int(built.bad.sum())
        for name, schema in self.schemas.items():
            parts: list[pa.Table] = []
            columns = built.columns.get(name)
            if columns is not None:
                keep = good[built.owners[name]]
                length = len(keep)
                arrays = [columns.get(f.name, pa.nulls(length, f.type)) for f in schema]
                table = pa.Table.from_arrays([_typed(a, f.type) for a, f in zip(arrays, schema, strict=True)],
                                             schema=schema)
                parts.append(table if keep.all() else table.filter(pa.array(keep)))
            if flat.rows.get(name):
                parts.append(pa.Table.from_pylist(flat.rows[name], schema=schema))
            rows = pa.concat_tables(parts) if len(parts) > 1 else parts[0] if parts else None
            if rows is not None and rows.num_rows:
                page.tables[name] = rows
        restricted: list[pa.Table] = []
        for arrays, owners in zip(built.restricted, built.restricted_owners, strict=True):
            table = pa.Table.from_arrays(list(arrays), schema=RESTRICTED_SCHEMA)
            keep = good[owners]
            restricted.append(table if keep.all() else table.filter(pa.array(keep)))
        if flat.rows.get(RESTRICTED):
            restricted.append(pa.Table.from_pylist(flat.rows[RESTRICTED], schema=RESTRICTED_SCHEMA))
        if restricted:
            table = pa.concat_tables(restricted)
            page.restricted = table if table.num_rows else None
        return page


def _typed(array: pa.Array, wanted: pa.DataType) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array if array.type == wanted else array.cast(wanted)


_HISTORY = pa.schema([("asset_key", pa.string()), ("submission_id", pa.int64()), ("seen_at", pa.timestamp("us")),
                      ("run_id", pa.int64()), ("change", pa.string()), ("uuid", pa.string()),
                      ("validation_status", pa.string()), ("validation_by", pa.string()), ("found_by", pa.string())])


def with_asset_key(rows: pa.Table, key: str) -> pa.Table:
    return rows.append_column("asset_key", pa.array([key] * rows.num_rows, pa.string()))


def raw_rows(key: str, items: Sequence[Incoming], uuids: Sequence[str], fetched_at: dt.datetime) -> pa.Table:
    """`submissions_raw` rows: each submission's JSON as received, with its digest."""
    n = len(items)
    return pa.table({
        "asset_key": pa.array([key] * n, pa.string()),
        "submission_id": pa.array([i.sid for i in items], pa.int64()),
        "uuid": pa.array(uuids, pa.string()),
        "digest": pa.array([i.digest for i in items], pa.string()),
        "json": pa.array([i.raw for i in items], pa.string()),
        "fetched_at": pa.array([fetched_at] * n, pa.timestamp("us"))})


def history_rows(history: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(history, schema=_HISTORY)
