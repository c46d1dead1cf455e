"""Incremental sync of one KoBo asset into the warehouse.

New submissions are found with a watermark on (`_submission_time`, `_id`), KoBo's own fields:
pages are requested in that order with keyset paging (`query` picks up strictly after the last row
of the previous page; no `start` offsets that shift when submissions arrive or are deleted), each
page is stored together with the watermark of its last row in one transaction, and the next run
re-reads an overlap window before the watermark (`$gte`), so submissions committed in the same
second, or made visible late by KoBo (§9 of the API notes: attachments are saved before the record
appears), are not skipped; re-reading is harmless because rows are upserted by `_id` and an
unchanged submission (same JSON digest) is not rewritten.

Edits, validation-status changes and deletions do not move `_submission_time`; the *sweep* finds
them: it pages through `fields=["_id","_uuid","_validation_status"]` in `_id` order (about 150 bytes
a submission, 1,000 a request) and compares with what is stored: a new `_uuid` is an edit, a new
validation status object is a review, an `_id` that is gone was deleted, an `_id` not stored yet
was missed. Only the changed submissions are then fetched in full (`query={"_id": {"$in": […]}}`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import AminaError, KoboError, KoboRefused, KoboUnavailable, SyncInterrupted
from forms.schema import FormSchema
from sync.attachments import download_attachments
from sync.client import MAX_PAGE_SIZE, KoboClient, Page
from warehouse.store import RegisteredForm, Warehouse, Watermark

log = logging.getLogger(__name__)

ORDER = {"_submission_time": 1, "_id": 1}
SWEEP_FIELDS = ["_id", "_uuid", "_validation_status"]
REFETCH_BATCH = 100  # ids per `$in` query: keeps the URL well under proxies' 8 KB line limit
DEFAULT_OVERLAP = dt.timedelta(minutes=5)
KOBO_TIME = "%Y-%m-%dT%H:%M:%S"
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
    deleted: int = 0
    attachments: int = 0  # files downloaded
    swept: bool = False
    sweep_requests: int = 0
    sweep_seconds: float = 0.0
    pages: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    table: str = ""
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"requests": self.requests, "pages": self.pages, "fetched": self.fetched,
                "inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
                "bad_values": self.bad_values, "deleted": self.deleted, "swept": self.swept,
                "sweep_requests": self.sweep_requests, "sweep_seconds": round(self.sweep_seconds, 3)}


def deployed_content(client: KoboClient, asset: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """(version uid, content) of the version the asset is deployed with; the draft may differ."""
    deployed = asset.get("deployed_version_id")
    if deployed and deployed != asset.get("version_id"):
        version = client.asset_version(str(asset["uid"]), str(deployed))
        return str(deployed), version.get("content") or {}
    return (str(deployed) if deployed else asset.get("version_id")), asset.get("content") or {}


@dataclass(slots=True)
class PreparedForm:
    """A form ready to load: its tables, the merged schema of every version met, and those versions."""

    form: RegisteredForm
    asset: Mapping[str, Any]
    schema: FormSchema
    versions: set[str]
    sensitive: tuple[str, ...]

    def evolve(self, client: KoboClient, warehouse: Warehouse, page: list[Mapping[str, Any]],
               report: SyncReport) -> None:
        """Schema drift: a submission of a version not seen yet → fetch that version, extend the tables."""
        met = {str(s["__version__"]) for s in page if s.get("__version__")} - self.versions
        for version in sorted(met):
            self.versions.add(version)
            try:
                content = client.asset_version(self.form.asset_uid, version).get("content") or {}
            except KoboRefused as exc:  # e.g. a version KoBo no longer has: load with what we know
                report.notes.append(f"form version {version} could not be fetched: {exc}")
                continue
            self.schema = self.schema.merged(FormSchema.from_content(content, sensitive=self.sensitive))
            self.form = warehouse.register_form(
                asset_uid=self.form.asset_uid, server_url=client.server_url, name=report.name, schema=self.schema,
                version_uid=version, content=content, deployed=False)
            report.notes.append(f"form version {version} met in the data: tables extended")
            log.info("asset %s: submissions of form version %s; tables extended", self.form.asset_uid, version)


def prepare_form(client: KoboClient, warehouse: Warehouse, asset_uid: str, *,
                 sensitive: tuple[str, ...] = ()) -> PreparedForm:
    """Fetch the asset, check it can be synced, build its schema (the deployed version merged with every
    version recorded before) and make its tables."""
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
    stored = warehouse.stored_versions(asset_uid)
    for old_uid, old_content in stored.items():
        if old_uid != version_uid:
            schema = schema.merged(FormSchema.from_content(old_content, sensitive=sensitive))
    form = warehouse.register_form(asset_uid=asset_uid, server_url=client.server_url, name=name,
                                   schema=schema, version_uid=version_uid, content=content)
    return PreparedForm(form=form, asset=asset, schema=schema, versions={*stored, str(version_uid)},
                        sensitive=sensitive)


def store_page(client: KoboClient, warehouse: Warehouse, prepared: PreparedForm, report: SyncReport,
               submissions: list[dict[str, Any]], watermark: Watermark | None, attachments_dir: Path | None) -> None:
    """Evolve the tables if the page brings a new form version, store it (with the watermark, if any),
    fetch its attachments if asked, and count what happened."""
    prepared.evolve(client, warehouse, submissions, report)
    result = warehouse.load_page(prepared.form, submissions, watermark, run_id=report.run_id)
    if attachments_dir is not None:
        report.attachments += download_attachments(client, attachments_dir, prepared.form.asset_uid, submissions)
    report.fetched += len(submissions)
    report.inserted += result.inserted
    report.updated += result.updated
    report.unchanged += result.unchanged
    report.bad_values += result.bad_values


def since(watermark: Watermark, overlap: dt.timedelta) -> str:
    """The `_submission_time` a run starts from: the watermark's second, less the overlap window."""
    try:
        start = dt.datetime.strptime(watermark.submission_time[:19], KOBO_TIME) - overlap
    except ValueError:
        return watermark.submission_time
    return start.strftime(KOBO_TIME)


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
    overlap: dt.timedelta = DEFAULT_OVERLAP,
    sweep_every: int = 1,
    max_delete_fraction: float = 0.5,
    should_stop: Callable[[], bool] | None = None,
    attachments_dir: Path | None = None,
) -> SyncReport:
    """Pull what is new on KoBo for one asset into the warehouse, then (every `sweep_every` syncs;
    0 = never) sweep for edits, reviews and deletions. Raises AminaError on failure, after recording
    the failed run (the watermark stays at the last page fully stored).

    `max_delete_fraction`: a sweep that would mark more than this share of the stored submissions
    deleted stops instead (a server that suddenly answers with nothing is more likely than a
    programme deleting half its data); pass 1.0 to accept it.

    `attachments_dir`: also download each stored submission's attachment files there.
    `should_stop` is asked after each page is stored; when it answers True the run ends there
    (status "interrupted"), with everything stored so far kept and the watermark on it.
    """
    report = SyncReport(asset_uid=asset_uid)
    started = time.monotonic()
    requests_before = client.requests_made
    report.run_id = warehouse.start_run(asset_uid, client.server_url)
    # the next page is requested as soon as this one's last row is known, and downloads while this one is
    # stored (the watermark still moves only with what is stored); no request outlives the run
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fetch-{asset_uid}")
    try:
        prepared = prepare_form(client, warehouse, asset_uid, sensitive=sensitive)
        report.name = str(prepared.asset.get("name") or asset_uid)
        report.table = prepared.form.tables.base
        watermark = warehouse.watermark(asset_uid)
        base = {"_submission_time": {"$gte": since(watermark, overlap)}} if watermark else None
        cursor: Watermark | None = None

        def fetch(after: Watermark | None) -> Page:
            return client.data_page(asset_uid, query=_query_after(base, after), sort=ORDER, limit=page_size)

        pending = ahead.submit(fetch, None)
        while True:
            page = pending.result()
            if report.pages == 0:
                report.to_fetch = page.count
            if not page.results:
                break
            last = page.results[-1]
            before, cursor = cursor, Watermark(str(last.get("_submission_time", "")), int(last["_id"]))
            if before is not None and (cursor.submission_time, cursor.submission_id) <= \
                    (before.submission_time, before.submission_id):
                raise KoboUnavailable(f"{client.server_url} answered a page of {asset_uid} that does not move past "
                                      f"submission {before.submission_id}: stopping instead of looping")
            if page.next:
                pending = ahead.submit(fetch, cursor)
            store_page(client, warehouse, prepared, report, page.results, cursor, attachments_dir)
            report.pages += 1
            if progress:
                progress(report.fetched, max(report.to_fetch, report.fetched))
            log.info("asset %s: %d of %d submissions stored", asset_uid, report.fetched,
                     max(report.to_fetch, report.fetched))
            if not page.next:
                break
            if should_stop and should_stop():
                raise SyncInterrupted(f"sync of {asset_uid} stopped on request after {report.fetched:,} "
                                      "submissions; the next run resumes from there")
        if watermark is not None and warehouse.sweep_due(asset_uid, sweep_every):  # a first load is fresh
            sweep(client, warehouse, prepared, report, page_size=page_size, max_delete_fraction=max_delete_fraction,
                  attachments_dir=attachments_dir)
        warehouse.record_sync(asset_uid, swept=report.swept or watermark is None)
        report.status = "ok"
    except SyncInterrupted as exc:
        report.status, report.error = "interrupted", str(exc)
        raise
    except AminaError as exc:
        report.status, report.error = "failed", str(exc)
        raise
    except Exception as exc:  # a bug, not a condition: record it, then let it surface
        report.status, report.error = "failed", f"internal error: {exc.__class__.__name__}: {exc}"
        raise
    finally:
        ahead.shutdown(wait=True, cancel_futures=True)
        report.seconds = time.monotonic() - started
        report.requests = client.requests_made - requests_before
        warehouse.finish_run(report.run_id, status=report.status, error=report.error, **report.counts())
        log.info("sync %s: %s, %d fetched, %d new, %d updated, %d unchanged, %d deleted, %d bad values, "
                 "%.2f s (sweep: %d requests, %.2f s)", asset_uid, report.status, report.fetched, report.inserted,
                 report.updated, report.unchanged, report.deleted, report.bad_values, report.seconds,
                 report.sweep_requests, report.sweep_seconds)
    return report


