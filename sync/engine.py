"""Incremental sync of one form of one server into the warehouse, whichever the server (sync.source).

This module orchestrates; the source says how its server is asked (sync.kobo_source, sync.central_source).
A run holds the asset (`Warehouse.asset_lock`), records itself in `sync_runs`, makes or extends the form's
tables from the deployed version merged with every version recorded before, then stores the new data page
by page — each page in one transaction with the watermark it carries (a crash loses at most the page in
flight), the next page downloading while this one is stored — meets new form versions in the data as
they come (schema drift), and, when one is due, runs the source's sweep for what the new data cannot show
(edits and reviews on KoBo, deletions, restores, purges), with its full form as the safety net on its own
schedule.

What the server answers is checked before it steers anything: a submission without a usable `_id`
neither moves the watermark nor stops the page (the warehouse quarantines it); version ids met in the data
must look like the server's before they go into a URL; pages that do not move past the previous one stop
the run; and no sweep reads an empty or shrinking answer as "everything was deleted" (sync.sweep_guard).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from common.errors import AminaError, FormBuildError, KoboError, StopNow, SyncInterrupted
from common.text import storable
from forms.schema import FormSchema
from sync.attachments import AttachmentRules
from sync.client import MAX_PAGE_SIZE, KoboClient
from sync.kobo_source import KoboSource, deployed_content, schema_of
from sync.source import DataPage, OpenedForm, Source
from sync.sweep import SweepSettings, check_position
from sync.sweep_costs import WATERMARK
from sync.sweep_source import Fetched
from warehouse.manifest import StoredForm
from warehouse.store import RegisteredForm, SweepMarks, Warehouse, Watermark, utcnow

__all__ = ["DEFAULT_FULL_SWEEP_EVERY", "DEFAULT_OVERLAP", "Progress", "SyncReport", "as_source", "deployed_content",
           "prepare_form", "schema_of", "store_page", "sync_asset"]

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = dt.timedelta(minutes=5)
DEFAULT_FULL_SWEEP_EVERY = dt.timedelta(days=1)
Progress = Callable[[int, int], None]  # (submissions fetched so far, submissions to fetch)


@dataclass(slots=True)
class SyncReport:
    asset_uid: str
    key: str = ""  # the asset in the warehouse (its uid, or uid@host)
    name: str = ""
    run_id: int | None = None
    status: str = "running"
    to_fetch: int = 0  # what the server said matched the first page's query
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_values: int = 0
    quarantined: int = 0
    deleted: int = 0
    attachments: int = 0  # files downloaded
    swept: bool = False
    sweep_mode: str | None = None  # "incremental" or "full" when the run swept
    sweep_requests: int = 0
    sweep_seconds: float = 0.0
    sweep_bytes: int = 0
    sweep_detail: dict[str, Any] = field(default_factory=dict)  # per mechanism: cost and changes found
    pages: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    table: str = ""
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"requests": self.requests, "pages": self.pages, "fetched": self.fetched,
                "inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
                "bad_values": self.bad_values, "quarantined": self.quarantined, "deleted": self.deleted,
                "swept": self.swept, "sweep_mode": self.sweep_mode,
                "sweep_requests": self.sweep_requests, "sweep_seconds": round(self.sweep_seconds, 3),
                "sweep_bytes": self.sweep_bytes,
                "sweep_detail": orjson.dumps(self.sweep_detail).decode() if self.sweep_detail else None}


def as_source(server: Source | KoboClient) -> Source:
    """A Source, from a Source or (as callers before sync.source wrote it) a KoboClient."""
    return KoboSource(server) if isinstance(server, KoboClient) else server


@dataclass(slots=True)
class PreparedForm:
    """A form ready to load: its tables, the merged schema of every version met, and those versions."""

    form: RegisteredForm
    opened: OpenedForm
    schema: FormSchema
    versions: set[str]
    sensitive: tuple[str, ...]

    def evolve(self, source: Source, warehouse: Warehouse, page: Sequence[Any], report: SyncReport) -> None:
        """Schema drift: a submission of a version not seen yet → fetch that version, extend the tables."""
        for version in sorted(source.versions_met(page) - self.versions):
            self.versions.add(version)
            try:
                got = source.version(source.form_id_of(self.opened.uid) or self.opened.uid, version,
                                     sensitive=self.sensitive)
            except (KoboError, FormBuildError) as exc:  # e.g. a version the server no longer has: go on with the rest
                report.notes.append(f"form version {storable(version)[:40]} could not be used: {exc}")
                continue
            self.schema = self.schema.merged(got.schema)
            self.form = warehouse.register_form(
                asset_uid=self.form.asset_uid, server_url=source.server_url, name=report.name, schema=self.schema,
                version_uid=version, content=got.definition, deployed=False)
            report.notes += list(self.form.warnings)
            report.notes.append(f"form version {version} met in the data: tables extended")
            log.info("asset %s: submissions of form version %s; tables extended", self.form.key, version)


def prepare_form(server: Source | KoboClient, warehouse: Warehouse, form_id: str, *,
                 sensitive: tuple[str, ...] = ()) -> PreparedForm:
    """Open the form on the server, build its schema (the deployed version merged with every version recorded
    before) and make its tables."""
    source = as_source(server)
    opened = source.open_form(form_id, sensitive=sensitive)
    deployed = opened.deployed
    schema = deployed.schema
    key = warehouse.asset_key(source.server_url, opened.uid)
    stored = warehouse.stored_versions(key)
    for old_uid, old_content in stored.items():
        if old_uid != deployed.version:
            try:
                schema = schema.merged(schema_of(old_content, what=f"version {old_uid}", sensitive=sensitive))
            except FormBuildError as exc:
                log.warning("asset %s: a recorded form version is left out: %s", opened.uid, exc)
    form = warehouse.register_form(asset_uid=opened.uid, server_url=source.server_url, name=opened.name,
                                   schema=schema, version_uid=deployed.version, content=deployed.definition)
    return PreparedForm(form=form, opened=opened, schema=schema, versions={*stored, str(deployed.version)},
                        sensitive=sensitive)


def store_page(source: Source | KoboClient, warehouse: Warehouse, prepared: PreparedForm, report: SyncReport,
               page: DataPage | Fetched, watermark: Watermark | None, attachments: AttachmentRules | None, *,
               found_by: str = WATERMARK) -> None:
    """Evolve the tables if the page brings a new form version, store it (with the watermark, if any),
    fetch its attachments if asked, and count what happened. `found_by`: the mechanism that brought it."""
    source = as_source(source)
    prepared.evolve(source, warehouse, page.results, report)
    result = warehouse.load_page(prepared.form, page.results, watermark, run_id=report.run_id, dirty=page.dirty,
                                 found_by=found_by, raw=page.raw)
    if attachments is not None and page.results:
        got = source.download_attachments(attachments, prepared.form.key,
                                          source.form_id_of(prepared.opened.uid) or prepared.opened.uid, page.results)
        report.attachments += got.downloaded
        if got.refused:
            report.notes.append(f"{got.refused} attachment(s) not downloaded: {got.reason}")
    report.fetched += len(page.results)
    report.inserted += result.inserted
    report.updated += result.updated
    report.unchanged += result.unchanged
    report.bad_values += result.bad_values
    report.quarantined += result.quarantined


def sync_asset(
    server: Source | KoboClient,
    warehouse: Warehouse,
    form_id: str,
    *,
    page_size: int = MAX_PAGE_SIZE,
    progress: Progress | None = None,
    sensitive: tuple[str, ...] = (),
    overlap: dt.timedelta = DEFAULT_OVERLAP,
    sweep_every: int = 1,
    full_sweep_every: dt.timedelta | None = DEFAULT_FULL_SWEEP_EVERY,
    max_delete_fraction: float = 0.5,
    should_stop: Callable[[], bool] | None = None,
    attachments_dir: Path | None = None,
    attachments: AttachmentRules | None = None,
) -> SyncReport:
    """Pull what is new on the server for one form into the warehouse, then (every `sweep_every` syncs;
    0 = never) sweep for what the new data cannot show. Raises AminaError on failure, after recording the
    failed run (the watermark stays at the last page fully stored). The asset is held
    (`Warehouse.asset_lock`) for the whole run: AssetBusy when another worker has it.

    `server`: a sync.source.Source (or a KoboClient). `full_sweep_every`: how often the sweep compares every
    submission instead of asking what changed (the safety net, see sync.sweep); None: never; zero: at every
    sweep.

    `max_delete_fraction`: a sweep that would mark more than this share of the stored submissions
    deleted stops instead (a server that suddenly answers with nothing is more likely than a
    programme deleting half its data); pass 1.0 to accept it.

    `attachments` (or just `attachments_dir`): also download each stored submission's attachment files.
    `should_stop` is asked after each page is stored; when it answers True the run ends there
    (status "interrupted"), with everything stored so far kept and the watermark on it.
    """
    source = as_source(server)
    source.check_form_id(form_id)
    if attachments is None and attachments_dir is not None:
        attachments = AttachmentRules(attachments_dir)
    key = warehouse.asset_key(source.server_url, source.asset_uid(form_id))
    with warehouse.asset_lock(key):
        return _sync_held(source, warehouse, form_id, key, page_size=page_size, progress=progress,
                          sensitive=sensitive, overlap=overlap, sweep_every=sweep_every,
                          full_sweep_every=full_sweep_every, max_delete_fraction=max_delete_fraction,
                          should_stop=should_stop, attachments=attachments)


def _prefetched(pages: Iterator[DataPage], ahead: ThreadPoolExecutor) -> Iterator[DataPage]:
    """The source's pages, each next one requested (on the `ahead` thread) while this one is stored."""
    done = object()

    def following() -> Any:
        return next(pages, done)

    pending = ahead.submit(following)
    while True:
        page = pending.result()
        if page is done:
            return
        if page.results:  # an empty page ends the run's question: nothing follows it worth asking for now
            pending = ahead.submit(following)
        yield page
        if not page.results:
            return


