"""Whole Arrow tables into the warehouse, on the SQLAlchemy connection's own DBAPI connection (so inside the
page's transaction, with everything else it writes).

- PostgreSQL: `COPY … FROM STDIN (FORMAT csv)` fed by Arrow's C++ CSV writer — one buffer per table, no Python
  per row. Strings are always quoted and NULL is an unquoted empty field, so '' and NULL stay apart; doubles
  are written in their shortest round-trip form and parsed back exactly.
- SQLite: one `executemany` over row tuples that Arrow builds in C (`to_pylist` per column, `zip`), with
  dates and times first formatted by Arrow exactly as SQLAlchemy stores them ('YYYY-MM-DD HH:MM:SS.ffffff').
  Python's sqlite3 binds each row in C; nothing of ours runs per row.

A value the database refuses raises `DataRefused` naming the table and, where it can be told, the column.
"""

from __future__ import annotations

import re
import sqlite3

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from warehouse.bulk import DATA_ERRORS, driver_reason, named_column
from warehouse.load import DataRefused

_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed")


class ArrowInserts:
    """Arrow tables into tables of one warehouse (one dialect)."""

    def __init__(self, dialect: sa.Dialect, *, schemas: bool):
        self.postgres = dialect.name == "postgresql"
        self.quote = dialect.identifier_preparer.quote
        self.schemas = schemas
        self._sql: dict[tuple[str | None, str, tuple[str, ...]], str] = {}

    def __call__(self, conn: sa.Connection, table: sa.Table, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        sql = self._statement(table, tuple(rows.column_names))
        cursor = conn.connection.cursor()
        try:
            if self.postgres:
                _copy_csv(cursor, sql, rows)
            else:
                cursor.executemany(sql, _tuples(rows))
        except DATA_ERRORS as exc:
            raise DataRefused(table.name, _suspect(exc), driver_reason(exc)) from exc
        finally:
            cursor.close()

    def _statement(self, table: sa.Table, columns: tuple[str, ...]) -> str:
        key = (table.schema, table.name, columns)
        sql = self._sql.get(key)
        if sql is None:
            name = self.quote(table.name)
            if self.schemas and table.schema:
                name = f"{self.quote(table.schema)}.{name}"
            cols = ", ".join(self.quote(c) for c in columns)
            if self.postgres:
                sql = f"COPY {name} ({cols}) FROM STDIN (FORMAT csv)"
            else:
                sql = f"INSERT INTO {name} ({cols}) VALUES ({', '.join('?' for _ in columns)})"
            self._sql[key] = sql
        return sql


def _copy_csv(cursor: psycopg.Cursor, sql: str, rows: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(rows.combine_chunks(), sink, write_options=_CSV)
    with cursor.copy(sql) as copy:
        copy.write(memoryview(sink.getvalue()))


def _tuples(rows: pa.Table) -> zip:
    """Row tuples for sqlite3, the columns first made what SQLAlchemy's SQLite types bind."""
    columns = []
    for column in rows.columns:
        kind = column.type
        if pa.types.is_timestamp(kind):
            column = pc.strftime(column, "%Y-%m-%d %H:%M:%S")
        elif pa.types.is_date(kind):
            column = pc.strftime(column, "%Y-%m-%d")
        elif pa.types.is_boolean(kind):
            column = column.cast(pa.int64())
        columns.append(column.to_pylist())
    return zip(*columns, strict=True)


def _suspect(exc: BaseException) -> str | None:
    named = named_column(exc)
    if named:
        return named
    if isinstance(exc, sqlite3.IntegrityError):
        found = re.search(r"\.(\w+)$", str(exc))
        return found.group(1) if found else None
    return None
