"""Reading a form as pandas DataFrames, and exporting it for people who live in Excel.

Everything is read from the analysts' views (warehouse.views): current submissions only, personal
data as pseudonyms, codes or — with `lang` — labels in that language. Columns keep their types
(integers as nullable integers, dates and times as such).

Exports are opened in spreadsheets, so text from the field is neutralised the way spreadsheet-injection
guidance says: in CSV, a text value starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
leading `'` (numbers are never touched); in XLSX every text cell is written as text, never as a formula.

    from warehouse.export import read_form
    frames = read_form("amina.db", "vot_screening", lang="ar")        # {table: DataFrame}
    joined = read_form("amina.db", "training_attendance", join_repeats=True)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from common.errors import ConfigError
from warehouse import bookkeeping as bk
from warehouse.store import Warehouse
from warehouse.views import view_name

FORMATS = ("csv", "xlsx", "parquet")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """A text value a spreadsheet would run as a formula gets a leading quote; anything else is unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _typed(frame: pd.DataFrame, types: dict[str, sa.types.TypeEngine]) -> pd.DataFrame:
    """The frame with each column in its warehouse type: nullable integers, datetimes, dates."""
    for column in frame.columns:
        kind = types.get(column)
        if kind is None:
            continue
        try:
            if isinstance(kind, sa.Integer):
                frame[column] = pd.array(frame[column], dtype="Int64")
            elif isinstance(kind, sa.DateTime):
                frame[column] = pd.to_datetime(frame[column], format="ISO8601")
            elif isinstance(kind, sa.Date):
                frame[column] = pd.to_datetime(frame[column], format="ISO8601").dt.date
        except (TypeError, ValueError):  # e.g. a pseudonym in a column that once held numbers: keep as it is
            continue
    return frame


def _view(warehouse: Warehouse, table: str, lang: str | None) -> str:
    name = view_name(table, lang or "current")
    with warehouse.engine.connect() as conn:
        quote = conn.dialect.identifier_preparer.quote_identifier
    return f'"{bk.ANALYST_SCHEMA}".{quote(name)}' if warehouse.has_schemas else quote(name)


def read_form(target: str | Warehouse, form: str, *, lang: str | None = None, since: dt.date | None = None,
              join_repeats: bool = False) -> dict[str, pd.DataFrame]:
    """Every table of a form as a DataFrame: {table name: frame}, the submissions table first.

    `lang`: labels in that language instead of codes. `since`: submissions from that day (UTC) on.
    `join_repeats`: each repeat's frame also carries its parent's columns (prefixed with the parent
    table's name), so one frame answers "participants with their session's governorate"."""
    warehouse = target if isinstance(target, Warehouse) else Warehouse(target, create=False)
    key, root = warehouse.find_form(form)
    if lang is not None:
        with warehouse.engine.connect() as conn:
            langs = (conn.execute(sa.select(bk.forms.c.languages).where(bk.forms.c.asset_key == key))
                     .scalar_one() or "").split()
        if lang not in langs:
            raise ConfigError(f"form {root} has no language '{lang}' (it has: {', '.join(langs)})")
    frames: dict[str, pd.DataFrame] = {}
    tables = warehouse.tables_of(key)
    with warehouse.engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table, kind, _parent in tables:
            view = _view(warehouse, table, lang if kind != "select_multiple" else None)
            types = {c["name"]: c["type"] for c in inspector.get_columns(table)}
            frame = pd.read_sql_query(sa.text(f"SELECT * FROM {view}"), conn)
            frames[table] = _typed(frame, types)
    if since is not None:
        top = frames[root]
        keep = top[pd.to_datetime(top["_submission_time"]) >= pd.Timestamp(since)]
        frames[root] = keep
        ids = set(keep["_id"])
        for table, _kind, _parent in tables[1:]:
            frames[table] = frames[table][frames[table]["_submission_id"].isin(ids)]
    if join_repeats:
        for table, kind, parent in tables:
            if kind != "repeat" or parent is None:
                continue
            up = frames[parent].add_prefix(f"{parent}.")
            if parent == root:
                frames[table] = frames[table].merge(up, left_on="_submission_id", right_on=f"{parent}._id",
                                                    how="left")
            else:
                frames[table] = frames[table].merge(
                    up, left_on=["_submission_id", "_parent_row_id"],
                    right_on=[f"{parent}._submission_id", f"{parent}._row_id"], how="left")
    return frames


def export_form(target: str | Warehouse, form: str, fmt: str, out: Path, *, lang: str | None = None,
                since: dt.date | None = None) -> list[Path]:
    """One file per table (csv, parquet) or one sheet per table (xlsx); returns what was written."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: '{fmt}' must be one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("parquet export needs pyarrow: pip install 'amina-sync[parquet]'") from None
    frames = read_form(target, form, lang=lang, since=since)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot make the export directory {out}: {exc.strerror or exc}") from None
    suffix = f"_{lang}" if lang else ""
    written: list[Path] = []
    if fmt == "xlsx":
        path = out / f"{next(iter(frames))}{suffix}.xlsx"
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            for table, frame in frames.items():
                sheet = _sheet_name(table, next(iter(frames)))
                frame.to_excel(writer, sheet_name=sheet, index=False)
                worksheet = writer.sheets[sheet]
                for row in worksheet.iter_rows():
                    for cell in row:
                        if cell.data_type == "f":  # openpyxl reads a text starting with "=" as a formula
                            cell.data_type = "s"
                if lang in ("ar", "ckb", "fa", "he", "ur"):
                    worksheet.sheet_view.rightToLeft = True
        return [path]
    for table, frame in frames.items():
        path = out / f"{table}{suffix}.{fmt}"
        if fmt == "csv":
            text = frame.copy()
            for column in text.columns:
                if pd.api.types.is_datetime64_any_dtype(text[column]):
                    text[column] = text[column].map(lambda t: t.isoformat() if pd.notna(t) else None)
                elif not pd.api.types.is_numeric_dtype(text[column]):
                    text[column] = text[column].map(neutralise)
            # the BOM makes Excel read Arabic right; CRLF (RFC 4180) makes the writer quote a field holding a bare CR
            text.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")
        else:
            frame.to_parquet(path, index=False)
        written.append(path)
    return written


def _sheet_name(table: str, root: str) -> str:
    """Excel allows 31 characters: drop the form's prefix from child tables."""
    short = table[len(root) + 2:] if table.startswith(root + "__") else table
    return short[:31] or "submissions"
