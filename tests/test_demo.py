"""README command 1: `amina demo` runs the whole path offline and leaves a warehouse to query."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import sqlalchemy as sa


def demo(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KOBO_TOKEN", "AMINA_PSEUDONYM_KEY")}
    return subprocess.run([sys.executable, "-m", "amina.cli", "demo", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_demo_publishes_syncs_and_the_second_sync_fetches_nothing_new(tmp_path):
    db = tmp_path / "amina.db"
    proc = demo("--submissions", "300", "--db", str(db), "--seed", "11")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for form in ("training_attendance", "vot_screening", "awareness_session", "assistance_referral"):
        assert f"published {form}" in out
    assert "second sync stored 0 new or changed submissions" in out
    report = tmp_path / "report.html"  # beside the database, and the demo says where
    assert f"programme report written to {report}" in " ".join(out.split()) and "<html" in report.read_text()
    con = sqlite3.connect(db)
    counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
              for t in ("vot_screening", "training_attendance", "training_attendance__participants",
                        "training_attendance__knowledge_checks", "vot_screening__family_members",
                        "vot_screening__urgent_needs", "restricted_values", "choices", "fields")}
    assert counts["vot_screening"] == 180 and counts["training_attendance"] == 60
    for form in ("awareness_session", "assistance_referral", "assistance_referral__assistance_items",
                 "awareness_session__audience_type"):
        assert con.execute(f'SELECT count(*) FROM "{form}"').fetchone()[0] > 0, form
    assert all(n > 0 for n in counts.values()), counts
    runs = con.execute("SELECT status, bad_values FROM sync_runs").fetchall()
    assert runs and all(r == ("ok", 0) for r in runs)
    labels = con.execute("SELECT DISTINCT governorate FROM vot_screening_ckb").fetchall()
    assert any("ێ" in (g or "") or "ۆ" in (g or "") for (g,) in labels)  # Sorani labels, e.g. هەولێر
    names = con.execute("SELECT full_name FROM vot_screening WHERE full_name IS NOT NULL LIMIT 20").fetchall()
    assert names and all(n.startswith("p_") for (n,) in names)  # pseudonyms, never names
    con.close()
    again = demo("--submissions", "50", "--db", str(db))
    assert again.returncode == 0 and "generating 30 submissions" in again.stdout  # the previous demo file is replaced


def test_demo_refuses_to_overwrite_a_real_warehouse(tmp_path):
    db = tmp_path / "real.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE "forms" (server_url TEXT)'))
        conn.execute(sa.text("INSERT INTO forms VALUES ('https://kf.kobotoolbox.org')"))
    proc = demo("--submissions", "10", "--db", str(db))
    assert proc.returncode == 2 and "holds data from a real server" in proc.stderr and db.exists()
