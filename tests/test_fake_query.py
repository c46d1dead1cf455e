"""The fake KoBo server's Mongo matcher, index planner, sort and projection (kobo-api.md §1)."""

from __future__ import annotations

import random

import pytest

from fakes.kobo_query import (
    BsonValue,
    Query,
    QueryError,
    matches,
    parse_json,
    parse_sort,
    project,
    sort_documents,
)

DOC = {
    "formhub/uuid": "5f2a4d0e8c3b4e1f9a7d6c5b4a392817",
    "hh/head": "Amina",
    "hh/size": "3",
    "hh/members": [
        {"hh/members/name": "Amina", "hh/members/age": "34",
         "hh/members/visits": [{"hh/members/visits/day": "2026-03-01"}]},
        {"hh/members/name": "Omar", "hh/members/age": "6"},
    ],
    "crops": "maize beans",
    "tags": ["a", "b"],
    "meta/instanceID": "uuid:6b1f0a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
    "_uuid": "6b1f0a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
    "meta/rootUuid": "uuid:6b1f0a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
    "_id": 12,
    "_attachments": [],
    "_submission_time": "2026-03-10T06:20:11",
    "_validation_status": {"timestamp": 1741700000, "uid": "validation_status_approved", "by_whom": "sup",
                           "label": "Approved"},
    "_submitted_by": None,
}


@pytest.mark.parametrize(("query", "expected"), [
    ({}, True),
    ({"hh/head": "Amina"}, True),
    ({"hh/head": "Omar"}, False),
    ({"hh/size": 3}, False),  # answers are strings: a number never equals one
    ({"hh/size": "3", "hh/head": "Amina"}, True),  # several keys: all of them
    ({"missing": None}, True),  # null equals a missing field
    ({"_submitted_by": None}, True),
    ({"tags": "a"}, True),  # an array field matches one of its elements
    ({"tags": ["a", "b"]}, True),
    ({"tags": ["b", "a"]}, False),
])
def test_implicit_equality(query, expected):
    assert matches(DOC, query) is expected


@pytest.mark.parametrize(("query", "expected"), [
    ({"$or": [{"hh/head": "x"}, {"hh/size": "3"}]}, True),
    ({"$or": [{"hh/head": "x"}, {"hh/size": "4"}]}, False),
    ({"$and": [{"hh/head": "Amina"}, {"hh/size": "3"}]}, True),
    ({"$and": [{"hh/head": "Amina"}, {"hh/size": "4"}]}, False),
    ({"hh/size": {"$in": ["1", "3"]}}, True),
    ({"hh/size": {"$in": [3]}}, False),
    ({"hh/size": {"$nin": ["1", "3"]}}, False),
    ({"missing": {"$nin": ["1"]}}, True),
    ({"hh/size": {"$ne": "3"}}, False),
    ({"missing": {"$ne": "3"}}, True),
    ({"hh/size": {"$not": {"$gt": "2"}}}, False),
    ({"hh/size": {"$not": {"$regex": "^9"}}}, True),
    ({"meta/deprecatedID": {"$exists": True}}, False),
    ({"meta/deprecatedID": {"$exists": False}}, True),
    ({"hh/members": {"$exists": True}}, True),
    ({"_submission_time": {"$gt": "2026-03-10T06:20:10"}}, True),  # lexical comparison of the time string
    ({"_submission_time": {"$gte": "2026-03-10T06:20:11"}}, True),
    ({"_submission_time": {"$lt": "2026-03-10T06:20:11"}}, False),
    ({"_submission_time": {"$lte": "2026-03-10T06:20:11", "$gt": "2026"}}, True),
    ({"hh/size": {"$gt": 2}}, False),  # a string never compares with a number, and never raises
    ({"_id": {"$gt": 11, "$lt": 13}}, True),
    ({"crops": {"$regex": "BEANS", "$options": "i"}}, True),
    ({"crops": {"$regex": "BEANS"}}, False),
    ({"crops": {"$regex": r"(^|\s)maize(\s|$)"}}, True),
    ({"tags": {"$all": ["b", "a"]}}, True),
    ({"tags": {"$all": ["a", "c"]}}, False),
    ({"hh/head": {"$all": ["Amina"]}}, True),
    ({"tags": {"$all": []}}, False),
    ({"hh/members": {"$elemMatch": {"hh/members/age": "6"}}}, True),
    ({"hh/members": {"$elemMatch": {"hh/members/age": "6", "hh/members/name": "Amina"}}}, False),
    ({"hh/members": {"$elemMatch": {"hh/members/age": {"$gt": "30"}}}}, True),
    ({"hh/members": {"$elemMatch": {"hh/members/visits": {"$elemMatch": {"hh/members/visits/day": "2026-03-01"}}}}},
     True),
    ({"tags": {"$elemMatch": {"$in": ["b"]}}}, True),
    ({"_validation_status.uid": "validation_status_approved"}, True),
    ({"_validation_status.timestamp": {"$gte": 1741600000}}, True),
    ({"_validation_status.label": {"$in": ["On Hold"]}}, False),
])
def test_operators(query, expected):
    assert matches(DOC, query) is expected


