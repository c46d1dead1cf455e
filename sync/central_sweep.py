"""The sweep for ODK Central: what the new data (sync.central_source) cannot show.

Edits and reviews move `__system/updatedAt`, so the new-data question already brings them. What it cannot
see (odk-central-api.md §8):
- **soft deletions** set `deletedAt` without moving `updatedAt`: every sweep asks
  `__system/deletedAt gt T` (T: when the last sweep started, less the overlap) with `$select=__id`, and
  marks those submissions deleted — Central itself says they are deleted, so the filter is the proof;
- **restorations** bring a row back with its old stamps, and **purges** (30 days after a deletion, or
  at once with `--force`) leave no trace: the *full* sweep, on the safety net's schedule (`full_sweep_every`,
  and always for a form of at most `SMALL_FORM_PAGES` pages), lists every id with `$select=__id` and
  `meta/instanceID` and compares with what is stored: a stored submission the server no longer lists was
  purged (marked deleted, under sync.sweep_guard's rules); one it lists that is stored as deleted, missing,
  or with another current instanceID is fetched again (`__id eq …`) and stored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from common.errors import SyncInterrupted
from sync.central_shape import submission_number
from sync.sweep import SMALL_FORM_PAGES, SweepResult, SweepSettings
from sync.sweep_compare import Target
from sync.sweep_guard import check_deletions
from sync.sweep_source import Fetched
from warehouse.manifest import State
from warehouse.store import SweepMarks, SweepState, utcnow

DELETED_SINCE = "deleted_at"  # the mechanism names recorded in submission_history.found_by
FULL = "full"
FETCH_BATCH = 50  # ids per `__id eq … or …` filter: keeps the URL well under proxies' 8 KB line limit


class _Guard:
    """What sync.sweep_guard needs to know of the server."""

    def __init__(self, source: Any, form_id: str):
        self.source, self.form_id = source, form_id
        self.name, self.server_url = form_id, source.server_url

    def total_on_server(self) -> int | None:
        return self.source.server_count(self.form_id)


def central_sweep(source: Any, form_id: str, target: Target, state: SweepState, settings: SweepSettings,
                  should_stop: Callable[[], bool] | None) -> SweepResult:
    started, requests, received = time.monotonic(), source.requests_made, source.bytes_received
    now = utcnow()
    stored = target.stored.count()
    full = settings.full or math.ceil(stored / max(1, settings.page_size)) <= SMALL_FORM_PAGES
    result = SweepResult(mode="full" if full else "incremental")
    found: dict[str, int] = {}
    since = state.history_since or state.last_sweep_at
    if since is not None:  # soft deletions since the last sweep: Central says so itself
        moment = since - settings.overlap
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        gone = [submission_number(i) for i in _ids(source, form_id, f"__system/deletedAt gt {stamp}", settings)]
        live = target.stored.manifest_of(gone)
        if live:
            check_deletions(_Guard(source, form_id), len(live), stored, stored - len(live),
                            settings.max_delete_fraction)
            marked = target.mark_deleted(sorted(live), DELETED_SINCE)
            found["deleted"] = marked
            result.deleted += marked
    if should_stop and should_stop():
        raise SyncInterrupted(f"sync of {form_id} stopped on request during the sweep; what it found so far was "
                              "stored")
    if full:
        _full(source, form_id, target, settings, stored, result, found)
    result.marks = SweepMarks(history_since=now)
    result.requests = source.requests_made - requests
    result.bytes = source.bytes_received - received
    result.seconds = time.monotonic() - started
    result.detail = {"mode": result.mode, "found": found}
    return result


def _full(source: Any, form_id: str, target: Target, settings: SweepSettings, stored: int, result: SweepResult,
          found: dict[str, int]) -> None:
    """List every id and current instanceID; fetch what differs, mark what is gone (see the module doc)."""
    mine = target.stored.manifest(None, None)
    theirs: dict[int, tuple[str, str]] = {}  # _id → (root id, current instance)
    for row in _rows(source, form_id, None, settings, select="__id,meta/instanceID"):
        root = row.get("__id")
        meta = row.get("meta") if isinstance(row.get("meta"), Mapping) else {}
        instance = meta.get("instanceID") if isinstance(meta.get("instanceID"), str) else root
        if isinstance(root, str) and isinstance(instance, str):
            theirs[submission_number(root)] = (root, instance)
    refetch = [root for sid, (root, instance) in theirs.items()
               if sid not in mine or mine[sid][0] != instance.removeprefix("uuid:")]
    for batch in _batches(refetch, FETCH_BATCH):
        fetched = _fetch(source, form_id, batch, settings)
        target.store(fetched, FULL)
    if refetch:
        found["refetched"] = len(refetch)
    gone = sorted(set(mine) - set(theirs))
    if gone:
        check_deletions(_Guard(source, form_id), len(gone), stored, len(theirs), settings.max_delete_fraction)
        marked = target.mark_deleted(gone, FULL)
        found["purged"] = marked
        result.deleted += marked


def _ids(source: Any, form_id: str, where: str, settings: SweepSettings) -> Iterator[str]:
    for row in _rows(source, form_id, where, settings, select="__id"):
        if isinstance(row.get("__id"), str):
            yield row["__id"]


def _rows(source: Any, form_id: str, where: str | None, settings: SweepSettings, *,
          select: str) -> Iterator[Mapping[str, Any]]:
    """Every row of `Submissions` (filtered by `where`), paged by `$top` and nextLinks."""
    client = source.client
    path = f"{client.service(source.project, form_id)}/Submissions"
    params = {"$top": str(max(settings.page_size, 1000)), "$select": select}
    if where:
        params["$filter"] = where
    for page in client.pages(client.odata(path, params), form_id):
        yield from (r for r in page.rows if isinstance(r, Mapping))


def _fetch(source: Any, form_id: str, roots: Sequence[str], settings: SweepSettings) -> Fetched:
    """These submissions whole, KoBo-shaped, with their states (to tell what changed)."""
    client = source.client
    path = f"{client.service(source.project, form_id)}/Submissions"
    where = " or ".join(f"__id eq '{root}'" for root in roots if "'" not in root)
    page = client.odata(path, {"$filter": where, "$expand": "*", "$top": str(len(roots) + 1)})
    rows = [r for r in page.rows if isinstance(r, Mapping)]
    shaped = [source.shaper(form_id).shape(r) for r in rows]
    states: list[tuple[int, State]] = []
    for s in shaped:
        status = s.get("_validation_status") or {}
        if isinstance(s.get("_id"), int):
            states.append((s["_id"], (s.get("_uuid", ""), status.get("uid"), status.get("timestamp"))))
    return Fetched(shaped, page.dirty, states, raw=rows)


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
