"""Comparing what a server lists with what the warehouse holds, and acting on the difference.

`change_kind` says what a listed submission's state means against the stored one; `Changes` refetches
changed submissions through the sweep's target (in `$in` batches, stored page by page) and keeps the
submissions found gone until the sweep decides they may be marked deleted (sync.sweep_guard).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from common.errors import SyncInterrupted
from sync.sweep_costs import SweepCosts
from sync.sweep_source import Fetched, Listed, SweepSource
from warehouse.manifest import State, StoredForm

EDIT, REVIEW, MISSED, DELETED = "edited", "validation", "missed", "deleted"


def change_kind(mine: State | None, theirs: State) -> str | None:
    """None when the stored state is the server's; else an edit (new `_uuid`), a review (new status) or a
    submission not stored at all."""
    if mine is None:
        return MISSED
    if mine == theirs:
        return None
    return EDIT if mine[0] != theirs[0] else REVIEW


class Target(Protocol):
    """The warehouse side as the sweep writes it (sync.engine provides it)."""

    @property
    def stored(self) -> StoredForm: ...

    def store(self, fetched: Fetched, found_by: str) -> None: ...

    def mark_deleted(self, ids: list[int], found_by: str) -> int: ...


class Changes:
    """Changes found by the sweep's mechanisms: refetched at once, deletions kept pending."""

    def __init__(self, source: SweepSource, target: Target, costs: SweepCosts,
                 should_stop: Callable[[], bool] | None):
        self.source, self.target, self.costs = source, target, costs
        self.should_stop = should_stop
        self.gone: dict[int, tuple[State, str]] = {}  # pending deletions: _id → (stored state, mechanism)
        self.unstorable: dict[int, State] = {}  # on the server, fetched, and still not stored (quarantined)
        self.unusable = 0

    def refetch(self, mine: Mapping[int, State | None], found_by: str) -> None:
        """Fetch these submissions whole and store them (those already found gone excepted); count, under
        `found_by`, what each fetched one turned out to be against its stored state `mine`."""
        wanted = [sid for sid in mine if sid not in self.gone]
        missed: dict[int, State] = {}
        for page in self.source.fetch(wanted) if wanted else ():
            self.target.store(page, found_by)
            for sid, theirs in page.states:
                kind = change_kind(mine.get(sid), theirs) if sid in mine else None
                if kind is not None:
                    self.costs.found(found_by, kind)
                if kind == MISSED:
                    missed[sid] = theirs
        if missed:  # a submission the warehouse set aside (quarantine) is known, not missing, for the counts
            stored = self.target.stored.manifest_of(missed)
            self.unstorable.update({sid: state for sid, state in missed.items() if sid not in stored})

    def compare(self, entries: Iterable[tuple[int, State]], mine: dict[int, State], found_by: str, *,
                unknown_up_to: int | None = None) -> dict[int, State]:
        """Refetch the listed submissions whose state differs from `mine` (those not stored only up to
        `unknown_up_to`, when given); return the stored ones the listing did not name."""
        left = dict(mine)
        changed: dict[int, State | None] = {}
        for sid, theirs in entries:
            stored = left.pop(sid, None)
            kind = change_kind(stored, theirs)
            if kind == MISSED and unknown_up_to is not None and sid > unknown_up_to:
                continue  # newer than anything stored: the next sync's incremental read brings it
            if kind is not None:
                changed[sid] = stored
        if changed:
            self.refetch(changed, found_by)
        return left

    def deleted(self, states: Mapping[int, State], found_by: str) -> None:
        for sid, state in states.items():
            self.gone.setdefault(sid, (state, found_by))

    def list_and_compare(self, lo: int | None, hi: int | None, found_by: str) -> int:
        """List [lo, hi) on the server, compare it page by page with the warehouse, refetch what changed and keep
        what is gone; return how many submissions the server listed. Stops between pages when asked."""
        seen = 0
        start = lo
        for page in self.source.listing(lo, hi):
            upper = hi if page.through is None else page.through + 1
            self.unusable += page.unusable
            seen += len(page.entries)
            self.deleted(self.compare(page.entries, self.target.stored.manifest(start, upper), found_by), found_by)
            start = upper
            if page.through is not None:
                self.stop_point("the sweep")
        return seen

    def stop_point(self, where: str) -> None:
        if self.should_stop and self.should_stop():
            raise SyncInterrupted(f"sync of {self.target.stored.form.key} stopped on request during {where}; what "
                                  "it found so far was stored; deletions were not marked")

    def listed(self, pages: Iterable[Listed], found_by: str, *, up_to: int | None,
               on_page: Callable[[Listed], None] | None = None) -> int:
        """Compare a manifest of selected submissions (ever edited, reviewed since …) with what is stored for
        the same ids; refetch what differs. Returns how many entries were listed."""
        seen = 0
        for page in pages:
            self.unusable += page.unusable
            seen += len(page.entries)
            if on_page is not None:
                on_page(page)
            mine = self.target.stored.manifest_of(sid for sid, _ in page.entries)
            self.compare(page.entries, mine, found_by, unknown_up_to=up_to)
            if page.through is not None:
                self.stop_point(f"the sweep ({found_by})")
        return seen
