"""The charts: a Vega-Lite specification per figure, built with Altair, drawn by Vega in the page.

Vega draws text with the browser, so Arabic and Kurdish are shaped and ordered by the browser's own text
engine; numbers on the axes use the language's digits and separators (a d3-format locale from CLDR);
in a right-to-left language the charts are mirrored (bars grow leftwards, time runs right to left,
category axes on the right). Hidden counts have no bar: only their mark ('<5' or the complement's) is
written where the bar would start, so the specification never carries a hidden number.
"""

from __future__ import annotations

from typing import Any

import altair as alt

from warehouse.report.language import Language, cell_text
from warehouse.report.model import Chart, Figure

FONT = "'Noto Sans Arabic', 'Noto Sans', 'Segoe UI', Tahoma, 'DejaVu Sans', sans-serif"
BAR = "#1f6f8b"
COLOURS = ["#1f6f8b", "#e07b39", "#5b8e4e", "#8c5a9e"]
PANEL_WIDTH = 360
STEP = 20
# an ordered axis's labels ('Jun 2026', 'تشرين الثاني ٢٠٢٦') on two lines: the last word (the year) below
LAST_WORD_BELOW = ("indexof(datum.label, ' ') < 0 ? datum.label : "
                   "[slice(datum.label, 0, lastindexof(datum.label, ' ')), "
                   "slice(datum.label, lastindexof(datum.label, ' ') + 1)]")


def chart_spec(figure: Figure, lang: Language, threshold: int) -> dict[str, Any] | None:
    """The Vega-Lite specification (a JSON-able dict) of a figure, or None for a figure shown as a table only."""
    if figure.chart is Chart.NONE or not figure.rows:
        return None
    data = _records(figure, lang, threshold)
    if figure.chart in (Chart.BARS, Chart.SORTED_BARS):
        chart = _panels([_bars(figure, data, c, lang) for c in range(len(figure.columns))], vertical=False)
    elif figure.chart in (Chart.MONTHS, Chart.HISTOGRAM):
        chart = _panels([_columns(figure, data, c, lang) for c in range(len(figure.columns))], vertical=True)
    elif figure.chart is Chart.HEATMAP:
        chart = _heatmap(figure, data, lang)
    else:
        chart = _dumbbell(figure, data, lang)
    spec = chart.configure(font=FONT, locale={"number": lang.d3_format_locale()}) \
        .configure_axis(labelFontSize=12, titleFontSize=12, labelLimit=280) \
        .configure_view(stroke=None).to_dict()
    return spec


def _records(figure: Figure, lang: Language, threshold: int) -> list[dict[str, Any]]:
    out = []
    for i, (row, cells) in enumerate(zip(figure.rows, figure.cells, strict=True)):
        for j, (column, cell) in enumerate(zip(figure.columns, cells, strict=True)):
            out.append({"row": row.label, "order": i, "column": column.label, "c": j,
                        "value": cell.exact, "text": cell_text(cell, lang, threshold, figure.decimals,
                                                               column.key in figure.signed)})
    return out


def _panels(charts: list[alt.LayerChart], *, vertical: bool) -> alt.TopLevelMixin:
    if len(charts) == 1:
        return charts[0]
    return alt.vconcat(*charts) if vertical else alt.hconcat(*charts)


def _sort(figure: Figure, data: list[dict[str, Any]]) -> list[str]:
    """The rows' order: the form's, or (sorted bars) by the first column, longest first, in every panel."""
    rows = [d for d in data if d["c"] == 0]
    if figure.chart is Chart.SORTED_BARS:
        rows = sorted(rows, key=lambda d: (-(d["value"] if d["value"] is not None else -1), d["order"]))
    return [d["row"] for d in rows]


def _bars(figure: Figure, data: list[dict[str, Any]], column: int, lang: Language) -> alt.LayerChart:
    """Horizontal bars, one per row; in a right-to-left language they grow leftwards with labels on the right."""
    rtl = lang.rtl
    values = [d for d in data if d["c"] == column]
    base = alt.Chart(alt.Data(values=values)).encode(
        y=alt.Y("row:N", sort=_sort(figure, data), title=None,
                axis=alt.Axis(orient="right" if rtl else "left")),
    ).properties(width=PANEL_WIDTH, height=alt.Step(STEP))
    x = alt.X("value:Q", title=figure.columns[column].label, scale=alt.Scale(reverse=rtl, zero=True),
              axis=alt.Axis(format=",d" if figure.decimals == 0 else ",.1f", tickMinStep=1, tickCount=5))
    bars = base.mark_bar(color=COLOURS[column % len(COLOURS)]).encode(
        x=x, tooltip=[alt.Tooltip("row:N", title=figure.row_title), alt.Tooltip("text:N",
                                                                             title=figure.columns[column].label)])
    labels = base.mark_text(align="right" if rtl else "left", dx=-4 if rtl else 4, fontSize=11, color="#222") \
        .encode(x=alt.X("label_at:Q", scale=alt.Scale(reverse=rtl)), text="text:N") \
        .transform_calculate(label_at="datum.value == null ? 0 : datum.value")
    return alt.layer(bars, labels)


