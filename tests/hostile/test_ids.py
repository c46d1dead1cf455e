"""Class 1: a submission without a usable `_id` is quarantined whole, reported, and the run goes on; the same
`_id` twice in a page is resolved the same way every time (the later one wins, the earlier one is kept)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sync.engine import sync_asset
from tests.hostile.conftest import ids, on_data, raw_data, rows, warehouse
from warehouse.status import asset_statuses

BAD_IDS: dict[str, Any] = {
    "missing": None,
    "text": "abc",
    "not whole": 3.7,
    "beyond int64": b"18446744073709551616",
    "negative": -5,
    "zero": 0,
    "boolean": True,
    "an object": {"id": 3},
    "a list": [3],
    "digits with spaces inside": "12 34",
}


@pytest.mark.parametrize("name", list(BAD_IDS))
def test_a_submission_without_a_usable_id_is_quarantined_and_the_rest_is_stored(kobo, client, uid, warehouse_url,
                                                                               name):
    value = BAD_IDS[name]
    target = ids(kobo, uid)[1]

    def corrupt(doc: dict[str, Any]) -> None:
        if doc.get("_id") == target and "household/hh_size" in doc:
            if value is None:
                del doc["_id"]
            else:
                doc["_id"] = "MARK-ID" if isinstance(value, bytes) else value
    on_data(kobo, corrupt)
    if isinstance(value, bytes):  # a number no JSON library of the fake would write: put it in as bytes
        raw_data(kobo, lambda data: data.replace(b'"MARK-ID"', value))
    wh = warehouse(warehouse_url)
    report = sync_asset(client, wh, uid)
    assert report.status == "ok" and report.quarantined == 1 and report.fetched == 4
    assert sorted(r["_id"] for r in rows(wh, "household")) == sorted(set(ids(kobo, uid)) - {target})
    [kept] = rows(wh, "quarantine", schema="restricted")
    assert json.loads(kept["json"])["meta/instanceID"] == kobo.store.submission(uid, target)["meta/instanceID"]
    assert "_id" in kept["reason"]
    if isinstance(value, bytes):
        assert "outside 1 … 2^63-1" in kept["reason"] and value.decode() in kept["json"]  # kept exactly
    again = sync_asset(client, wh, uid)  # re-reading it (overlap window) keeps it once
    assert again.status == "ok" and len(rows(wh, "quarantine", schema="restricted")) == 1
    [status] = asset_statuses(wh)
    assert status.quarantined == 1
    [run] = [r for r in rows(wh, "sync_runs", "run_id")][:1]
    assert run["quarantined"] == 1
    wh.dispose()


def test_the_same_id_twice_in_a_page_keeps_the_later_and_records_the_earlier(kobo, client, uid, warehouse_url):
    first, second = ids(kobo, uid)[:2]

    def twice(doc: dict[str, Any]) -> dict[str, Any] | None:
        if doc.get("_id") == second and "household/hh_size" in doc:
            return {**doc, "_id": first, "_uuid": "later-copy"}
        return None
    on_data(kobo, twice)
    wh = warehouse(warehouse_url)
    report = sync_asset(client, wh, uid, sweep_every=0)
    assert report.status == "ok"
    stored = {r["_id"]: r for r in rows(wh, "household")}
    assert stored[first]["_uuid"] == "later-copy"  # the later one wins
    history = [(h["submission_id"], h["change"]) for h in rows(wh, "submission_history", "seen_at")]
    assert (first, "superseded") in history
    [kept] = rows(wh, "quarantine", schema="restricted")
    assert "same _id came again later" in kept["reason"] and json.loads(kept["json"])["_id"] == first
    wh.dispose()


def test_items_that_are_not_submissions_are_set_aside(kobo, client, uid, tmp_path):
    on_data(kobo, lambda doc: "not a submission" if doc.get("_id") == ids(kobo, uid)[2] and "household/hh_size" in doc
            else None)
    wh = warehouse(str(tmp_path / "w.db"))
    report = sync_asset(client, wh, uid, sweep_every=0)
    assert report.status == "ok" and report.quarantined == 1 and len(rows(wh, "household")) == 3
    wh.dispose()


def test_a_page_of_nothing_usable_stops_with_a_message_not_a_loop(kobo, client, uid, tmp_path):
    on_data(kobo, lambda doc: {"_id": None} if "household/hh_size" in doc else None)
    wh = warehouse(str(tmp_path / "w.db"))
    from common.errors import KoboUnavailable

    with pytest.raises(KoboUnavailable, match="does not move past"):
        sync_asset(client, wh, uid)
    runs = rows(wh, "sync_runs")
    assert runs[-1]["status"] == "failed" and runs[-1]["quarantined"] == 4  # each item counted …
    assert len(rows(wh, "quarantine", schema="restricted")) == 1  # … the same JSON kept once
    wh.dispose()
