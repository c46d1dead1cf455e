"""The fake KoBo server over real HTTP: paging, errors, auth, imports, deployment, edits, attachments, conformance.

Every expectation comes from /work/shared/kobo-api.md (KoBo's own source, section numbers in the tests).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from fakes.kobo import FakeKobo
from fakes.kobo_store import KoboApiError, KoboStore
from forms.content import to_content
from forms.source import read_markdown, to_xlsx

SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE = SHARED / "tools" / "kobo_conformance.py"

FORM = """
| survey |
| | type | name | label |
| | start | start | |
| | end | end | |
| | begin_group | hh | Household |
| | text | head | Head of household |
| | integer | size | Size |
| | geopoint | gps | Location |
| | begin_repeat | members | Members |
| | text | name | Name |
| | select_multiple needs | needs | Needs |
| | begin_repeat | visits | Visits |
| | date | day | Day |
| | end_repeat | | |
| | end_repeat | | |
| | end_group | | |
| | select_multiple needs | crops | Crops |
| | image | photo | Photo |
| choices |
| | list_name | name | label |
| | needs | food | Food |
| | needs | water | Water |
| settings |
| | form_id | form_title |
| | fake_test | Fake test form |
"""
SOURCE = read_markdown(FORM)
CONTENT = to_content(SOURCE)
T0 = dt.datetime(2026, 3, 1, 8, 0, 0, tzinfo=dt.UTC)
BIG = 1100  # > 1000: the conformance checker then also checks the page-size cap


def answers(i: int) -> dict:
    """A submission's answers exactly as KoBo returns them: flat keys, repeats of full-path dicts, strings."""
    return {
        "start": "2026-03-01T10:00:00.000+03:00", "end": "2026-03-01T10:05:00.000+03:00",
        "hh/head": f"Head {i}", "hh/size": str(1 + i % 5), "hh/gps": f"36.{i:04d} 44.01 410.0 5.0",
        "hh/members": [
            {"hh/members/name": f"Member {i}", "hh/members/needs": "food water",
             "hh/members/visits": [{"hh/members/visits/day": "2026-02-01"}, {"hh/members/visits/day": "2026-02-09"}]},
            {"hh/members/name": f"Child {i}"},
        ],
        "crops": "food", "photo": f"photo_{i}.jpg",
    }


@pytest.fixture(scope="module")
def kobo():
    with FakeKobo(seed=3) as server:
        yield server


@pytest.fixture(scope="module")
def http(kobo):
    session = requests.Session()
    session.headers.update({"Authorization": f"Token {kobo.token}", "Accept": "application/json"})
    yield session
    session.close()


def new_asset(kobo: FakeKobo, n: int, *, same_second: bool = False) -> str:
    uid = kobo.store.create_asset("Fake test form", CONTENT)
    kobo.store.deploy(uid, active=True)
    for i in range(1, n + 1):
        when = T0 + dt.timedelta(seconds=0 if same_second else i // 3)  # three a second: ties on the time
        kobo.store.add_submission(uid, answers(i), submission_time=when, submitted_by="enumerator1",
                                  attachments={f"photo_{i}.jpg": f"JPEG {i}".encode()} if i % 2 else None)
    return uid


@pytest.fixture(scope="module")
def big(kobo) -> str:
    return new_asset(kobo, BIG)


def data_url(kobo: FakeKobo, uid: str, tail: str = "") -> str:
    return f"{kobo.base_url}/api/v2/assets/{uid}/data/{tail}"


def get_data(http, kobo, uid, **params):
    encoded = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()}
    return http.get(data_url(kobo, uid), params=encoded)


# -- the conformance checker (shared/tools) -------------------------------------------------------------------


def test_conformance_checker_passes(kobo, big):
    if not CONFORMANCE.exists():
        pytest.skip(f"{CONFORMANCE} is absent (shared/ is not next to this checkout)")
    proc = subprocess.run([sys.executable, str(CONFORMANCE), kobo.base_url, kobo.token, big],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].endswith(" 0 failed")


