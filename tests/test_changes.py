"""Change capture over real HTTP: edits, validation status, deletions, double uploads, missed submissions."""

from __future__ import annotations

import datetime as dt

import pytest

from common.errors import KoboError
from sync.engine import sync_asset
from tests.test_e2e import add, answers, comparable, open_warehouse, table_rows


@pytest.fixture()
def synced(server, client, asset_uid, tmp_path):
    add(server, asset_uid, 1, 30)
    wh = open_warehouse(tmp_path / "w.db")
    sync_asset(client, wh, asset_uid, page_size=10)
    return wh


def current_ids(wh) -> list[int]:
    return [r["_id"] for r in table_rows(wh, "household_current", "_id")]


def test_an_edit_is_found_and_replaces_the_submission_and_its_children(server, client, asset_uid, synced):
    [first, *_] = server.store.submissions(asset_uid)
    sid = first["_id"]
    server.store.edit_submission(asset_uid, sid, {"household/hh_size": "9", "household/members": [
        {"household/members/member_age": "70"}]})
    report = sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    assert (report.updated, report.inserted, report.deleted) == (1, 0, 0)
    [row] = [r for r in table_rows(synced, "household") if r["_id"] == sid]
    assert row["hh_size"] == 9 and row["_uuid"] == server.store.submission(asset_uid, sid)["_uuid"]
    assert [m["member_age"] for m in table_rows(synced, "household__members") if m["_submission_id"] == sid] == [70]
    history = [h for h in table_rows(synced, "submission_history", "seen_at") if h["submission_id"] == sid]
    assert [h["change"] for h in history] == ["new", "edited"]
    assert history[0]["uuid"] != history[1]["uuid"]


def test_validation_status_changes_are_kept_current_with_history(server, client, asset_uid, synced):
    sid = server.store.submissions(asset_uid)[3]["_id"]
    server.store.set_validation_status(asset_uid, [sid], "validation_status_on_hold", by_whom="supervisor1")
    sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    server.store.set_validation_status(asset_uid, [sid], "validation_status_approved", by_whom="supervisor2")
    sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    [row] = [r for r in table_rows(synced, "household") if r["_id"] == sid]
    assert (row["_validation_status"], row["_validation_by"]) == ("validation_status_approved", "supervisor2")
    history = [(h["change"], h["validation_status"]) for h in table_rows(synced, "submission_history", "seen_at")
               if h["submission_id"] == sid]
    assert history[1:] == [("validation", "validation_status_on_hold"), ("validation", "validation_status_approved")]
    server.store.set_validation_status(asset_uid, [sid], None, by_whom="supervisor2")  # cleared: no timestamp
    sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    [row] = [r for r in table_rows(synced, "household") if r["_id"] == sid]
    assert row["_validation_status"] is None


def test_deletions_are_marked_not_dropped_and_views_leave_them_out(server, client, asset_uid, synced):
    subs = server.store.submissions(asset_uid)
    gone = [s["_id"] for s in subs[5:8]] + [subs[-1]["_id"]]
    server.store.delete_submissions(asset_uid, gone)
    report = sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    assert report.deleted == 4 and report.swept and report.sweep_requests == 3
    rows = {r["_id"]: r for r in table_rows(synced, "household")}
    assert len(rows) == 30 and all(rows[i]["_deleted_at"] is not None for i in gone)
    assert set(current_ids(synced)) == set(rows) - set(gone)
    again = sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    assert again.deleted == 0  # noticed once
    [run] = [r for r in table_rows(synced, "sync_runs", "run_id") if r["run_id"] == report.run_id]
    assert run["deleted"] == 4 and run["sweep_requests"] == 3 and run["sweep_seconds"] >= 0


def test_a_sweep_that_would_delete_most_submissions_stops_instead(server, client, asset_uid, synced):
    server.store.delete_submissions(asset_uid, [s["_id"] for s in server.store.submissions(asset_uid)[:25]])
    with pytest.raises(KoboError, match="found 25 of 30 stored submissions missing"):
        sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    assert len(current_ids(synced)) == 30  # nothing marked
    report = sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0), max_delete_fraction=1.0)
    assert report.deleted == 25


