"""amina-sync and the download-only floor, as run inside a benchmark child.

Everything is imported at module level, so the imports are paid before the child starts its clock.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from typing import Any

# Warehouse imports alembic lazily, when it creates its tables: import it here, before the clock starts.
import alembic.command
import alembic.config  # noqa: F401
import orjson
import requests
import sqlalchemy as sa

from sync.client import KoboClient
from sync.engine import SyncReport, sync_asset
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse

PSEUDONYM_KEY = "62656e63682d6b65792d6e6f742d612d7365637265742d616d696e612d73796e63"  # fixed: a throwaway key
DATA_PATH = re.compile(r"/api/v2/assets/([^/]+)/data/")


class CountingSession(requests.Session):
    """A requests session that counts what goes through it, all requests and data requests per asset."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.data_requests: Counter[str] = Counter()
        self.seconds = 0.0  # waiting for answers: the server's work and the transfer (bodies are read here)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent += 1
        found = DATA_PATH.search(url if isinstance(url, str) else url.decode())
        if found:
            self.data_requests[found.group(1)] += 1
        started = time.perf_counter()
        try:
            return super().request(method, url, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def _figures(warehouse: Warehouse, client: KoboClient, session: CountingSession, reports: list[SyncReport],
             assets: dict[str, str]) -> dict[str, Any]:
    """What the run did and what the warehouse holds (counted after the clock stopped)."""
    rows = {"root_rows": 0, "repeat_rows": 0, "bridge_rows": 0}
    kinds = {"submissions": "root_rows", "repeat": "repeat_rows", "select_multiple": "bridge_rows"}
    tables: dict[str, int] = {}
    for uid in assets.values():
        kind_of = {table: kind for table, kind, _parent in warehouse.tables_of(uid)}
        for _uid, table, count in warehouse.row_counts(uid):
            tables[table] = count
            rows[kinds.get(kind_of.get(table, ""), "bridge_rows")] += count
    return {
        **rows,
        "rows_written": rows_written(warehouse),
        "tables": tables,
        "fetched": sum(r.fetched for r in reports),
        "inserted": sum(r.inserted for r in reports),
        "requests": client.requests_made,
        "http_requests": session.sent,
        "data_requests": sum(session.data_requests.values()),
        "data_requests_per_asset": {form: session.data_requests[uid] for form, uid in assets.items()},
        "sync_seconds": round(sum(r.seconds for r in reports), 4),
        "http_seconds": round(session.seconds, 4),
        "status": sorted({r.status for r in reports}),
    }


def rows_written(warehouse: Warehouse) -> int:
    """Every row the warehouse holds: form tables, bridges, restricted values, raw JSON, history, bookkeeping."""
    total = 0
    with warehouse.engine.connect() as conn:
        inspector = sa.inspect(conn)
        for schema in ([None, "restricted"] if warehouse.has_schemas else [None]):
            for name in inspector.get_table_names(schema=schema):
                table = sa.table(name, schema=schema)
                total += int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    return total


def page_deciles(times: list[float]) -> list[float]:
    """Mean seconds per page in each tenth of the pages, in order (fewer than ten pages: one value each)."""
    if not times:
        return []
    tenths = min(10, len(times))
    bounds = [round(i * len(times) / tenths) for i in range(tenths + 1)]
    return [round(sum(times[a:b]) / (b - a), 4) for a, b in itertools.pairwise(bounds)]


def _timing_pages(warehouse: Warehouse) -> dict[str, list[float]]:
    """Time every `load_page` of this warehouse, per form (the page's whole transaction)."""
    pages: dict[str, list[float]] = {}
    load_page = warehouse.load_page

    def timed(form: Any, submissions: Any, watermark: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return load_page(form, submissions, watermark, **kwargs)
        finally:
            pages.setdefault(form.key, []).append(time.perf_counter() - started)

    warehouse.load_page = timed  # type: ignore[method-assign]
    return pages


def amina(target: str, base_url: str, token: str, assets: dict[str, str], *, load_path: str = "columnar",
          **options: Any) -> dict[str, Any]:
    """Sync every asset into the warehouse at `target` (a SQLite path or a database URL) the way `amina sync`
    does; `options` go to sync_asset (the no-op run passes sweep_every=0: it only asks for new data)."""
    started = time.perf_counter()
    warehouse = Warehouse(target, pseudonymizer=Pseudonymizer(PSEUDONYM_KEY), load_path=load_path)
    pages = _timing_pages(warehouse)
    session = CountingSession()
    client = KoboClient(base_url, token, token_source="the bench token", session=session)
    reports = [sync_asset(client, warehouse, uid, **options) for uid in assets.values()]
    seconds = time.perf_counter() - started
    figures = _figures(warehouse, client, session, reports, assets)
    client.close()
    warehouse.dispose()
    names = {uid: form for form, uid in assets.items()}
    return {"seconds": seconds, **figures,
            "page_deciles": {names.get(key, key): page_deciles(times) for key, times in pages.items()}}


def floor(base_url: str, token: str, assets: dict[str, str]) -> dict[str, Any]:
    """Download every page and parse it with orjson, keeping nothing: no client can do less."""
    started = time.perf_counter()
    rows = pages = 0
    waiting = 0.0
    with requests.Session() as session:
        session.headers["Authorization"] = f"Token {token}"
        for uid in assets.values():
            url: str | None = f"{base_url}/api/v2/assets/{uid}/data/?format=json&limit=1000"
            while url:
                sent = time.perf_counter()
                resp = session.get(url, timeout=300)
                waiting += time.perf_counter() - sent
                resp.raise_for_status()
                body = orjson.loads(resp.content)
                rows += len(body["results"])
                pages += 1
                url = body["next"]
    return {"seconds": time.perf_counter() - started, "root_rows": rows, "data_requests": pages,
            "http_seconds": round(waiting, 4)}