# -- records (§2) ------------------------------------------------------------------------------------------------


def test_a_record_has_kobo_system_keys_in_kobo_order(http, kobo, big):
    [doc] = get_data(http, kobo, big, limit=1).json()["results"]
    asset = http.get(f"{kobo.base_url}/api/v2/assets/{big}/").json()
    assert list(doc) == ["formhub/uuid", *answers(1), "__version__", "meta/instanceID", "_xform_id_string", "_uuid",
                         "meta/rootUuid", "_id", "_attachments", "_status", "_geolocation", "_submission_time",
                         "_validation_status", "_submitted_by"]
    assert doc["formhub/uuid"] == asset["deployment__uuid"] and len(doc["formhub/uuid"]) == 32
    assert doc["__version__"] == asset["deployed_version_id"] and doc["_xform_id_string"] == big
    assert doc["meta/instanceID"] == f"uuid:{doc['_uuid']}" == doc["meta/rootUuid"]
    assert doc["_geolocation"] == [36.0001, 44.01]  # the first geopoint outside repeats, as floats
    assert doc["_submission_time"] == "2026-03-01T08:00:00" and doc["_status"] == "submitted_via_web"
    assert doc["hh/members"] == answers(1)["hh/members"] and doc["_validation_status"] == {}
    [photo] = doc["_attachments"]
    url = f"{kobo.base_url}/api/v2/assets/{big}/data/{doc['_id']}/attachments/{photo['uid']}/"
    assert photo == {
        "download_url": url, "mimetype": "image/jpeg",
        "filename": f"amina_demo/attachments/{doc['formhub/uuid']}/{doc['_uuid']}/photo_1.jpg",
        "media_file_basename": "photo_1.jpg", "uid": photo["uid"], "is_deleted": False,
        "download_large_url": f"{url}large/", "download_medium_url": f"{url}medium/",
        "download_small_url": f"{url}small/", "question_xpath": "photo"}
    assert len(photo["uid"]) == 24 and photo["uid"].startswith("att")


def test_answers_are_stored_as_kobo_stores_them(kobo):
    uid = new_asset(kobo, 0)
    doc = kobo.store.add_submission(uid, {"hh/size": 4, "hh/head": "", "crops": None, "hh/members": [],
                                          "meta/instanceID": "uuid:11111111-2222-4333-8444-555555555555"})
    assert doc["hh/size"] == "4"  # XML carries text
    assert "hh/head" not in doc and "crops" not in doc and "hh/members" not in doc  # unanswered: absent
    assert doc["_uuid"] == "11111111-2222-4333-8444-555555555555" and doc["_geolocation"] == [None, None]
    assert doc["_attachments"] == [] and doc["_submitted_by"] is None
    twice = kobo.store.add_submission(uid, {"meta/instanceID": doc["meta/instanceID"]})  # a legacy double upload
    assert twice["_id"] > doc["_id"] and twice["meta/rootUuid"] == doc["meta/rootUuid"]
    assert kobo.store.submission(uid, doc["meta/rootUuid"])["_id"] == doc["_id"]  # the first one answers


def test_a_batch_is_numbered_in_the_order_it_is_received(kobo):
    """KoBo gives `_id` and `_submission_time` when it saves a submission, so they rise together: a batch handed
    over in any order (the generator's is by collection day) gets its ids in order of submission time."""
    from types import SimpleNamespace

    uid = new_asset(kobo, 0)
    offsets = [5, 1, 4, 2, 3, 0]
    items = [SimpleNamespace(answers=answers(i), submission_time=T0 + dt.timedelta(hours=h))
             for i, h in enumerate(offsets, start=1)]
    ids = kobo.store.add_submissions(uid, items)
    docs = [kobo.store.submission(uid, sid) for sid in ids]
    assert [d["hh/head"] for d in docs] == [f"Head {i}" for i in range(1, 7)]  # ids come back in the caller's order
    by_id = sorted(docs, key=lambda d: d["_id"])
    assert [d["_submission_time"] for d in by_id] == sorted(d["_submission_time"] for d in docs)
    assert [by_id.index(d) for d in docs] == offsets