@pytest.mark.parametrize("query", [
    {"$where": "1"},  # a non-whitelisted operator is a (base64-encoded) literal field name: no document has it
    {"$nor": [{"hh/head": "x"}]},
    {"hh.head": "Amina"},  # a dotted key is a literal name too, not a path
    {"hh/members.hh/members/age": "6"},
    {"_id": {"$where": "1"}},  # an object whose first key is not an operator is compared as a whole
    {"hh/size": {"$eq": "3"}},  # $eq is not in KoBo's whitelist
    {"hh/size": {"$size": 1}},
])
def test_keys_kobo_encodes_match_nothing(query):
    assert matches(DOC, query) is False


def test_an_encoded_key_behaves_as_a_missing_field():
    assert matches(DOC, {"a.b": None}) is True  # Mongo: a missing field equals null
    assert matches(DOC, {"$where": {"$exists": False}}) is True
    assert matches({**DOC, "a.b": "x"}, {"a.b": "x"}) is True  # a stored dotted key is encoded the same way


def test_id_given_directly_is_coerced_to_int():
    assert matches(DOC, {"_id": "12"}) is True
    assert Query({"_id": "12"}).spec == {"_id": 12}
    assert matches(DOC, {"$or": [{"_id": "12"}]}) is True  # to_safe_dict walks into $or/$and objects
    assert matches(DOC, {"_id": "x12"}) is False  # not an int: left as it is


def test_id_inside_operators_is_not_coerced():
    assert matches(DOC, {"_id": {"$gt": "11"}}) is False
    assert matches(DOC, {"_id": {"$in": ["12"]}}) is False
    assert matches(DOC, {"_id": {"$in": [12]}}) is True


def test_all_needs_an_array():
    with pytest.raises(QueryError) as err:
        Query({"tags": {"$all": "a"}})
    assert err.value.body == ["$all needs an array"]


@pytest.mark.parametrize("query", [
    {"$gt": 1},  # not a top-level operator
    {"$or": []},
    {"$or": {"a": 1}},
    {"$and": ["x"]},
    {"a": {"$in": "x"}},
    {"a": {"$nin": 1}},
    {"a": {"$regex": 1}},
    {"a": {"$regex": "("}},
    {"a": {"$regex": "a", "$options": "q"}},
    {"a": {"$options": "i"}},
    {"a": {"$not": "x"}},
    {"a": {"$not": {}}},
    {"a": {"$elemMatch": "x"}},
    {"a": {"$gt": 1, "b": 2}},  # an operator object with a plain key
    {"a": {"$or": [{"b": 1}]}},
    {"$expr": {"$gt": ["$a", 1]}},  # whitelisted by KoBo, but this fake does not evaluate expressions
    ["not", "an", "object"],
])
def test_queries_mongo_refuses_are_unsupported(query):
    with pytest.raises(QueryError) as err:
        Query(query)
    assert err.value.body == ["Unsupported query"]


def test_bson_extended_json_never_matches_a_string():
    parsed = parse_json('{"_submission_time": {"$gt": {"$date": "2019-09-01T01:02:03Z"}}}')
    assert isinstance(parsed["_submission_time"]["$gt"], BsonValue)
    assert matches(DOC, parsed) is False
    assert matches(DOC, parse_json('{"_submission_time": {"$gt": "2019-09-01T01:02:03"}}')) is True
    with pytest.raises(ValueError):
        parse_json("{not json")


def test_booleans_are_not_numbers():
    assert matches({"x": True}, {"x": 1}) is False
    assert matches({"x": 1}, {"x": 1.0}) is True
    assert matches({"x": True}, {"x": {"$gte": False}}) is True


# -- the planner: index ranges must select exactly what a scan selects -------------------------------------------


def _docs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    docs, t = [], 0
    for i in range(1, n + 1):
        t += rng.choice([0, 0, 1, 2])  # many submissions share a second
        docs.append({"_id": i * 3, "_submission_time": f"2026-03-01T08:{t // 60:02d}:{t % 60:02d}",
                     "q": str(i % 4)})
    rng.shuffle(docs)
    return docs


