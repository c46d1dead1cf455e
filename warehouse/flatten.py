"""Submission JSON → rows of the form's tables, following the plan in `FormTables`.

Compiled once per form version: for every table a list of (KoBo key, converter, columns), so that
flattening a submission is a loop over precomputed steps. A value that does not fit its question's
type (text in an integer, a malformed date, a list where an answer was expected) is left NULL and
described in `issues`; the submission itself is always kept (its raw JSON is stored verbatim).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from forms.schema import SYSTEM_PREFIXES, Field, Kind
from warehouse.protect import COARSE_DIGITS, Pseudonymizer
from warehouse.tables import FormTables, TablePlan

Converter = Callable[[str], Any]


class BadValue(ValueError):
    pass


def _to_int(v: str) -> int:
    try:
        return int(v)
    except ValueError:
        f = float(v)  # "3.0" from some clients is still an integer answer
        if not f.is_integer():
            raise
        return int(f)


def _to_date(v: str) -> dt.date:
    return dt.date.fromisoformat(v[:10]) if len(v) >= 10 and v[4] == "-" else dt.date.fromisoformat(v)


def to_utc_naive(v: str) -> dt.datetime:
    """An ODK/KoBo datetime ('2026-03-10T09:12:45.123+03:00' or UTC without zone) → naive UTC."""
    value = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


_CONVERTERS: dict[Kind, Converter] = {
    Kind.INTEGER: _to_int,
    Kind.DECIMAL: float,
    Kind.DATE: _to_date,
    Kind.DATETIME: to_utc_naive,
    Kind.TIME: str,
    Kind.TEXT: str,
    Kind.SELECT_ONE: str,
    Kind.SELECT_MULTIPLE: str,
}


def _geopoint(v: str) -> tuple[float | None, ...]:
    parts = v.split()
    if len(parts) < 2 or len(parts) > 4:
        raise BadValue(v)
    nums = [float(p) for p in parts]
    if not (-90 <= nums[0] <= 90 and -180 <= nums[1] <= 180):
        raise BadValue(v)
    return tuple(nums) + (None,) * (4 - len(nums))


@dataclass(slots=True)
class FlatPage:
    """Rows for every table of a form, for a batch of submissions."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    issues: int = 0

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)


RESTRICTED = "restricted_values"  # key in FlatPage.rows for the values of sensitive questions


# what _level does with an answer (decided once per question when the flattener is compiled)
_PLAIN, _CONVERT, _CHOICES, _GEOPOINT, _SENSITIVE = range(5)
_AS_IS = frozenset({Kind.TEXT, Kind.SELECT_ONE, Kind.TIME})  # stored as the text KoBo sent


@dataclass(frozen=True, slots=True)
class _Step:
    key: str
    field: Field
    columns: tuple[str, ...]
    convert: Converter | None  # None for a geopoint
    bridge: str | None


@dataclass(frozen=True, slots=True)
class _CompiledTable:
    name: str
    steps: tuple[tuple[str, int, str, Any, _Step], ...]  # (key, mode, first column, converter, step)
    template: dict[str, None]  # every answer column, NULL: a row starts as a copy of it
    children: tuple[str, ...]
    known: frozenset[str]  # every key this level may carry (answers, notes, child repeats)