def _columns(figure: Figure, data: list[dict[str, Any]], column: int, lang: Language) -> alt.LayerChart:
    """Vertical bars along an ordered axis (months, bins); mirrored in a right-to-left language."""
    rtl = lang.rtl
    values = [d for d in data if d["c"] == column]
    order = [d["row"] for d in values]
    base = alt.Chart(alt.Data(values=values)).encode(
        x=alt.X("row:N", sort=list(reversed(order)) if rtl else order, title=None,
                axis=alt.Axis(labelAngle=0, labelExpr=LAST_WORD_BELOW)),
    ).properties(width=alt.Step(76), height=180)
    y = alt.Y("value:Q", title=figure.columns[column].label, axis=alt.Axis(orient="right" if rtl else "left",
                                                                         format=",d", tickMinStep=1))
    bars = base.mark_bar(color=COLOURS[column % len(COLOURS)]).encode(
        y=y, tooltip=[alt.Tooltip("row:N", title=figure.row_title), alt.Tooltip("text:N",
                                                                             title=figure.columns[column].label)])
    labels = base.mark_text(baseline="bottom", dy=-2, fontSize=11, color="#222") \
        .encode(y=alt.Y("label_at:Q"), text="text:N") \
        .transform_calculate(label_at="datum.value == null ? 0 : datum.value")
    return alt.layer(bars, labels)


def _heatmap(figure: Figure, data: list[dict[str, Any]], lang: Language) -> alt.LayerChart:
    rtl = lang.rtl
    columns = [c.label for c in figure.columns]
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X("column:N", sort=list(reversed(columns)) if rtl else columns, title=None,
                axis=alt.Axis(orient="bottom", labelAngle=0, labelExpr=LAST_WORD_BELOW)),
        y=alt.Y("row:N", sort=[r.label for r in figure.rows], title=None,
                axis=alt.Axis(orient="right" if rtl else "left")),
    ).properties(width=alt.Step(76), height=alt.Step(STEP))
    rect = base.mark_rect().encode(
        color=alt.Color("value:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=[alt.Tooltip("row:N", title=figure.row_title), alt.Tooltip("column:N"), alt.Tooltip("text:N")])
    dark = 0.6 * max((d["value"] or 0 for d in data), default=0)
    text = base.mark_text(fontSize=11).encode(
        text="text:N", color=alt.condition(f"datum.value > {dark}", alt.value("white"), alt.value("#111")))
    return alt.layer(rect, text)


def _dumbbell(figure: Figure, data: list[dict[str, Any]], lang: Language) -> alt.LayerChart:
    """Before and after per row (the first two columns), joined by a line."""
    rtl = lang.rtl
    points = [d for d in data if d["c"] in (0, 1)]
    rows = [r.label for r in figure.rows]
    x = alt.X("value:Q", title=None, scale=alt.Scale(domain=[0, 10], reverse=rtl))
    y = alt.Y("row:N", sort=rows, title=None, axis=alt.Axis(orient="right" if rtl else "left"))
    base = alt.Chart(alt.Data(values=points)).properties(width=PANEL_WIDTH, height=alt.Step(28))
    line = base.mark_rule(color="#999", strokeWidth=2).encode(
        y=y, x=alt.X("min(value):Q", scale=alt.Scale(domain=[0, 10], reverse=rtl), title=None),
        x2="max(value):Q")
    dots = base.mark_circle(size=110, opacity=1).encode(
        y=y, x=x, color=alt.Color("column:N", sort=[figure.columns[0].label, figure.columns[1].label],
                                  scale=alt.Scale(range=[COLOURS[1], COLOURS[0]]),
                                  legend=alt.Legend(title=None, orient="top")),
        tooltip=[alt.Tooltip("row:N", title=figure.row_title), alt.Tooltip("column:N"), alt.Tooltip("text:N")])
    return alt.layer(line, dots)
