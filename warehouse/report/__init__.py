"""The programme report: one self-contained HTML file built from the analysts' views.

    from warehouse.report import ReportOptions, write_report
    write_report(Warehouse("amina.db"), Path("report.html"), ReportOptions(lang="ar"))

Modules, each with one job: `source` (what the report may read: analysts' views and dictionary),
`figures/` (SQL → typed tables of numbers, one module per part of the report), `disclosure` (small
counts from screening and assistance hidden, with their complements), `language` (page text in three
languages, numbers and dates the language's way), `charts` (Vega-Lite specifications through Altair),
`page` (the HTML, everything escaped, scripts inlined).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from common.errors import ConfigError, WarehouseError
from warehouse.report.disclosure import protect
from warehouse.report.figures.awareness import awareness_section
from warehouse.report.figures.freshness import freshness_rows
from warehouse.report.figures.screening import screening_section
from warehouse.report.figures.training import training_section
from warehouse.report.language import COMPLEMENT_MARK, Language
from warehouse.report.model import Report, Section
from warehouse.report.source import MissingQuestion, Period, Source
from warehouse.store import Warehouse, utcnow

log = logging.getLogger(__name__)
DEFAULT_THRESHOLD = 5


@dataclass(frozen=True, slots=True)
class ReportOptions:
    lang: str = "en"
    start: dt.date | None = None
    end: dt.date | None = None
    threshold: int = DEFAULT_THRESHOLD
    stale_after_hours: float = 24.0

    def check(self) -> None:
        Language.of(self.lang)
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) or not 1 <= self.threshold <= 1000:
            raise ConfigError(f"report threshold: '{self.threshold}' must be a whole number from 1 to 1000 "
                              "(counts below it are hidden; 5 is usual)")
        if self.start and self.end and self.start > self.end:
            raise ConfigError(f"report period: --from {self.start} is after --to {self.end}")
        if self.stale_after_hours <= 0:
            raise ConfigError("report stale_after_hours: must be more than 0")


def build_report(warehouse: Warehouse, options: ReportOptions) -> Report:
    """Every figure of the report, disclosure control applied, labels in the options' language."""
    options.check()
    try:
        return _build(warehouse, options)
    except SQLAlchemyError as exc:  # e.g. a role that may read the analysts' views but not the sync bookkeeping
        reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        raise WarehouseError(f"warehouse {warehouse.safe_url}: the report could not be read: {reason}") from exc


def _section(make: Callable[[], Section], section_id: str, lang: Language) -> Section:
    """A part of the report; a form of another version than the programme's leaves it out, saying why."""
    try:
        return make()
    except MissingQuestion as exc:
        log.warning("report: %s; its part is left out", exc)
        return Section(section_id, lang.t(section_id),
                       notes=[lang.t("incomplete_form", form=exc.form_id, question=exc.question)])


def _build(warehouse: Warehouse, options: ReportOptions) -> Report:
    lang = Language.of(options.lang)
    source = Source(warehouse)
    period = Period(options.start, options.end)
    sections = [_section(lambda: training_section(source, lang, period), "training", lang),
                _section(lambda: awareness_section(source, lang, period), "awareness", lang),
                _section(lambda: screening_section(source, lang, period, options.threshold), "screening", lang)]
    figures = [f for s in sections for f in s.figures]
    protect(figures, [h for s in sections for h in s.headlines], options.threshold)
    small = f"<{lang.number(options.threshold)}"
    return Report(
        lang=lang.code, title=lang.t("title"), period=_period_text(lang, period),
        generated=lang.t("generated", when=lang.datetime(utcnow())), threshold=options.threshold,
        sections=sections, freshness=freshness_rows(source, lang, options.stale_after_hours),
        freshness_note=lang.t("freshness_note", hours=lang.number(options.stale_after_hours)),
        rule=lang.t("rule", t=lang.number(options.threshold), small=small, mark=COMPLEMENT_MARK))


def _period_text(lang: Language, period: Period) -> str:
    parts = []
    if period.start:
        parts.append(lang.t("from", date=lang.date(period.start)))
    if period.end:
        parts.append(lang.t("to", date=lang.date(period.end)))
    return " ".join(parts) or lang.t("all_dates")


def render_report(warehouse: Warehouse, options: ReportOptions) -> str:
    from warehouse.report.page import render

    return render(build_report(warehouse, options))


def write_report(warehouse: Warehouse, path: Path, options: ReportOptions) -> Path:
    """Write the report to `path` (atomically: a reader never sees half a file); returns the path."""
    html = render_report(warehouse, options)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {path}: {exc.strerror or exc} (choose another file: --out, "
                          "or path in the report table of the config)") from exc
    log.info("wrote the %s report to %s (%d bytes)", options.lang, path, len(html.encode()))
    return path
