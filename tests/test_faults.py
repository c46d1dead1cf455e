"""Faults on the wire (fake server's fault injection, real HTTP): retried within bounds, never silent."""

from __future__ import annotations

import pytest

from common.errors import KoboUnavailable
from sync.client import KoboClient, RetryPolicy
from sync.engine import sync_asset
from tests.test_e2e import add, comparable, open_warehouse, table_rows


@pytest.fixture()
def loaded(server, asset_uid, client, tmp_path):
    add(server, asset_uid, 1, 25)
    clean = open_warehouse(tmp_path / "clean.db")
    sync_asset(client, clean, asset_uid, page_size=10)
    return comparable(clean)


def flaky_client(server, sleeps: list[float]) -> KoboClient:
    return KoboClient(server.base_url, server.token, timeout=(2.0, 0.5), retry=RetryPolicy(attempts=4),
                      sleep=sleeps.append)


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "504", "reset", "truncated", "hang", "empty",
                                  "repeat_next"])
def test_each_fault_is_retried_and_the_warehouse_is_the_same(kind, server, asset_uid, loaded, tmp_path):
    sleeps: list[float] = []
    client = flaky_client(server, sleeps)
    server.inject(kind, times=2, retry_after=7, hang_seconds=1.0)
    wh = open_warehouse(tmp_path / f"{kind}.db")
    report = sync_asset(client, wh, asset_uid, page_size=10)
    assert report.status == "ok" and report.inserted == 25
    assert comparable(wh) == loaded
    if kind != "repeat_next":  # a repeated `next` link is harmless to keyset paging: nothing to retry
        assert len(sleeps) == 2, sleeps
    if kind == "429":
        assert sleeps == [7.0, 7.0]  # Retry-After honoured


def test_a_fault_that_persists_fails_the_run_clearly_and_keeps_the_watermark(server, asset_uid, loaded,
                                                                               client, tmp_path):
    wh = open_warehouse(tmp_path / "w.db")
    sync_asset(client, wh, asset_uid, page_size=10)
    before = wh.watermark(asset_uid)
    add(server, asset_uid, 100, 5)
    sleeps: list[float] = []
    server.inject("503", times=100)
    with pytest.raises(KoboUnavailable, match="KoBo answered 503, still failing after 4 tries"):
        sync_asset(flaky_client(server, sleeps), wh, asset_uid, page_size=10)
    assert wh.watermark(asset_uid) == before
    failed = table_rows(wh, "sync_runs", "run_id")[-1]
    assert failed["status"] == "failed" and "503" in failed["error"] and failed["inserted"] == 0
    assert len(sleeps) == 3 and all(0 < s <= 30 for s in sleeps)
    assert sleeps[1] > sleeps[0] * 0.9 or sleeps[2] > sleeps[1]  # backing off
    server.clear_faults()
    assert sync_asset(client, wh, asset_uid, page_size=10).inserted == 5


@pytest.mark.parametrize("kind", ["truncated", "empty"])
def test_a_damaged_answer_is_never_taken_for_no_submissions(kind, server, asset_uid, loaded, tmp_path):
    server.inject(kind, times=100)
    wh = open_warehouse(tmp_path / "w.db")
    with pytest.raises(KoboUnavailable, match=r"cut short|sent none"):
        sync_asset(flaky_client(server, []), wh, asset_uid, page_size=10)
    assert table_rows(wh, "household") == [] and wh.watermark(asset_uid) is None