def test_the_same_seed_gives_the_same_uids_and_documents():
    def run() -> tuple[str, dict]:
        store = KoboStore(seed=11)
        uid = store.create_asset("x", CONTENT)
        store.deploy(uid, active=True)
        return uid, store.add_submission(uid, answers(1), submission_time=T0)

    first, second = run(), run()
    assert first == second
    assert first[0].startswith("a") and len(first[0]) == 22
    assert set(first[0][1:]) <= set("23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


# -- paging (§1) -------------------------------------------------------------------------------------------------


def test_default_page_and_next_url(http, kobo, big):
    body = get_data(http, kobo, big).json()
    assert body["count"] == BIG and len(body["results"]) == 100 and body["previous"] is None
    assert [d["_id"] for d in body["results"]] == sorted(d["_id"] for d in body["results"])
    assert body["next"] == f"{data_url(kobo, big)}?limit=100&start=100"


def test_next_and_previous_keep_every_parameter_sorted(http, kobo, big):
    query, sort = {"hh/size": {"$in": ["1", "2"]}}, {"_id": -1}
    body = get_data(http, kobo, big, sort=sort, start=15, query=query, limit=10, format="json").json()
    assert body["count"] == 440
    for link, start in ((body["next"], "25"), (body["previous"], "5")):
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == data_url(kobo, big)
        pairs = parse_qsl(parts.query)
        assert [k for k, _ in pairs] == ["format", "limit", "query", "sort", "start"]
        assert dict(pairs) == {"format": "json", "limit": "10", "query": json.dumps(query),
                               "sort": json.dumps(sort), "start": start}
    first = get_data(http, kobo, big, start=10, limit=10).json()
    assert first["previous"] == f"{data_url(kobo, big)}?limit=10"  # start-limit <= 0: start removed
    assert get_data(http, kobo, big, start=5, limit=10).json()["previous"] == f"{data_url(kobo, big)}?limit=10"


def test_limit_is_capped_and_paging_ends(http, kobo, big):
    capped = get_data(http, kobo, big, limit=5000).json()
    assert len(capped["results"]) == 1000
    assert capped["next"] == f"{data_url(kobo, big)}?limit=1000&start=1000"
    last = get_data(http, kobo, big, limit=1000, start=1000).json()
    assert len(last["results"]) == BIG - 1000 and last["next"] is None
    past = get_data(http, kobo, big, start=BIG + 10).json()
    assert past["results"] == [] and past["next"] is None and past["count"] == BIG
    assert past["previous"] == f"{data_url(kobo, big)}?limit=100&start={BIG + 10 - 100}"


def test_data_json_suffix_and_format(http, kobo, big):
    suffixed = http.get(f"{kobo.base_url}/api/v2/assets/{big}/data.json", params={"limit": 2}).json()
    assert len(suffixed["results"]) == 2
    assert suffixed["next"] == f"{kobo.base_url}/api/v2/assets/{big}/data.json?limit=2&start=2"
    assert http.get(data_url(kobo, big), params={"format": "xml"}).status_code == 404  # no XML renderer here


def test_time_keyset_pages_cover_everything_once(http, kobo, big):
    """The sync's cursor: (`_submission_time`, `_id`) keyset, three submissions a second (§9)."""
    seen, cursor = [], None
    while True:
        query = None if cursor is None else {"$or": [{"_submission_time": {"$gt": cursor[0]}},
                                                     {"_submission_time": cursor[0], "_id": {"$gt": cursor[1]}}]}
        params = {"sort": {"_submission_time": 1, "_id": 1}, "limit": 97, **({"query": query} if query else {})}
        body = get_data(http, kobo, big, **params).json()
        seen += [d["_id"] for d in body["results"]]
        if not body["next"]:
            break
        cursor = (body["results"][-1]["_submission_time"], body["results"][-1]["_id"])
    assert seen == [d["_id"] for d in kobo.store.submissions(big)]


def test_query_sort_and_fields(http, kobo, big):
    body = get_data(http, kobo, big, query={"hh/members": {"$elemMatch": {"hh/members/name": "Member 7"}}},
                    fields=["_id", "hh/head", "_attachments"]).json()
    [doc] = body["results"]
    assert set(doc) == {"_id", "_uuid", "meta/rootUuid", "hh/head", "_attachments", "_validation_status"}
    assert doc["hh/head"] == "Head 7" and body["count"] == 1
    newest = get_data(http, kobo, big, sort={"_id": -1}, limit=3).json()["results"]
    assert [d["_id"] for d in newest] == sorted((d["_id"] for d in kobo.store.submissions(big)), reverse=True)[:3]
    by_head = get_data(http, kobo, big, sort={"hh/head": 1}, limit=3, fields=["hh/head"]).json()["results"]
    assert [d["hh/head"] for d in by_head] == ["Head 1", "Head 10", "Head 100"]
    ids = [d["_id"] for d in kobo.store.submissions(big)[:3]]
    assert get_data(http, kobo, big, query={"_id": str(ids[1])}).json()["count"] == 1  # coerced to int
    assert get_data(http, kobo, big, query={"_id": {"$in": ids}}).json()["count"] == 3
    assert get_data(http, kobo, big, query={"_id": {"$gt": str(ids[0])}}).json()["count"] == 0  # not coerced


@pytest.mark.parametrize(("params", "body"), [
    ({"limit": "0"}, {"limit": "A positive integer is required"}),
    ({"limit": "-5"}, {"limit": "A positive integer is required"}),
    ({"limit": "ten"}, {"limit": "A positive integer is required"}),
    ({"start": "-1"}, {"start": "A positive integer is required."}),
    ({"start": "x"}, {"start": "A positive integer is required."}),
    ({"count": "1"}, {"count": "This param is not implemented. Use `count` property of the response instead."}),
    ({"query": "{not json"}, {"query": "Value must be valid JSON."}),
    ({"sort": "{"}, {"sort": "Value must be valid JSON."}),
    ({"fields": "[_id"}, {"fields": "Value must be valid JSON."}),
    ({"query": '{"crops": {"$all": "food"}}'}, ["$all needs an array"]),
    ({"query": '{"$gt": 1}'}, ["Unsupported query"]),
    ({"query": '{"crops": {"$regex": "("}}'}, ["Unsupported query"]),
])
def test_bad_parameters_are_400_with_kobo_bodies(http, kobo, big, params, body):
    r = http.get(data_url(kobo, big), params=params)
    assert (r.status_code, r.json()) == (400, body)


def test_unknown_operator_matches_nothing(http, kobo, big):
    assert get_data(http, kobo, big, query={"_id": {"$where": "1"}}).json()["count"] == 0
    assert get_data(http, kobo, big, query={"hh.head": "Head 1"}).json()["count"] == 0


# -- auth and errors (§0) ------------------------------------------------------------------------------------


def test_auth_and_not_found_bodies(kobo, big):
    wrong = requests.get(data_url(kobo, big), headers={"Authorization": "Token " + "0" * 40})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid token."})
    assert wrong.headers["WWW-Authenticate"] == "Session"
    anonymous = requests.get(data_url(kobo, big))
    assert (anonymous.status_code, anonymous.json()) == (404, {"detail": "Not found."})
    assert requests.get(f"{kobo.base_url}/api/v2/assets/{big}/").status_code == 404
    token = {"Authorization": f"Token {kobo.token}"}
    unknown = requests.get(f"{kobo.base_url}/api/v2/assets/aNoSuchAsset000000000000/data/", headers=token)
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "No Asset matches the given query."})
    detail = requests.get(f"{kobo.base_url}/api/v2/assets/aNoSuchAsset000000000000/", headers=token)
    assert (detail.status_code, detail.json()) == (404, {"detail": "Not found."})
    post = requests.post(data_url(kobo, big), headers=token)
    assert (post.status_code, post.json()) == (405, {"detail": 'Method "POST" not allowed.'})
    missing = requests.get(data_url(kobo, big, "999999999/"), headers=token)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not found."})


