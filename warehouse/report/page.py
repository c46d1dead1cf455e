"""The report as one HTML file: nothing fetched when it is opened (Vega's scripts and every chart's data are
inside), everything from the database escaped, right to left in Arabic and Kurdish.

Jinja2 escapes every value put into the page; the charts' specifications go into
`<script type="application/json">` blocks with `<`, `>` and `&` written as JSON escapes, so a label such
as `</script><script>…` stays text. A Content-Security-Policy forbids the page any connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

import altair as alt
import jinja2
from markupsafe import Markup

from warehouse.report.charts import chart_spec
from warehouse.report.figures.common import TOTAL
from warehouse.report.language import COMPLEMENT_MARK, Language, cell_text
from warehouse.report.model import Cell, Figure, Report, Shown

# the inlined bundle's Vega-Lite is the one Altair writes specifications for ('v6.4.1' → '6.4')
VEGA_LITE = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])


@dataclass
class _Cell:
    text: str
    cls: str


@dataclass
class _Row:
    key: str
    label: str
    cells: list[_Cell]


@dataclass
class _Figure:
    figure: Figure
    spec: Markup | None
    rows: list[_Row]
    total: _Row | None

    @property
    def hides(self) -> bool:
        return any(c.shown is Shown.HIDDEN for c in self.figure.all_cells())


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed in one script, from vl-convert (the Vega project's own packaging)."""
    import vl_convert

    return vl_convert.javascript_bundle(vl_version=VEGA_LITE)


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    text = files("warehouse.report").joinpath("report.html.j2").read_text(encoding="utf-8")
    return env.from_string(text)


def script_json(value: Any) -> Markup:
    """JSON that can stand inside a <script> element whatever strings it carries."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _css_class(cell: Cell) -> str:
    return {Shown.EXACT: "num", Shown.SMALL: "num small", Shown.HIDDEN: "num hidden"}[cell.shown]


def _table(figure: Figure, lang: Language, threshold: int) -> tuple[list[_Row], _Row | None]:
    def text(cell: Cell, column: int | None) -> _Cell:
        key = figure.columns[column].key if column is not None else ""
        return _Cell(cell_text(cell, lang, threshold, figure.decimals, key in figure.signed), _css_class(cell))

    rows = []
    for i, (row, cells) in enumerate(zip(figure.rows, figure.cells, strict=True)):
        out = [text(c, j) for j, c in enumerate(cells)]
        if figure.row_totals:
            out.append(text(figure.row_totals[i], None))
        rows.append(_Row(row.key, row.label, out))
    total = None
    if figure.totals:
        out = [text(c, j) for j, c in enumerate(figure.totals)]
        if figure.row_totals and figure.grand_total is not None:
            out.append(text(figure.grand_total, None))
        total = _Row(TOTAL, lang.t("total"), out)
    return rows, total


def render(report: Report) -> str:
    lang = Language.of(report.lang)
    sections = []
    for section in report.sections:
        figures = []
        for figure in section.figures:
            spec = chart_spec(figure, lang, report.threshold)
            rows, total = _table(figure, lang, report.threshold)
            figures.append(_Figure(figure, script_json(spec) if spec else None, rows, total))
        headlines = [(h.label, cell_text(h.cell, lang, report.threshold, h.decimals, h.decimals > 0),
                      _css_class(h.cell)) for h in section.headlines]
        missing = [lang.t("missing_form", form=form) for form in section.missing]
        sections.append({"section": section, "figures": figures, "headlines": headlines, "missing": missing})
    freshness = [{"row": r, "stored": lang.number(r.stored),
                  "awaiting": lang.number(r.awaiting) if r.awaiting is not None else "–",
                  "rejected": lang.number(r.rejected) if r.rejected is not None else "–",
                  "state": lang.t(r.state)} for r in report.freshness]
    t = {key: lang.t(key) for key in ("period", "contents", "table", "total", "freshness", "disclosure", "form",
                                      "last_success", "stored", "awaiting", "rejected", "state", "last_error")}
    return _template().render(
        report=report, lang=lang.code, dir="rtl" if lang.rtl else "ltr", t=t, sections=sections,
        freshness=freshness, hidden_note=lang.t("hidden_note", mark=COMPLEMENT_MARK),
        vega=Markup(vega_bundle()))
