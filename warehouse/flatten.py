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
from warehouse.convert import (
    BadValue,
    from_unix_seconds,
    to_date,
    to_decimal,
    to_int,
    to_utc_naive,
)
from warehouse.protect import COARSE_DIGITS, Pseudonymizer
from warehouse.tables import FormTables, TablePlan

Converter = Callable[[str], Any]


_CONVERTERS: dict[Kind, Converter] = {
    Kind.INTEGER: to_int,
    Kind.DECIMAL: to_decimal,
    Kind.DATE: to_date,
    Kind.DATETIME: to_utc_naive,
    Kind.TIME: str,
    Kind.TEXT: str,
    Kind.SELECT_ONE: str,
    Kind.SELECT_MULTIPLE: str,
}


def _geopoint(v: str) -> tuple[float | None, ...]:
    parts = v.split()
    if len(parts) < 2 or len(parts) > 4:
        raise BadValue("is not a geopoint (latitude longitude [altitude [accuracy]])")
    nums = [to_decimal(p) for p in parts]
    if not (-90 <= nums[0] <= 90 and -180 <= nums[1] <= 180):
        raise BadValue("is not a geopoint (latitude or longitude out of range)")
    return tuple(nums) + (None,) * (4 - len(nums))


def bad_value(key: str, raw: str, reason: str) -> str:
    """One `_issues` entry: the question, the raw text (shortened), and why it was not stored."""
    return f"{key}: {raw[:40]!r} {reason}"


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

    def flatten_into(self, page: FlatPage, submission: Mapping[str, Any], sid: int, synced_at: dt.datetime,
                     issues: list[str] | None = None) -> list[str]:
        """Append the rows of the submission (whose `_id` the caller has checked: `sid`) to `page`; return what
        could not be stored in typed columns (`issues` may bring what was found before, e.g. text scrubbed)."""
        issues = issues if issues is not None else []
        root = self._compiled[None]
        row = system_values(submission, sid, issues)
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
                except BadValue as exc:
                    issues.append(bad_value(key, raw, str(exc)))
            elif mode == _CHOICES:
                row[column] = raw
                add = page.add
                for position, code in enumerate(raw.split(), start=1):
                    add(step.bridge, {"_submission_id": sid, "_parent_row_id": row_id, "_position": position,
                                      "code": code})
            elif mode == _GEOPOINT:
                try:
                    row.update(zip(step.columns, _geopoint(raw), strict=True))
                except BadValue as exc:
                    issues.append(bad_value(key, raw, str(exc)))
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
            except BadValue:
                issues.append(f"{step.key}: not a valid geopoint (kept in restricted_values)")
                lat = lon = None
            coarse = (None if lat is None else round(lat, COARSE_DIGITS),
                      None if lon is None else round(lon, COARSE_DIGITS), None, None)
            for col, v in zip(step.columns, coarse, strict=True):
                row[col] = v
        else:
            row[step.columns[0]] = self.pseudonymizer.pseudonym(text) if self.pseudonymizer else None


def _system_text(submission: Mapping[str, Any], key: str, issues: list[str]) -> str | None:
    value = submission.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    issues.append(f"{key}: expected text, got {type(value).__name__}")
    return None


def system_values(submission: Mapping[str, Any], sid: int, issues: list[str]) -> dict[str, Any]:
    """The submission table's system columns from KoBo's system keys (each converted, never trusted)."""
    status = submission.get("_validation_status") or {}
    if not isinstance(status, Mapping):
        issues.append(f"_validation_status: expected an object, got {type(status).__name__}")
        status = {}
    root_uuid = _system_text(submission, "meta/rootUuid", issues) or _system_text(submission, "meta/instanceID", [])
    values: dict[str, Any] = {
        "_id": sid,
        "_uuid": _system_text(submission, "_uuid", issues) or "",
        "_root_uuid": root_uuid.removeprefix("uuid:") if root_uuid else None,
        "_instance_id": _system_text(submission, "meta/instanceID", issues),
        "_duplicate_of": None,
        "_submission_time": None,
        "_submitted_by": _system_text(submission, "_submitted_by", issues),
        "_version": _system_text(submission, "__version__", issues),
        "_status": _system_text(submission, "_status", issues),
        "_validation_status": _system_text(status, "uid", issues),
        "_validation_by": _system_text(status, "by_whom", issues),
        "_validation_at": validation_time(status, issues),
        "_deleted_at": None,
    }
    when = submission.get("_submission_time")
    if when:
        try:
            values["_submission_time"] = to_utc_naive(str(when))
        except BadValue as exc:
            issues.append(bad_value("_submission_time", str(when), str(exc)))
    return values


def validation_time(status: Mapping[str, Any], issues: list[str] | None = None) -> dt.datetime | None:
    """When a validation status was set (KoBo's `timestamp`), or None when absent or unusable."""
    stamp = status.get("timestamp")
    if stamp is None:
        return None
    try:
        return from_unix_seconds(stamp)
    except BadValue as exc:
        if issues is not None:
            issues.append(bad_value("_validation_status.timestamp", str(stamp), str(exc)))
        return None
