"""A data manager's day, through the real command line: every defect of issue #12 as a user meets it.

Most cases run `amina.cli.main` in this process (the `amina` fixture); signals and the scheduler run in
processes of their own."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from fakes.kobo import FakeKobo
from tests.conftest import CLI_KEY
from tests.test_e2e import T0, add, answers

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def error_line(result) -> str:
    """The one line a failed command printed on stderr (and never a traceback)."""
    assert "Traceback" not in result.stderr, result
    lines = [x for x in result.stderr.splitlines() if re.match(r"^(error|interrupted|internal error):", x)]
    assert len(lines) == 1, result
    return lines[0]


def config_file(path: Path, server: FakeKobo, uid: str, warehouse: str = "w.db", extra: str = "") -> Path:
    path.write_text(f'[warehouse]\nurl = "{warehouse}"\n[servers.fake]\nurl = "{server.base_url}"\n'
                    f'token_env = "KOBO_TOKEN"\n[[assets]]\nuid = "{uid}"\nschedule = {{ every = "1h" }}\n{extra}')
    return path


def runs(db: Path) -> list[dict]:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        found = [dict(r) for r in conn.execute(sa.text("SELECT * FROM sync_runs ORDER BY run_id")).mappings()]
    engine.dispose()
    return found


# 1. text in square brackets is printed, not read as markup ----------------------------------------------------

def test_1_a_config_error_keeps_its_brackets(amina, tmp_path, server, asset_uid):
    config = config_file(tmp_path / "t.toml", server, asset_uid, extra="[sync]\npage_sise = 10\n")
    result = amina("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert "t.toml: [sync]: unknown key 'page_sise'" in error_line(result)


def test_1_the_parquet_hint_keeps_its_extra(amina, tmp_path, server, client, asset_uid, monkeypatch):
    add(server, asset_uid, 1, 2)
    db = str(tmp_path / "w.db")
    assert amina("sync", "--server", server.base_url, "--asset", asset_uid, "--db", db,
                 env={"KOBO_TOKEN": server.token}).returncode == 0
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as on a machine without the parquet extra
    result = amina("export", "household", "--format", "parquet", "--db", db, "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "pip install 'amina-sync[parquet]'" in error_line(result)


# 2. a mistyped --db is refused, and no file is made --------------------------------------------------------------

@pytest.mark.parametrize("command", [["status"], ["tables"], ["dictionary"], ["export", "household"], ["report"],
                                     ["grants"]])
def test_2_a_warehouse_that_does_not_exist_is_refused(amina, tmp_path, command):
    typo = tmp_path / "typo.db"
    result = amina(*command, "--db", str(typo))
    assert result.returncode == 2, result
    assert f"no warehouse at {typo}" in error_line(result)
    assert not typo.exists()


# 3. a token pasted where a variable's name goes is refused, never printed -----------------------------------------

TOKEN = "3f9a0c4e5b6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f"


def test_3_a_token_in_place_of_a_variable_name_is_never_echoed(amina, tmp_path, server, asset_uid):
    config = tmp_path / "amina.toml"
    config.write_text(f'[servers.k]\nurl = "https://kf.kobotoolbox.org"\ntoken_env = "{TOKEN}"\n'
                      '[[assets]]\nuid = "all"\n')
    for result in (amina("config", "check", "--config", str(config)),
                   amina("sync", "--config", str(config)),
                   amina("sync", "--server", server.base_url, "--asset", asset_uid, "--token-env", TOKEN,
                         "--db", str(tmp_path / "w.db"))):
        assert result.returncode == 2 and "looks like a token" in error_line(result)
        assert TOKEN not in result.stdout + result.stderr and TOKEN[:12] not in result.stderr


# 4. Ctrl-C and SIGTERM: the run is recorded as interrupted with exact counts, one line, exit 130 ---------------

def slow_server(n: int = 120, delay: float = 0.15) -> FakeKobo:
    server = FakeKobo(seed=5).start()
    from forms.source import read_source, to_xlsx
    from sync.client import KoboClient
    from sync.publish import publish_xlsform
    from tests.conftest import HERE

    client = KoboClient(server.base_url, server.token)
    uid = publish_xlsform(client, to_xlsx(read_source(HERE / "forms" / "household.md")), "household.xlsx",
                          poll_seconds=0.01).asset_uid
    client.close()
    add(server, uid, 1, n)

    def slow(body):
        time.sleep(delay)
        return body
    server.tamper("/data", slow)
    server.uid = uid  # type: ignore[attr-defined]
    return server


def start_sync(server: FakeKobo, db: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "amina.cli", "sync", "--server", server.base_url, "--asset",
                             server.uid, "--db", str(db), "--page-size", "10"],  # type: ignore[attr-defined]
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "KOBO_TOKEN": server.token, "AMINA_PSEUDONYM_KEY": CLI_KEY})


def wait_for(proc: subprocess.Popen, text: str) -> str:
    """Read the process's stderr until a line holds `text`; what was read."""
    seen = []
    while True:
        line = proc.stderr.readline()
        assert line, "".join(seen)
        seen.append(line)
        if text in line:
            return "".join(seen)


