"""Incremental sync of one KoBo asset into the warehouse.

New submissions are found with a watermark on (`_submission_time`, `_id`), KoBo's own fields:
pages are requested in that order with keyset paging (`query` picks up strictly after the last row
of the previous page; no `start` offsets that shift when submissions arrive or are deleted), each
page is stored together with the watermark of its last row in one transaction, and the next run
re-reads from the watermark's second (`$gte`), so submissions committed in the same second are never
skipped; re-reading is harmless because rows are upserted by `_id` and an unchanged submission
(same JSON digest) is not rewritten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from amina.errors import AminaError, KoboRefused
from forms.schema import FormSchema
from sync.client import MAX_PAGE_SIZE, KoboClient
from warehouse.store import RegisteredForm, Warehouse, Watermark

log = logging.getLogger(__name__)

ORDER = {"_submission_time": 1, "_id": 1}
Progress = Callable[[int, int], None]  # (submissions fetched so far, submissions to fetch)


@dataclass(slots=True)
class SyncReport:
    asset_uid: str
    name: str = ""
    run_id: int | None = None
    status: str = "running"
    to_fetch: int = 0  # what the server said matched the first page's query
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_values: int = 0
    pages: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    table: str = ""
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"requests": self.requests, "pages": self.pages, "fetched": self.fetched,
                "inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
                "bad_values": self.bad_values}


def deployed_content(client: KoboClient, asset: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """(version uid, content) of the version the asset is deployed with; the draft may differ."""
    deployed = asset.get("deployed_version_id")
    if deployed and deployed != asset.get("version_id"):
        version = client.asset_version(str(asset["uid"]), str(deployed))
        return str(deployed), version.get("content") or {}
    return (str(deployed) if deployed else asset.get("version_id")), asset.get("content") or {}


def prepare_form(client: KoboClient, warehouse: Warehouse, asset_uid: str, *,
                 sensitive: tuple[str, ...] = ()) -> tuple[RegisteredForm, Mapping[str, Any]]:
    """Fetch the asset, check it can be synced, build its schema and make its tables."""
    asset = client.asset(asset_uid)
    if asset.get("asset_type") not in (None, "survey"):
        raise KoboRefused(f"asset {asset_uid} ('{asset.get('name')}') is a {asset.get('asset_type')}, "
                          "not a survey: only surveys have submissions")
    if not asset.get("has_deployment", True) or not asset.get("deployed_version_id"):
        raise KoboRefused(f"asset {asset_uid} ('{asset.get('name')}') has not been deployed on "
                          f"{client.server_url}: deploy it in KoBo first")
    version_uid, content = deployed_content(client, asset)
    name = str(asset.get("name") or asset_uid)
    schema = FormSchema.from_content(content, title=name, sensitive=sensitive)
    form = warehouse.register_form(asset_uid=asset_uid, server_url=client.server_url, name=name,
                                   schema=schema, version_uid=version_uid, content=content)
    return form, asset


def _query_after(base: dict[str, Any] | None, cursor: Watermark | None) -> dict[str, Any] | None:
    if cursor is None:
        return base
    keyset = {"$or": [
        {"_submission_time": {"$gt": cursor.submission_time}},
        {"_submission_time": cursor.submission_time, "_id": {"$gt": cursor.submission_id}},
    ]}
    return {"$and": [base, keyset]} if base else keyset


def sync_asset(
    client: KoboClient,
    warehouse: Warehouse,
    asset_uid: str,
    *,
    page_size: int = MAX_PAGE_SIZE,
    progress: Progress | None = None,
    sensitive: tuple[str, ...] = (),
) -> SyncReport:
    """Pull what is new on KoBo for one asset into the warehouse. Raises AminaError on failure,
    after recording the failed run (the watermark stays at the last page fully stored)."""
    report = SyncReport(asset_uid=asset_uid)
    started = time.monotonic()
    requests_before = client.requests_made
    report.run_id = warehouse.start_run(asset_uid, client.server_url)
    try:
        form, asset = prepare_form(client, warehouse, asset_uid, sensitive=sensitive)
        report.name, report.table = str(asset.get("name") or asset_uid), form.tables.base
        watermark = warehouse.watermark(asset_uid)
        base = {"_submission_time": {"$gte": watermark.submission_time}} if watermark else None
        cursor: Watermark | None = None
        while True:
            page = client.data_page(asset_uid, query=_query_after(base, cursor), sort=ORDER, limit=page_size)
            if report.pages == 0:
                report.to_fetch = page.count
            if not page.results:
                break
            last = page.results[-1]
            cursor = Watermark(str(last.get("_submission_time", "")), int(last["_id"]))
            result = warehouse.load_page(form, page.results, cursor)
            report.pages += 1
            report.fetched += len(page.results)
            report.inserted += result.inserted
            report.updated += result.updated
            report.unchanged += result.unchanged
            report.bad_values += result.bad_values
            if progress:
                progress(report.fetched, max(report.to_fetch, report.fetched))
            if not page.next:
                break
        report.status = "ok"
    except AminaError as exc:
        report.status, report.error = "failed", str(exc)
        raise
    except Exception as exc:  # a bug, not a condition: record it, then let it surface
        report.status, report.error = "failed", f"internal error: {exc.__class__.__name__}: {exc}"
        raise
    finally:
        report.seconds = time.monotonic() - started
        report.requests = client.requests_made - requests_before
        warehouse.finish_run(report.run_id, status=report.status, error=report.error, **report.counts())
        log.info("sync %s: %s, %d fetched, %d new, %d updated, %d unchanged, %d bad values, %.2f s",
                 asset_uid, report.status, report.fetched, report.inserted, report.updated,
                 report.unchanged, report.bad_values, report.seconds)
    return report
