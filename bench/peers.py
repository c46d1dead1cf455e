"""Two more reference points beside the pandas baseline and the download floor.

- `dlt_sync`: what a user would pick instead of amina — dlt (dlthub) with a plain resource that pages through
  the same data API, into SQLite (its SQLAlchemy destination) or DuckDB. dlt infers the tables and types, and
  unnests repeats (and every other list: attachments, geolocation) into child tables of its own naming.
- `insert_floor`: the database's own cost of amina's rows. Every row of a finished amina warehouse is read
  before the clock starts and turned into tuples; timed is only creating the same tables and indexes and
  inserting those tuples with one `executemany` per table, in one transaction per table: no Python per row.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import requests

# dlt would report usage to its makers' servers; a benchmark sends nothing off this machine
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


def _pages(base_url: str, token: str, uid: str) -> Iterator[list[dict[str, Any]]]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Token {token}"
        url: str | None = f"{base_url}/api/v2/assets/{uid}/data/?format=json&limit=1000"
        while url:
            resp = session.get(url, timeout=300)
            resp.raise_for_status()
            body = orjson.loads(resp.content)
            yield body["results"]
            url = body["next"]


def dlt_sync(base_url: str, token: str, assets: dict[str, str], target: Path, destination: str) -> dict[str, Any]:
    """Load every form with dlt into `target` (a SQLite file or a DuckDB file); the figures of the run."""
    import dlt

    started = time.perf_counter()
    if destination == "duckdb":
        dest = dlt.destinations.duckdb(str(target))
    else:
        dest = dlt.destinations.sqlalchemy(f"sqlite:///{target}")
    pipeline = dlt.pipeline(pipeline_name=f"bench_{target.stem}".replace("-", "_"), destination=dest,
                            dataset_name="kobo", pipelines_dir=str(target.parent / f"{target.stem}-dlt"))
    for form, uid in assets.items():
        resource = dlt.resource(_pages(base_url, token, uid), name=form, write_disposition="append")
        pipeline.run(resource)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, **_dlt_rows(pipeline, assets)}


def _dlt_rows(pipeline: Any, assets: dict[str, str]) -> dict[str, Any]:
    """Root rows (the forms' tables), repeat rows (the repeats' child tables), and every row dlt wrote."""
    counts: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in pipeline.default_schema.data_table_names():
            with client.execute_query(f"SELECT count(*) FROM {client.make_qualified_table_name(table)}") as cur:
                counts[table] = int(cur.fetchone()[0])
    roots = {pipeline.default_schema.naming.normalize_table_identifier(form) for form in assets}
    repeats = [t for t in counts if any(t.startswith(f"{r}__participants") or t == f"{r}__family_members"
                                        for r in roots)]
    return {"root_rows": sum(counts.get(r, 0) for r in roots), "repeat_rows": sum(counts[t] for t in repeats),
            "rows_written": sum(counts.values()), "tables": counts}


def prepare_insert_floor(source: Path, target: Path) -> Callable[[], dict[str, Any]]:
    """Read every row of the warehouse at `source` (untimed); return the timed work: the same rows into a new
    SQLite file at `target`."""
    conn = sqlite3.connect(source)
    ddl = [(kind, sql) for kind, sql in conn.execute(
        "SELECT type, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
    tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    rows = {name: conn.execute(f'SELECT * FROM "{name}"').fetchall() for name in tables}
    conn.close()

    def work() -> dict[str, Any]:
        started = time.perf_counter()
        out = sqlite3.connect(target, isolation_level=None)
        out.execute("PRAGMA journal_mode=WAL")
        out.execute("PRAGMA synchronous=NORMAL")
        for kind, sql in ddl:
            if kind == "table":
                out.execute(sql)
        for name, values in rows.items():
            if values:
                out.execute("BEGIN")
                out.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(values[0]))})', values)
                out.execute("COMMIT")
        for kind, sql in ddl:  # indexes after the rows, as a first load builds its own
            if kind == "index":
                out.execute(sql)
        out.close()
        return {"seconds": time.perf_counter() - started, "rows_written": sum(len(v) for v in rows.values())}

    return work
