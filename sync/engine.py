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

What the server answers is checked before it steers anything: a submission without a usable `_id`
neither moves the watermark nor stops the page (the warehouse quarantines it); version uids met in
the data must look like KoBo's before they go into a URL; both the page loop and the sweep refuse an
answer that does not move past the previous one; and the sweep never reads an empty or shrinking
answer as "everything was deleted".
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import (
    AminaError,
    FormBuildError,
    KoboError,
    KoboRefused,
    KoboUnavailable,
    StopNow,
    SyncInterrupted,
)
from common.text import storable
from forms.schema import FormSchema
from sync.attachments import AttachmentRules, download_attachments
from sync.client import MAX_PAGE_SIZE, KoboClient, Page, check_asset_uid
from warehouse.convert import BadValue, from_unix_seconds, submission_id
from warehouse.store import RegisteredForm, Warehouse, Watermark

log = logging.getLogger(__name__)

ORDER = {"_submission_time": 1, "_id": 1}
SWEEP_FIELDS = ["_id", "_uuid", "_validation_status"]
REFETCH_BATCH = 100  # ids per `$in` query: keeps the URL well under proxies' 8 KB line limit
DEFAULT_OVERLAP = dt.timedelta(minutes=5)
KOBO_TIME = "%Y-%m-%dT%H:%M:%S"
VERSION_UID = re.compile(r"^v[0-9A-Za-z]{4,40}$")
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
                "bad_values": self.bad_values, "quarantined": self.quarantined, "deleted": self.deleted,
                "swept": self.swept,
                "sweep_requests": self.sweep_requests, "sweep_seconds": round(self.sweep_seconds, 3)}


