"""Bulk inserts of many rows on the driver, past SQLAlchemy's per-row parameter handling.

SQLAlchemy's `conn.execute(table.insert(), rows)` re-examines every row dict (which keys it has, which
bind processor each value needs): at a hundred thousand submissions that cost more than flattening
them. Here the column order and the dialect's bind processors are worked out once per table; each row
becomes a tuple, and goes to the driver in one call: `executemany` on SQLite, `COPY … FROM STDIN` on
PostgreSQL (psycopg 3). It runs on the SQLAlchemy connection's own DBAPI connection, inside its
transaction, so it commits or rolls back with everything else in that transaction.
"""

from __future__ import annotations

import math
import operator
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa

from warehouse.convert import INT64_MAX, INT64_MIN, has_unstorable
from warehouse.load import DataRefused

Row = Mapping[str, Any]
# what the drivers raise when a value (not the connection) is refused; the caller can set that value aside
DATA_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, sqlite3.ProgrammingError,
    psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError,
    OverflowError, UnicodeError, ValueError, TypeError)


class BulkInsert:
    """The INSERT (or COPY) of one table for one dialect."""

    def __init__(self, table: sa.Table, dialect: sa.Dialect, *, schemas: bool):
        self.table = table
        self.columns = tuple(c.name for c in table.columns)
        self.copy = dialect.name == "postgresql"
        quote = dialect.identifier_preparer.quote
        name = quote(table.name)
        if schemas and table.schema:
            name = f"{quote(table.schema)}.{name}"
        cols = ", ".join(quote(c) for c in self.columns)
        if self.copy:
            self.sql = f"COPY {name} ({cols}) FROM STDIN"
        else:
            marks = ", ".join("?" if dialect.paramstyle == "qmark" else "%s" for _ in self.columns)
            self.sql = f"INSERT INTO {name} ({cols}) VALUES ({marks})"
        self._get = operator.itemgetter(*self.columns) if len(self.columns) > 1 else None
        processors: list[tuple[int, Callable[[Any], Any]]] = []
        for index, column in enumerate(table.columns):
            process = column.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((index, process))
        self._processors = tuple(processors)

    def tuples(self, rows: Iterable[Row]) -> list[Sequence[Any]]:
        get, columns, processors = self._get, self.columns, self._processors
        out: list[Sequence[Any]] = []
        for row in rows:
            try:
                values: Any = get(row) if get is not None else (row[columns[0]],)
            except KeyError:  # a row without some column: NULL there
                values = tuple(row.get(c) for c in columns)
            if processors:
                values = list(values)
                for index, process in processors:
                    value = values[index]
                    if value is not None:
                        values[index] = process(value)
            out.append(values)
        return out

    def run(self, conn: sa.Connection, rows: Iterable[Row]) -> None:
        """Insert the rows; raise DataRefused (table, column, reason) when the database refuses a value.
        Other driver errors (connection, disk, locks) pass through for the caller to report."""
        values = self.tuples(rows)
        if not values:
            return
        cursor = conn.connection.cursor()
        try:
            if self.copy:
                with cursor.copy(self.sql) as copy:
                    for v in values:
                        copy.write_row(v)
            else:
                cursor.executemany(self.sql, values)
        except DATA_ERRORS as exc:
            raise DataRefused(self.table.name, self.suspect(values, exc), driver_reason(exc)) from exc
        finally:
            cursor.close()

    def suspect(self, values: list[Sequence[Any]], exc: BaseException) -> str | None:
        """The column the database most likely refused: named by PostgreSQL, else found by looking."""
        named = named_column(exc)
        if named:
            return named
        for row in values:
            for name, value in zip(self.columns, row, strict=False):
                if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
                    return name
                if isinstance(value, float) and not math.isfinite(value):
                    return name
                if isinstance(value, str) and has_unstorable(value):
                    return name
        return None


class BulkInserts:
    """BulkInsert per table, made on first use (a table's statement never changes while its object lives)."""

    def __init__(self, dialect: sa.Dialect, *, schemas: bool):
        self.dialect = dialect
        self.schemas = schemas
        self._made: dict[int, BulkInsert] = {}

    def __call__(self, conn: sa.Connection, table: sa.Table, rows: Iterable[Row]) -> None:
        made = self._made.get(id(table))
        if made is None or made.table is not table:
            made = self._made[id(table)] = BulkInsert(table, self.dialect, schemas=self.schemas)
        made.run(conn, rows)


def named_column(exc: BaseException) -> str | None:
    """The column PostgreSQL names in its diagnostics for a refused value (its column, or its COPY context)."""
    diag = getattr(exc, "diag", None)
    named = getattr(diag, "column_name", None) if diag is not None else None
    if named:
        return str(named)
    context = getattr(diag, "context", None) if diag is not None else None
    found = re.search(r"column (\w+)", context or "")
    return found.group(1) if found else None


def driver_reason(exc: BaseException) -> str:
    """The driver's one-line reason, without the refused value itself (it may be personal data)."""
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    text = re.sub(r'(: |value )"[^"]*"', r'\1"…"', text)
    return text[:200]
