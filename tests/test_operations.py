"""The data manager's tools: status, logs without secrets, the scheduler in real processes."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from tests.test_e2e import KEY, add, open_warehouse

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "amina.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "AMINA_PSEUDONYM_KEY": KEY, **(env or {})})


def write_config(path: Path, server, uid: str, warehouse: str, every: str = "1s", page_size: int = 1000) -> Path:
    path.write_text(f"""
[warehouse]
url = "{warehouse}"
[servers.fake]
url = "{server.base_url}"
token_env = "KOBO_TOKEN"
[[assets]]
uid = "{uid}"
schedule = {{ every = "{every}" }}
[sync]
page_size = {page_size}
overlap_minutes = 0
[scheduler]
misfire_grace_seconds = 5
""")
    return path


def test_status_reports_ok_failing_and_stale(server, client, asset_uid, tmp_path):
    add(server, asset_uid, 1, 12)
    db = str(tmp_path / "w.db")
    ok = cli("sync", "--server", server.base_url, "--asset", asset_uid, "--db", db, env={"KOBO_TOKEN": server.token})
    assert ok.returncode == 0, ok.stderr
    offline = cli("status", "--db", db, "--json", env={"KOBO_TOKEN": server.token})  # no config: no server asked
    assert offline.returncode == 0 and json.loads(offline.stdout)[0]["server_submissions"] is None
    config = write_config(tmp_path / "amina.toml", server, asset_uid, db, every="1h")
    status = cli("status", "--config", str(config), "--json", env={"KOBO_TOKEN": server.token})
    assert status.returncode == 0, status.stderr
    [entry] = json.loads(status.stdout)
    assert entry["submissions"] == 12 and entry["server_submissions"] == 12 and not entry["stale"]
    assert entry["last_full_sweep_at"] is not None  # a first load compared everything
    assert entry["rows"]["household__members"] > 0
    stale = cli("status", "--db", db, "--json", "--offline", "--stale-after", "0.00001")
    assert stale.returncode == 7 and json.loads(stale.stdout)[0]["stale"] is True
    bad = cli("sync", "--server", server.base_url, "--asset", asset_uid, "--db", db, env={"KOBO_TOKEN": "f" * 40})
    assert bad.returncode == 4
    failing = cli("status", "--db", db, "--offline")
    assert failing.returncode == 7 and "failing" in failing.stdout and "401" in failing.stdout


def test_logs_never_show_the_token(server, asset_uid, tmp_path):
    add(server, asset_uid, 1, 3)
    runs = [cli("--debug", "--log-format", fmt, "sync", "--server", server.base_url, "--asset", asset_uid, "--db",
                str(tmp_path / f"{fmt}.db"), env={"KOBO_TOKEN": server.token}) for fmt in ("text", "json")]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
        assert server.token not in proc.stderr + proc.stdout and KEY not in proc.stderr + proc.stdout
        assert "Token" not in proc.stderr or "[redacted]" in proc.stderr
    lines = [json.loads(line) for line in runs[1].stderr.splitlines() if line.startswith("{")]
    assert lines and {"time", "level", "logger", "message"} <= set(lines[0])


def run_scheduler(config: Path, seconds: float, token: str, url_env: dict | None = None):
    proc = subprocess.Popen([sys.executable, str(ROOT / "scheduler.py"), "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "KOBO_TOKEN": token, "AMINA_PSEUDONYM_KEY": KEY, **(url_env or {})})
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err


def runs_of(url: str, uid: str) -> list[tuple[dt.datetime, dt.datetime, str]]:
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT started_at, finished_at, status FROM sync_runs WHERE asset_key = :u "
                                    "ORDER BY started_at"), {"u": uid}).all()
    engine.dispose()
    parse = lambda v: v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v)  # noqa: E731
    return [(parse(a), parse(b), s) for a, b, s in rows]


def assert_never_overlapping(runs):
    for (_, end, _), (start, _, _) in itertools.pairwise(runs):
        assert start >= end, f"a sync started at {start} while another ran until {end}"


def test_scheduler_runs_syncs_resumes_its_plan_and_stops_cleanly(server, asset_uid, tmp_path):
    add(server, asset_uid, 1, 40)
    db = str(tmp_path / "w.db")
    config = write_config(tmp_path / "amina.toml", server, asset_uid, db)
    code, err = run_scheduler(config, 4.5, server.token)
    assert code == 130, err  # stopped on request, every page in flight stored
    assert "scheduler stopped on request (SIGTERM)" in err and server.token not in err
    runs = runs_of(db, asset_uid)
    assert len(runs) >= 2 and all(s == "ok" for *_, s in runs)
    assert_never_overlapping(runs)
    add(server, asset_uid, 41, 5)
    code, err = run_scheduler(config, 2.5, server.token)
    assert code == 130 and f"job sync:fake:{asset_uid}: resumed" in err, err
    assert len(runs_of(db, asset_uid)) > len(runs)
    wh = open_warehouse(Path(db))
    assert {n for _, t, n in wh.row_counts() if t == "household"} == {45}


def test_two_workers_on_one_postgresql_never_sync_one_asset_at_once(server, asset_uid, tmp_path, postgres_server):
    add(server, asset_uid, 1, 400)
    url = postgres_server.create_database("workers")
    config = write_config(tmp_path / "amina.toml", server, asset_uid, url, every="1s", page_size=40)
    env = {**os.environ, "KOBO_TOKEN": server.token, "AMINA_PSEUDONYM_KEY": KEY}
    procs = [subprocess.Popen([sys.executable, str(ROOT / "scheduler.py"), "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for _ in range(2)]
    time.sleep(8)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    errs = [p.communicate(timeout=90)[1] for p in procs]
    assert all(p.returncode == 130 for p in procs), [(p.returncode, e[-3000:])
                                                     for p, e in zip(procs, errs, strict=True)]
    runs = runs_of(url, asset_uid)
    assert len(runs) >= 2, errs
    assert_never_overlapping(runs)
    assert any("being synced by another worker" in e for e in errs), "the workers never met: test proves nothing"