def stored(db: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        n = conn.execute(sa.text('SELECT count(*) FROM "household"')).scalar_one()
    engine.dispose()
    return int(n)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_4_a_signal_stores_the_page_in_flight_and_records_the_run(tmp_path, sig):
    server = slow_server()
    try:
        db = tmp_path / "w.db"
        proc = start_sync(server, db)
        before = wait_for(proc, "30 of 120 submissions stored")
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
        err = before + err
        assert proc.returncode == 130, err
        line = error_line(subprocess.CompletedProcess([], 130, "", err))
        assert line.startswith("interrupted: sync of") and "every page fetched was stored" in line
        [run] = runs(db)
        assert run["status"] == "interrupted" and run["finished_at"] is not None
        assert 0 < run["fetched"] == run["inserted"] == stored(db) < 120  # exact: what was stored, nothing more
    finally:
        server.stop()


def test_4_a_second_signal_stops_at_once_and_says_the_page_was_rolled_back(tmp_path):
    server = slow_server(delay=0.6)
    try:
        db = tmp_path / "w.db"
        proc = start_sync(server, db)
        before = wait_for(proc, "20 of 120 submissions stored")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        err = before + err
        assert proc.returncode == 130, err
        assert "rolled back" in error_line(subprocess.CompletedProcess([], 130, "", err))
        [run] = runs(db)
        assert run["status"] == "interrupted" and run["fetched"] == stored(db)
    finally:
        server.stop()


def test_4_a_run_whose_process_died_is_marked_abandoned_by_the_next(tmp_path):
    server = slow_server()
    try:
        db = tmp_path / "w.db"
        proc = start_sync(server, db)
        wait_for(proc, "30 of 120 submissions stored")
        proc.kill()
        proc.wait(timeout=30)
        assert runs(db)[0]["status"] == "running"  # what a kill -9 leaves
        server.clear_faults()
        again = start_sync(server, db)
        _out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        first, second = runs(db)
        assert first["status"] == "abandoned" and "last wrote at" in first["error"] and second["status"] == "ok"
        assert stored(db) == 120
    finally:
        server.stop()


# 5. every row of the README's exit-status table, through the real command line --------------------------------

def readme_exit_codes() -> set[int]:
    table = README[README.index("| exit | meaning |"):]
    return {int(m) for m in re.findall(r"^\| (\d+) \|", table[:table.index("\n\n")], re.M)}


def test_5_each_exit_status_of_the_readme_is_what_the_command_line_gives(amina, tmp_path, server, asset_uid,
                                                                          monkeypatch, postgres_server):
    assert readme_exit_codes() == {0, 1, 2, 3, 4, 5, 6, 7, 130}
    add(server, asset_uid, 1, 3)
    db = str(tmp_path / "w.db")
    sync = ("sync", "--server", server.base_url, "--asset", asset_uid)
    seen: dict[int, str] = {}

    def expect(code: int, result, message: str) -> None:
        assert result.returncode == code, result
        if code:
            assert message in (error_line(result) if code not in (6, 7) else result.stderr + result.stdout), result
        seen[code] = message

    expect(0, amina(*sync, "--db", db, env={"KOBO_TOKEN": server.token}), "")
    monkeypatch.delenv("AMINA_PSEUDONYM_KEY", raising=False)
    from amina import cli

    monkeypatch.setattr(cli, "main", cli.main)
    os.environ.pop("AMINA_PSEUDONYM_KEY", None)
    no_key = subprocess.run([sys.executable, "-m", "amina.cli", *sync, "--db", str(tmp_path / "k.db")],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={k: v for k, v in {**os.environ, "KOBO_TOKEN": server.token}.items()
                                 if k != "AMINA_PSEUDONYM_KEY"})
    expect(2, no_key, "set AMINA_PSEUDONYM_KEY")
    expect(2, amina("sync", "--server", "kf.kobotoolbox.org", "--all", env={"KOBO_TOKEN": "x"}), "has no scheme")
    expect(2, amina("export", "nope", "--db", db), "no form 'nope'")
    bad = tmp_path / "bad.md"
    bad.write_text("| survey |\n| | type | name | label |\n| | integer | n | N | \n| | text | n | again |\n"
                   "| settings |\n| | form_id |\n| | bad |\n")
    expect(3, amina("forms", "build", str(bad), "--no-validate", "--no-lint", "--no-engine", "--out",
                    str(tmp_path / "build")), "bad.md")
    expect(4, amina(*sync, "--db", db, env={"KOBO_TOKEN": "f" * 40}),
           "KoBo answered 401: the token in KOBO_TOKEN was refused by")
    expect(5, amina("tables", "--db", f"{postgres_server.url('nowhere')}"), "could not")
    url = postgres_server.create_database("busy")
    expect(0, amina(*sync, "--db", url, env={"KOBO_TOKEN": server.token}), "")
    from warehouse.store import Warehouse

    holder = Warehouse(url)
    with holder.asset_lock(asset_uid):
        expect(6, amina(*sync, "--db", url, env={"KOBO_TOKEN": server.token}), "being synced by another worker")
    holder.dispose()
    expect(7, amina("status", "--db", db, "--offline", "--json", "--stale-after", "0.000001"), '"stale": true')
    monkeypatch.setattr("warehouse.status.asset_statuses", lambda _wh: 1 / 0)
    expect(1, amina("status", "--db", db, "--offline"), "internal error: ZeroDivisionError")
    seen[130] = "test_4_a_signal_stores_the_page_in_flight_and_records_the_run"  # needs a process of its own
    assert set(seen) == readme_exit_codes()


def test_5_the_fake_servers_suggested_command_works_as_printed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "amina.cli", "fake-server", "--port", "0", "-n", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "AMINA_PSEUDONYM_KEY": ""})
    try:
        lines: list[str] = []
        while not any(".venv/bin/amina sync" in x for x in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        export = next(x for x in lines if x.strip().startswith("export KOBO_TOKEN="))
        command = next(x for x in lines if ".venv/bin/amina sync" in x).strip()
        script = f"set -e\n{export.strip()}\n{command.replace('.venv/bin/amina', sys.executable + ' -m amina.cli')}\n"
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "PWD": str(tmp_path)})
        assert done.returncode == 0, done.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


