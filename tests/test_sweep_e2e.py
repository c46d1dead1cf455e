"""The sweep over real HTTP against the fake KoBo server, on SQLite and PostgreSQL: each mechanism finds what it
should, says so in submission_history and sync_runs, and costs a handful of requests on an unchanged form."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random

import orjson
import pytest
import sqlalchemy as sa

from common.errors import SyncInterrupted
from sync.engine import prepare_form, sync_asset
from sync.sweep_kobo import check_query, sweep_state
from tests.test_e2e import KEY, add
from warehouse import bookkeeping as bk
from warehouse.manifest import CHECK_POSITIONS, StoredForm, check_bit
from warehouse.protect import Pseudonymizer
from warehouse.status import asset_statuses
from warehouse.store import Warehouse

N, PAGE = 120, 10  # 12 pages: above the size a full sweep is used for anyway
NO_OVERLAP = dt.timedelta(0)


@pytest.fixture()
def warehouse(warehouse_url):
    wh = Warehouse(warehouse_url, pseudonymizer=Pseudonymizer(KEY))
    yield wh
    wh.dispose()


@pytest.fixture()
def synced(server, client, asset_uid, warehouse):
    add(server, asset_uid, 1, N)
    sync_asset(client, warehouse, asset_uid, page_size=PAGE)
    return warehouse


def sync(client, wh, uid, **options):
    return sync_asset(client, wh, uid, page_size=PAGE, overlap=NO_OVERLAP, **options)


def history(wh) -> list[tuple[str, str | None]]:
    h = bk.submission_history
    with wh.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(h.c.change, h.c.found_by).where(h.c.found_by != "watermark")
                                               .order_by(h.c.seen_at, h.c.submission_id))]


def run_row(wh, run_id) -> dict:
    with wh.engine.connect() as conn:
        return dict(conn.execute(sa.select(bk.sync_runs).where(bk.sync_runs.c.run_id == run_id)).mappings().one())


def matches_server(server, client, uid, wh) -> bool:
    """Does the warehouse hold, live, exactly the server's submissions, each with its `_uuid` and status?"""
    stored = StoredForm(wh, prepare_form(client, wh, uid).form).manifest(None, None)
    return stored == {d["_id"]: sweep_state(d) for d in server.store.submissions(uid)}


def test_the_check_figure_kobo_counts_is_the_one_the_warehouse_computes(server, client, asset_uid, synced):
    store = server.store
    ids = [s["_id"] for s in store.submissions(asset_uid)]
    store.set_validation_status(asset_uid, ids[::7], "validation_status_on_hold", by_whom="s")
    store.edit_submission(asset_uid, ids[3], {"household/hh_size": "4"})
    sync(client, synced, asset_uid, full_sweep_every=dt.timedelta(0))
    stored = StoredForm(synced, prepare_form(client, synced, asset_uid).form)
    for position in range(CHECK_POSITIONS):
        for lo, hi in ((0, ids[-1] + 1), (ids[10], ids[50])):
            mine = stored.figures(lo, hi, position)
            assert client.count(asset_uid, check_query(lo, hi, position)) == mine.check
            assert client.count(asset_uid, {"_id": {"$gte": lo, "$lt": hi}}) == mine.total


@pytest.mark.parametrize("readable_history", [True, False])
def test_changes_are_found_by_the_mechanism_that_sees_them(server, client, asset_uid, synced, readable_history):
    store = server.store
    store.set_manage_asset(asset_uid, readable_history)
    ids = [s["_id"] for s in store.submissions(asset_uid)]
    picked = random.Random(5).sample(ids, 9)
    for sid in picked[:3]:
        store.edit_submission(asset_uid, sid, {"household/hh_size": "8"})
    store.set_validation_status(asset_uid, picked[3:6], "validation_status_approved", by_whom="supervisor1")
    store.delete_submissions(asset_uid, picked[6:])
    report = sync(client, synced, asset_uid)
    assert (report.sweep_mode, report.updated, report.deleted) == ("incremental", 6, 3)
    assert matches_server(server, client, asset_uid, synced)
    with synced.engine.connect() as conn:
        sizes = dict(conn.execute(sa.text('SELECT _id, hh_size FROM "household" WHERE _id IN (:a, :b, :c)'),
                                  dict(zip("abc", picked[:3], strict=True))).all())
    assert sizes == dict.fromkeys(picked[:3], 8)
    if readable_history:
        assert sorted(history(synced)) == sorted([("edited", "history")] * 3 + [("validation", "history")] * 3
                                                 + [("deleted", "history")] * 3)
        assert report.sweep_requests <= 8
    else:
        assert sorted(history(synced)) == sorted([("edited", "edited")] * 3 + [("validation", "validation")] * 3
                                                 + [("deleted", "count")] * 3)
        assert any("Manage project" in n for n in report.notes)
    row = run_row(synced, report.run_id)
    detail = json.loads(row["sweep_detail"])
    assert row["sweep_mode"] == "incremental" and row["sweep_requests"] == report.sweep_requests > 0
    assert row["sweep_bytes"] == sum(m["bytes"] for m in detail["mechanisms"].values()) > 0
    assert sum(m["requests"] for m in detail["mechanisms"].values()) == report.sweep_requests
    assert sum(m["found"].get("deleted", 0) for m in detail["mechanisms"].values()) == 3
    again = sync(client, synced, asset_uid)  # the history's overlap re-reads the last changes: one fetch, no change
    assert (again.updated, again.deleted, again.sweep_requests) == (0, 0, 6 if readable_history else 4)


