"""Reading a form as pandas DataFrames, and exporting it for people who live in Excel.

Everything is read from the analysts' views (warehouse.views): current submissions only, personal
data as pseudonyms, codes or — with `lang` — labels in that language.

    from warehouse.export import read_form
    frames = read_form("amina.db", "vot_screening", lang="ar")        # {table: DataFrame}
    joined = read_form("amina.db", "training_attendance", join_repeats=True)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from common.errors import ConfigError, WarehouseError
from warehouse import bookkeeping as bk
from warehouse.store import Warehouse
from warehouse.views import view_name

FORMATS = ("csv", "xlsx", "parquet")


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
    warehouse = target if isinstance(target, Warehouse) else Warehouse(target)
    asset_uid, root = warehouse.find_form(form)
    if lang is not None:
        with warehouse.engine.connect() as conn:
            langs = (conn.execute(sa.select(bk.forms.c.languages).where(bk.forms.c.asset_uid == asset_uid))
                     .scalar_one() or "").split()
        if lang not in langs:
            raise ConfigError(f"form {root} has no language '{lang}' (it has: {', '.join(langs)})")
    frames: dict[str, pd.DataFrame] = {}
    tables = warehouse.tables_of(asset_uid)
    with warehouse.engine.connect() as conn:
        for table, kind, _parent in tables:
            view = _view(warehouse, table, lang if kind != "select_multiple" else None)
            frames[table] = pd.read_sql_query(sa.text(f"SELECT * FROM {view}"), conn)
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
    frames = read_form(target, form, lang=lang, since=since)
    out.mkdir(parents=True, exist_ok=True)
    suffix = f"_{lang}" if lang else ""
    written: list[Path] = []
    if fmt == "xlsx":
        path = out / f"{next(iter(frames))}{suffix}.xlsx"
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            for table, frame in frames.items():
                sheet = _sheet_name(table, next(iter(frames)))
                frame.to_excel(writer, sheet_name=sheet, index=False)
                if lang in ("ar", "ckb", "fa", "he", "ur"):
                    writer.sheets[sheet].sheet_view.rightToLeft = True
        return [path]
    for table, frame in frames.items():
        path = out / f"{table}{suffix}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False, encoding="utf-8-sig")  # the BOM makes Excel read Arabic right
        else:
            try:
                frame.to_parquet(path, index=False)
            except ImportError as exc:
                raise WarehouseError("parquet export needs pyarrow: pip install 'amina-sync[parquet]'") from exc
        written.append(path)
    return written


def _sheet_name(table: str, root: str) -> str:
    """Excel allows 31 characters: drop the form's prefix from child tables."""
    short = table[len(root) + 2:] if table.startswith(root + "__") else table
    return short[:31] or "submissions"
