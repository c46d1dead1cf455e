"""HTTP and JSON a server may answer: each ends in one line and its exit status, never a traceback or a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from fakes.kobo import Reply
from sync.engine import sync_asset
from tests.hostile.conftest import KEY, ROOT, one_line_error, rows, warehouse


def sync_args(kobo, uid, tmp_path):
    return ("sync", "--server", kobo.base_url, "--asset", uid, "--db", str(tmp_path / "w.db"))


CASES = {
    "results that is not a list": ("/data", lambda b: {**b, "results": {"0": {}}}, 4,
                                   "the answer has no 'results' list, still failing after"),
    "a page that is a JSON array": ("/data", lambda b: [b], 4, "the answer has no 'results' list"),
    "an HTML page with status 200": ("/data", lambda b: Reply(200, raw=b"<html>Login</html>", content_type="text/html"),
                                     4, "the answer is not JSON (text/html); is http://127.0.0.1"),
    "half a JSON body": ("/data", lambda b: Reply(200, raw=b'{"count": 4, "resu', content_type="application/json"),
                         4, "the JSON answer was cut short"),
    "JSON nested ten thousand deep": ("/data", lambda b: Reply(200, raw=b"[" * 10000 + b"]" * 10000,
                                                               content_type="application/json"), 4, "still failing"),
    "an asset that is a list": ("/assets/a", lambda b: [b], 4, "the answer is not an asset (a JSON object)"),
    "a form whose survey is not a list": ("/assets/a", lambda b: {**b, "content": {"survey": "rows"}}, 3,
                                          "the form content has no 'survey' list"),
    "a form row that is a string": ("/assets/a", lambda b: {**b, "content": {**b["content"],
                                                                             "survey": ["begin_group"]}}, 3,
                                    "survey row 1: expected an object with a 'type', got str"),
    "a form without a deployment": ("/assets/a", lambda b: {**b, "deployed_version_id": None}, 4,
                                    "has not been deployed"),
    "a 403 whose detail holds markup": ("/data", lambda b: Reply(403, {"detail": "[bold red]denied[/] [/] x"}), 4,
                                        "lacks the permission ([bold red]denied[/] [/] x)"),
    "a 400 with a megabyte of detail": ("/data", lambda b: Reply(400, {"detail": "x" * 1_000_000}), 4,
                                        "KoBo answered 400"),
    "a 500 that is an HTML page": ("/data", lambda b: Reply(500, raw=b"<h1>oops</h1>", content_type="text/html"), 4,
                                   "KoBo answered 500, still failing"),
    "a body shorter than its Content-Length": ("/data", lambda b: Reply(200, raw=b"{}", content_type="application/json",
                                                                        headers={"X-Pad": "1"}), 4, "still failing"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_broken_answer_ends_in_one_line_and_its_exit_status(kobo, uid, tmp_path, amina, name):
    path, change, code, message = CASES[name]
    kobo.tamper(path, change)
    result = amina(*sync_args(kobo, uid, tmp_path), env={"KOBO_TOKEN": kobo.token})
    assert result.returncode == code, result
    line = one_line_error(result)
    assert message in line, line
    assert len(line) < 800


def test_counts_and_next_links_of_the_wrong_type_are_ignored_not_trusted(kobo, client, uid, tmp_path):
    kobo.tamper("/data", lambda b: {**b, "count": "four", "next": 12} if isinstance(b, dict) else b)
    wh = warehouse(str(tmp_path / "w.db"))
    report = sync_asset(client, wh, uid, page_size=2)
    assert report.status == "ok" and len(rows(wh, "household")) == 4
    wh.dispose()


def test_markup_in_an_asset_name_is_printed_verbatim(kobo, uid, tmp_path, amina):
    kobo.store.assets[uid].name = "Survey [/] 2026 [bold]x[/bold]"
    result = amina(*sync_args(kobo, uid, tmp_path), env={"KOBO_TOKEN": kobo.token})
    assert result.returncode == 0, result
    assert "Survey [/] 2026 [bold]x[/bold]" in result.stdout
    status = amina("status", "--db", str(tmp_path / "w.db"), "--offline", "--json")
    assert json.loads(status.stdout)[0]["name"] == "Survey [/] 2026 [bold]x[/bold]"
    tables = amina("tables", "--db", str(tmp_path / "w.db"))
    assert tables.returncode == 0 and "[" not in tables.stderr


def test_a_nul_in_an_asset_name_is_stored_replaced(kobo, client, uid, warehouse_url):
    kobo.store.assets[uid].name = "Screening\x00 2026"
    wh = warehouse(warehouse_url)
    assert sync_asset(client, wh, uid).status == "ok"
    assert rows(wh, "forms")[0]["name"] == "Screening\ufffd 2026"
    wh.dispose()


def gzip_bomb(megabytes: int) -> bytes:
    """`megabytes` MB of spaces, gzipped to about a thousandth of that, made without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    block = b" " * 2**20
    return b"".join([*(packer.compress(block) for _ in range(megabytes)), packer.flush()])


def test_a_gzip_bomb_is_refused_with_bounded_memory(kobo, uid, tmp_path):
    bomb = gzip_bomb(400)
    assert len(bomb) < 2**20
    kobo.tamper("/data", lambda b: Reply(200, raw=bomb, content_type="application/json",
                                         headers={"Content-Encoding": "gzip"}))
    config = tmp_path / "amina.toml"
    config.write_text(f'[warehouse]\nurl = "w.db"\n[servers.k]\nurl = "{kobo.base_url}"\n[[assets]]\nuid = "{uid}"\n'
                      "[sync]\nmax_response_mb = 20\n")
    # started from bench.launcher, a small process: what wait4 reports is the sync's own peak (see its doc)
    job = {"argv": [sys.executable, "-m", "amina.cli", "sync", "--config", str(config)], "cwd": str(ROOT),
           "stdout": str(tmp_path / "out"), "stderr": str(tmp_path / "err")}
    launched = subprocess.run([sys.executable, "-m", "bench.launcher"], input=json.dumps(job) + "\n",
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "KOBO_TOKEN": kobo.token, "AMINA_PSEUDONYM_KEY": KEY})
    result = json.loads(launched.stdout)
    proc = subprocess.CompletedProcess([], result["returncode"], "", (tmp_path / "err").read_text())
    assert proc.returncode == 4, proc.stderr
    assert "larger than 20 MB once decompressed" in one_line_error(proc)
    assert result["maxrss_kib"] < 250 * 1024, result  # not the 400 MB the bomb unpacks to
    assert not Path(tmp_path / "w.db").exists()  # a first sync that stored nothing leaves no file behind


def test_retry_after_of_a_day_is_capped(kobo, uid, client, tmp_path):
    waits: list[float] = []
    client._sleep = waits.append
    kobo.tamper("/data", lambda b: Reply(429, {"detail": "throttled"}, headers={"Retry-After": "86400"}), times=1)
    wh = warehouse(str(tmp_path / "w.db"))
    assert sync_asset(client, wh, uid).status == "ok"
    assert waits and max(waits) <= client.retry.max_delay
    wh.dispose()
