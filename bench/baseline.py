"""The baseline: what a competent analyst writes by hand with requests and pandas.

Page through KoBo's data API following the `next` links, flatten each form's submissions with
`pandas.json_normalize`, give every repeat group (a column holding lists of records) its own table keyed
by the parent's `_id` (and, for a nested repeat, the positions of its ancestors), turn the remaining
list/dict values (KoBo's `_attachments`, `_geolocation`, `_tags`, `_notes`, …) into JSON text, and write
every frame to a new SQLite file with `DataFrame.to_sql`. One form at a time, so only one form's
submissions are in memory at once. Nothing is typed, pseudonymized, deduplicated or kept incremental:
this is the cost of a one-off dump, the fastest honest thing an analyst would run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import requests
import sqlalchemy as sa

PAGE_SIZE = 1000  # KoBo's maximum
# to_sql's default method (one executemany per chunk) is the faster one against SQLite, by far: at
# N=10,000 it wrote all five tables in 1.1-1.2 s where method="multi" (one INSERT … VALUES (…), (…), …
# statement per chunk, which SQLite's limit on bound variables keeps to a few hundred rows on these wide
# tables) took 15 s. Chunks of 1,000, 10,000 rows or a single chunk made no measurable difference.
TO_SQL_METHOD = None
CHUNK_ROWS = 10_000


def download(session: requests.Session, base_url: str, uid: str) -> list[dict[str, Any]]:
    """Every submission of one form, following the API's `next` links."""
    url: str | None = f"{base_url}/api/v2/assets/{uid}/data/"
    params: dict[str, Any] | None = {"format": "json", "limit": PAGE_SIZE}
    records: list[dict[str, Any]] = []
    while url:
        resp = session.get(url, params=params, timeout=300)
        resp.raise_for_status()
        body = resp.json()
        records.extend(body["results"])
        url, params = body.get("next"), None  # the `next` link carries the query string
    return records


def _holds_records(column: pd.Series) -> bool:
    """Does this column hold repeat instances (lists of dicts)?"""
    if column.dtype != object:
        return False
    return any(isinstance(v, list) and v and isinstance(v[0], dict) for v in column)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Lists and dicts that are left (system fields) become JSON text, which SQLite can store."""
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object:
            continue
        if any(isinstance(v, (list, dict)) for v in column):
            frame[name] = column.map(
                lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v)
    return frame


def split_repeats(frame: pd.DataFrame, table: str, keys: list[str], out: dict[str, pd.DataFrame]) -> None:
    """Put `frame` into `out` as `table`, each of its repeat groups (recursively) as `table__<repeat>`."""
    # KoBo's own fields start with "_"; `_attachments` is a list of dicts too but is metadata, not a repeat.
    repeats = [c for c in frame.columns if not c.startswith("_") and _holds_records(frame[c])]
    for column in repeats:
        name = column.rsplit("/", 1)[-1]
        position = f"_{name}_index"
        exploded = frame[[*keys, column]].explode(column)  # one row per instance, parent keys alongside
        exploded = exploded[exploded[column].notna()]
        child = pd.json_normalize(exploded[column].tolist())
        child.insert(0, position, (exploded.groupby(level=0).cumcount() + 1).to_numpy())
        for i, key in enumerate(keys):
            child.insert(i, key, exploded[key].to_numpy())
        split_repeats(child, f"{table}__{name}", [*keys, position], out)
    out[table] = _as_text(frame.drop(columns=repeats))


def frames_of(form: str, records: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    frames: dict[str, pd.DataFrame] = {}
    split_repeats(pd.json_normalize(records), form, ["_id"], frames)
    return frames


def run(base_url: str, token: str, assets: dict[str, str], db_path: Path) -> dict[str, Any]:
    """Dump every form into a new SQLite file at `db_path`; the figures of the run."""
    started = time.perf_counter()
    phases = {"download": 0.0, "normalize": 0.0, "to_sql": 0.0}
    rows = {"root_rows": 0, "repeat_rows": 0}
    tables: dict[str, int] = {}
    engine = sa.create_engine(f"sqlite:///{db_path}")
    with requests.Session() as session:
        session.headers["Authorization"] = f"Token {token}"
        for form, uid in assets.items():
            t = time.perf_counter()
            records = download(session, base_url, uid)
            phases["download"] += time.perf_counter() - t
            t = time.perf_counter()
            frames = frames_of(form, records)
            del records
            phases["normalize"] += time.perf_counter() - t
            t = time.perf_counter()
            for table, frame in frames.items():
                frame.to_sql(table, engine, if_exists="replace", index=False, chunksize=CHUNK_ROWS,
                             method=TO_SQL_METHOD)
                tables[table] = len(frame)
                rows["root_rows" if table == form else "repeat_rows"] += len(frame)
            phases["to_sql"] += time.perf_counter() - t
            del frames
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, **rows, "rows_written": sum(tables.values()), "tables": tables,
            "phases": {k: round(v, 4) for k, v in phases.items()}}
