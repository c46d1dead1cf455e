"""Screening and assistance (forms vot_screening and assistance_referral): screenings, presumed victims by sex,
age band, nationality and type of exploitation, referral; assistance delivered by type; referrals by partner
and follow-up status; days from the opening of a case to its first assistance.

Every count here is protected: the figures are built with shared cells (the count of presumed victims is
one cell, the total of each table about them) and `disclosure.protect` hides the small ones afterwards.
"""

from __future__ import annotations

import statistics
from typing import Any

from warehouse.report.figures.common import (
    NO_ANSWER,
    as_date,
    categories,
    combined_notes,
    count_figure,
    counts,
    key_of,
    months,
)
from warehouse.report.language import Language
from warehouse.report.model import Category, Cell, Chart, Figure, Headline, Section
from warehouse.report.source import Form, Period, Source

SCREENING = "vot_screening"
ASSISTANCE = "assistance_referral"
AGE_BANDS = ((0, 17), (18, 59), (60, None))
# days from the opening of a case to its first assistance: (first, last) days of each band
DAY_BANDS = ((None, 0), (1, 7), (8, 30), (31, 90), (91, None))
NONE_YET = "none_yet"


def screening_section(source: Source, lang: Language, period: Period, threshold: int) -> Section:
    section = Section("screening", lang.t("screening"))
    screening = source.form(SCREENING)
    assistance = source.form(ASSISTANCE)
    if screening is None:
        section.missing.append(SCREENING)
    else:
        section.notes += combined_notes(screening, lang)
        _screening(source, screening, lang, period, section)
    if assistance is None:
        section.missing.append(ASSISTANCE)
    else:
        section.notes += combined_notes(assistance, lang)
        _assistance(source, assistance, lang, period, section, threshold)
    return section


def _screening(source: Source, form: Form, lang: Language, period: Period, section: Section) -> None:
    q = source.quote
    view = form.view(form.root) + " t"
    params: dict[str, Any] = {}
    when = period.where(form.col("today", "t"), params)
    victim = form.col("presumed_victim", "t")
    outcome = counts(source.rows(f"SELECT {victim}, count(*) FROM {view} WHERE {when} GROUP BY {victim}", params))
    screenings = Cell(sum(outcome.values()))
    victim_label = form.label("presumed_victim", lang.code)
    rows = categories(form, "presumed_victim", lang, outcome)
    outcome_fig = count_figure("screening.outcome", victim_label, victim_label, rows,
                               Category("screenings", lang.t("screenings")), outcome, total=screenings,
                               protected=True)
    victims = next(row[0] for r, row in zip(rows, outcome_fig.cells, strict=True) if r.key == "yes")
    section.headlines += [Headline(lang.t("screenings"), screenings, protected=True),
                          Headline(lang.t("presumed_victims"), victims, protected=True)]
    month = source.month(form.col("today", "t"))
    by_month = counts(source.rows(f"SELECT {month}, count(*) FROM {view} WHERE {when} GROUP BY {month}", params))
    section.figures.append(outcome_fig)
    section.figures.append(count_figure(
        "screening.by_month", lang.t("by", what=lang.t("screenings"), dim=lang.t("month")), lang.t("month"),
        months(by_month, lang), Category("screenings", lang.t("screenings")), by_month, total=screenings,
        protected=True, chart=Chart.MONTHS))

    victims_col = Category("victims", lang.t("presumed_victims"))
    among = f"{when} AND {victim} = 'yes'"
    for fid, question in (("screening.victims_by_sex", "sex"), ("screening.victims_by_nationality", "nationality"),
                          ("screening.victims_by_referral", "referral")):
        col = form.col(question, "t")
        found = counts(source.rows(f"SELECT {col}, count(*) FROM {view} WHERE {among} GROUP BY {col}", params))
        label = form.label(question, lang.code)
        section.figures.append(count_figure(
            fid, lang.t("by", what=lang.t("presumed_victims"), dim=label), label,
            categories(form, question, lang, found), victims_col, found, total=victims, protected=True,
            chart=Chart.SORTED_BARS if question != "sex" else Chart.BARS))

    age = form.col("age", "t")
    cases = " ".join(f"WHEN {age} >= {lo} AND {age} <= {hi} THEN '{_band(lo, hi)}'" if hi is not None
                     else f"WHEN {age} >= {lo} THEN '{_band(lo, hi)}'" for lo, hi in AGE_BANDS)
    band = f"CASE {cases} END"
    found = counts(source.rows(f"SELECT {band}, count(*) FROM {view} WHERE {among} GROUP BY {band}", params))
    rows = [Category(_band(lo, hi), _band(lo, hi, lang)) for lo, hi in AGE_BANDS]
    if NO_ANSWER in found:
        rows.append(Category(NO_ANSWER, lang.t("no_answer")))
    section.figures.append(count_figure(
        "screening.victims_by_age", lang.t("by", what=lang.t("presumed_victims"), dim=lang.t("age_band")),
        lang.t("age_band"), rows, victims_col, found, total=victims, protected=True))

    exploitation = form.question("exploitation")
    if exploitation.bridge_table:  # a select_multiple: one row per type chosen; a person may have several
        bridge = form.view(exploitation.bridge_table)
        found = counts(source.rows(
            f"SELECT b.{q('code')}, count(DISTINCT b.{q('_submission_id')}) FROM {bridge} b "
            f"JOIN {view} ON t.{q('_id')} = b.{q('_submission_id')} WHERE {among} "
            f"GROUP BY b.{q('code')}", params))
        label = form.label("exploitation", lang.code)
        section.figures.append(count_figure(
            "screening.victims_by_exploitation", lang.t("by", what=lang.t("presumed_victims"), dim=label), label,
            categories(form, "exploitation", lang, found), victims_col, found, additive=False, protected=True,
            chart=Chart.SORTED_BARS))


