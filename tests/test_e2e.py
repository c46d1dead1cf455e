"""End to end over real HTTP: XLSForm → imports API → deploy → submissions → sync → SQLite."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.errors import WarehouseError
from fakes.kobo import FakeKobo
from sync.engine import sync_asset
from tests.conftest import household_submission
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse

HERE = Path(__file__).parent
SYSTEM = ("formhub/uuid", "__version__", "meta/instanceID", "_xform_id_string", "_uuid", "meta/rootUuid", "_id",
          "_attachments", "_status", "_geolocation", "_submission_time", "_validation_status", "_submitted_by")


def answers(i: int, **overrides) -> dict:
    """The answer part of a household submission (the fake server adds KoBo's system keys)."""
    sub = {k: v for k, v in household_submission(i).items() if k not in SYSTEM}
    members = [dict(m) for m in sub["household/members"]]
    members[0]["household/members/member_name"] = f"Member {i}"
    sub["household/members"] = members[: 1 + i % 2]
    sub.update(overrides)
    return sub


T0 = dt.datetime(2026, 3, 1, 8, 0, 0)
JPEG = b"\xff\xd8\xff\xe0 fake jpeg \xff\xd9"


def add(server: FakeKobo, uid: str, first: int, n: int, *, same_second: bool = False) -> None:
    for i in range(first, first + n):
        when = T0 if same_second else T0 + dt.timedelta(minutes=i)
        server.store.add_submission(uid, answers(i), submission_time=when, submitted_by="enumerator1",
                                    attachments={"1741597203456.jpg": JPEG})


KEY = "e2e-pseudonym-key-0123456789"


def open_warehouse(path: Path) -> Warehouse:
    return Warehouse(str(path), pseudonymizer=Pseudonymizer(KEY))


def table_rows(wh: Warehouse, table: str, order: str = "1") -> list[dict]:
    with wh.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY {order}'))]


def counts(wh: Warehouse) -> dict[str, int]:
    return {name: n for _, name, n in wh.row_counts()}


def comparable(wh: Warehouse) -> dict[str, list[tuple]]:
    """Every form table's content without the per-run timestamps, for comparing two warehouses."""
    out = {}
    with wh.engine.connect() as conn:
        for _, name, _n in wh.row_counts():
            rows = conn.execute(sa.text(f'SELECT * FROM "{name}"')).mappings().all()
            out[name] = sorted(tuple(sorted((k, str(v)) for k, v in r.items() if k != "_synced_at")) for r in rows)
    return out


def test_publish_sync_round_trip_nested_repeats_and_select_multiple(server, client, asset_uid, tmp_path):
    add(server, asset_uid, 1, 25)
    wh = open_warehouse(tmp_path / "w.db")
    report = sync_asset(client, wh, asset_uid, page_size=10)
    assert (report.status, report.fetched, report.inserted, report.bad_values) == ("ok", 25, 25, 0)
    assert report.pages == 3
    assert report.to_fetch == client.data_page(asset_uid, limit=1).count == 25
    c = counts(wh)
    assert c["household"] == 25
    assert c["household__members"] == sum(1 + i % 2 for i in range(1, 26))
    assert c["household__visits"] == 2 * 25  # two visits under the first member of each
    assert c["household__member_needs"] == 2 * 25
    assert c["household__crops"] == 2 * 25
    members = table_rows(wh, "household__members", "_submission_id, _row_id")
    first = [m for m in members if m["_position"] == 1]
    assert {m["member_name"] for m in first} == {Pseudonymizer(KEY).pseudonym(f"Member {i}") for i in range(1, 26)}
    server_sub = client.data_page(asset_uid, query={"_id": report_first_id(wh)}).results[0]
    [raw] = [r for r in table_rows(wh, "submissions_raw") if r["submission_id"] == server_sub["_id"]]
    import orjson
    assert orjson.loads(raw["json"]) == server_sub
    [photo] = [a for a in table_rows(wh, "attachments") if a["submission_id"] == server_sub["_id"]]
    assert photo["question_xpath"] == "photo" and photo["mimetype"] == "image/jpeg"
    assert client.request("GET", photo["download_url"]).content == JPEG


def report_first_id(wh: Warehouse) -> int:
    return table_rows(wh, "household", "_id")[0]["_id"]


def test_second_sync_is_a_no_op_and_a_third_gets_only_new(server, client, asset_uid, tmp_path):
    add(server, asset_uid, 1, 30)
    wh = open_warehouse(tmp_path / "w.db")
    sync_asset(client, wh, asset_uid, page_size=10)
    before = comparable(wh)
    again = sync_asset(client, wh, asset_uid, page_size=10, overlap=dt.timedelta(0))
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert again.fetched <= 1  # only the watermark's own second is read again
    assert again.sweep_requests == 3  # 30 submissions, 10 a page of _id/_uuid/_validation_status
    assert again.requests == 2 + again.sweep_requests  # the asset (its form) and one data page
    assert comparable(wh) == before
    with_overlap = sync_asset(client, wh, asset_uid, page_size=10, sweep_every=0)
    assert with_overlap.unchanged == with_overlap.fetched <= 6 and with_overlap.requests == 2
    add(server, asset_uid, 31, 5)
    third = sync_asset(client, wh, asset_uid, page_size=10, overlap=dt.timedelta(0))
    assert third.inserted == 5 and third.fetched <= 6
    assert counts(wh)["household"] == 35


def test_same_second_submissions_across_page_boundaries(server, client, asset_uid, tmp_path):
    add(server, asset_uid, 1, 23, same_second=True)
    wh = open_warehouse(tmp_path / "w.db")
    report = sync_asset(client, wh, asset_uid, page_size=5)
    assert report.inserted == 23 and counts(wh)["household"] == 23
    add(server, asset_uid, 24, 4, same_second=True)  # late arrivals stamped in the watermark's second
    later = sync_asset(client, wh, asset_uid, page_size=5)
    assert later.inserted == 4 and counts(wh)["household"] == 27


def test_bad_submission_is_kept_raw_and_counted(server, client, asset_uid, tmp_path):
    add(server, asset_uid, 1, 3)
    server.store.add_submission(asset_uid, answers(4, **{"household/hh_size": "three", "surprise": "x"}))
    no_group = {k: v for k, v in answers(5).items() if not k.startswith("household/")}
    server.store.add_submission(asset_uid, no_group)
    wh = open_warehouse(tmp_path / "w.db")
    report = sync_asset(client, wh, asset_uid)
    assert report.inserted == 5 and report.bad_values == 2
    bad = [r for r in table_rows(wh, "household") if r["_issues"]]
    assert len(bad) == 1 and bad[0]["hh_size"] is None and "surprise" in bad[0]["_issues"]
    assert len(table_rows(wh, "submissions_raw")) == 5
    [run] = table_rows(wh, "sync_runs")
    assert run["status"] == "ok" and run["bad_values"] == 2


def test_a_crash_mid_sync_loses_at_most_the_page_in_flight(server, client, asset_uid, tmp_path, monkeypatch):
    add(server, asset_uid, 1, 40)
    clean = open_warehouse(tmp_path / "clean.db")
    sync_asset(client, clean, asset_uid, page_size=7)

    crashed = open_warehouse(tmp_path / "crashed.db")
    real_load = Warehouse.load_page
    calls = {"n": 0}

    def failing_load(self, form, subs, wm, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise WarehouseError("disk full (simulated)")
        return real_load(self, form, subs, wm, **kwargs)

    monkeypatch.setattr(Warehouse, "load_page", failing_load)
    with pytest.raises(WarehouseError):
        sync_asset(client, crashed, asset_uid, page_size=7)
    assert counts(crashed)["household"] == 14  # two pages stored, the third lost
    [run] = table_rows(crashed, "sync_runs")
    assert run["status"] == "failed" and "disk full" in run["error"]
    assert crashed.watermark(asset_uid).submission_id == table_rows(crashed, "household", "_id DESC")[0]["_id"]
    monkeypatch.setattr(Warehouse, "load_page", real_load)
    resumed = sync_asset(client, crashed, asset_uid, page_size=7)
    assert resumed.inserted == 26
    assert comparable(crashed) == comparable(clean)


def test_any_kobo_form_without_our_conventions_syncs(server, client, tmp_path):
    content = {"survey": [{"type": "text", "$autoname": "Q-1 (name?)", "label": ["Name"]},
                          {"type": "integer", "name": "group", "label": ["SQL keyword"]}],
               "choices": [], "translations": [None], "settings": {}}
    uid = server.store.create_asset("Legacy KoBo form", content)
    server.store.deploy(uid, active=True)
    server.store.add_submission(uid, {"Q-1 (name?)": "x", "group": "4"})
    wh = open_warehouse(tmp_path / "w.db")
    report = sync_asset(client, wh, uid)
    assert report.inserted == 1 and report.bad_values == 0
    [row] = table_rows(wh, report.table)
    assert row["group"] == 4 and row["q_1_name"] == "x"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "amina.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AMINA_PSEUDONYM_KEY": KEY, **(env or {})})


