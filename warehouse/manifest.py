"""What the warehouse holds of one form, read the way the sweep compares it with a server (sync.sweep).

Every read here is of live submissions (`_deleted_at IS NULL`) and is answered from the form table's
partial index on (`_id`, `_uuid`, `_validation_status`, `_validation_at`) where the engine can: counts per
`_id` range, the *check figure* of a range, the manifest (`_uuid`, validation uid and time) of a range or of
given ids, and the id a range is split at.

The check figure is a second count a server can compute for the same range, so that a submission that
appeared late and another that was deleted in the same range do not cancel out: it counts the submissions
whose check bit is 1, where the bit is "the `_uuid` character at `position` is one of 0-7" XOR "a
validation status is set". Both sides compute it from the same stored values (`check_bit`).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from warehouse.store import RegisteredForm, Warehouse
from warehouse.tables import live_index_name

State = tuple[str, str | None, int | None]  # (_uuid, validation uid, validation time in whole seconds)
CHECK_DIGITS = ("0", "1", "2", "3", "4", "5", "6", "7")
CHECK_POSITIONS = 8  # the first 8 characters of a uuid4 are random hex
CHUNK = 900  # ids per IN (...): under SQLite's default limit on bound parameters


def _c(name: str) -> sa.ColumnClause[Any]:
    return sa.column(name)


_STATE = (_c("_id"), _c("_uuid"), _c("_validation_status"), _c("_validation_at"))


@dataclass(frozen=True, slots=True)
class Figures:
    """What a range holds: how many submissions, and how many have their check bit set."""

    total: int
    check: int

    def __sub__(self, other: Figures) -> Figures:
        return Figures(self.total - other.total, self.check - other.check)

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.total + other.total, self.check + other.check)


NONE = Figures(0, 0)


def check_bit(state: State, position: int) -> int:
    """A submission's check bit (see the module doc)."""
    uuid, validation_uid, _at = state
    return int(uuid[position:position + 1] in CHECK_DIGITS) ^ int(validation_uid is not None)


def figures_of(states: Iterable[State], position: int) -> Figures:
    total = check = 0
    for state in states:
        total += 1
        check += check_bit(state, position)
    return Figures(total, check)


def unix_seconds(value: dt.datetime | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return calendar.timegm(value.timetuple())


class StoredForm:
    """The sweep's view of one form in the warehouse. Ranges are half-open: lo <= _id < hi (None: unbounded)."""

    def __init__(self, warehouse: Warehouse, form: RegisteredForm):
        self.warehouse = warehouse
        self.form = form

    @property
    def _root(self) -> sa.Table:
        return self.form.tables.root

    def _select(self, *columns: sa.ColumnElement[Any], lo: int | None = None, hi: int | None = None,
                ids: list[int] | None = None) -> sa.Select[Any]:
        """SELECT `columns` over the live rows in [lo, hi) (or with these ids), read from the partial index of live
        rows. SQLite, without statistics, would pick the single-column index on `_deleted_at` (every live row,
        then the table: seconds at a million) unless told `INDEXED BY`, which SQLAlchemy does not say for it."""
        root = self._root
        source: sa.FromClause | sa.TextClause = root
        if self.warehouse.engine.dialect.name == "sqlite":
            quote = self.warehouse.engine.dialect.identifier_preparer.quote
            source = sa.text(f"{quote(root.name)} INDEXED BY {quote(live_index_name(root.name))}")
        where: list[sa.ColumnElement[bool]] = [_c("_deleted_at").is_(None)]
        if lo is not None:
            where.append(_c("_id") >= lo)
        if hi is not None:
            where.append(_c("_id") < hi)
        if ids is not None:
            where.append(_c("_id").in_(ids))
        return sa.select(*columns).select_from(source).where(*where)

    def _read(self, q: sa.Select[Any]) -> list[sa.Row[Any]]:
        def go() -> list[sa.Row[Any]]:
            with self.warehouse.engine.connect() as conn:
                return list(conn.execute(q))
        return self.warehouse.guarded(go, f"read the stored submissions of form {self.form.key}")

    def figures(self, lo: int | None, hi: int | None, position: int) -> Figures:
        digit = sa.case((sa.func.substr(_c("_uuid"), position + 1, 1).in_(CHECK_DIGITS), 1), else_=0)
        reviewed = sa.case((_c("_validation_status").is_not(None), 1), else_=0)
        check = sa.func.coalesce(sa.func.sum(sa.case((digit != reviewed, 1), else_=0)), 0)
        [(total, checked)] = self._read(self._select(sa.func.count(), check, lo=lo, hi=hi))
        return Figures(int(total), int(checked))

    def count(self) -> int:
        """How many live submissions are stored."""
        [(total,)] = self._read(self._select(sa.func.count()))
        return int(total)

    def top(self) -> int | None:
        """The highest live `_id` (None when none is stored)."""
        [(found,)] = self._read(self._select(sa.func.max(_c("_id"))))
        return None if found is None else int(found)

    def split_point(self, lo: int, hi: int, below: int) -> int | None:
        """The live `_id` in [lo, hi) with `below` live ids before it (None when there is no such id)."""
        found = self._read(self._select(_c("_id"), lo=lo, hi=hi).order_by(_c("_id")).offset(below).limit(1))
        return int(found[0][0]) if found else None

    def manifest(self, lo: int | None, hi: int | None) -> dict[int, State]:
        """_id → state of the live submissions in [lo, hi)."""
        return self._states(self._select(*_STATE, lo=lo, hi=hi))

    def manifest_of(self, ids: Iterable[int]) -> dict[int, State]:
        """_id → state of those of `ids` that are stored and live."""
        out: dict[int, State] = {}
        wanted = sorted(set(ids))
        for i in range(0, len(wanted), CHUNK):
            out.update(self._states(self._select(*_STATE, ids=wanted[i:i + CHUNK])))
        return out

    def _states(self, q: sa.Select[Any]) -> dict[int, State]:
        return {int(i): (u, v, unix_seconds(at)) for i, u, v, at in self._read(q)}

    def newest_validation(self) -> int | None:
        """The newest validation time stored (Unix seconds), or None."""
        [(found,)] = self._read(self._select(sa.func.max(_c("_validation_at"))))
        return unix_seconds(found)

    def ids_of_roots(self, roots: Iterable[str]) -> dict[str, int]:
        """meta/rootUuid (without 'uuid:') → `_id` of the live submissions that have it (the first, if several)."""
        root = self._root
        wanted = sorted({r for r in roots if r})
        out: dict[str, int] = {}

        def go() -> None:
            with self.warehouse.engine.connect() as conn:
                for i in range(0, len(wanted), CHUNK):
                    q = (sa.select(root.c._root_uuid, root.c._id)
                         .where(root.c._deleted_at.is_(None), root.c._root_uuid.in_(wanted[i:i + CHUNK]))
                         .order_by(root.c._id))
                    for found, sid in conn.execute(q):
                        out.setdefault(str(found), int(sid))
        self.warehouse.guarded(go, f"read the stored submissions of form {self.form.key}")
        return out