def _band(lo: int, hi: int | None, lang: Language | None = None) -> str:
    if lang is None:
        return f"{lo}-{hi}" if hi is not None else f"{lo}+"
    return f"{lang.number(lo)}–{lang.number(hi)}" if hi is not None else f"{lang.number(lo)}+"


def _assistance(source: Source, form: Form, lang: Language, period: Period, section: Section,
                threshold: int) -> None:
    q = source.quote
    view = form.view(form.root)
    items = form.view(form.question("assistance_type").table)
    params: dict[str, Any] = {}
    opened = period.where(form.col("date_opened", "c"), params)
    delivered = period.where(form.col("delivery_date", "i"), params)

    kind = form.col("assistance_type", "i")
    by_type = counts(source.rows(
        f"SELECT {kind}, count(*) FROM {items} i WHERE {delivered} GROUP BY {kind}", params))
    delivered_total = Cell(sum(by_type.values()))
    label = form.label("assistance_type", lang.code)
    section.headlines.append(Headline(lang.t("items"), delivered_total, protected=True))
    section.figures.append(count_figure(
        "assistance.items_by_type", lang.t("by", what=lang.t("items"), dim=label), label,
        categories(form, "assistance_type", lang, by_type), Category("items", lang.t("items")), by_type,
        total=delivered_total, protected=True, chart=Chart.SORTED_BARS))

    partner, status = form.col("referral_partner", "c"), form.col("follow_up_status", "c")
    found = source.rows(f"SELECT {partner}, {status}, count(*) FROM {view} c WHERE {opened} "
                        f"GROUP BY {partner}, {status}", params)
    cross: dict[tuple[str, str], int] = {(key_of(p), key_of(s)): int(n) for p, s, n in found}
    cases = Cell(sum(cross.values()))
    section.headlines.append(Headline(lang.t("cases"), cases, protected=True))
    partners = categories(form, "referral_partner", lang, {p for p, _ in cross})
    statuses = categories(form, "follow_up_status", lang, {s for _, s in cross})
    cells = [[Cell(cross.get((p.key, s.key), 0)) for s in statuses] for p in partners]
    partner_label, status_label = form.label("referral_partner", lang.code), form.label("follow_up_status", lang.code)
    section.figures.append(Figure(
        "assistance.referrals", lang.t("by", what=lang.t("referrals"), dim=f"{partner_label} · {status_label}"),
        partner_label, partners, statuses, cells, protected=True, additive=True,
        totals=[Cell(sum(row[j].value or 0 for row in cells)) for j in range(len(statuses))],
        row_totals=[Cell(sum(c.value or 0 for c in row)) for row in cells], grand_total=cases,
        chart=Chart.NONE))

    first = source.rows(
        f"SELECT c.{q('_id')}, {form.col('date_opened', 'c')}, min({form.col('delivery_date', 'i')}) "
        f"FROM {view} c LEFT JOIN {items} i ON i.{q('_submission_id')} = c.{q('_id')} "
        f"WHERE {opened} "
        f"GROUP BY c.{q('_id')}, {form.col('date_opened', 'c')}", params)
    waits: list[int] = []
    bands: dict[str, int] = {}
    for _id, day_opened, day_first in first:
        start, end = as_date(day_opened), as_date(day_first)
        if start is None or end is None:
            bands[NONE_YET] = bands.get(NONE_YET, 0) + 1
            continue
        days = (end - start).days
        waits.append(days)
        key = next(_day_band(lo, hi) for lo, hi in DAY_BANDS
                   if (lo is None or days >= lo) and (hi is None or days <= hi))
        bands[key] = bands.get(key, 0) + 1
    rows = [Category(_day_band(lo, hi), _day_band(lo, hi, lang)) for lo, hi in DAY_BANDS]
    rows.append(Category(NONE_YET, lang.t("none_yet")))
    wait_fig = count_figure("assistance.days_to_first", lang.t("days_to_first"), lang.t("days"), rows,
                            Category("cases", lang.t("cases")), bands, total=cases, protected=True)
    note = lang.t("days_to_first_note")
    if len(waits) >= threshold:  # a median of fewer cases than the threshold would say too much about them
        note += " " + lang.t("median_days", days=lang.number(statistics.median(waits), 1 if len(waits) % 2 == 0
                                                              else 0))
    wait_fig.note = note
    section.figures.append(wait_fig)


def _day_band(lo: int | None, hi: int | None, lang: Language | None = None) -> str:
    if lang is None:
        return "0" if hi == 0 else f"{lo}-{hi}" if hi is not None else f"{lo}+"
    if hi == 0:
        return lang.t("same_day")
    if hi is None:
        return lang.t("over_days", a=lang.number((lo or 1) - 1))
    return lang.t("day_range", a=lang.number(lo), b=lang.number(hi))