# 6. an error is printed once, and the log copy reads as written ------------------------------------------------

def test_6_an_error_is_printed_once_and_never_garbled(tmp_path, server, asset_uid):
    proc = subprocess.run([sys.executable, "-m", "amina.cli", "-v", "sync", "--server", server.base_url, "--asset",
                           asset_uid, "--db", str(tmp_path / "w.db")], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "KOBO_TOKEN": "f" * 40, "AMINA_PSEUDONYM_KEY": CLI_KEY})
    assert proc.returncode == 4
    mentions = [x for x in proc.stderr.splitlines() if "was refused by" in x]
    assert len(mentions) == 1 and "the token in KOBO_TOKEN was refused by" in mentions[0], proc.stderr
    assert "[redacted]" not in proc.stderr


# 7. a relative warehouse path in a config is relative to the config file ----------------------------------------

def test_7_a_relative_warehouse_is_next_to_its_config(amina, tmp_path, server, asset_uid, monkeypatch):
    add(server, asset_uid, 1, 2)
    (tmp_path / "etc").mkdir()
    config = config_file(tmp_path / "etc" / "amina.toml", server, asset_uid, "data/amina.db")
    (tmp_path / "etc" / "data").mkdir()
    monkeypatch.chdir("/")  # as a scheduler started by systemd
    assert amina("sync", "--config", str(config), env={"KOBO_TOKEN": server.token}).returncode == 0
    assert (tmp_path / "etc" / "data" / "amina.db").exists() and not Path("/data/amina.db").exists()


# 8. status works on amina.db like tables does, right after the demo ----------------------------------------------

