"""The fake KoBo server behaves like KoBo (../shared/kobo-api.md), checked over real HTTP."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from forms.source import read_source, to_xlsx
from sync.fake.query import QueryError, matches, project, sort_documents
from sync.fake.server import FakeKobo
from tests.conftest import HERE, SHARED

CONFORMANCE = SHARED / "tools" / "kobo_conformance.py"


@pytest.fixture(scope="module")
def kobo():
    with FakeKobo(seed=3) as server:
        xlsx = to_xlsx(read_source(HERE / "forms" / "household.md"))
        task = server.store.import_xlsform(xlsx, "household.xlsx", library=False)
        server.store.import_status(task)
        uid = server.store.import_status(task)["messages"]["created"][0]["uid"]
        server.store.deploy(uid, active=True)
        t0 = dt.datetime(2026, 1, 1)
        for i in range(1234):
            server.store.add_submission(uid, {"household/hh_size": str(i % 9 + 1), "crops": "food water",
                                              "household/members": [{"household/members/member_age": "30"}]},
                                        submission_time=t0 + dt.timedelta(seconds=i // 3))
        server.uid = uid
        yield server


def get(kobo, path, token=True, **params):
    headers = {"Authorization": f"Token {kobo.token}"} if token else {}
    return requests.get(f"{kobo.base_url}{path}", params=params, headers=headers, timeout=30)


@pytest.mark.skipif(not CONFORMANCE.exists(), reason="shared/tools/kobo_conformance.py is not beside the repo")
def test_passes_kobo_conformance_with_more_than_1000_submissions(kobo):
    proc = subprocess.run([sys.executable, str(CONFORMANCE), kobo.base_url, kobo.token, kobo.uid],
                          capture_output=True, text=True, timeout=120)
    assert "FAIL" not in proc.stdout, proc.stdout
    assert proc.returncode == 0 and proc.stdout.strip().endswith("0 failed"), proc.stdout[-500:]


def test_paging_is_drf_limit_offset_with_start(kobo):
    data = f"/api/v2/assets/{kobo.uid}/data/"
    body = get(kobo, data, start=1100, limit=100).json()
    assert body["count"] == 1234 and len(body["results"]) == 100
    nxt, prev = urlsplit(body["next"]), urlsplit(body["previous"])
    assert parse_qsl(nxt.query) == [("limit", "100"), ("start", "1200")]
    assert parse_qsl(prev.query) == [("limit", "100"), ("start", "1000")]
    first = get(kobo, data, start=50, limit=100).json()
    assert parse_qsl(urlsplit(first["previous"]).query) == [("limit", "100")]  # start dropped at <= 0
    last = get(kobo, data, start=1200, limit=100).json()
    assert last["next"] is None and len(last["results"]) == 34
    assert len(get(kobo, data, limit=5000).json()["results"]) == 1000
    for bad in ("0", "-1", "x"):
        r = get(kobo, data, limit=bad)
        assert r.status_code == 400 and r.json() == {"limit": "A positive integer is required"}
    assert get(kobo, data, start="-3").json() == {"start": "A positive integer is required."}
    assert "count" in get(kobo, data, count="1").json()


def test_query_sort_fields(kobo):
    data = f"/api/v2/assets/{kobo.uid}/data/"
    body = get(kobo, data, query='{"household/hh_size": "3"}', sort='{"_id": -1}', fields='["_id"]', limit=3).json()
    assert body["count"] == 137
    ids = [r["_id"] for r in body["results"]]
    assert ids == sorted(ids, reverse=True)
    assert set(body["results"][0]) == {"_id", "_uuid", "meta/rootUuid", "_validation_status"}
    assert get(kobo, data, query='{"household/hh_size": 3}').json()["count"] == 0  # strings, not numbers
    keyset = '{"$or": [{"_submission_time": {"$gt": "2026-01-01T00:00:10"}}, ' \
             '{"_submission_time": "2026-01-01T00:00:10", "_id": {"$gt": 31}}]}'
    assert get(kobo, data, query=keyset).json()["count"] == 1234 - 31
    assert get(kobo, data, sort="{bad").json() == {"sort": "Value must be valid JSON."}


def test_auth_and_error_bodies(kobo):
    data = f"/api/v2/assets/{kobo.uid}/data/"
    r = requests.get(f"{kobo.base_url}{data}", headers={"Authorization": "Token nope"}, timeout=10)
    assert (r.status_code, r.json(), r.headers["WWW-Authenticate"]) == (401, {"detail": "Invalid token."}, "Session")
    assert get(kobo, data, token=False).json() == {"detail": "Not found."}
    assert get(kobo, "/api/v2/assets/aNoSuchAsset000000000000/data/").json() == {
        "detail": "No Asset matches the given query."}
    r = requests.post(f"{kobo.base_url}{data}", headers={"Authorization": f"Token {kobo.token}"}, timeout=10)
    assert r.status_code == 405
    r = requests.get(f"{kobo.base_url}/token/", auth=("amina_demo", "amina-demo"), timeout=10)
    assert r.json() == {"token": kobo.token}


def test_imports_are_asynchronous_and_library_by_default(kobo):
    xlsx = to_xlsx(read_source(HERE / "forms" / "household.md"))
    headers = {"Authorization": f"Token {kobo.token}"}
    r = requests.post(f"{kobo.base_url}/api/v2/imports/", files={"file": ("h.xlsx", xlsx)}, headers=headers,
                      timeout=10)
    assert r.status_code == 201 and r.json()["status"] == "processing"
    url = r.json()["url"]
    assert requests.get(url, headers=headers, timeout=10).json()["status"] == "processing"
    done = requests.get(url, headers=headers, timeout=10).json()
    assert done["status"] == "complete"
    block = done["messages"]["created"][0]["uid"]
    assert get(kobo, f"/api/v2/assets/{block}/").json()["asset_type"] == "block"  # library=false was not sent
    r = requests.post(f"{kobo.base_url}/api/v2/imports/", files={"file": ("x.xlsx", b"not a workbook")},
                      data={"library": "false"}, headers=headers, timeout=10)
    url = r.json()["url"]
    requests.get(url, headers=headers, timeout=10)
    failed = requests.get(url, headers=headers, timeout=10).json()
    assert failed["status"] == "error" and failed["messages"]["error_type"] == "FormBuildError"
    r = requests.post(f"{kobo.base_url}/api/v2/imports/", files={"file": ("h.xlsx", xlsx)}, timeout=10)
    assert r.status_code == 401


def test_deployment_defaults_to_archived_and_redeploy_needs_the_current_version(kobo):
    store = kobo.store
    uid = store.create_asset("Draft", store.asset(kobo.uid).content)
    base = f"{kobo.base_url}/api/v2/assets/{uid}/deployment/"
    headers = {"Authorization": f"Token {kobo.token}"}
    assert get(kobo, f"/api/v2/assets/{uid}/data/").json() == {"detail": "The specified asset has not been deployed"}
    r = requests.post(base, json={}, headers=headers, timeout=10)
    assert r.json()["active"] is False and r.json()["asset"]["deployment_status"] == "archived"
    assert requests.post(base, json={}, headers=headers, timeout=10).status_code == 405
    assert requests.patch(base, json={"active": True, "version_id": "vWrong"}, headers=headers,
                          timeout=10).status_code == 500
    version = store.asset(uid).version_id
    r = requests.patch(base, json={"active": True, "version_id": version}, headers=headers, timeout=10)
    assert r.json()["active"] is True and r.json()["version_id"] == version


def test_edit_delete_and_validation_semantics(kobo):
    store, uid = kobo.store, kobo.uid
    headers = {"Authorization": f"Token {kobo.token}"}
    before = dict(store.submission(uid, 5))
    r = requests.patch(f"{kobo.base_url}/api/v2/assets/{uid}/data/bulk/", headers=headers, timeout=10,
                       json={"payload": {"submission_ids": [5], "data": {"household/hh_size": "8"}}})
    assert r.json()["successes"] == 1
    after = get(kobo, f"/api/v2/assets/{uid}/data/5/").json()
    assert after["_id"] == 5 and after["_uuid"] != before["_uuid"]
    assert after["meta/rootUuid"] == before["meta/rootUuid"] and after["_submission_time"] == before["_submission_time"]
    assert after["meta/deprecatedID"] == before["meta/instanceID"] and after["household/hh_size"] == "8"
    assert get(kobo, f"/api/v2/assets/{uid}/data/{after['meta/rootUuid']}/").json()["_id"] == 5
    r = requests.patch(f"{kobo.base_url}/api/v2/assets/{uid}/data/6/validation_status/", headers=headers,
                       json={"validation_status.uid": "validation_status_on_hold"}, timeout=10)
    assert r.json()["label"] == "On Hold" and isinstance(r.json()["timestamp"], int)
    r = requests.patch(f"{kobo.base_url}/api/v2/assets/{uid}/data/6/validation_status/", headers=headers,
                       json={"validation_status.uid": "maybe"}, timeout=10)
    assert r.status_code == 400 and "Invalid validation status" in r.json()["detail"]
    r = requests.delete(f"{kobo.base_url}/api/v2/assets/{uid}/data/bulk/", headers=headers, timeout=10,
                        json={"payload": {"submission_ids": [7, 999999]}})
    assert r.status_code == 400 and store.submission(uid, 7)
    r = requests.delete(f"{kobo.base_url}/api/v2/assets/{uid}/data/7/", headers=headers, timeout=10)
    assert r.status_code == 204 and get(kobo, f"/api/v2/assets/{uid}/data/7/").status_code == 404
    store.add_submission(uid, {"household/hh_size": "1"})  # keep the count for the other tests honest
    store.delete_submissions(uid, [max(d["_id"] for d in store.submissions(uid))])


def test_matcher_rules():
    doc = {"_id": 12, "a": "3", "tags": ["x", "y"], "_validation_status": {"uid": "validation_status_approved"},
           "rep": [{"rep/age": "34"}, {"rep/age": "6"}]}
    assert matches(doc, {"_id": 12}) and not matches(doc, {"a": 3})
    assert matches(doc, {"a": {"$in": ["3", "4"]}}) and matches(doc, {"a": {"$nin": ["4"]}})
    assert matches(doc, {"b": {"$exists": False}}) and matches(doc, {"a": {"$ne": "4"}})
    assert matches(doc, {"a": {"$regex": "^3$"}}) and matches(doc, {"a": {"$not": {"$gt": "5"}}})
    assert matches(doc, {"tags": {"$all": ["x", "y"]}}) and matches(doc, {"tags": "x"})
    assert matches(doc, {"rep": {"$elemMatch": {"rep/age": "6"}}})
    assert matches(doc, {"_validation_status.uid": "validation_status_approved"})
    assert not matches(doc, {"a.b": "3"}) and not matches(doc, {"_id": {"$where": "1"}})
    assert matches(doc, {"$or": [{"a": "9"}, {"_id": {"$gte": 12}}]})
    with pytest.raises(QueryError) as info:
        matches(doc, {"tags": {"$all": "x"}})
    assert info.value.body == ["$all needs an array"]
    docs = [{"t": "b", "_id": 2}, {"_id": 3}, {"t": "a", "_id": 1}]
    assert [d["_id"] for d in sort_documents(docs, [("t", 1), ("_id", -1)])] == [3, 1, 2]
    assert project({"_id": 1, "_uuid": "u", "q": "x", "_attachments": []}, ["_id"]) == {
        "_id": 1, "_uuid": "u", "_validation_status": {}}
