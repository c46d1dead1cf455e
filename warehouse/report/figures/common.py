"""Helpers shared by the figure modules: categories in form order, months, one-column count figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from warehouse.report.language import Language
from warehouse.report.model import Category, Cell, Chart, Figure
from warehouse.report.source import Form

NO_ANSWER = "__no_answer__"  # the key of the row of NULLs
TOTAL = "__total__"


def combined_notes(form: Form, lang: Language) -> list[str]:
    """A note saying that a form's figures add up several synced forms, when they do."""
    if len(form.combined) < 2:
        return []
    return [lang.t("combined", form=form.form_id, n=lang.number(len(form.combined)), tables=", ".join(form.combined))]


def key_of(value: Any) -> str:
    return NO_ANSWER if value is None or value == "" else str(value)


def categories(form: Form, question: str, lang: Language, observed: Iterable[str]) -> list[Category]:
    """Every choice of the question's list in form order (empty ones too: an absent category must not tell a
    zero from a small count), then codes met without a label, then the row of no answer if there is one."""
    labels = form.choice_labels(question, lang.code)
    seen = set(observed)
    extra = sorted(k for k in seen if k not in labels and k != NO_ANSWER)
    cats = [Category(code, label) for code, label in labels.items()] + [Category(k, k) for k in extra]
    if NO_ANSWER in seen:
        cats.append(Category(NO_ANSWER, lang.t("no_answer")))
    return _unique_labels(cats)


def _unique_labels(cats: list[Category]) -> list[Category]:
    """Charts key bars by label: two codes sharing one label get the code appended."""
    count: dict[str, int] = {}
    for c in cats:
        count[c.label] = count.get(c.label, 0) + 1
    return [Category(c.key, f"{c.label} ({c.key})") if count[c.label] > 1 else c for c in cats]


def months(observed: Iterable[str], lang: Language) -> list[Category]:
    """Every month from the first to the last one met ('YYYY-MM' keys), gaps included; no answer last."""
    seen = set(observed)
    real = sorted(k for k in seen if k != NO_ANSWER)
    cats: list[Category] = []
    if real:
        year, month = (int(p) for p in real[0].split("-"))
        last = tuple(int(p) for p in real[-1].split("-"))
        while (year, month) <= last:
            key = f"{year:04d}-{month:02d}"
            cats.append(Category(key, lang.month(key)))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    if NO_ANSWER in seen:
        cats.append(Category(NO_ANSWER, lang.t("no_answer")))
    return cats


def as_date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def counts(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    """{key: count} from (key, count) rows."""
    out: dict[str, int] = {}
    for key, n in rows:
        out[key_of(key)] = out.get(key_of(key), 0) + int(n or 0)
    return out


def count_figure(fid: str, title: str, row_title: str, rows: list[Category], column: Category,
                 values: Mapping[str, int], *, total: Cell | None = None, additive: bool = True,
                 protected: bool = False, chart: Chart = Chart.BARS, note: str | None = None) -> Figure:
    """One column of counts, a row per category; `total` (a shared cell) is the sum of the rows when additive."""
    cells = [[Cell(int(values.get(r.key, 0)))] for r in rows]
    if total is None and additive:
        total = Cell(sum(int(values.get(r.key, 0)) for r in rows))
    return Figure(fid, title, row_title, rows, [column], cells, protected=protected, additive=additive,
                  totals=[total] if total is not None else None, chart=chart, note=note)


def measures_figure(fid: str, title: str, row_title: str, rows: list[Category], columns: list[Category],
                    values: Mapping[str, Mapping[str, int | float | None]], *, chart: Chart,
                    additive: bool = True, decimals: int = 0, signed: frozenset[str] = frozenset()) -> Figure:
    """Several measures per row (e.g. sessions and participants per month); totals when they add up."""
    cells = [[Cell(values.get(r.key, {}).get(c.key, 0 if additive else None)) for c in columns] for r in rows]
    totals = None
    if additive:
        totals = [Cell(sum(row[j].value or 0 for row in cells)) for j in range(len(columns))]
    return Figure(fid, title, row_title, rows, columns, cells, additive=additive, totals=totals, chart=chart,
                  decimals=decimals, signed=signed)
