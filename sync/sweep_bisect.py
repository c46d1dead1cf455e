"""Deletions (and submissions that appeared late) by counting: compare the server's figures for an `_id` range
with the warehouse's, and split only the ranges that differ, until a range is small enough to list.

An unchanged form costs one request per figure for the whole range; d changes cost about d·log2(N/page)
counts and d listings. Each split asks the server for the left half only: the right half's figures are the
parent's less the left's. Two figures are compared (warehouse.manifest): the count, and the check figure, so
that a submission that appeared and another that went in the same range do not cancel out unnoticed (they do
only when both have the same check bit, one chance in two, and the bit's position changes from run to run).

Counts only ever decide where to look. What is found comes from listing a range (Changes.list_and_compare):
counts that are not counts (negative, not integers, more than the range can hold) or that contradict each
other make the range be listed, never anything marked deleted. When splitting would cost more than listing
everything, everything is listed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sync.sweep_compare import Changes
from sync.sweep_source import SweepSource
from warehouse.manifest import State, StoredForm, check_bit

Figures = dict[str, int]  # "total", and "check" when the source can count it
MAX_PASSES = 3  # each pass splits on the figures still differing over the whole range


class TooCostly(Exception):
    """Splitting has cost as much as listing the whole range would."""


class Bisection:
    def __init__(self, source: SweepSource, changes: Changes, *, position: int, found_by: str):
        self.source = source
        self.changes = changes
        self.position = position
        self.found_by = found_by
        self.kinds = ("total", "check") if source.has_check_figure else ("total",)
        self.page = max(1, source.page_size)
        self.listed = 0  # submissions the server listed in the ranges listed
        self.counts = 0  # count requests made
        self.budget = 0

    @property
    def stored(self) -> StoredForm:
        return self.changes.target.stored

    def run(self, lo: int, hi: int) -> int:
        """Settle [lo, hi); return how many submissions the server counted there (for the deletion guard)."""
        theirs = self._server(lo, hi, self.kinds)
        if theirs is None or theirs["total"] == 0:  # no usable count, or none at all: list (the guard decides)
            self._list(lo, hi)
            return self.listed
        counted = theirs["total"]
        for attempt in range(MAX_PASSES):
            mine = self._stored(lo, hi)
            differing = tuple(k for k in self.kinds if theirs[k] != mine[k])
            if attempt and differing:  # still differing after a pass: has the server changed meanwhile?
                fresh = self._server(lo, hi, self.kinds)
                if fresh is None:
                    break
                theirs, counted = fresh, fresh["total"]
                differing = tuple(k for k in self.kinds if theirs[k] != mine[k])
            if not differing:
                return counted
            self.budget = math.ceil(max(mine["total"], theirs["total"]) / self.page) + 1
            if self._estimate(theirs, mine) >= self.budget:
                break
            try:  # the count first; the check figure only where the counts agree everywhere
                self._descend(lo, hi, {differing[0]: theirs[differing[0]]})
            except TooCostly:
                break
        self._list(lo, hi)  # still differing, or cheaper: the whole range, page by page
        return max(counted, self.listed)

    def _estimate(self, theirs: Figures, mine: Figures) -> float:
        """Requests splitting would take: each difference costs one count per level, and a listing."""
        differences = max(abs(theirs[k] - mine[k]) for k in self.kinds)
        depth = max(1.0, math.log2(max(mine["total"], theirs["total"], 1) / self.page) + 1)
        return differences * depth

    def _descend(self, lo: int, hi: int, theirs: Figures) -> None:
        """Split on the figures in `theirs` (the server's for [lo, hi)) wherever they differ from the warehouse's."""
        kinds = tuple(theirs)
        spent = self.source.requests_made()
        stack = [(lo, hi, theirs)]
        while stack:
            lo, hi, theirs = stack.pop()
            self.changes.stop_point("the sweep (counts)")
            mine = self._stored(lo, hi)
            if all(theirs[k] == mine[k] for k in kinds):
                continue
            if max(theirs.get("total", 0), mine["total"]) <= self.page or hi - lo <= self.page:
                self._list(lo, hi)
                continue
            if self.source.requests_made() - spent >= self.budget:
                raise TooCostly
            mid = self._middle(lo, hi, mine["total"])
            left = self._server(lo, mid, kinds)
            right = None if left is None else _rest(theirs, left, hi - mid)
            if left is None or right is None:
                self._list(lo, hi)  # counts that contradict each other: the range is listed
                continue
            stack.append((mid, hi, right))
            stack.append((lo, mid, left))

    def _middle(self, lo: int, hi: int, stored: int) -> int:
        """Where to split [lo, hi): at the stored median (halves hold as many stored submissions), else halfway."""
        mid = self.stored.split_point(lo, hi, stored // 2) if stored >= 2 else None
        if mid is None or not lo < mid < hi:
            mid = lo + (hi - lo) // 2
        return mid

    def _server(self, lo: int, hi: int, kinds: Iterable[str]) -> Figures | None:
        out: Figures = {}
        for kind in kinds:
            self.counts += 1
            found = (self.source.count(lo, hi) if kind == "total" else
                     self.source.count_check(lo, hi, self.position))
            if found is None:
                return None
            out[kind] = found
        return out

    def _stored(self, lo: int, hi: int) -> Figures:
        """The warehouse's figures for [lo, hi), less the submissions already found gone in this sweep, plus those
        the server has that the warehouse could not store (set aside in quarantine): they are not news."""
        figures = self.stored.figures(lo, hi, self.position)
        pending: list[State] = [state for sid, (state, _by) in self.changes.gone.items() if lo <= sid < hi]
        kept: list[State] = [state for sid, state in self.changes.unstorable.items() if lo <= sid < hi]
        check = sum(check_bit(s, self.position) for s in kept) - sum(check_bit(s, self.position) for s in pending)
        return {"total": figures.total - len(pending) + len(kept), "check": figures.check + check}

    def _list(self, lo: int, hi: int) -> None:
        self.listed += self.changes.list_and_compare(lo, hi, self.found_by)


def _rest(whole: Figures, left: Figures, room: int) -> Figures | None:
    """The right half's figures (the whole's less the left half's), or None when the figures contradict each
    other: a negative figure, more submissions than the half can hold, more check bits than submissions."""
    right = {k: whole[k] - left[k] for k in whole}
    if min(right.values()) < 0 or right.get("total", 0) > room:
        return None
    for half in (left, right):
        if "total" in half and "check" in half and half["check"] > half["total"]:
            return None
    return right
