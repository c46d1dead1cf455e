"""Disclosure control for counts from screening and assistance records.

Primary suppression: every count below the threshold (default 5) is shown as "<5" — zeros included, so
that an empty category cannot be told from a small one.

Secondary (complementary) suppression: a figure shows sums — the rows of a column add up to its total,
a cross-table's rows and columns to theirs, the headline count of presumed victims is the total of each
table about them. Wherever exactly one member of such a sum is hidden, it could be worked out by
subtraction, so one more is hidden: the smallest count still shown among the parts, or the total when
every part is hidden already. This repeats until no sum has exactly one hidden member. Because a cell
that stands in several figures is one object, hiding it hides it everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from warehouse.report.model import Cell, Figure, Headline, Shown


def protect(figures: Iterable[Figure], headlines: Iterable[Headline], threshold: int) -> int:
    """Suppress in place; returns how many cells were hidden as complements."""
    figures = [f for f in figures if f.protected]
    for figure in figures:
        for cell in figure.all_cells():
            _primary(cell, threshold)
    for headline in headlines:
        if headline.protected:
            _primary(headline.cell, threshold)
    equations = [eq for f in figures for eq in f.equations()]
    complements = 0
    changed = True
    while changed:
        changed = False
        for total, parts in equations:
            members = [total, *parts]
            if sum(1 for m in members if m.hidden) != 1:
                continue
            shown = sorted((p for p in parts if not p.hidden), key=lambda c: c.value or 0)
            pick = shown[0] if shown else total
            pick.shown = Shown.HIDDEN
            complements += 1
            changed = True
    return complements


def _primary(cell: Cell, threshold: int) -> None:
    if cell.value is not None and cell.shown is Shown.EXACT and cell.value < threshold:
        cell.shown = Shown.SMALL