def test_cli_sync_wrong_token_is_one_line_and_nonzero(server, asset_uid, tmp_path):
    proc = run_cli("sync", "--server", server.base_url, "--asset", asset_uid, "--db", str(tmp_path / "w.db"),
                   env={"KOBO_TOKEN": "f" * 40})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"KoBo answered 401: the token in KOBO_TOKEN was refused by {server.base_url}" in proc.stderr
    assert "f" * 40 not in proc.stderr + proc.stdout


def test_cli_sync_unreachable_server(tmp_path):
    proc = run_cli("sync", "--server", "http://127.0.0.1:9", "--asset", "aX7Yk3mQ9pLrT2vB8cN4dW",
                   "--db", str(tmp_path / "w.db"), env={"KOBO_TOKEN": "t"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "cannot connect (connection refused)" in proc.stderr


def test_cli_sync_missing_token_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KOBO_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "amina.cli", "sync", "--server", "http://127.0.0.1:9", "--asset",
                           "aX7Yk3mQ9pLrT2vB8cN4dW"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "KOBO_TOKEN is empty or not set" in proc.stderr


def test_cli_sync_all_deployed(server, asset_uid, tmp_path):
    add(server, asset_uid, 1, 3)
    proc = run_cli("sync", "--server", server.base_url, "--all", "--db", str(tmp_path / "w.db"),
                   env={"KOBO_TOKEN": server.token})
    assert proc.returncode == 0, proc.stderr
    assert "household" in proc.stdout and server.token not in proc.stdout + proc.stderr


def test_attachments_are_downloaded_once(server, client, asset_uid, tmp_path):
    add(server, asset_uid, 1, 4)
    wh = open_warehouse(tmp_path / "w.db")
    files = tmp_path / "files"
    report = sync_asset(client, wh, asset_uid, attachments_dir=files)
    assert report.attachments == 4
    got = sorted(files.rglob("*.jpg"))
    assert len(got) == 4 and all(p.read_bytes() == JPEG for p in got)
    assert got[0].parent.parent.name == asset_uid
    again = sync_asset(client, wh, asset_uid, attachments_dir=files)
    assert again.attachments == 0


def test_cli_logs_progress_lines_when_not_on_a_terminal(server, asset_uid, tmp_path):
    add(server, asset_uid, 1, 3)
    proc = run_cli("sync", "--server", server.base_url, "--asset", asset_uid, "--db", str(tmp_path / "w.db"),
                   env={"KOBO_TOKEN": server.token})
    assert proc.returncode == 0 and "3 of 3 submissions stored" in proc.stderr


def test_cli_forms_publish_deploys_then_redeploys_and_records_the_version(server, tmp_path):
    db = str(tmp_path / "w.db")
    env = {"KOBO_TOKEN": server.token}
    first = run_cli("forms", "publish", "vot_screening", "--server", server.base_url, "--db", db, "--no-validate",
                    env=env)
    assert first.returncode == 0, first.stderr
    [uid] = [u for u in server.store.assets if "vot_screening" in first.stdout and u in first.stdout]
    assert server.store.asset_detail(uid)["deployment__active"] is True
    again = run_cli("forms", "publish", "vot_screening", "--server", server.base_url, "--asset", uid, "--db", db,
                    "--no-validate", env=env)
    assert again.returncode == 0 and "redeployed" in again.stdout, again.stderr
    detail = server.store.asset_detail(uid)
    wh = open_warehouse(Path(db))
    [form] = table_rows(wh, "forms")
    assert form["asset_uid"] == uid and form["version_id"] == detail["deployed_version_id"]
    assert len(table_rows(wh, "form_versions")) == 2
