"""Data freshness: per synced form, its last successful sync, current submissions, awaiting validation and
rejected; failing and stale syncs flagged. The runs come from the analyst schema's `sync_runs`, the counts
from each form's current-submissions view (duplicates and deleted submissions are not in it)."""

from __future__ import annotations

from warehouse.report.language import Language
from warehouse.report.model import FreshnessRow
from warehouse.report.source import Source
from warehouse.store import utcnow
from warehouse.views import view_name

ON_HOLD = "validation_status_on_hold"
NOT_APPROVED = "validation_status_not_approved"


def freshness_rows(source: Source, lang: Language, stale_after_hours: float) -> list[FreshnessRow]:
    runs = source.runs()
    now = utcnow()
    q = source.quote
    status = q("_validation_status")
    rows = []
    for key, name, table in source.synced_forms():
        last_status, last_success, last_error = runs.get(key, (None, None, None))
        stored = awaiting = rejected = None
        if source.has_view(view_name(table)):
            found = source.rows(
                f"SELECT count(*), sum(CASE WHEN {status} IS NULL OR {status} = :on_hold THEN 1 ELSE 0 END), "
                f"sum(CASE WHEN {status} = :not_approved THEN 1 ELSE 0 END) FROM {source.view(view_name(table))}",
                {"on_hold": ON_HOLD, "not_approved": NOT_APPROVED})
            stored, awaiting, rejected = (int(v or 0) for v in found[0])
        failing = last_status in ("failed", "abandoned")
        stale = last_success is None or (now - last_success).total_seconds() > stale_after_hours * 3600
        state = "failing" if failing else "stale" if stale else "ok"
        rows.append(FreshnessRow(form=name, table=table, last_success=lang.datetime(last_success),
                                 stored=stored or 0, awaiting=awaiting, rejected=rejected, state=state,
                                 error=last_error if failing else None))
    return rows
