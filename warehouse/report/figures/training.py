"""Trainings (form training_attendance): sessions and participants by month; participants by sex, type of
organisation and governorate of work; days attended; knowledge before and after, per topic and per session."""

from __future__ import annotations

import math
from typing import Any

from warehouse.report.figures.common import (
    NO_ANSWER,
    as_date,
    categories,
    combined_notes,
    count_figure,
    counts,
    key_of,
    measures_figure,
    months,
)
from warehouse.report.language import Language
from warehouse.report.model import Category, Cell, Chart, Figure, Headline, Section
from warehouse.report.source import Form, Period, Source

FORM_ID = "training_attendance"
SESSIONS_LISTED = 500  # the per-session table lists the most recent ones; the export has them all


def training_section(source: Source, lang: Language, period: Period) -> Section:
    section = Section("training", lang.t("training"))
    form = source.form(FORM_ID)
    if form is None:
        section.missing.append(FORM_ID)
        return section
    section.notes += combined_notes(form, lang)
    people = form.question("sex").table
    checks = form.question("pre_score").table
    q = source.quote
    s_view, p_view, k_view = form.view(form.root), form.view(people), form.view(checks)
    params: dict[str, Any] = {}
    when = period.where(form.col("start_date", "s"), params)
    join_p = f"FROM {p_view} p JOIN {s_view} s ON s.{q('_id')} = p.{q('_submission_id')} WHERE {when}"
    join_k = f"FROM {k_view} k JOIN {s_view} s ON s.{q('_id')} = k.{q('_submission_id')} WHERE {when}"
    month = source.month(form.col("start_date", "s"))

    n_sessions = source.rows(f"SELECT count(*) FROM {s_view} s WHERE {when}", params)[0][0]
    n_people, person_days = source.rows(
        f"SELECT count(*), sum(p.{form.col('days_attended')}) {join_p}", params)[0]
    sessions_col = Category("sessions", lang.t("sessions"))
    people_col = Category("participants", lang.t("participants"))
    section.headlines = [Headline(lang.t("sessions"), Cell(int(n_sessions))),
                         Headline(lang.t("participants"), Cell(int(n_people))),
                         Headline(lang.t("participant_days"), Cell(int(person_days or 0)))]
    if not n_sessions:
        section.notes.append(lang.t("no_data"))
        return section

    by_month: dict[str, dict[str, int | float | None]] = {}
    for m, n in source.rows(f"SELECT {month}, count(*) FROM {s_view} s WHERE {when} GROUP BY {month}", params):
        by_month.setdefault(key_of(m), {})["sessions"] = int(n)
    for m, n in source.rows(f"SELECT {month}, count(*) {join_p} GROUP BY {month}", params):
        by_month.setdefault(key_of(m), {})["participants"] = int(n)
    section.figures.append(measures_figure(
        "training.by_month", lang.t("by", what=f"{lang.t('sessions')} · {lang.t('participants')}",
                                    dim=lang.t("month")),
        lang.t("month"), months(by_month, lang), [sessions_col, people_col], by_month, chart=Chart.MONTHS))

    for fid, question, chart in (("training.by_sex", "sex", Chart.BARS),
                                 ("training.by_organisation_type", "organisation_type", Chart.SORTED_BARS),
                                 ("training.by_work_governorate", "work_governorate", Chart.SORTED_BARS)):
        col = form.col(question, "p")
        found = counts(source.rows(f"SELECT {col}, count(*) {join_p} GROUP BY {col}", params))
        label = form.label(question, lang.code)
        section.figures.append(count_figure(
            fid, lang.t("by", what=lang.t("participants"), dim=label), label,
            categories(form, question, lang, found), people_col, found, chart=chart))

    days = form.col("days_attended", "p")
    found = counts(source.rows(f"SELECT {days}, count(*) {join_p} GROUP BY {days}", params))
    top = max((int(k) for k in found if k != NO_ANSWER), default=0)
    rows = [Category(str(d), lang.number(d)) for d in range(1, top + 1)]
    rows += [Category(k, lang.t("no_answer") if k == NO_ANSWER else k)
             for k in sorted(found) if k not in {r.key for r in rows}]
    label = form.label("days_attended", lang.code)
    section.figures.append(count_figure("training.days_attended", lang.t("by", what=lang.t("participants"),
                                                                         dim=label),
                                        label, rows, people_col, found, chart=Chart.HISTOGRAM))

    section.figures.extend(_knowledge(source, form, lang, join_k, params, section))
    return section