class Flattener:
    """Turns KoBo submission dicts into rows; one instance per form version.

    Compiled once: per table, the questions in order with what to do with each answer, and a row
    template with every column NULL, so flattening a submission touches only the answers it has.
    Answers to sensitive questions go to `restricted_values`; their columns get the pseudonym (or,
    for a geopoint, coordinates rounded to 0.1°), or NULL when no pseudonymizer is given."""

    def __init__(self, tables: FormTables, pseudonymizer: Pseudonymizer | None = None):
        self.tables = tables
        self.pseudonymizer = pseudonymizer
        self._compiled = {path: self._compile(plan) for path, plan in tables.plans.items()}

    def _compile(self, plan: TablePlan) -> _CompiledTable:
        bridges = {b.field.path: b.table for b in plan.bridges}
        steps = []
        for cp in plan.columns:
            f = cp.field
            step = _Step(key=f.path, field=f, columns=cp.columns,
                         convert=None if f.kind is Kind.GEOPOINT else _CONVERTERS[f.kind], bridge=bridges.get(f.path))
            mode = (_SENSITIVE if f.sensitive else _GEOPOINT if f.kind is Kind.GEOPOINT
                    else _CHOICES if step.bridge else _PLAIN if f.kind in _AS_IS else _CONVERT)
            steps.append((step.key, mode, step.columns[0], step.convert, step))
        level = plan.repeat.path if plan.repeat else None
        schema = self.tables.schema
        known = {f.path for f in schema.fields_in(level)} | set(plan.children)
        template = {col: None for cp in plan.columns for col in cp.columns}
        return _CompiledTable(name=plan.name, steps=tuple(steps), template=template,
                              children=plan.children, known=frozenset(known))

    def flatten_into(self, page: FlatPage, submission: Mapping[str, Any], synced_at: dt.datetime) -> list[str]:
        """Append the submission's rows to `page`; return what could not be stored in typed columns."""
        issues: list[str] = []
        sid = int(submission["_id"])
        root = self._compiled[None]
        row = system_values(submission, issues)
        row["_synced_at"] = synced_at
        row.update(root.template)
        self._level(page, root, submission, row, sid, None, issues, is_root=True)
        row["_issues"] = "; ".join(issues)[:2000] if issues else None
        page.add(root.name, row)
        page.issues += len(issues)
        return issues

    def _level(self, page: FlatPage, table: _CompiledTable, data: Mapping[str, Any], row: dict[str, Any],
               sid: int, row_id: str | None, issues: list[str], *, is_root: bool) -> None:
        get = data.get
        for key, mode, column, convert, step in table.steps:
            raw = get(key)
            if raw is None:
                continue
            if type(raw) is not str:
                if not isinstance(raw, int | float) or isinstance(raw, bool):
                    issues.append(f"{key}: expected an answer, got {type(raw).__name__}")
                    continue
                raw = str(raw)
            if mode == _PLAIN:
                row[column] = raw
            elif mode == _CONVERT:
                try:
                    row[column] = convert(raw)
                except (ValueError, IndexError):
                    issues.append(f"{key}: {raw[:40]!r} is not a valid {step.field.kind.value}")
            elif mode == _CHOICES:
                row[column] = raw
                add = page.add
                for position, code in enumerate(raw.split(), start=1):
                    add(step.bridge, {"_submission_id": sid, "_parent_row_id": row_id, "_position": position,
                                      "code": code})
            elif mode == _GEOPOINT:
                try:
                    row.update(zip(step.columns, _geopoint(raw), strict=True))
                except (ValueError, IndexError):
                    issues.append(f"{key}: {raw[:40]!r} is not a valid {step.field.kind.value}")
            else:
                self._protect(page, step, raw, row, table.name, sid, row_id, issues)
        unknown = data.keys() - table.known
        if unknown:
            for key in data:  # in the submission's order
                if key in unknown and not (is_root and key.startswith(SYSTEM_PREFIXES)):
                    issues.append(f"{key}: not a question of this form version")
        for child_path in table.children:
            items = get(child_path)
            if items is None:
                continue
            if not isinstance(items, list):
                issues.append(f"{child_path}: expected a list of repeat instances, got {type(items).__name__}")
                continue
            child = self._compiled[child_path]
            for position, item in enumerate(items, start=1):
                if not isinstance(item, Mapping):
                    issues.append(f"{child_path}[{position}]: expected an object")
                    continue
                child_id = f"{row_id}.{position}" if row_id else str(position)
                child_row: dict[str, Any] = {"_submission_id": sid, "_row_id": child_id,
                                             "_parent_row_id": row_id, "_position": position, **child.template}
                self._level(page, child, item, child_row, sid, child_id, issues, is_root=False)
                page.add(child.name, child_row)

    def _protect(self, page: FlatPage, step: _Step, text: str, row: dict[str, Any], table: str, sid: int,
                 row_id: str | None, issues: list[str]) -> None:
        page.add(RESTRICTED, {"table_name": table, "submission_id": sid, "row_id": row_id or "",
                              "path": step.key, "value": text})
        if step.convert is None:  # geopoint: keep only a coarse location
            try:
                lat, lon, *_ = _geopoint(text)
            except (ValueError, IndexError):
                issues.append(f"{step.key}: not a valid geopoint (kept in restricted_values)")
                lat = lon = None
            coarse = (None if lat is None else round(lat, COARSE_DIGITS),
                      None if lon is None else round(lon, COARSE_DIGITS), None, None)
            for col, v in zip(step.columns, coarse, strict=True):
                row[col] = v
        else:
            row[step.columns[0]] = self.pseudonymizer.pseudonym(text) if self.pseudonymizer else None


def system_values(submission: Mapping[str, Any], issues: list[str]) -> dict[str, Any]:
    """The submission table's system columns from KoBo's system keys."""
    status = submission.get("_validation_status") or {}
    if not isinstance(status, Mapping):
        status = {}
    stamp = status.get("timestamp")
    root_uuid = submission.get("meta/rootUuid") or submission.get("meta/instanceID")
    values: dict[str, Any] = {
        "_id": int(submission["_id"]),
        "_uuid": str(submission.get("_uuid") or ""),
        "_root_uuid": str(root_uuid).removeprefix("uuid:") if root_uuid else None,
        "_instance_id": submission.get("meta/instanceID"),
        "_duplicate_of": None,
        "_submission_time": None,
        "_submitted_by": submission.get("_submitted_by"),
        "_version": submission.get("__version__"),
        "_status": submission.get("_status"),
        "_validation_status": status.get("uid"),
        "_validation_by": status.get("by_whom"),
        "_validation_at": dt.datetime.fromtimestamp(stamp, dt.UTC).replace(tzinfo=None)
        if isinstance(stamp, int | float) else None,
        "_deleted_at": None,
    }
    when = submission.get("_submission_time")
    if when:
        try:
            values["_submission_time"] = to_utc_naive(str(when))
        except ValueError:
            issues.append(f"_submission_time: {str(when)[:40]!r} is not a date and time")
    return values
