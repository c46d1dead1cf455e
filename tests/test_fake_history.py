"""Conformance of the fake KoBo server on what the sweep relies on (KoBo's source, /work/shared/kobo-api.md §1, §3,
§4): `count` for any query, `$exists` on `meta/deprecatedID`, `_validation_status.` paths with `$gte`, and the
project history endpoint with its permission, search, paging and look-back (kobo/apps/audit_log)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests

from fakes.kobo import FakeKobo
from fakes.kobo_search import SearchSyntaxError, conjuncts, parse_search
from tests.test_fake_server import CONTENT, T0, answers

FORBIDDEN = {"detail": "You do not have permission to perform this action."}


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture()
def kobo():
    with FakeKobo(seed=11) as server:
        server.store.clock = Clock(dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC))
        yield server


@pytest.fixture()
def http(kobo):
    session = requests.Session()
    session.headers.update({"Authorization": f"Token {kobo.token}", "Accept": "application/json"})
    yield session
    session.close()


@pytest.fixture()
def uid(kobo) -> str:
    store = kobo.store
    uid = store.create_asset("History form", CONTENT)
    store.deploy(uid, active=True)
    for i in range(1, 21):
        store.add_submission(uid, answers(i), submission_time=T0 + dt.timedelta(minutes=i), submitted_by="enum1")
    return uid


def data(http, kobo, uid, **params):
    encoded = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()}
    return http.get(f"{kobo.base_url}/api/v2/assets/{uid}/data/", params=encoded).json()


def hist(http, kobo, uid, **params):
    return http.get(f"{kobo.base_url}/api/v2/assets/{uid}/history/", params=params)


def later(kobo, **delta) -> None:
    kobo.store.clock.now += dt.timedelta(**delta)


# -- count for any query (§1: count_documents) -------------------------------------------------------------------


def test_count_is_computed_for_any_query_whatever_the_limit(http, kobo, uid):
    store = kobo.store
    ids = [s["_id"] for s in store.submissions(uid)]
    store.edit_submission(uid, ids[2], {"hh/size": "9"})
    store.edit_submission(uid, ids[2], {"hh/size": "8"})  # edited twice: still one submission
    store.edit_submission(uid, ids[11], {"hh/size": "7"})
    page = data(http, kobo, uid, query={"meta/deprecatedID": {"$exists": True}}, limit=1, fields=["_id"])
    assert page["count"] == 2 and len(page["results"]) == 1 and page["results"][0]["_id"] == ids[2]
    assert data(http, kobo, uid, query={"_id": {"$gte": ids[5], "$lt": ids[15]}}, limit=1)["count"] == 10
    assert data(http, kobo, uid, query={"meta/deprecatedID": {"$exists": False}}, limit=1)["count"] == 18
    store.delete_submissions(uid, [ids[6]])
    assert data(http, kobo, uid, query={"_id": {"$gte": ids[5], "$lt": ids[15]}}, limit=1)["count"] == 9


def test_validation_timestamps_are_queried_as_dotted_paths(http, kobo, uid):
    store = kobo.store
    ids = [s["_id"] for s in store.submissions(uid)]
    store.set_validation_status(uid, ids[:3], "validation_status_on_hold", by_whom="s")
    stamp = int(store.clock.now.timestamp())
    later(kobo, minutes=5)
    store.set_validation_status(uid, [ids[9]], "validation_status_approved", by_whom="s")
    store.set_validation_status(uid, [ids[1]], None, by_whom="s")  # cleared: {} and no timestamp
    since = data(http, kobo, uid, query={"_validation_status.timestamp": {"$gte": stamp + 60}},
                 fields=["_id", "_validation_status"])
    assert [r["_id"] for r in since["results"]] == [ids[9]] and since["count"] == 1
    assert data(http, kobo, uid, query={"_validation_status.timestamp": {"$gte": stamp}}, limit=1)["count"] == 3
    assert data(http, kobo, uid, query={"_validation_status.uid": {"$exists": True}}, limit=1)["count"] == 3
    assert data(http, kobo, uid, query={"_validation_status.timestamp": {"$gte": str(stamp)}})["count"] == 0


def test_the_check_figure_query_uses_only_whitelisted_operators(http, kobo, uid):
    from sync.sweep_kobo import check_query
    ids = [s["_id"] for s in kobo.store.submissions(uid)]
    kobo.store.set_validation_status(uid, ids[:4], "validation_status_on_hold", by_whom="s")
    for position in range(8):
        body = data(http, kobo, uid, query=check_query(0, ids[-1] + 1, position), limit=1)
        digits = {i for i, s in enumerate(kobo.store.submissions(uid)) if s["_uuid"][position] in "01234567"}
        expected = sum(1 for i in range(20) if (i in digits) != (i < 4))
        assert body["count"] == expected


# -- the project history (§3; kobo/apps/audit_log) ----------------------------------------------------------------


def test_history_needs_manage_asset_login_and_a_known_asset(http, kobo, uid):
    assert hist(http, kobo, uid).status_code == 200
    kobo.store.set_manage_asset(uid, False)
    refused = hist(http, kobo, uid)
    assert (refused.status_code, refused.json()) == (403, FORBIDDEN)
    anonymous = requests.get(f"{kobo.base_url}/api/v2/assets/{uid}/history/")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Session"
    unknown = hist(http, kobo, "aNoSuchAsset0000000000x")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "No Asset matches the given query."})
    kobo.store.set_manage_asset(uid, True)
    assert hist(http, kobo, uid).status_code == 200


def test_history_lists_submission_actions_newest_first_in_kobos_shape(http, kobo, uid):
    store = kobo.store
    [first, second, *_] = store.submissions(uid)
    later(kobo, minutes=1)
    store.edit_submission(uid, first["_id"], {"hh/size": "4"})
    later(kobo, minutes=1)
    store.set_validation_status(uid, [second["_id"]], "validation_status_approved", by_whom="supervisor1")
    later(kobo, minutes=1)
    store.set_validation_status(uid, [second["_id"]], None, by_whom="supervisor1")
    later(kobo, minutes=1)
    store.delete_submissions(uid, [first["_id"]])
    body = hist(http, kobo, uid, q="action:modify-submission OR action:delete-submission").json()
    assert set(body) == {"count", "next", "previous", "results"} and body["count"] == 4
    actions = [(e["action"], e["metadata"]["submission"].get("status")) for e in body["results"]]
    assert actions == [("delete-submission", None), ("modify-submission", "None"),
                       ("modify-submission", "Approved"), ("modify-submission", None)]
    entry = body["results"][0]
    assert set(entry) == {"user", "user_uid", "username", "action", "metadata", "date_created"}
    assert entry["date_created"] == "2026-06-15T12:04:00Z" and entry["username"] == kobo.store.owner
    assert entry["metadata"]["submission"] == {"submitted_by": "enum1",
                                               "root_uuid": first["meta/rootUuid"].removeprefix("uuid:")}
    assert {"asset_uid", "log_subtype", "ip_address", "source", "project_owner"} <= set(entry["metadata"])
    assert entry["metadata"]["asset_uid"] == uid and entry["metadata"]["log_subtype"] == "project"
    adds = hist(http, kobo, uid, q="action:add-submission").json()
    assert adds["count"] == 20 and adds["results"][0]["metadata"]["submission"]["submitted_by"] == "enum1"


def test_history_search_by_date_root_uuid_and_user(http, kobo, uid):
    store = kobo.store
    subs = store.submissions(uid)
    store.edit_submission(uid, subs[0]["_id"], {"hh/size": "4"})
    later(kobo, hours=2)
    store.edit_submission(uid, subs[1]["_id"], {"hh/size": "5"})
    q = 'action:modify-submission AND date_created__gte:"2026-06-15T13:00:00Z"'
    [entry] = hist(http, kobo, uid, q=q).json()["results"]
    assert entry["metadata"]["submission"]["root_uuid"] == subs[1]["meta/rootUuid"].removeprefix("uuid:")
    root = subs[0]["meta/rootUuid"].removeprefix("uuid:")
    by_root = hist(http, kobo, uid, q=f"metadata__submission__root_uuid:{root}").json()
    assert [e["action"] for e in by_root["results"]] == ["modify-submission", "add-submission"]
    assert hist(http, kobo, uid, q="user__username:enum1").json()["count"] == 20
    assert hist(http, kobo, uid, q='date_created__lt:"2026-06-15"').json()["count"] == 0
    refused = hist(http, kobo, uid, q="user_uid:x")
    assert (refused.status_code, refused.json()) == (400, {"detail": "Not supported field lookup"})
    assert hist(http, kobo, uid, q="(action:add-submission").json()["count"] == 0  # a parse error: nothing


def test_history_pages_with_start_or_offset_and_limit(http, kobo, uid):
    first = hist(http, kobo, uid, q="action:add-submission", limit=7).json()
    assert first["count"] == 20 and len(first["results"]) == 7 and first["previous"] is None
    assert "start=7" in first["next"] and "limit=7" in first["next"]
    second = http.get(first["next"]).json()
    by_offset = hist(http, kobo, uid, q="action:add-submission", limit=7, offset=7).json()
    assert second["results"] == by_offset["results"] and second["results"][0] != first["results"][0]
    assert len(hist(http, kobo, uid, limit=5000).json()["results"]) == 20  # capped at 1000, all here


def test_history_look_back_is_limited_whatever_the_search_asks(http, kobo, uid):
    store = kobo.store
    store.history_lookback_days = 30
    store.edit_submission(uid, store.submissions(uid)[0]["_id"], {"hh/size": "4"})
    assert hist(http, kobo, uid, q="action:modify-submission").json()["count"] == 1
    later(kobo, days=32)
    q = 'action:modify-submission AND date_created__gte:"2020-01-01"'
    assert hist(http, kobo, uid, q=q).json()["count"] == 0  # older than the look-back: gone from the list


def test_search_grammar_reads_kobos_syntax():
    tree = parse_search('(action:modify-submission OR action:delete-submission) AND date_created__gte:"2026-01-01"')
    assert [t.field for t in conjuncts(tree)] == ["date_created__gte"]
    assert [t.value for t in conjuncts(parse_search('a:"x y" b:\'z\''))] == ["x y", "z"]
    assert conjuncts(parse_search("a:1 OR b:2")) == []
    for broken in ("(a:1", "a:1)", "NOT"):
        with pytest.raises(SearchSyntaxError):
            parse_search(broken)
