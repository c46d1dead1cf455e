"""Data freshness: per synced form, its last successful sync, submissions stored, awaiting validation and
rejected; failing and stale syncs flagged. What the warehouse knows about syncs comes from
`warehouse.status.asset_statuses`, the one reader of the sync bookkeeping; the validation counts from
each form's current-submissions view."""

from __future__ import annotations

from warehouse.report.language import Language
from warehouse.report.model import FreshnessRow
from warehouse.report.source import Source
from warehouse.status import asset_statuses, judge_staleness
from warehouse.views import view_name

ON_HOLD = "validation_status_on_hold"
NOT_APPROVED = "validation_status_not_approved"


def freshness_rows(source: Source, lang: Language, stale_after_hours: float) -> list[FreshnessRow]:
    statuses = asset_statuses(source.warehouse)
    judge_staleness(statuses, {}, stale_after_hours * 3600)
    q = source.quote
    rows = []
    for st in statuses:
        awaiting = rejected = None
        status = q("_validation_status")
        found = source.rows(
            f"SELECT sum(CASE WHEN {status} IS NULL OR {status} = :on_hold THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN {status} = :not_approved THEN 1 ELSE 0 END) FROM {source.view(view_name(st.table))}",
            {"on_hold": ON_HOLD, "not_approved": NOT_APPROVED}) if source.has_view(view_name(st.table)) else None
        if found:
            awaiting, rejected = (int(v or 0) for v in found[0])
        state = "failing" if st.failing else "stale" if st.stale else "ok"
        rows.append(FreshnessRow(form=st.name, table=st.table, last_success=lang.datetime(st.last_success_at),
                                 stored=st.submissions, awaiting=awaiting, rejected=rejected, state=state,
                                 error=st.last_error if st.failing else None))
    return rows