def test_undeployed_asset_data_is_400(http, kobo):
    uid = kobo.store.create_asset("draft", CONTENT)
    r = http.get(data_url(kobo, uid))
    assert (r.status_code, r.json()) == (400, {"detail": "The specified asset has not been deployed"})


def test_token_endpoint(kobo):
    r = requests.get(f"{kobo.base_url}/token/", params={"format": "json"}, auth=("amina_demo", "amina-demo"))
    assert r.status_code == 200 and r.json() == {"token": kobo.token} and len(kobo.token) == 40
    int(kobo.token, 16)
    bad = requests.get(f"{kobo.base_url}/token/", auth=("amina_demo", "nope"))
    assert (bad.status_code, bad.json()) == (401, {"detail": "Invalid username/password."})
    none = requests.get(f"{kobo.base_url}/token/")
    assert (none.status_code, none.json()) == (401, {"detail": "Authentication credentials were not provided."})


def test_asset_list_search_and_paging(http, kobo, big):
    draft = kobo.store.create_asset("a draft", CONTENT)
    url = f"{kobo.base_url}/api/v2/assets/"
    deployed = http.get(url, params={"q": "asset_type:survey AND _deployment_status:deployed"}).json()
    uids = [a["uid"] for a in deployed["results"]]
    assert big in uids and draft not in uids
    assert all(a["deployment_status"] == "deployed" for a in deployed["results"])
    drafts = http.get(url, params={"q": "_deployment_status:draft"}).json()["results"]
    assert draft in [a["uid"] for a in drafts]
    page = http.get(url, params={"limit": 1}).json()
    assert len(page["results"]) == 1 and page["next"].endswith("?limit=1&start=1")
    assert requests.get(url).json()["count"] == 0  # anonymous: no public projects