def test_8_status_needs_no_config_beside_amina_db(amina, tmp_path, server, asset_uid, monkeypatch):
    add(server, asset_uid, 1, 2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AMINA_CONFIG", raising=False)
    assert amina("sync", "--server", server.base_url, "--asset", asset_uid, env={"KOBO_TOKEN": server.token}
                 ).returncode == 0
    for command in (["status", "--offline"], ["tables"], ["dictionary", "--format", "json"]):
        result = amina(*command)
        assert result.returncode == 0, (command, result)


# 9. no tracebacks: a busy port, a directory that does not exist ---------------------------------------------------

def test_9_a_busy_port_is_one_line(server):
    port = server.base_url.rsplit(":", 1)[1]
    proc = subprocess.run([sys.executable, "-m", "amina.cli", "fake-server", "--port", port, "-n", "0"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in error_line(proc)


def test_9_writing_into_a_missing_directory_is_one_line(amina, tmp_path, server, asset_uid):
    add(server, asset_uid, 1, 2)
    db = str(tmp_path / "w.db")
    amina("sync", "--server", server.base_url, "--asset", asset_uid, "--db", db, env={"KOBO_TOKEN": server.token})
    result = amina("dictionary", "--db", db, "--format", "csv", "--out", "/missing/d.csv")
    assert result.returncode == 2 and "cannot write /missing/d.csv" in error_line(result)


# 10. the same asset uid on a second server is another asset ------------------------------------------------------

def test_10_the_same_uid_on_two_servers_makes_two_assets(amina, tmp_path, server, asset_uid, client):
    from forms.source import read_source, to_xlsx
    from sync.publish import publish_xlsform
    from tests.conftest import HERE

    add(server, asset_uid, 1, 5)
    db = str(tmp_path / "w.db")
    assert amina("sync", "--server", server.base_url, "--asset", asset_uid, "--db", db,
                 env={"KOBO_TOKEN": server.token}).returncode == 0
    with FakeKobo(seed=7) as other:  # seed 7 again: the same asset uid on another server
        from sync.client import KoboClient

        c = KoboClient(other.base_url, other.token)
        assert publish_xlsform(c, to_xlsx(read_source(HERE / "forms" / "household.md")), "household.xlsx",
                               poll_seconds=0.01).asset_uid == asset_uid
        c.close()
        for i in range(1, 5):
            other.store.add_submission(asset_uid, answers(i), submission_time=T0 - dt.timedelta(days=1, minutes=i))
        result = amina("sync", "--server", other.base_url + "/api/v2", "--asset", asset_uid, "--db", db,
                       env={"KOBO_TOKEN": other.token})
        assert result.returncode == 0, result
    status = json.loads(amina("status", "--db", db, "--offline", "--json").stdout)
    keys = sorted(s["asset_key"] for s in status)
    assert keys[0] == asset_uid and keys[1].startswith(f"{asset_uid}@127.0.0.1:")
    assert sorted(s["submissions"] for s in status) == [4, 5]  # nothing marked deleted, nothing mixed


# 11. a first sync that fails leaves no file -------------------------------------------------------------------

def test_11_a_failed_first_sync_leaves_no_warehouse(amina, tmp_path, server, asset_uid):
    db = tmp_path / "new.db"
    result = amina("sync", "--server", server.base_url, "--asset", asset_uid, "--db", str(db),
                   env={"KOBO_TOKEN": "f" * 40})
    assert result.returncode == 4 and not db.exists() and not Path(f"{db}-wal").exists()
    missing = amina("sync", "--server", server.base_url, "--asset", asset_uid, "--db", str(db),
                    env={"KOBO_TOKEN": ""})
    assert missing.returncode == 2 and not db.exists()


# 12. small things a person notices --------------------------------------------------------------------------------

def test_12_help_reads_as_prose_and_there_is_a_version(amina):
    help_text = amina("sync", "--help").stdout
    assert "<bool>" not in help_text and "<str>" not in help_text and "--server URL" in help_text
    version = amina("--version")
    assert version.returncode == 0 and re.match(r"amina-sync \d+\.\d+", version.stdout)


def test_12_integers_in_csv_are_integers(amina, tmp_path, server, asset_uid):
    add(server, asset_uid, 1, 3)
    db = str(tmp_path / "w.db")
    amina("sync", "--server", server.base_url, "--asset", asset_uid, "--db", db, env={"KOBO_TOKEN": server.token})
    assert amina("export", "household", "--db", db, "--out", str(tmp_path / "x")).returncode == 0
    text = (tmp_path / "x" / "household__members.csv").read_text(encoding="utf-8-sig")
    assert ",34," in text and "34.0" not in text


def test_12_the_scheduler_logs_a_requested_stop_and_a_second_listing_calmly(tmp_path, server, asset_uid):
    add(server, asset_uid, 1, 200)
    config = config_file(tmp_path / "amina.toml", server, asset_uid,
                         extra='[[assets]]\nuid = "all"\nschedule = { every = "1h" }\n[sync]\npage_size = 5\n')
    proc = subprocess.Popen([sys.executable, str(ROOT / "scheduler.py"), "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "KOBO_TOKEN": server.token, "AMINA_PSEUDONYM_KEY": CLI_KEY})
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert " ERROR " not in err, err
    assert "scheduler stopped on request (SIGTERM)" in err