def deployed_content(client: KoboClient, asset: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """(version uid, content) of the version the asset is deployed with; the draft may differ."""
    deployed = _text(asset.get("deployed_version_id"))
    if deployed and deployed != _text(asset.get("version_id")):
        version = client.asset_version(check_asset_uid(_text(asset.get("uid")) or ""), _version_uid(deployed))
        return deployed, _content(version.get("content"))
    return (deployed or _text(asset.get("version_id"))), _content(asset.get("content"))


def schema_of(content: Mapping[str, Any], *, what: str, title: str | None = None,
              sensitive: tuple[str, ...] = ()) -> FormSchema:
    """The schema of a form definition a server sent: any shape it cannot read is a FormBuildError naming the
    form, never a crash."""
    try:
        return FormSchema.from_content(content, title=title, sensitive=sensitive)
    except FormBuildError as exc:
        raise FormBuildError(f"{what}: {exc}") from exc
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as exc:
        raise FormBuildError(f"{what}: the form definition the server sent cannot be read ({exc.__class__.__name__}: "
                             f"{storable(str(exc))[:120]})") from exc


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _content(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _version_uid(value: str) -> str:
    if not VERSION_UID.match(value):
        raise KoboRefused(f"the server names a form version {storable(value)[:40]!r}, which is not a KoBo version uid")
    return value


@dataclass(slots=True)
class PreparedForm:
    """A form ready to load: its tables, the merged schema of every version met, and those versions."""

    form: RegisteredForm
    asset: Mapping[str, Any]
    schema: FormSchema
    versions: set[str]
    sensitive: tuple[str, ...]

    def evolve(self, client: KoboClient, warehouse: Warehouse, page: Sequence[Any], report: SyncReport) -> None:
        """Schema drift: a submission of a version not seen yet → fetch that version, extend the tables."""
        met = {v for s in page if isinstance(s, Mapping) and (v := _text(s.get("__version__")))} - self.versions
        for version in sorted(met):
            self.versions.add(version)
            if not VERSION_UID.match(version):
                report.notes.append(f"submissions name a form version {storable(version)[:40]!r}, which is not a "
                                    "KoBo version uid: loaded with the versions known")
                continue
            try:
                content = _content(client.asset_version(self.form.asset_uid, version).get("content"))
                other = schema_of(content, what=f"form version {version} of {self.form.asset_uid}",
                                  sensitive=self.sensitive)
            except (KoboRefused, FormBuildError) as exc:  # e.g. a version KoBo no longer has: load with what we know
                report.notes.append(f"form version {version} could not be used: {exc}")
                continue
            self.schema = self.schema.merged(other)
            self.form = warehouse.register_form(
                asset_uid=self.form.asset_uid, server_url=client.server_url, name=report.name, schema=self.schema,
                version_uid=version, content=content, deployed=False)
            report.notes += list(self.form.warnings)
            report.notes.append(f"form version {version} met in the data: tables extended")
            log.info("asset %s: submissions of form version %s; tables extended", self.form.key, version)


def prepare_form(client: KoboClient, warehouse: Warehouse, asset_uid: str, *,
                 sensitive: tuple[str, ...] = ()) -> PreparedForm:
    """Fetch the asset, check it can be synced, build its schema (the deployed version merged with every
    version recorded before) and make its tables."""
    asset = client.asset(asset_uid)
    name = storable(_text(asset.get("name")) or asset_uid)
    if asset.get("asset_type") not in (None, "survey"):
        raise KoboRefused(f"asset {asset_uid} ('{name}') is a {storable(str(asset.get('asset_type')))[:40]}, "
                          "not a survey: only surveys have submissions")
    if not asset.get("has_deployment", True) or not asset.get("deployed_version_id"):
        raise KoboRefused(f"asset {asset_uid} ('{name}') has not been deployed on "
                          f"{client.server_url}: deploy it in KoBo first")
    version_uid, content = deployed_content(client, asset)
    schema = schema_of(content, what=f"asset {asset_uid} ('{name}')", title=name, sensitive=sensitive)
    key = warehouse.asset_key(client.server_url, asset_uid)
    stored = warehouse.stored_versions(key)
    for old_uid, old_content in stored.items():
        if old_uid != version_uid:
            try:
                schema = schema.merged(schema_of(old_content, what=f"version {old_uid}", sensitive=sensitive))
            except FormBuildError as exc:
                log.warning("asset %s: a recorded form version is left out: %s", asset_uid, exc)
    form = warehouse.register_form(asset_uid=asset_uid, server_url=client.server_url, name=name,
                                   schema=schema, version_uid=version_uid, content=content)
    return PreparedForm(form=form, asset=asset, schema=schema, versions={*stored, str(version_uid)},
                        sensitive=sensitive)


def store_page(client: KoboClient, warehouse: Warehouse, prepared: PreparedForm, report: SyncReport,
               page: Page, watermark: Watermark | None, attachments: AttachmentRules | None) -> None:
    """Evolve the tables if the page brings a new form version, store it (with the watermark, if any),
    fetch its attachments if asked, and count what happened."""
    prepared.evolve(client, warehouse, page.results, report)
    result = warehouse.load_page(prepared.form, page.results, watermark, run_id=report.run_id, dirty=page.dirty)
    if attachments is not None:
        got = download_attachments(client, attachments, prepared.form.key, page.results)
        report.attachments += got.downloaded
        if got.refused:
            report.notes.append(f"{got.refused} attachment(s) not downloaded: {got.reason}")
    report.fetched += len(page.results)
    report.inserted += result.inserted
    report.updated += result.updated
    report.unchanged += result.unchanged
    report.bad_values += result.bad_values
    report.quarantined += result.quarantined


def last_position(results: Sequence[Any]) -> Watermark | None:
    """The watermark of a page: (`_submission_time`, `_id`) of its last submission with a usable `_id`."""
    for s in reversed(results):
        if isinstance(s, Mapping):
            sid = submission_id(s.get("_id"))
            if isinstance(sid, int):
                when = s.get("_submission_time")
                return Watermark(when if isinstance(when, str) else "", sid)
    return None


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
    attachments: AttachmentRules | None = None,
) -> SyncReport:
    """Pull what is new on KoBo for one asset into the warehouse, then (every `sweep_every` syncs;
    0 = never) sweep for edits, reviews and deletions. Raises AminaError on failure, after recording
    the failed run (the watermark stays at the last page fully stored). The asset is held
    (`Warehouse.asset_lock`) for the whole run: AssetBusy when another worker has it.

    `max_delete_fraction`: a sweep that would mark more than this share of the stored submissions
    deleted stops instead (a server that suddenly answers with nothing is more likely than a
    programme deleting half its data); pass 1.0 to accept it.

    `attachments` (or just `attachments_dir`): also download each stored submission's attachment files.
    `should_stop` is asked after each page is stored; when it answers True the run ends there
    (status "interrupted"), with everything stored so far kept and the watermark on it.
    """
    check_asset_uid(asset_uid)
    if attachments is None and attachments_dir is not None:
        attachments = AttachmentRules(attachments_dir)
    key = warehouse.asset_key(client.server_url, asset_uid)
    with warehouse.asset_lock(key):
        return _sync_held(client, warehouse, asset_uid, key, page_size=page_size, progress=progress,
                          sensitive=sensitive, overlap=overlap, sweep_every=sweep_every,
                          max_delete_fraction=max_delete_fraction, should_stop=should_stop, attachments=attachments)


def _sync_held(client: KoboClient, warehouse: Warehouse, asset_uid: str, key: str, *, page_size: int,
               progress: Progress | None, sensitive: tuple[str, ...], overlap: dt.timedelta, sweep_every: int,
               max_delete_fraction: float, should_stop: Callable[[], bool] | None,
               attachments: AttachmentRules | None) -> SyncReport:
    report = SyncReport(asset_uid=asset_uid, key=key)
    started = time.monotonic()
    requests_before = client.requests_made
    report.run_id = warehouse.start_run(key, client.server_url)
    # the next page is requested as soon as this one's last row is known, and downloads while this one is
    # stored (the watermark still moves only with what is stored); no request outlives the run
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fetch-{asset_uid}")
    try:
        prepared = prepare_form(client, warehouse, asset_uid, sensitive=sensitive)
        report.name = storable(_text(prepared.asset.get("name")) or asset_uid)
        report.table = prepared.form.tables.base
        report.notes += list(prepared.form.warnings)
        watermark = warehouse.watermark(key)
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
            before, cursor = cursor, last_position(page.results)
            if cursor is None or (before is not None and (cursor.submission_time, cursor.submission_id) <=
                                  (before.submission_time, before.submission_id)):
                store_page(client, warehouse, prepared, report, page, None, attachments)  # keep what it holds
                raise KoboUnavailable(f"{client.server_url} answered a page of {asset_uid} that does not move past "
                                      f"submission {before.submission_id if before else '(none)'}: stopping instead "
                                      "of looping")
            if page.next:
                pending = ahead.submit(fetch, cursor)
            store_page(client, warehouse, prepared, report, page, cursor, attachments)
            report.pages += 1
            if progress:
                progress(report.fetched, max(report.to_fetch, report.fetched))
            log.info("asset %s: %d of %d submissions stored", key, report.fetched,
                     max(report.to_fetch, report.fetched))
            if not page.next:
                break
            if should_stop and should_stop():
                raise SyncInterrupted(f"sync of {key} stopped on request after {report.fetched:,} submissions; "
                                      "every page fetched was stored; the next run resumes from there")
        if watermark is not None and warehouse.sweep_due(key, sweep_every):  # a first load is fresh
            sweep(client, warehouse, prepared, report, page_size=page_size, max_delete_fraction=max_delete_fraction,
                  attachments=attachments, should_stop=should_stop)
        warehouse.record_sync(key, swept=report.swept or watermark is None)
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
        report.requests = client.requests_made - requests_before
        warehouse.finish_run(report.run_id, status=report.status, error=report.error, **report.counts())
        log.info("sync %s: %s, %d fetched, %d new, %d updated, %d unchanged, %d deleted, %d bad values, "
                 "%d quarantined, %.2f s (sweep: %d requests, %.2f s)", key, report.status, report.fetched,
                 report.inserted, report.updated, report.unchanged, report.deleted, report.bad_values,
                 report.quarantined, report.seconds, report.sweep_requests, report.sweep_seconds)
        if stop_now is not None:
            raise stop_now
    return report


def _sweep_state(item: Mapping[str, Any]) -> tuple[str, str | None, int | None]:
    """(_uuid, validation uid, validation time in whole seconds) as the warehouse stores them."""
    status = item.get("_validation_status")
    status = status if isinstance(status, Mapping) else {}
    uid = status.get("uid")
    stamp = status.get("timestamp")
    try:
        at = int(stamp) if stamp is not None and from_unix_seconds(stamp) else None
    except BadValue:
        at = None
    uuid = item.get("_uuid")
    return (uuid if isinstance(uuid, str) else "", uid if isinstance(uid, str) else None, at)


def sweep(client: KoboClient, warehouse: Warehouse, prepared: PreparedForm, report: SyncReport, *,
          page_size: int = MAX_PAGE_SIZE, max_delete_fraction: float = 0.5,
          attachments: AttachmentRules | None = None, should_stop: Callable[[], bool] | None = None) -> None:
    """Find edits, validation changes, deletions and missed submissions; store them. See the module doc.

    Deletions are marked only when the answer holds together: a server that answers with no submission at
    all while we hold some is never read as "all deleted" (unless `max_delete_fraction` is 1 and the asset's
    own submission count says 0 too), and more than `max_delete_fraction` of the stored ones gone stops the
    run, at any size."""
    started, requests_before = time.monotonic(), client.requests_made
    form = prepared.form
    uid = form.asset_uid
    stored = warehouse.live_count(form)
    gone: list[int] = []
    unusable = seen = 0
    after: int | None = None
    while True:
        page = client.data_page(uid, query={"_id": {"$gt": after}} if after is not None else None,
                                sort={"_id": 1}, fields=SWEEP_FIELDS, limit=page_size)
        ids: list[tuple[int, Mapping[str, Any]]] = []
        for item in page.results:
            sid = submission_id(item.get("_id")) if isinstance(item, Mapping) else "not an object"
            if isinstance(sid, int) and (after is None or sid > after):
                ids.append((sid, item))
            else:
                unusable += 1
        ids.sort(key=lambda pair: pair[0])
        seen += len(ids)
        last_page = not page.next or not page.results
        if not last_page and not ids:
            raise KoboUnavailable(f"{client.server_url} answered a sweep page of {uid} that does not move past "
                                  f"submission {after}: stopping instead of looping")
        up_to = None if last_page else ids[-1][0]
        local = warehouse.manifest(form, after, up_to)
        refetch: list[int] = []
        for sid, item in ids:
            mine = local.pop(sid, None)
            if mine is None or mine != _sweep_state(item):
                refetch.append(sid)
        gone.extend(local)  # stored ids in this range that the server no longer has
        for batch in _batches(refetch, REFETCH_BATCH):
            full = client.data_page(uid, query={"_id": {"$in": batch}}, sort={"_id": 1}, limit=len(batch))
            store_page(client, warehouse, prepared, report, full, None, attachments)
            form = prepared.form
        if last_page:
            break
        after = up_to
        if should_stop and should_stop():
            raise SyncInterrupted(f"sync of {form.key} stopped on request during the sweep; what it found so far "
                                  "was stored; deletions were not marked")
    if unusable:
        report.notes.append(f"the sweep met {unusable} item(s) without a usable _id")
    if gone and stored:
        _check_deletions(client, uid, gone, stored, seen, max_delete_fraction)
    report.deleted = warehouse.mark_deleted(form, gone, run_id=report.run_id) if gone else 0
    report.swept = True
    report.sweep_requests = client.requests_made - requests_before
    report.sweep_seconds = time.monotonic() - started


def _check_deletions(client: KoboClient, uid: str, gone: list[int], stored: int, seen: int,
                     max_delete_fraction: float) -> None:
    """Refuse to mark deletions that look like a server answering with nothing (see `sweep`)."""
    advice = ("nothing was marked deleted. If they really were deleted on the server, run again allowing it "
              "(--max-delete-fraction 1)")
    if seen == 0:
        counted = client.asset(uid).get("deployment__submission_count")
        if max_delete_fraction < 1 or counted != 0:
            raise KoboError(f"the sweep of {uid} found none of the {stored:,} stored submissions on "
                            f"{client.server_url}, which still counts {counted if counted is not None else 'some'}; "
                            "an empty answer is not read as 'all deleted'; " + advice.replace(
                                "run again allowing it (--max-delete-fraction 1)",
                                "the asset must also count 0 submissions, and the run must allow it "
                                "(--max-delete-fraction 1)"))
    if len(gone) > max_delete_fraction * stored:
        raise KoboError(f"the sweep of {uid} found {len(gone):,} of {stored:,} stored submissions missing on "
                        f"{client.server_url}; " + advice)


def _batches(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