def test_an_unchanged_form_costs_the_same_few_requests_at_any_size(server, client, asset_uid, synced):
    small = sync(client, synced, asset_uid)
    add(server, asset_uid, 1000, 3 * N)
    sync(client, synced, asset_uid)  # loads the new ones
    big = sync(client, synced, asset_uid)
    assert small.sweep_requests == big.sweep_requests == 5  # history, edited, reviews, count, check figure
    full = sync(client, synced, asset_uid, full_sweep_every=dt.timedelta(0))
    assert full.sweep_mode == "full" and full.sweep_requests == 4 * N // PAGE  # every page of the manifest


def test_a_cleared_status_is_found_by_the_history_or_by_the_check_figure(server, client, asset_uid, synced):
    store = server.store
    sid = store.submissions(asset_uid)[17]["_id"]
    store.set_validation_status(asset_uid, [sid], "validation_status_approved", by_whom="s")
    sync(client, synced, asset_uid)
    for readable in (True, False):
        store.set_manage_asset(asset_uid, readable)
        store.set_validation_status(asset_uid, [sid], None, by_whom="s")  # cleared: the timestamp goes too
        report = sync(client, synced, asset_uid)
        assert report.updated == 1
        assert history(synced)[-1] == ("validation", "history" if readable else "count")
        assert matches_server(server, client, asset_uid, synced)
        store.set_validation_status(asset_uid, [sid], "validation_status_approved", by_whom="s")
        sync(client, synced, asset_uid)


def test_a_submission_that_appeared_late_with_a_deletion_beside_it_is_found(server, client, asset_uid, synced):
    store = server.store
    store.set_manage_asset(asset_uid, False)
    subs = store.submissions(asset_uid)

    def bits(doc):
        return [check_bit(sweep_state(doc), p) for p in range(CHECK_POSITIONS)]
    # a pair whose check bits differ at every position: whichever position the run reads, the figure moves
    late, gone = next((a, b) for a, b in itertools.combinations(subs, 2)
                      if all(x != y for x, y in zip(bits(a), bits(b), strict=True)))
    with synced.engine.begin() as conn:  # as if `late` had not been visible yet when the warehouse was filled
        for table in ("household__crops", "household__member_needs", "household__visits", "household__members"):
            conn.execute(sa.text(f'DELETE FROM "{table}" WHERE _submission_id = :i'), {"i": late["_id"]})
        conn.execute(sa.text('DELETE FROM "household" WHERE _id = :i'), {"i": late["_id"]})
        for t in (bk.submissions_raw, bk.attachments, bk.restricted_values):
            conn.execute(t.delete().where(t.c.submission_id == late["_id"]))
    store.delete_submissions(asset_uid, [gone["_id"]])  # one more on the server, one fewer: the counts agree
    report = sync(client, synced, asset_uid)
    assert (report.inserted, report.deleted) == (1, 1)
    assert sorted(history(synced)) == [("deleted", "count"), ("new", "count")]
    assert matches_server(server, client, asset_uid, synced)


def test_the_history_refused_is_asked_again_only_a_day_later(server, client, asset_uid, synced):
    server.store.set_manage_asset(asset_uid, False)
    first = sync(client, synced, asset_uid)
    second = sync(client, synced, asset_uid)
    assert (first.sweep_requests, second.sweep_requests) == (5, 4)
    key = synced.asset_key(client.server_url, asset_uid)
    assert synced.sweep_state(key).history_denied_at is not None
    assert not second.notes  # said once


def test_a_stop_during_the_sweep_keeps_what_it_stored_and_marks_no_deletion(server, client, asset_uid, synced):
    store = server.store
    ids = [s["_id"] for s in store.submissions(asset_uid)]
    store.delete_submissions(asset_uid, [ids[5], ids[90]])
    store.edit_submission(asset_uid, ids[7], {"household/hh_size": "6"})
    asked = iter(range(100))
    with pytest.raises(SyncInterrupted, match="deletions were not marked"):
        sync(client, synced, asset_uid, should_stop=lambda: next(asked) >= 2)
    assert ("edited", "history") in history(synced) and not [h for h in history(synced) if h[0] == "deleted"]
    assert sync(client, synced, asset_uid).deleted == 2


def test_the_full_sweep_runs_on_its_own_schedule_and_status_shows_it(server, client, asset_uid, synced):
    key = synced.asset_key(client.server_url, asset_uid)
    loaded = synced.sweep_state(key)
    assert loaded.last_full_sweep_at is not None  # a first load compared everything
    cheap = sync(client, synced, asset_uid)
    assert cheap.sweep_mode == "incremental" and synced.sweep_state(key).last_full_sweep_at == loaded.last_full_sweep_at
    due = sync(client, synced, asset_uid, full_sweep_every=dt.timedelta(0))
    assert due.sweep_mode == "full" and synced.sweep_state(key).last_full_sweep_at > loaded.last_full_sweep_at
    never = sync(client, synced, asset_uid, full_sweep_every=None)
    assert never.sweep_mode == "incremental"
    [status] = asset_statuses(synced)
    assert status.last_full_sweep_at == synced.sweep_state(key).last_full_sweep_at
    assert status.as_json()["last_full_sweep_at"].endswith("Z")


def test_sweep_detail_is_valid_json_with_every_mechanism_that_ran(server, client, asset_uid, synced):
    report = sync(client, synced, asset_uid)
    detail = orjson.loads(run_row(synced, report.run_id)["sweep_detail"])
    assert set(detail["mechanisms"]) == {"history", "edited", "validation", "count"}
    assert detail["mode"] == "incremental" and 0 <= detail["check_position"] < CHECK_POSITIONS