def _sync_held(source: Source, warehouse: Warehouse, form_id: str, key: str, *, page_size: int,
               progress: Progress | None, sensitive: tuple[str, ...], overlap: dt.timedelta, sweep_every: int,
               full_sweep_every: dt.timedelta | None, max_delete_fraction: float,
               should_stop: Callable[[], bool] | None, attachments: AttachmentRules | None) -> SyncReport:
    report = SyncReport(asset_uid=source.asset_uid(form_id), key=key)
    started = time.monotonic()
    requests_before = source.requests_made
    report.run_id = warehouse.start_run(key, source.server_url)
    run_started = utcnow()
    # the next page is requested as soon as this one is read, and downloads while this one is stored (the
    # watermark still moves only with what is stored); no request outlives the run
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fetch-{key}")
    try:
        prepared = prepare_form(source, warehouse, form_id, sensitive=sensitive)
        report.name = prepared.opened.name
        report.table = prepared.form.tables.base
        report.notes += list(prepared.form.warnings)
        watermark = warehouse.watermark(key)
        pages = source.new_data(form_id, watermark, overlap=overlap, page_size=page_size,
                                state=warehouse.source_state(key))
        for page in _prefetched(pages, ahead):
            if report.pages == 0 and page.count is not None:
                report.to_fetch = page.count
            if not page.results and page.watermark is None:
                break
            store_page(source, warehouse, prepared, report, page, page.watermark, attachments)
            if not page.results:
                continue
            report.pages += 1
            if progress:
                progress(report.fetched, max(report.to_fetch, report.fetched))
            log.info("asset %s: %d of %d submissions stored", key, report.fetched,
                     max(report.to_fetch, report.fetched))
            if should_stop and should_stop():
                raise SyncInterrupted(f"sync of {key} stopped on request after {report.fetched:,} submissions; "
                                      "every page fetched was stored; the next run resumes from there")
        marks = None
        if watermark is None:  # a first load compared everything: it counts as a full sweep
            marks = SweepMarks(history_since=run_started)
        elif warehouse.sweep_due(key, sweep_every):
            marks = run_sweep(source, warehouse, prepared, report, page_size=page_size, overlap=overlap,
                              full=warehouse.full_sweep_due(key, full_sweep_every),
                              max_delete_fraction=max_delete_fraction, attachments=attachments,
                              should_stop=should_stop)
        warehouse.record_sync(key, swept=report.swept or watermark is None,
                              full=report.sweep_mode == "full" or watermark is None, marks=marks,
                              source_state=source.state_to_keep())
        report.status = "ok"
    except SyncInterrupted as exc:
        report.status, report.error = "interrupted", str(exc)
        raise
    except (KeyboardInterrupt, StopNow):  # a second Ctrl-C (or SIGTERM twice): the page in flight was rolled back
        report.status = "interrupted"
        report.error = (f"sync of {key} stopped at once after {report.fetched:,} submissions; the page in flight "
                        "was rolled back; the next run resumes after the last page stored")
        raise
    except AminaError as exc:
        report.status, report.error = "failed", str(exc)
        raise
    except Exception as exc:  # a bug, not a condition: record it, then let it surface
        report.status, report.error = "failed", f"internal error: {exc.__class__.__name__}: {exc}"
        raise
    finally:
        stop_now: BaseException | None = None
        try:
            ahead.shutdown(wait=True, cancel_futures=True)  # waits for a fetch in flight
        except (KeyboardInterrupt, StopNow) as exc:  # asked again while waiting: record the run all the same
            stop_now = exc
            if report.status in ("running", "ok"):
                report.status = "interrupted"
                report.error = f"sync of {key} stopped at once after {report.fetched:,} submissions"
        report.seconds = time.monotonic() - started
        report.requests = source.requests_made - requests_before
        warehouse.finish_run(report.run_id, status=report.status, error=report.error, **report.counts())
        log.info("sync %s: %s, %d fetched, %d new, %d updated, %d unchanged, %d deleted, %d bad values, "
                 "%d quarantined, %.2f s (sweep: %d requests, %.2f s)", key, report.status, report.fetched,
                 report.inserted, report.updated, report.unchanged, report.deleted, report.bad_values,
                 report.quarantined, report.seconds, report.sweep_requests, report.sweep_seconds)
        if stop_now is not None:
            raise stop_now
    return report


