"""What the warehouse knows about each synced asset: last runs, freshness, rows. Read-only."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from warehouse import bookkeeping as bk
from warehouse.store import Warehouse, utcnow


@dataclass(slots=True)
class AssetStatus:
    asset_key: str  # the asset in this warehouse: its uid, or uid@host
    asset_uid: str
    name: str
    server_url: str
    table: str
    last_success_at: dt.datetime | None = None
    last_run_id: int | None = None
    last_run_status: str | None = None
    last_error: str | None = None
    last_error_run_id: int | None = None
    newest_submission_at: dt.datetime | None = None
    submissions: int = 0  # stored and not deleted
    deleted: int = 0
    quarantined: int = 0  # submissions kept aside whole (no usable _id, or refused by the database)
    last_sweep_at: dt.datetime | None = None  # when edits, reviews and deletions were last looked for
    last_full_sweep_at: dt.datetime | None = None  # when every submission was last compared (the safety net)
    rows: dict[str, int] = field(default_factory=dict)
    server_submissions: int | None = None  # filled by the caller when it asks KoBo
    stale: bool = False
    failing: bool = False

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, dt.datetime):
                out[key] = value.isoformat() + "Z"
        return out


def _age(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value)


def asset_statuses(warehouse: Warehouse) -> list[AssetStatus]:
    """What the warehouse knows of each asset: the one place that reads the run and sync bookkeeping for
    people (status, the report's freshness section)."""
    counts: dict[str, dict[str, int]] = {}
    for key, table, n in warehouse.row_counts():
        counts.setdefault(key, {})[table] = n
    out: list[AssetStatus] = []
    with warehouse.engine.connect() as conn:
        forms = conn.execute(sa.select(bk.forms).order_by(bk.forms.c.name, bk.forms.c.asset_key)).mappings().all()
        inspector = sa.inspect(conn)
        q = bk.quarantine
        set_aside = dict(conn.execute(sa.select(q.c.asset_key, sa.func.count()).group_by(q.c.asset_key)).all())
        st_ = bk.sync_state
        sweeps = {key: (last, full) for key, last, full in conn.execute(
            sa.select(st_.c.asset_key, st_.c.last_sweep_at, st_.c.last_full_sweep_at)).all()}
        for f in forms:
            key = f["asset_key"]
            st = AssetStatus(asset_key=key, asset_uid=f["asset_uid"], name=f["name"], server_url=f["server_url"],
                             table=f["table_name"], rows=counts.get(key, {}), quarantined=int(set_aside.get(key, 0)),
                             last_sweep_at=_age(sweeps.get(key, (None, None))[0]),
                             last_full_sweep_at=_age(sweeps.get(key, (None, None))[1]))
            runs = bk.sync_runs
            last = conn.execute(sa.select(runs).where(runs.c.asset_key == key)
                                .order_by(runs.c.run_id.desc()).limit(1)).mappings().first()
            if last:
                st.last_run_id, st.last_run_status = last["run_id"], last["status"]
            ok = conn.execute(sa.select(sa.func.max(runs.c.finished_at))
                              .where(runs.c.asset_key == key, runs.c.status == "ok")).scalar()
            st.last_success_at = _age(ok)
            failed = conn.execute(sa.select(runs.c.run_id, runs.c.error)
                                  .where(runs.c.asset_key == key, runs.c.status.in_(("failed", "abandoned")))
                                  .order_by(runs.c.run_id.desc()).limit(1)).first()
            if failed:
                st.last_error_run_id, st.last_error = failed.run_id, failed.error
            st.failing = st.last_run_status in ("failed", "abandoned")
            if inspector.has_table(st.table):
                root = sa.table(st.table, sa.column("_submission_time"), sa.column("_deleted_at"))
                newest, live, gone = conn.execute(sa.select(
                    sa.func.max(root.c._submission_time),
                    sa.func.count().filter(root.c._deleted_at.is_(None)),
                    sa.func.count().filter(root.c._deleted_at.is_not(None)))).one()
                st.newest_submission_at, st.submissions, st.deleted = _age(newest), int(live), int(gone)
            out.append(st)
    return out


def judge_staleness(statuses: list[AssetStatus], max_age: dict[str, float], default_max_age: float) -> None:
    """Mark assets whose last successful sync is older than allowed (seconds, per asset uid)."""
    now = utcnow()
    for st in statuses:
        allowed = max_age.get(st.asset_key, default_max_age)
        st.stale = st.last_success_at is None or (now - st.last_success_at).total_seconds() > allowed
