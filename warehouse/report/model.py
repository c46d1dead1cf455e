"""The report's figures as typed tables of numbers, independent of how they are drawn or written.

A `Figure` is rows (a category, a month, a governorate…) by columns (a measure, or a second category),
each value a `Cell`. Cells are objects, not numbers, because one number can stand in several places —
the count of presumed victims is a headline figure and the total of every table about them — and
disclosure control (`disclosure.py`) must hide it everywhere once it hides it anywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field


class Shown(enum.Enum):
    EXACT = "exact"
    SMALL = "small"  # below the threshold: shown as "<5"
    HIDDEN = "hidden"  # hidden so that a small cell cannot be worked out from a total


@dataclass(eq=False, slots=True)
class Cell:
    value: int | float | None
    shown: Shown = Shown.EXACT

    @property
    def hidden(self) -> bool:
        return self.shown is not Shown.EXACT

    @property
    def exact(self) -> int | float | None:
        """The value when it may be shown, else None."""
        return self.value if self.shown is Shown.EXACT else None


@dataclass(frozen=True, slots=True)
class Category:
    key: str  # the code (or 'YYYY-MM', or a band): the same in every language
    label: str  # in the report's language


class Chart(enum.Enum):
    NONE = "none"
    BARS = "bars"  # horizontal bars, one panel per column
    SORTED_BARS = "sorted_bars"  # the same, longest first
    MONTHS = "months"  # vertical bars along the months, one panel per column
    HEATMAP = "heatmap"  # rows × columns coloured by value
    DUMBBELL = "dumbbell"  # two columns (before, after) joined per row
    HISTOGRAM = "histogram"  # rows are bins, in order


@dataclass(eq=False)
class Figure:
    id: str  # stable across languages, e.g. "screening.victims_by_sex"
    title: str
    row_title: str
    rows: list[Category]
    columns: list[Category]
    cells: list[list[Cell]]  # [row][column]
    decimals: int = 0
    signed: frozenset[str] = frozenset()  # keys of the columns whose positive values get a + (changes)
    protected: bool = False  # counts from screening or assistance records: disclosure control applies
    additive: bool = False  # the rows of each column add up to `totals[column]`
    totals: list[Cell] | None = None  # per column: the total row
    row_totals: list[Cell] | None = None  # per row, for a cross-table whose columns add up too
    grand_total: Cell | None = None  # the total of a cross-table
    chart: Chart = Chart.BARS
    note: str | None = None

    def all_cells(self) -> Iterator[Cell]:
        for row in self.cells:
            yield from row
        for extra in (self.totals or [], self.row_totals or [], [self.grand_total] if self.grand_total else []):
            yield from extra

    def equations(self) -> Iterator[tuple[Cell, list[Cell]]]:
        """(total, parts) for every sum the figure shows."""
        if self.additive and self.totals:
            for j, total in enumerate(self.totals):
                yield total, [row[j] for row in self.cells]
        if self.row_totals:
            for i, total in enumerate(self.row_totals):
                yield total, list(self.cells[i])
            if self.grand_total is not None:
                yield self.grand_total, list(self.row_totals)
                if self.totals:
                    yield self.grand_total, list(self.totals)


@dataclass
class Headline:
    """A few key numbers shown large at the top of a section."""

    label: str
    cell: Cell
    decimals: int = 0
    protected: bool = False


@dataclass
class Section:
    id: str  # training / awareness / screening / freshness
    title: str
    missing: list[str] = field(default_factory=list)  # form_ids the warehouse does not hold
    headlines: list[Headline] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class FreshnessRow:
    form: str
    table: str
    last_success: str
    stored: int
    awaiting: int | None
    rejected: int | None
    state: str  # ok / failing / stale
    error: str | None


@dataclass
class Report:
    lang: str
    title: str
    period: str
    generated: str
    threshold: int
    sections: list[Section]
    freshness: list[FreshnessRow]
    freshness_note: str
    rule: str

    def figures(self) -> Iterator[Figure]:
        for s in self.sections:
            yield from s.figures

    def figure(self, figure_id: str) -> Figure:
        return next(f for f in self.figures() if f.id == figure_id)