def test_a_submission_that_appeared_late_below_the_watermark_is_found(server, client, asset_uid, synced):
    # KoBo assigns _id and time before the record becomes visible (§9): simulate one that shows up late
    late = server.store.add_submission(asset_uid, answers(99), submission_time=dt.datetime(2026, 2, 1))
    report = sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    assert report.inserted == 1 and late["_id"] in current_ids(synced)


def test_double_uploads_are_flagged_and_not_counted(server, client, asset_uid, synced):
    original = server.store.submissions(asset_uid)[0]
    server.store.add_submission(asset_uid, {**answers(1), "meta/instanceID": original["meta/instanceID"]},
                                submission_time=dt.datetime(2026, 3, 2))
    sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    rows = table_rows(synced, "household", "_id")
    assert len(rows) == 31 and rows[-1]["_duplicate_of"] == original["_id"]
    assert len(current_ids(synced)) == 30


def test_sweep_every_n_syncs(server, client, asset_uid, synced):
    reports = [sync_asset(client, synced, asset_uid, page_size=10, sweep_every=3, overlap=dt.timedelta(0))
               for _ in range(4)]
    assert [r.swept for r in reports] == [False, False, True, False]
    assert [r.requests for r in reports] == [2, 2, 5, 2]


def test_a_full_resync_into_a_fresh_warehouse_equals_the_incremental_one(server, client, asset_uid, synced,
                                                                          tmp_path):
    store = server.store
    ids = [s["_id"] for s in store.submissions(asset_uid)]
    store.edit_submission(asset_uid, ids[2], {"household/income": "1"})
    store.delete_submissions(asset_uid, [ids[4]])
    store.set_validation_status(asset_uid, [ids[6]], "validation_status_not_approved", by_whom="s")
    add(server, asset_uid, 200, 5)
    sync_asset(client, synced, asset_uid, page_size=10, overlap=dt.timedelta(0))
    fresh = open_warehouse(tmp_path / "fresh.db")
    sync_asset(client, fresh, asset_uid, page_size=10)
    mine, theirs = comparable(synced), comparable(fresh)
    drop_deleted = {k: [r for r in v if ("_deleted_at", "None") in r or k != "household"] for k, v in mine.items()}
    assert drop_deleted["household"] == theirs["household"]


def test_submissions_of_a_version_not_seen_yet_evolve_the_tables_in_the_same_run(server, client, tmp_path):
    store = server.store
    v1 = {"survey": [{"type": "text", "name": "village", "label": ["Village"]},
                     {"type": "integer", "name": "old_count", "label": ["Old count"]}],
          "choices": [], "translations": [None], "settings": {"form_id": "drift"}}
    uid = store.create_asset("Drifting form", v1)
    store.deploy(uid, active=True)
    first_version = store.asset(uid).version_id
    store.add_submission(uid, {"village": "Bashiqa", "old_count": "4"}, submission_time=dt.datetime(2026, 1, 1))
    v2 = {**v1, "survey": [{"type": "text", "name": "village", "label": ["Village"]},
                           {"type": "decimal", "name": "new_amount", "label": ["New amount"]}]}
    store.replace_content(uid, v2)
    store.redeploy(uid, version_id=store.asset(uid).version_id, active=True)
    store.add_submission(uid, {"village": "Zakho", "new_amount": "2.5"}, submission_time=dt.datetime(2026, 1, 2))
    wh = open_warehouse(tmp_path / "w.db")  # first met with v2 deployed: v1's question is unknown to it
    report = sync_asset(client, wh, uid)
    assert report.inserted == 2 and report.bad_values == 0
    assert any(first_version in n for n in report.notes)
    rows = {r["village"]: r for r in table_rows(wh, "drift", "_id")}
    assert rows["Bashiqa"]["old_count"] == 4 and rows["Zakho"]["new_amount"] == 2.5
    assert {r["version_uid"] for r in table_rows(wh, "form_versions")} == {first_version, store.asset(uid).version_id}
    [form] = table_rows(wh, "forms")
    assert form["version_id"] == store.asset(uid).version_id  # the deployed one stays current
    again = sync_asset(client, wh, uid)  # the next run knows both versions without asking again
    assert again.requests == 3 and not again.notes