class _Target:
    """The warehouse side of a sweep (sync.sweep_compare.Target): what is stored of the form, as the form's
    tables are now (a page may bring a new form version), and how to store and mark what the sweep found."""

    def __init__(self, source: Source, warehouse: Warehouse, prepared: PreparedForm, report: SyncReport,
                 attachments: AttachmentRules | None):
        self.source, self.warehouse, self.prepared = source, warehouse, prepared
        self.report, self.attachments = report, attachments

    @property
    def stored(self) -> StoredForm:
        return StoredForm(self.warehouse, self.prepared.form)

    def store(self, fetched: Fetched, found_by: str) -> None:
        store_page(self.source, self.warehouse, self.prepared, self.report, fetched, None, self.attachments,
                   found_by=found_by)

    def mark_deleted(self, ids: list[int], found_by: str) -> int:
        return self.warehouse.mark_deleted(self.prepared.form, ids, run_id=self.report.run_id, found_by=found_by)


def run_sweep(source: Source, warehouse: Warehouse, prepared: PreparedForm, report: SyncReport, *,
              page_size: int = MAX_PAGE_SIZE, overlap: dt.timedelta = DEFAULT_OVERLAP, full: bool = False,
              max_delete_fraction: float = 0.5, attachments: AttachmentRules | None = None,
              should_stop: Callable[[], bool] | None = None) -> SweepMarks:
    """Sweep the form for what the new data cannot show (the source's own way), store what changed, and count
    it in the report; return what the sweep leaves for the next one (recorded when the run succeeds)."""
    settings = SweepSettings(page_size=page_size, max_delete_fraction=max_delete_fraction, overlap=overlap,
                             full=full, position=check_position(report.run_id))
    result = source.sweep(source.form_id_of(prepared.opened.uid) or prepared.opened.uid,
                          _Target(source, warehouse, prepared, report, attachments),
                          warehouse.sweep_state(prepared.form.key), settings, should_stop)
    report.notes += result.notes
    report.deleted += result.deleted
    report.swept, report.sweep_mode = True, result.mode
    report.sweep_requests, report.sweep_bytes, report.sweep_seconds = result.requests, result.bytes, result.seconds
    report.sweep_detail = result.detail
    log.info("asset %s: %s sweep, %d requests, %d bytes, %.2f s", prepared.form.key, result.mode, result.requests,
             result.bytes, result.seconds)
    return result.marks
