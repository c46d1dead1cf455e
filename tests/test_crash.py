"""kill -9 at any instant during a sync, run it again → the same warehouse as an uninterrupted sync.

Each trial copies a warehouse synced before the server changed (new submissions, edits, reviews,
deletions), starts `amina sync` in a real subprocess, kills it with SIGKILL at a seeded random
instant, runs the sync again, and compares every table with the reference. 30 trials by default;
AMINA_KILL_TRIALS=300 for a longer run.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from sync.engine import sync_asset
from tests.killing import run_or_kill
from tests.test_e2e import KEY, add, open_warehouse

TRIALS = int(os.environ.get("AMINA_KILL_TRIALS", "30"))
PAGE = 10


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows (timestamps of our own runs reduced to whether they are set)."""
    engine = sa.create_engine(f"sqlite:///{path}")
    volatile = {"_synced_at", "fetched_at", "seen_at", "first_seen_at", "updated_at", "last_sweep_at",
                "first_synced_at", "last_synced_at", "run_id", "started_at", "finished_at", "seconds",
                "sweep_seconds", "syncs_since_sweep"}
    skip = {"sync_runs", "submission_history", "sync_state", "apscheduler_jobs"}
    out = {}
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            if table in skip:
                continue
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).mappings().all()
            out[table] = sorted(
                tuple(sorted((k, v is not None if k in volatile or k == "_deleted_at" else str(v))
                             for k, v in r.items()))
                for r in rows)
    engine.dispose()
    return out


def test_kill_9_at_random_instants_then_rerun_equals_an_uninterrupted_sync(server, client, asset_uid, tmp_path):
    store = server.store
    add(server, asset_uid, 1, 80)
    baseline = tmp_path / "baseline.db"
    wh = open_warehouse(baseline)
    sync_asset(client, wh, asset_uid, page_size=PAGE)
    wh.dispose()
    ids = [s["_id"] for s in store.submissions(asset_uid)]
    for sid in ids[5:30:3]:
        store.edit_submission(asset_uid, sid, {"household/hh_size": "7"})
    store.set_validation_status(asset_uid, ids[30:45], "validation_status_approved", by_whom="supervisor1")
    store.delete_submissions(asset_uid, ids[45:55])
    add(server, asset_uid, 500, 40)
    reference = tmp_path / "reference.db"
    shutil.copy(baseline, reference)
    wh = open_warehouse(reference)
    sync_asset(client, wh, asset_uid, page_size=PAGE, overlap=dt.timedelta(0))
    wh.dispose()
    expected = snapshot(reference)
    assert len(expected["household"]) == 120

    slow = server.inject("hang", times=0, hang_seconds=0.02)  # spreads a killed run's work over time
    command = [sys.executable, "-m", "amina.cli", "sync", "--server", server.base_url, "--asset", asset_uid,
               "--page-size", str(PAGE), "--overlap-minutes", "0"]
    env = {**os.environ, "KOBO_TOKEN": server.token, "AMINA_PSEUDONYM_KEY": KEY}

    def run(db: Path, kill_after: float | None) -> bool:
        slow.times = 10**9
        return run_or_kill([*command, "--db", str(db)], env, kill_after)

    timing = tmp_path / "timing.db"
    shutil.copy(baseline, timing)
    started = time.monotonic()
    assert run(timing, None)
    full = time.monotonic() - started
    rng = random.Random(2026)
    differences, killed, mid_run = [], 0, 0
    for trial in range(TRIALS):
        db = tmp_path / f"trial{trial}.db"
        shutil.copy(baseline, db)
        if not run(db, rng.uniform(0.1, full)):
            killed += 1
            mid_run += snapshot_runs(db) > 1  # the killed run had begun writing
        slow.times = 0
        again = open_warehouse(db)
        assert sync_asset(client, again, asset_uid, page_size=PAGE, overlap=dt.timedelta(0)).status == "ok"
        again.dispose()
        got = snapshot(db)
        if got != expected:
            differences.append((trial, sorted(t for t in expected if got.get(t) != expected[t])))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    assert differences == [], differences
    assert killed >= TRIALS // 2, f"only {killed} of {TRIALS} runs were killed before they finished"
    assert mid_run >= TRIALS // 3, f"only {mid_run} kills landed after the sync began writing"
    print(f"{TRIALS} trials, {killed} killed ({mid_run} while writing), 0 differences "
          f"(uninterrupted sync in a subprocess: {full:.2f} s)")


def snapshot_runs(db: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM sync_runs")).scalar_one()
    engine.dispose()
    return int(n)