# -- imports (§6 option A) ---------------------------------------------------------------------------------------


def upload(http, kobo, data: bytes, **fields):
    return http.post(f"{kobo.base_url}/api/v2/imports/", data=fields,
                     files={"file": ("form.xlsx", data, "application/octet-stream")})


def poll(http, kobo, import_uid: str) -> dict:
    return http.get(f"{kobo.base_url}/api/v2/imports/{import_uid}/").json()


def test_import_is_asynchronous_and_a_library_block_by_default(http, kobo):
    r = upload(http, kobo, to_xlsx(SOURCE), name="form.xlsx")
    assert r.status_code == 201
    task = r.json()
    assert task["status"] == "processing" and task["uid"].startswith("i") and len(task["uid"]) == 22
    assert task["url"] == f"{kobo.base_url}/api/v2/imports/{task['uid']}/"
    assert poll(http, kobo, task["uid"])["status"] == "processing"
    done = poll(http, kobo, task["uid"])
    assert done["status"] == "complete"
    [created] = done["messages"]["created"]
    asset = http.get(f"{kobo.base_url}/api/v2/assets/{created['uid']}/").json()
    assert asset["asset_type"] == "block" and asset["name"] == "Fake test form"  # `library` omitted = true
    assert asset["content"]["survey"] == CONTENT["survey"]


def test_import_as_survey_then_into_a_destination(http, kobo):
    task = upload(http, kobo, to_xlsx(SOURCE), library="false").json()
    poll(http, kobo, task["uid"])
    [created] = poll(http, kobo, task["uid"])["messages"]["created"]
    uid = created["uid"]
    asset = http.get(f"{kobo.base_url}/api/v2/assets/{uid}/").json()
    assert asset["asset_type"] == "survey" and asset["has_deployment"] is False
    again = upload(http, kobo, to_xlsx(SOURCE), destination=f"{kobo.base_url}/api/v2/assets/{uid}/").json()
    poll(http, kobo, again["uid"])
    updated = poll(http, kobo, again["uid"])
    assert updated["messages"]["updated"][0]["uid"] == uid
    after = http.get(f"{kobo.base_url}/api/v2/assets/{uid}/").json()
    assert after["version_id"] != asset["version_id"] and after["version_count"] == 2