def _queries(docs: list[dict]) -> list[dict]:
    times = sorted(d["_submission_time"] for d in docs)
    t, tid = times[len(times) // 2], sorted(d["_id"] for d in docs)[len(docs) // 3]
    keyset = {"$or": [{"_submission_time": {"$gt": t}}, {"_submission_time": t, "_id": {"$gt": tid}}]}
    return [
        {}, {"_id": {"$gt": tid}}, {"_id": {"$gte": tid, "$lt": tid + 30}}, {"_id": {"$in": [tid, 3, 999999, "6"]}},
        {"_id": tid}, {"_id": str(tid)}, {"_id": {"$gt": str(tid)}}, {"_submission_time": t},
        {"_submission_time": {"$gte": t}}, {"_submission_time": {"$lt": t}}, keyset,
        {"$and": [{"_submission_time": {"$gte": times[3]}}, keyset]}, {"$and": [keyset, {"q": "1"}]},
        {"$or": [{"_id": 3}, {"q": "2"}]}, {"_submission_time": {"$gt": 5}}, {"q": {"$in": ["0", "3"]}},
        {"_submission_time": t, "_id": {"$lte": tid}}, {"_id": {"$nin": [3, 6]}},
    ]


@pytest.mark.parametrize("fields", [("_id",), ("_submission_time", "_id")])
def test_index_ranges_select_exactly_what_a_scan_selects(fields):
    docs = _docs(300, seed=5)
    by_id = {d["_id"]: d for d in docs}
    keys = sorted(tuple(d[f] for f in fields) for d in docs)
    for spec in _queries(docs):
        query = Query(spec)
        found = query.candidates(fields, keys)
        picked = [by_id[keys[p][-1]] for p in found.positions()]
        if not found.exact:
            picked = [d for d in picked if query(d)]
        expected = [by_id[k[-1]] for k in keys if query(by_id[k[-1]])]
        assert picked == expected, spec
        if found.exact:
            assert found.size == len(expected)
            assert [keys[p][-1] for p in found.page(2, 5)] == [d["_id"] for d in expected[2:7]]
            assert [keys[p][-1] for p in found.page(1, 4, reverse=True)] == [
                d["_id"] for d in expected[::-1][1:5]]


def test_keyset_and_id_queries_are_exact_ranges():
    keys = [("2026-03-01T08:00:00", 1), ("2026-03-01T08:00:00", 2), ("2026-03-01T08:00:01", 3)]
    keyset = {"$or": [{"_submission_time": {"$gt": "2026-03-01T08:00:00"}},
                      {"_submission_time": "2026-03-01T08:00:00", "_id": {"$gt": 1}}]}
    found = Query(keyset).candidates(("_submission_time", "_id"), keys)
    assert found.exact and found.ranges == [(1, 3)]
    assert Query({"_id": {"$gt": 1}}).candidates(("_id",), [(1,), (2,), (3,)]).ranges == [(1, 3)]


# -- sort and projection -----------------------------------------------------------------------------------------


def test_sort_puts_missing_first_and_keeps_id_order_on_ties():
    docs = [{"_id": 1, "a": "b"}, {"_id": 2}, {"_id": 3, "a": "a"}, {"_id": 4, "a": "b"}, {"_id": 5, "a": None}]
    assert [d["_id"] for d in sort_documents(docs, [("a", 1)])] == [2, 5, 3, 1, 4]
    assert [d["_id"] for d in sort_documents(docs, [("a", -1)])] == [1, 4, 3, 2, 5]
    assert [d["_id"] for d in sort_documents(docs, [("a", -1), ("_id", -1)])] == [4, 1, 3, 5, 2]
    mixed = [{"_id": 1, "a": "1"}, {"_id": 2, "a": 2}, {"_id": 3, "a": {"x": 1}}]
    assert [d["_id"] for d in sort_documents(mixed, [("a", 1)])] == [2, 1, 3]  # numbers, strings, objects


def test_parse_sort():
    assert parse_sort({"_submission_time": 1, "_id": "-1"}) == [("_submission_time", 1), ("_id", -1)]
    for bad in ({"_id": 2}, {"_id": "up"}, ["_id"]):
        with pytest.raises(QueryError):
            parse_sort(bad)


def test_projection_always_adds_uuid_root_uuid_and_an_empty_validation_status():
    out = project(DOC, ["_id"])
    assert out == {"_uuid": DOC["_uuid"], "meta/rootUuid": DOC["meta/rootUuid"], "_id": 12, "_validation_status": {}}
    assert list(out) == ["_uuid", "meta/rootUuid", "_id", "_validation_status"]  # document order


def test_projection_exact_keys_attachments_only_when_asked():
    assert "_attachments" not in project(DOC, ["hh/head"])
    assert project(DOC, ["_attachments"])["_attachments"] == []
    assert project(DOC, ["_validation_status"])["_validation_status"]["uid"] == "validation_status_approved"
    assert "hh/members/name" not in project(DOC, ["hh", "hh/members/name"])  # no children by group or path
    assert project(DOC, ["hh/members"])["hh/members"] == DOC["hh/members"]
    assert "_userform_id" not in project({**DOC, "_userform_id": "x"}, ["_userform_id"])
