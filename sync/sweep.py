"""The sweep: finds the edits, reviews and deletions the incremental read cannot see (they do not move
`_submission_time`), at a cost that grows with what changed, not with what is stored.

An *incremental* sweep asks, in this order (each mechanism is recorded with what it found, in
`submission_history.found_by` and `sync_runs.sweep_detail`):

1. `history`: when the token may read the server's project history, what it says was modified or deleted
   since the last sweep. The cheapest signal, never trusted alone: modified submissions are fetched and
   compared; deleted ones are marked only when a listing of their ids confirms they are gone. A refusal
   (403) is remembered for a day and the sweep goes on without it.
2. `edited`: the manifest (id, `_uuid`, status) of every submission ever edited; those whose `_uuid`
   differs from the stored one are fetched.
3. `validation`: the manifest of the submissions whose validation status was set since the newest
   timestamp seen (less the overlap); those that differ are fetched.
4. `count`: the server's count and check figure of the whole stored `_id` range against the warehouse's,
   split where they differ (sync.sweep_bisect) and listed once small: deletions, and submissions that
   appeared below the watermark late.

An unchanged form costs 4 requests (5 with the history), whatever its size. What none of these see, a
*full* sweep (the manifest of every submission, 1 request per 1,000) finds: a cleared validation status
(it loses its timestamp), a re-review from one status to another hidden behind a server whose history is
closed, a late arrival and a deletion whose check bits agree. It runs on its own schedule
(`full_sweep_every`, a day by default), and always for a form of at most `SMALL_FORM_PAGES` pages, where it
costs no more than an incremental sweep and is exact.

Deletions are marked only at the end, all at once, and only if sync.sweep_guard allows it.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.errors import KoboError
from sync.sweep_bisect import Bisection
from sync.sweep_compare import DELETED, Changes, Target
from sync.sweep_costs import COUNT, EDITED, FULL, HISTORY, MECHANISMS, VALIDATION, SweepCosts
from sync.sweep_guard import check_deletions
from sync.sweep_source import Denied, History, Listed, SweepSource
from warehouse.manifest import CHECK_POSITIONS, unix_seconds
from warehouse.store import SweepMarks, SweepState, utcnow

SMALL_FORM_PAGES = 4  # a form of at most this many pages is swept in full: as cheap, and exact
HISTORY_RETRY = dt.timedelta(days=1)  # after a 403 on the history, ask again after this long
HISTORY_SLACK = dt.timedelta(minutes=10)  # the history's `since` is early by at least this (clocks differ)


@dataclass(frozen=True, slots=True)
class SweepSettings:
    page_size: int = 1000
    max_delete_fraction: float = 0.5
    overlap: dt.timedelta = dt.timedelta(minutes=5)
    full: bool = False  # the safety net is due: compare every submission
    position: int = 0  # the `_uuid` character the check figure reads this time (it rotates between runs)


@dataclass(slots=True)
class SweepResult:
    mode: str  # "incremental" or "full"
    deleted: int = 0
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0
    marks: SweepMarks = field(default_factory=SweepMarks)
    notes: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def check_position(run_id: int | None) -> int:
    return (run_id or 0) % CHECK_POSITIONS


def sweep(source: SweepSource, target: Target, state: SweepState, settings: SweepSettings,
          should_stop: Callable[[], bool] | None = None) -> SweepResult:
    """Find what changed on the server and bring the warehouse up to date (see the module doc)."""
    started, requests, received = time.monotonic(), source.requests_made(), source.bytes_received()
    now = utcnow()
    costs = SweepCosts(source)
    changes = Changes(source, target, costs, should_stop)
    stored = target.stored.count()
    full = settings.full or math.ceil(stored / max(1, source.page_size)) <= SMALL_FORM_PAGES
    result = SweepResult(mode="full" if full else "incremental")
    if full:
        with costs.measure(FULL):
            seen = changes.list_and_compare(None, None, FULL)
        newest = target.stored.newest_validation()
        result.marks = SweepMarks(history_since=now, validation_since=_capped(newest, now, state.validation_since))
    else:
        seen, result.marks = _incremental(source, changes, costs, state, settings, now, result.notes)
    if changes.unusable:
        result.notes.append(f"the sweep met {changes.unusable} item(s) without a usable _id")
    if changes.gone:
        check_deletions(source, len(changes.gone), stored, seen, settings.max_delete_fraction)
        for mechanism in MECHANISMS:
            ids = sorted(sid for sid, (_state, by) in changes.gone.items() if by == mechanism)
            if ids:
                marked = target.mark_deleted(ids, mechanism)
                costs.found(mechanism, DELETED, marked)
                result.deleted += marked
    result.requests = source.requests_made() - requests
    result.bytes = source.bytes_received() - received
    result.seconds = time.monotonic() - started
    result.detail = {"mode": result.mode, "check_position": settings.position, "mechanisms": costs.as_json()}
    return result


def _incremental(source: SweepSource, changes: Changes, costs: SweepCosts, state: SweepState,
                 settings: SweepSettings, now: dt.datetime, notes: list[str]) -> tuple[int, SweepMarks]:
    stored = changes.target.stored
    top = stored.top()
    history_since, denied_at = _read_history(source, changes, costs, state, settings, now, notes)
    changes.stop_point("the sweep (history)")

    with costs.measure(EDITED):
        changes.listed(source.edited(), EDITED, up_to=top)
    changes.stop_point("the sweep (edits)")

    known = state.validation_since if state.validation_since is not None else stored.newest_validation()
    newest: list[int] = []

    def track(page: Listed) -> None:
        newest.extend(at for _sid, (_u, _v, at) in page.entries if at is not None)

    since = max(0, (known or 0) - int(settings.overlap.total_seconds()))
    with costs.measure(VALIDATION):
        changes.listed(source.reviewed_since(since), VALIDATION, up_to=top, on_page=track)
    changes.stop_point("the sweep (reviews)")

    seen = 0
    if top is not None:
        with costs.measure(COUNT):
            seen = Bisection(source, changes, position=settings.position, found_by=COUNT).run(0, top + 1)
    marks = SweepMarks(validation_since=_capped(max([*newest, known or 0]) or None, now, state.validation_since),
                       history_since=history_since, history_denied_at=denied_at)
    return seen, marks


def _read_history(source: SweepSource, changes: Changes, costs: SweepCosts, state: SweepState,
                  settings: SweepSettings, now: dt.datetime, notes: list[str]
                  ) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Act on the server's history since the last sweep; return (history_since, history_denied_at) to record."""
    if state.history_denied_at is not None and now - state.history_denied_at < HISTORY_RETRY:
        return None, None
    last = state.history_since or state.last_sweep_at
    if last is None:
        return now, None  # never swept: the history counts from now on
    since = last - max(settings.overlap, HISTORY_SLACK)
    with costs.measure(HISTORY):
        try:
            history = source.history_since(since)
        except Denied:
            notes.append(f"{source.server_url} does not let this token read the project history of {source.name} "
                         "(it needs the 'Manage project' permission); the sweep used its other checks, and asks "
                         "again in a day")
            return None, now
        except KoboError as exc:
            notes.append(f"the project history of {source.name} could not be read ({exc}); the sweep used its "
                         "other checks")
            return None, None
        _apply_history(source, changes, history)
    if history.skipped:
        notes.append(f"the project history of {source.name} held {history.skipped} entr"
                     f"{'y' if history.skipped == 1 else 'ies'} that were not what they should be; left out")
    return now, None


def _apply_history(source: SweepSource, changes: Changes, history: History) -> None:
    """Deleted: marked (later, if allowed) only when a listing of their ids confirms they are gone. Modified:
    fetched and compared."""
    stored = changes.target.stored
    ids = stored.ids_of_roots(history.modified | history.deleted)
    claimed = sorted({ids[r] for r in history.deleted if r in ids})
    if claimed:
        present = source.present(claimed)
        changes.deleted(stored.manifest_of(sid for sid in claimed if sid not in present), HISTORY)
    modified = sorted({ids[r] for r in history.modified if r in ids} - changes.gone.keys())
    if modified:
        mine = stored.manifest_of(modified)
        changes.refetch({sid: mine.get(sid) for sid in modified if sid in mine}, HISTORY)


def _capped(newest: int | None, now: dt.datetime, before: int | None) -> int | None:
    """The validation mark to record: the newest timestamp met, never later than now (a server's clock ahead of
    ours, or a hostile timestamp, must not hide the reviews to come), never earlier than the one recorded."""
    if newest is None:
        return before
    mark = min(newest, unix_seconds(now) or newest)
    return mark if before is None else max(mark, before)