def test_a_broken_xlsx_import_ends_in_error(http, kobo):
    task = upload(http, kobo, b"this is not a workbook", library="false").json()
    assert poll(http, kobo, task["uid"])["status"] == "processing"
    failed = poll(http, kobo, task["uid"])
    assert failed["status"] == "error"
    assert failed["messages"]["error_type"] == "FormBuildError" and "xlsx" in failed["messages"]["error"]


def test_import_needs_login(kobo):
    r = requests.post(f"{kobo.base_url}/api/v2/imports/", files={"file": ("f.xlsx", b"x")})
    assert (r.status_code, r.json()) == (401, {"detail": "Authentication credentials were not provided."})


# -- deployment (§6) ---------------------------------------------------------------------------------------------


def test_deployment_post_is_archived_by_default_and_patch_rules(http, kobo):
    uid = kobo.store.create_asset("deploy me", CONTENT)
    url = f"{kobo.base_url}/api/v2/assets/{uid}/deployment/"
    assert http.get(url).status_code == 404
    assert http.patch(url, json={"active": True}).status_code == 405  # "Use POST to create a new deployment"
    deployed = http.post(url, json={}).json()
    assert deployed["active"] is False and deployed["backend"] == "openrosa"
    assert deployed["asset"]["deployment_status"] == "archived" and deployed["asset"]["deployment__active"] is False
    again = http.post(url, json={"active": True})
    assert (again.status_code, again.json()) == (405, {"detail": "Use PATCH to update an existing deployment"})
    assert http.patch(url, json={"active": True}).json()["active"] is True  # unarchive
    v1 = deployed["version_id"]
    v2 = kobo.store.replace_content(uid, CONTENT)
    asset = http.get(f"{kobo.base_url}/api/v2/assets/{uid}/").json()
    assert (asset["version_id"], asset["deployed_version_id"]) == (v2, v1)  # undeployed draft changes
    wrong = http.patch(url, json={"active": True, "version_id": v1})
    assert wrong.status_code == 500  # NotImplementedError: only the current version can be deployed
    redeployed = http.patch(url, json={"active": True, "version_id": v2}).json()
    assert redeployed["version_id"] == v2 and redeployed["asset"]["deployed_version_id"] == v2
    versions = http.get(f"{kobo.base_url}/api/v2/assets/{uid}/versions/").json()
    assert [v["uid"] for v in versions["results"]] == [v2, v1]  # newest first
    one = http.get(f"{kobo.base_url}/api/v2/assets/{uid}/versions/{v1}/").json()
    assert one["content"]["survey"] == CONTENT["survey"] and one["date_deployed"]
    assert http.patch(url, json={"active": False}).json()["asset"]["deployment_status"] == "archived"
    with pytest.raises(KoboApiError) as err:  # an archived form refuses submissions
        kobo.store.add_submission(uid, answers(1))
    assert err.value.status == 405


def test_deploying_with_another_version_id_is_500(http, kobo):
    uid = kobo.store.create_asset("x", CONTENT)
    r = http.post(f"{kobo.base_url}/api/v2/assets/{uid}/deployment/", json={"active": True, "version_id": "vX"})
    assert r.status_code == 500


def test_create_asset_with_json_content(http, kobo):
    r = http.post(f"{kobo.base_url}/api/v2/assets/", json={
        "name": "posted", "asset_type": "survey",
        "content": json.dumps({"survey": [{"type": "text", "name": "q", "label": "Q?"}]})})
    assert r.status_code == 201
    content = r.json()["content"]
    assert content["translations"] == [None] and content["survey"][0]["label"] == ["Q?"]


# -- edits, validation statuses, deletes (§3, §4) -------------------------------------------------------------


