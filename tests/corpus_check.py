"""Value by value: is every answer of every submission where the data dictionary says it is?

Independent of the flattener: where a value goes is read from the warehouse's own dictionary (`fields`:
path → table, column, SQL type, bridge table), what it should be is worked out here from the answer text
as KoBo sent it, and the rows are read back from the database. A value that does not fit its column's
type (a question retyped between versions) must be NULL and named in the row's `_issues`; every other
row's `_issues` must be empty.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from warehouse.dictionary import dictionary
from warehouse.store import Warehouse

GEO = ("latitude", "longitude", "altitude", "precision")


def _expected(sql_type: str, text: str, part: str) -> Any:
    """The stored value for `text` in a column of `sql_type` (ValueError: it does not fit)."""
    kind = sql_type.upper()
    if part:
        pieces = text.split()
        return float(pieces[GEO.index(part)]) if GEO.index(part) < len(pieces) else None
    if "INT" in kind:
        number = float(text)
        if not number.is_integer():
            raise ValueError(text)
        return int(number)
    if "DOUBLE" in kind or "FLOAT" in kind or "REAL" in kind:
        return float(text)
    if kind == "DATE":
        return dt.date.fromisoformat(text[:10])
    if "TIMESTAMP" in kind or "DATETIME" in kind:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    return text


class Checker:
    def __init__(self, wh: Warehouse, asset_uid: str, no_column: set[str] = frozenset()):
        """`no_column`: paths the form defines without a column (notes), whose answers go nowhere."""
        self.wh = wh
        self.uid = asset_uid
        self.no_column = set(no_column)
        self.root = next(name for name, kind, _ in wh.tables_of(asset_uid) if kind == "submissions")
        self.columns: dict[str, list[dict[str, Any]]] = {}
        for entry in dictionary(wh):
            if entry["asset_key"] == asset_uid:
                self.columns.setdefault(entry["path"], []).append(entry)
        self.meta = sa.MetaData()
        self.problems: list[str] = []
        self.checked = 0

    def table(self, name: str) -> sa.Table:
        if name not in self.meta.tables:
            sa.Table(name, self.meta, autoload_with=self.wh.engine)
        return self.meta.tables[name]

    def row(self, conn: sa.Connection, table: str, sid: int, row_id: str | None) -> Mapping[str, Any] | None:
        t = self.table(table)
        where = (t.c._id == sid) if row_id is None else sa.and_(t.c._submission_id == sid, t.c._row_id == row_id)
        return conn.execute(sa.select(t).where(where)).mappings().first()

    def check(self, submissions: list[tuple[int, Mapping[str, Any]]]) -> list[str]:
        """Check (`_id`, answers as generated) for every submission; return what is wrong."""
        with self.wh.engine.connect() as conn:
            for sid, answers in submissions:
                issues: dict[str | None, set[str]] = {}
                self._level(conn, sid, answers, None, issues)
                root = self.root
                stored = self.row(conn, root, sid, None)
                if stored is None:
                    self.problems.append(f"submission {sid}: no row in {root}")
                    continue
                got = stored["_issues"] or ""
                wanted = issues.get(None, set())
                for key in wanted:
                    if key not in got:
                        self.problems.append(f"submission {sid}: {key} does not fit its column but _issues "
                                             f"does not say so ({got!r})")
                if got and not wanted:
                    self.problems.append(f"submission {sid}: unexpected _issues {got!r}")
        return self.problems

    def _level(self, conn: sa.Connection, sid: int, answers: Mapping[str, Any], row_id: str | None,
               issues: dict[str | None, set[str]]) -> None:
        rows: dict[str, Mapping[str, Any] | None] = {}
        for key, value in answers.items():
            if isinstance(value, list):
                for position, item in enumerate(value, start=1):
                    child = f"{row_id}.{position}" if row_id else str(position)
                    self._level(conn, sid, item, child, issues)
                continue
            entries = self.columns.get(key)
            if entries is None:
                if key not in self.no_column:
                    self.problems.append(f"submission {sid}: answer {key!r} has no column in the dictionary")
                continue
            for entry in entries:
                table = entry["table_name"]
                if table not in rows:
                    rows[table] = self.row(conn, table, sid, row_id)
                stored = rows[table]
                if stored is None:
                    self.problems.append(f"submission {sid}: no row {row_id or ''} in {table} for {key}")
                    continue
                self.checked += 1
                got = stored[entry["column_name"]]
                try:
                    want = _expected(entry["sql_type"], value, entry.get("part") or "")
                except ValueError:
                    issues.setdefault(None, set()).add(key)
                    if got is not None:
                        self.problems.append(f"submission {sid}: {key}={value!r} does not fit "
                                             f"{entry['sql_type']} yet {got!r} is stored")
                    continue
                if isinstance(want, float) and isinstance(got, (int, float)):
                    same = abs(want - got) < 1e-9
                else:
                    same = want == got
                if not same:
                    self.problems.append(f"submission {sid} {table}.{entry['column_name']} (row {row_id}): "
                                         f"{key}={value!r} → expected {want!r}, stored {got!r}")
                if entry.get("bridge_table"):
                    self._bridge(conn, entry["bridge_table"], sid, row_id, key, value)

    def _bridge(self, conn: sa.Connection, bridge: str, sid: int, row_id: str | None, key: str, value: str) -> None:
        t = self.table(bridge)
        parent = t.c._parent_row_id.is_(None) if row_id is None else t.c._parent_row_id == row_id
        codes = [r.code for r in conn.execute(sa.select(t.c.code).where(t.c._submission_id == sid, parent)
                                              .order_by(t.c._position))]
        self.checked += 1
        if codes != value.split():
            self.problems.append(f"submission {sid}: bridge {bridge} row {row_id} has {codes}, answer {key}={value!r}")
