"""Disclosure control for counts from screening and assistance records.

Primary suppression: every count below the threshold (default 5) is shown as "<5" — zeros included, so
that an empty category cannot be told from a small one.

Secondary (complementary) suppression: a figure shows sums — the rows of a column add up to its total,
a cross-table's rows and columns to theirs, the headline count of presumed victims is the total of each
table about them. Where the hidden parts of a sum add up to less than the threshold, they could be
worked out (or narrowed down) by subtracting the others from the total, so one more part is hidden — the
smallest count still shown, or the total when every part is hidden already; and a hidden total with
every part shown gets a part hidden. This repeats until every sum is safe. Because a cell that stands
in several figures is one object, hiding it hides it everywhere.
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
            hidden = [p for p in parts if p.hidden]
            # a hidden total is safe while a part is hidden too; shown parts that hide less than the threshold are not
            unsafe = not hidden if total.hidden else bool(hidden) and sum(p.value or 0 for p in hidden) < threshold
            if not unsafe:
                continue
            shown = sorted((p for p in parts if not p.hidden), key=lambda c: c.value or 0)
            pick = shown[0] if shown else (total if not total.hidden else None)
            if pick is None:
                continue
            pick.shown = Shown.HIDDEN
            complements += 1
            changed = True
    return complements


def _primary(cell: Cell, threshold: int) -> None:
    if cell.value is not None and cell.shown is Shown.EXACT and cell.value < threshold:
        cell.shown = Shown.SMALL