def test_bulk_edit_keeps_id_root_and_time(http, kobo):
    uid = new_asset(kobo, 3)
    before = kobo.store.submissions(uid)[1]
    r = http.patch(data_url(kobo, uid, "bulk/"), json={"payload": {
        "submission_ids": [before["_id"]], "data": {"hh/head": "New head", "meta/instanceID": "ignored"}}})
    assert r.status_code == 200
    result = r.json()
    assert (result["count"], result["successes"], result["failures"]) == (1, 1, 0)
    after = http.get(data_url(kobo, uid, f"{before['_id']}/")).json()
    assert result["results"][0]["uuid"] == after["_uuid"] != before["_uuid"]
    assert after["hh/head"] == "New head" and after["meta/deprecatedID"] == before["meta/instanceID"]
    for key in ("_id", "meta/rootUuid", "_submission_time", "_submitted_by", "_validation_status", "hh/members"):
        assert after[key] == before[key]
    assert after["_attachments"] == before["_attachments"]
    by_root = http.get(data_url(kobo, uid, f"{before['meta/rootUuid']}/")).json()
    assert by_root["_id"] == before["_id"]
    edited = get_data(http, kobo, uid, query={"meta/deprecatedID": {"$exists": True}}).json()
    assert [d["_id"] for d in edited["results"]] == [before["_id"]]
    again = kobo.store.edit_submission(uid, before["_id"], {"crops": None})
    assert "crops" not in again and again["meta/deprecatedID"] == after["meta/instanceID"]


def test_validation_status_single_and_bulk(http, kobo):
    uid = new_asset(kobo, 4)
    ids = [d["_id"] for d in kobo.store.submissions(uid)]
    url = data_url(kobo, uid, f"{ids[0]}/validation_status/")
    assert http.get(url).json() == {}
    status = http.patch(url, json={"validation_status.uid": "validation_status_approved"}).json()
    assert status["uid"] == "validation_status_approved" and status["label"] == "Approved"
    assert status["by_whom"] == "amina_demo" and isinstance(status["timestamp"], int)
    bad = http.patch(url, json={"validation_status.uid": "nope"})
    assert (bad.status_code, bad.json()) == (400, {"detail": "Invalid validation status: `nope`"})
    found = get_data(http, kobo, uid, query={"_validation_status.uid": "validation_status_approved"}).json()
    assert [d["_id"] for d in found["results"]] == [ids[0]]
    assert get_data(http, kobo, uid, query={"_validation_status.timestamp": {"$gte": status["timestamp"]}}
                    ).json()["count"] == 1
    bulk = http.patch(data_url(kobo, uid, "validation_statuses/"), json={"payload": {
        "submission_ids": ids[1:3], "validation_status.uid": "validation_status_on_hold"}})
    assert bulk.json() == {"detail": "2 submissions have been updated"}
    assert kobo.store.submissions(uid)[2]["_validation_status"]["label"] == "On Hold"
    invalid = http.patch(data_url(kobo, uid, "validation_statuses/"), json={"payload": {
        "submission_ids": [ids[0], 999999], "validation_status.uid": "validation_status_on_hold"}})
    assert (invalid.status_code, invalid.json()) == (400, {"detail": "One or more submission ids are invalid"})
    cleared = http.delete(data_url(kobo, uid, "validation_statuses/"), json={"payload": {"submission_ids": ids[1:3]}})
    assert cleared.status_code == 200 and kobo.store.submissions(uid)[2]["_validation_status"] == {}
    assert http.delete(url).status_code == 204 and http.get(url).json() == {}
    assert kobo.store.submissions(uid)[0]["_uuid"] == kobo.store.submissions(uid)[0]["meta/rootUuid"][5:]


