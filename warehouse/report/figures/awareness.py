"""Awareness sessions (form awareness_session): sessions and attendees by governorate and month, by sex and by
age band (the form counts attendees by sex and by age band; the bands are named by the form's own labels)."""

from __future__ import annotations

from typing import Any

from warehouse.report.figures.common import categories, combined_notes, count_figure, key_of, measures_figure, months
from warehouse.report.language import Language
from warehouse.report.model import Category, Cell, Chart, Headline, Section
from warehouse.report.source import Period, Source

FORM_ID = "awareness_session"
SEXES = ("women", "men")
AGE_BANDS = ("under_18", "age_18_59", "age_60_plus")


def awareness_section(source: Source, lang: Language, period: Period) -> Section:
    section = Section("awareness", lang.t("awareness"))
    form = source.form(FORM_ID)
    if form is None:
        section.missing.append(FORM_ID)
        return section
    section.notes += combined_notes(form, lang)
    view = form.view(form.root) + " a"
    params: dict[str, Any] = {}
    when = period.where(form.col("session_date"), params)
    total, gov, month = form.col("total"), form.col("governorate"), source.month(form.col("session_date"))
    sums = ", ".join(f"sum({form.col(c)})" for c in (*SEXES, *AGE_BANDS))
    n, attendees, *parts = source.rows(f"SELECT count(*), sum({total}), {sums} FROM {view} WHERE {when}", params)[0]
    section.headlines = [Headline(lang.t("sessions"), Cell(int(n))),
                         Headline(lang.t("attendees"), Cell(int(attendees or 0)))]
    if not n:
        section.notes.append(lang.t("no_data"))
        return section
    sessions_col = Category("sessions", lang.t("sessions"))
    attendees_col = Category("attendees", lang.t("attendees"))
    both = [sessions_col, attendees_col]

    def by(expr: str) -> dict[str, dict[str, int | float | None]]:
        out: dict[str, dict[str, int | float | None]] = {}
        for key, k_sessions, k_attendees in source.rows(
                f"SELECT {expr}, count(*), sum({total}) FROM {view} WHERE {when} GROUP BY {expr}", params):
            out[key_of(key)] = {"sessions": int(k_sessions), "attendees": int(k_attendees or 0)}
        return out

    gov_label = form.label("governorate", lang.code)
    by_gov = by(gov)
    govs = categories(form, "governorate", lang, by_gov)
    section.figures.append(measures_figure(
        "awareness.by_governorate", lang.t("by", what=f"{lang.t('sessions')} · {lang.t('attendees')}",
                                           dim=gov_label), gov_label, govs, both, by_gov, chart=Chart.SORTED_BARS))
    by_month = by(month)
    month_rows = months(by_month, lang)
    section.figures.append(measures_figure(
        "awareness.by_month", lang.t("by", what=f"{lang.t('sessions')} · {lang.t('attendees')}",
                                     dim=lang.t("month")), lang.t("month"), month_rows, both, by_month,
        chart=Chart.MONTHS))
    cross: dict[str, dict[str, int | float | None]] = {}
    for g, m, k in source.rows(f"SELECT {gov}, {month}, sum({total}) FROM {view} WHERE {when} GROUP BY {gov}, {month}",
                               params):
        cross.setdefault(key_of(g), {})[key_of(m)] = int(k or 0)
    heat = measures_figure("awareness.by_governorate_month",
                           lang.t("by", what=lang.t("attendees"), dim=f"{gov_label} · {lang.t('month')}"),
                           gov_label, govs, month_rows, cross, chart=Chart.HEATMAP)
    heat.totals = None
    heat.additive = False
    section.figures.append(heat)

    # the form counts attendees in two sets of questions; the rows are those questions, named by their labels
    values = dict(zip((*SEXES, *AGE_BANDS), (int(p or 0) for p in parts), strict=True))
    for fid, names, dim in (("awareness.by_sex", SEXES, lang.t("sex")), ("awareness.by_age", AGE_BANDS,
                                                                          lang.t("age_band"))):
        rows = [Category(name, form.label(name, lang.code)) for name in names]
        section.figures.append(count_figure(fid, lang.t("by", what=lang.t("attendees"), dim=dim), dim, rows,
                                            attendees_col, values))
    return section
