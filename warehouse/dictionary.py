"""The data dictionary: every table and column, what question it holds, in which languages and versions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from forms.types import storage_note
from warehouse import bookkeeping as bk
from warehouse.store import Warehouse


def dictionary(warehouse: Warehouse, form: str | None = None) -> list[dict[str, Any]]:
    """One entry per column of every form table (or of one form), with labels in every language."""
    forms = [warehouse.find_form(form)[0]] if form else None
    entries: list[dict[str, Any]] = []
    with warehouse.engine.connect() as conn:
        f, fl = bk.fields, bk.field_labels
        q = sa.select(f, bk.forms.c.languages).join(bk.forms, bk.forms.c.asset_key == f.c.asset_key) \
            .order_by(f.c.asset_key, f.c.table_name, f.c.position, f.c.part)
        if forms:
            q = q.where(f.c.asset_key.in_(forms))
        labels: dict[tuple[str, str], dict[str, str | None]] = {}
        for row in conn.execute(sa.select(fl)).mappings():
            labels.setdefault((row["asset_key"], row["path"]), {})[row["lang"]] = row["label"]
        for row in conn.execute(q).mappings():
            uid = row["asset_key"]
            entry = {k: row[k] for k in ("table_name", "column_name", "path", "part", "name", "xlsform_type",
                                         "sql_type", "choice_list", "bridge_table", "sensitive", "conflict")}
            entry["note"] = storage_note(row["xlsform_type"])
            entry["sensitive"] = bool(entry["sensitive"])
            for lang in (row["languages"] or "").split():
                entry[f"label_{lang}"] = labels.get((uid, row["path"]), {}).get(lang)
            entry["versions"] = row["versions"] or ""
            entry["asset_key"] = uid
            entries.append(entry)
    return entries