def test_deletes_are_hard(http, kobo):
    uid = new_asset(kobo, 5)
    ids = [d["_id"] for d in kobo.store.submissions(uid)]
    assert http.delete(data_url(kobo, uid, f"{ids[0]}/")).status_code == 204
    assert http.get(data_url(kobo, uid, f"{ids[0]}/")).status_code == 404
    invalid = http.delete(data_url(kobo, uid, "bulk/"), json={"payload": {"submission_ids": [ids[1], ids[0]]}})
    assert (invalid.status_code, invalid.json()) == (400, {"detail": "One or more submission ids are invalid"})
    assert get_data(http, kobo, uid).json()["count"] == 4  # nothing deleted
    unconfirmed = http.delete(data_url(kobo, uid, "bulk/"), json={"payload": {}})
    assert unconfirmed.status_code == 400
    ok = http.delete(data_url(kobo, uid, "bulk/"), json={"payload": {"submission_ids": ids[1:3]}})
    assert ok.json() == {"detail": "2 submissions have been deleted"}
    by_query = http.delete(data_url(kobo, uid, "bulk/"), json={"payload": {"query": {"_id": {"$gt": ids[3]}}}})
    assert by_query.json() == {"detail": "1 submissions have been deleted"}
    assert [d["_id"] for d in get_data(http, kobo, uid).json()["results"]] == [ids[3]]
    asset = http.get(f"{kobo.base_url}/api/v2/assets/{uid}/").json()
    assert asset["deployment__submission_count"] == 1
    newer = kobo.store.add_submission(uid, answers(9))
    assert newer["_id"] > max(ids)  # ids are never reused


# -- injected faults -----------------------------------------------------------------------------------------------


def test_injected_faults_hit_the_next_requests_then_stop(http, kobo, big):
    kobo.inject("429", times=2, retry_after=7)
    for _ in range(2):
        r = get_data(http, kobo, big, limit=1)
        assert (r.status_code, r.headers["Retry-After"]) == (429, "7")
    assert get_data(http, kobo, big, limit=1).status_code == 200
    kobo.inject("truncated")
    with pytest.raises(ValueError):
        get_data(http, kobo, big, limit=5).json()
    kobo.inject("empty")
    empty = get_data(http, kobo, big, limit=5).json()
    assert empty["results"] == [] and empty["count"] == BIG
    kobo.inject("repeat_next")
    assert get_data(http, kobo, big, limit=5, start=5).json()["next"] == f"{data_url(kobo, big)}?limit=5&start=5"
    kobo.inject("503", times=5)
    kobo.clear_faults()
    assert get_data(http, kobo, big, limit=1).status_code == 200
    with pytest.raises(ValueError):
        kobo.inject("teapot")


# -- attachments (§7) --------------------------------------------------------------------------------------------


def test_attachment_download(http, kobo, big):
    docs = kobo.store.submissions(big)
    given, placeholder = docs[0], docs[1]  # bytes given for odd i; none for even i: a placeholder is served
    r = http.get(given["_attachments"][0]["download_url"])
    assert r.status_code == 200 and r.content == b"JPEG 1"
    assert r.headers["Content-Type"] == "image/jpeg"
    assert r.headers["Content-Disposition"] == "inline; filename=photo_1.jpg"
    assert http.get(given["_attachments"][0]["download_small_url"]).content == b"JPEG 1"
    by_root = data_url(kobo, big, f"{given['meta/rootUuid']}/attachments/{given['_attachments'][0]['uid']}/")
    assert http.get(by_root).content == b"JPEG 1"
    other = http.get(placeholder["_attachments"][0]["download_url"])
    assert other.status_code == 200 and b"photo_2.jpg" in other.content
    wrong = data_url(kobo, big, f"{given['_id']}/attachments/{placeholder['_attachments'][0]['uid']}/")
    assert http.get(wrong).status_code == 404  # another submission's file
    assert requests.get(given["_attachments"][0]["download_url"]).status_code == 404  # no token


def test_explicit_attachments_only_for_files_named_in_answers(kobo):
    uid = new_asset(kobo, 0)
    doc = kobo.store.add_submission(uid, answers(1), attachments={"photo_1.jpg": b"a", "unused.jpg": b"b"})
    assert [a["media_file_basename"] for a in doc["_attachments"]] == ["photo_1.jpg"]
    none = kobo.store.add_submission(uid, answers(2), attachments={})
    assert none["_attachments"] == []