def sweep(client: KoboClient, warehouse: Warehouse, prepared: PreparedForm, report: SyncReport, *,
          page_size: int = MAX_PAGE_SIZE, max_delete_fraction: float = 0.5,
          attachments_dir: Path | None = None) -> None:
    """Find edits, validation changes, deletions and missed submissions; store them. See the module doc."""
    started, requests_before = time.monotonic(), client.requests_made
    form = prepared.form
    uid = form.asset_uid
    stored = warehouse.live_count(form)
    gone: list[int] = []
    after: int | None = None
    while True:
        page = client.data_page(uid, query={"_id": {"$gt": after}} if after is not None else None,
                                sort={"_id": 1}, fields=SWEEP_FIELDS, limit=page_size)
        last_page = not page.next or not page.results
        up_to = None if last_page else int(page.results[-1]["_id"])
        local = warehouse.manifest(form, after, up_to)
        refetch: list[int] = []
        for item in page.results:
            sid = int(item["_id"])
            mine = local.pop(sid, None)
            status = item.get("_validation_status") or {}
            theirs = (str(item.get("_uuid", "")), status.get("uid"), status.get("timestamp"))
            if mine is None or mine != theirs:
                refetch.append(sid)
        gone.extend(local)  # stored ids in this range that KoBo no longer has
        for batch in _batches(refetch, REFETCH_BATCH):
            full = client.data_page(uid, query={"_id": {"$in": batch}}, sort={"_id": 1}, limit=len(batch))
            store_page(client, warehouse, prepared, report, full.results, None, attachments_dir)
            form = prepared.form
        if last_page:
            break
        after = up_to
    if gone and stored and len(gone) > max(10, max_delete_fraction * stored):
        raise KoboError(
            f"the sweep of {uid} found {len(gone):,} of {stored:,} stored submissions missing on "
            f"{client.server_url}; nothing was marked deleted. If they really were deleted on KoBo, "
            "run again allowing it (--max-delete-fraction 1)")
    report.deleted = warehouse.mark_deleted(form, gone, run_id=report.run_id) if gone else 0
    report.swept = True
    report.sweep_requests = client.requests_made - requests_before
    report.sweep_seconds = time.monotonic() - started


def _batches(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