def _knowledge(source: Source, form: Form, lang: Language, join_k: str, params: dict[str, Any],
               section: Section) -> list[Figure]:
    q = source.quote
    pre, post = form.col("pre_score", "k"), form.col("post_score", "k")
    both = f"{pre} IS NOT NULL AND {post} IS NOT NULL"
    pre_label, post_label = form.label("pre_score", lang.code), form.label("post_score", lang.code)
    columns = [Category("pre", pre_label), Category("post", post_label), Category("change", lang.t("change"))]
    item = form.col("item", "k")
    by_item: dict[str, dict[str, int | float | None]] = {}
    for code, mean_pre, mean_post, n in source.rows(
            f"SELECT {item}, avg({pre} * 1.0), avg({post} * 1.0), count(*) {join_k} AND {both} GROUP BY {item}",
            params):
        by_item[key_of(code)] = {"pre": float(mean_pre), "post": float(mean_post),
                                 "change": float(mean_post) - float(mean_pre), "checks": int(n)}
    overall = source.rows(f"SELECT avg({pre} * 1.0), avg({post} * 1.0), count(*) {join_k} AND {both}", params)[0]
    if not overall[2]:
        return []
    section.headlines.append(Headline(lang.t("mean_of", what=lang.t("change")),
                                      Cell(float(overall[1]) - float(overall[0])), decimals=1))
    label = form.label("item", lang.code)
    items = [c for c in categories(form, "item", lang, by_item) if c.key in by_item]
    figures = [measures_figure("training.knowledge_by_item", f"{lang.t('knowledge')}: {label}", label, items,
                               columns, by_item, chart=Chart.DUMBBELL, additive=False, decimals=1,
                               signed=frozenset({"change"}))]

    s = "s"
    start, gov = form.col("start_date", s), form.col("governorate", s)
    sessions = source.rows(
        f"SELECT s.{q('_id')}, {start}, {gov}, avg({pre} * 1.0), avg({post} * 1.0) {join_k} AND {both} "
        f"GROUP BY s.{q('_id')}, {start}, {gov} ORDER BY {start} DESC, s.{q('_id')} DESC", params)
    governorates = form.choice_labels("governorate", lang.code)
    changes = [float(r[4]) - float(r[3]) for r in sessions]
    listed = sessions[:SESSIONS_LISTED]
    rows = []
    values: dict[str, dict[str, int | float | None]] = {}
    for r in listed:
        day = as_date(r[1])
        where = governorates.get(r[2], r[2] or lang.t("no_answer"))
        rows.append(Category(str(r[0]), f"{lang.date(day) if day else lang.t('no_answer')} · {where}"))
        values[str(r[0])] = {"pre": float(r[3]), "post": float(r[4]), "change": float(r[4]) - float(r[3])}
    per_session = measures_figure("training.sessions", lang.t("per_session"), lang.t("sessions"), rows, columns,
                                  values, chart=Chart.NONE, additive=False, decimals=1,
                                  signed=frozenset({"change"}))
    if len(sessions) > len(listed):
        per_session.note = lang.t("sessions_shown", shown=lang.number(len(listed)), total=lang.number(len(sessions)))
    figures.append(_change_histogram(changes, lang))
    figures.append(per_session)
    return figures


def _change_histogram(changes: list[float], lang: Language) -> Figure:
    """Sessions by their mean change in score, in bins of one point: [k, k + 1)."""
    bins: dict[str, int] = {}
    for c in changes:
        k = math.floor(c)
        bins[str(k)] = bins.get(str(k), 0) + 1
    keys = sorted(int(k) for k in bins)
    rows = [Category(str(k), f"{lang.number(k, signed=True)}…{lang.number(k + 1, signed=True)}")
            for k in range(keys[0], keys[-1] + 1)] if keys else []
    return count_figure("training.change_distribution", lang.t("change_distribution"), lang.t("change"), rows,
                        Category("sessions", lang.t("sessions")), bins, chart=Chart.HISTOGRAM)
