"""The sweep's questions to KoBo (sync.sweep_kobo) against recorded answers (`responses`): counts that are not
counts, a history refused or garbled, a listing that does not move."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from common.errors import KoboRefused, KoboUnavailable
from sync.client import KoboClient, RetryPolicy
from sync.sweep_kobo import MAX_HISTORY_PAGES, KoboSweepSource
from sync.sweep_source import Denied

BASE = "https://kf.kobotoolbox.org"
UID = "aUid1234567890"
DATA = f"{BASE}/api/v2/assets/{UID}/data/"
HISTORY = f"{BASE}/api/v2/assets/{UID}/history/"
SINCE = dt.datetime(2026, 3, 1, 8, 30)


@pytest.fixture()
def source():
    client = KoboClient(BASE, "0123456789abcdef0123456789abcdef01234567", retry=RetryPolicy(attempts=2),
                        sleep=lambda _s: None)
    return KoboSweepSource(client, UID, page_size=1000)


def page(results, count=None, next_=None):
    return {"count": len(results) if count is None else count, "next": next_, "previous": None, "results": results}


def params(call) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


@responses.activate
@pytest.mark.parametrize("count", ["12", -1, 1.5, True, None, 101, 10**30])
def test_a_count_that_is_not_a_count_of_the_range_is_none(source, count):
    responses.get(DATA, json={"count": count, "next": None, "previous": None, "results": [{"_id": 5}]})
    assert source.count(0, 100) is None


@responses.activate
def test_a_count_is_one_small_request(source):
    responses.get(DATA, json=page([{"_id": 5}], count=100))
    assert source.count(0, 100) == 100
    sent = params(responses.calls[0])
    assert sent["limit"] == "1" and json.loads(sent["fields"]) == ["_id"]
    assert json.loads(sent["query"]) == {"_id": {"$gte": 0, "$lt": 100}}


@responses.activate
def test_a_count_without_its_count_key_is_none(source):
    responses.get(DATA, json={"results": []})
    assert source.count(0, 100) is None and source.count_check(0, 100, 3) is None


@responses.activate
@pytest.mark.parametrize("status", [401, 403])
def test_the_history_refused_is_denied(source, status):
    responses.get(HISTORY, status=status, json={"detail": "You do not have permission to perform this action."})
    with pytest.raises(Denied):
        source.history_since(SINCE)


@responses.activate
def test_a_history_that_is_not_there_is_an_error_not_a_denial(source):
    responses.get(HISTORY, status=404, json={"detail": "Not found."})
    with pytest.raises(KoboRefused) as caught:
        source.history_since(SINCE)
    assert not isinstance(caught.value, Denied) and caught.value.status == 404
    responses.replace(responses.GET, HISTORY, status=503, json={"detail": "down"})
    with pytest.raises(KoboUnavailable):
        source.history_since(SINCE)


@responses.activate
def test_the_history_asks_for_submission_changes_since_a_moment(source):
    responses.get(HISTORY, json=page([]))
    source.history_since(SINCE)
    q = params(responses.calls[0])["q"]
    assert q == ('(action:modify-submission OR action:delete-submission) AND '
                 'date_created__gte:"2026-03-01T08:30:00Z"')


@responses.activate
def test_history_entries_that_are_not_what_they_should_be_are_left_out(source):
    good = {"action": "modify-submission", "metadata": {"submission": {"root_uuid": "uuid:abc", "status": "None"}}}
    gone = {"action": "delete-submission", "metadata": {"submission": {"root_uuid": "def"}}}
    junk = ["x", 3, None, {"action": ["modify-submission"]}, {"action": "modify-submission"},
            {"action": "modify-submission", "metadata": "m"}, {"action": "hack", "metadata": good["metadata"]},
            {"action": "delete-submission", "metadata": {"submission": {"root_uuid": 42}}},
            {"action": "delete-submission", "metadata": {"submission": {"root_uuid": "uuid:"}}},
            {"action": "delete-submission", "metadata": {"submission": {"root_uuid": "a\nb"}}},
            {"action": "delete-submission", "metadata": {"submission": {"root_uuid": "r" * 300}}}]
    responses.get(HISTORY, json=page([good, gone, *junk]))
    history = source.history_since(SINCE)
    assert (history.modified, history.deleted, history.skipped, history.complete) == ({"abc"}, {"def"}, 11, True)


@responses.activate
def test_a_history_that_never_ends_is_read_a_bounded_number_of_pages(source):
    entry = {"action": "delete-submission", "metadata": {"submission": {"root_uuid": "r"}}}
    responses.get(HISTORY, json=page([entry], count=10**6, next_=f"{HISTORY}?start=1"))
    history = source.history_since(SINCE)
    assert len(responses.calls) == MAX_HISTORY_PAGES and not history.complete and history.deleted == {"r"}
    assert [params(c).get("start") for c in responses.calls[:3]] == [None, "1", "2"]


@responses.activate
def test_a_listing_that_does_not_move_forward_stops(source):
    same = page([{"_id": i, "_uuid": f"u{i}"} for i in range(1, 4)], count=10, next_=f"{DATA}?start=3")
    responses.get(DATA, json=same)
    listing = source.listing(0, 100)
    first = next(listing)
    assert [sid for sid, _ in first.entries] == [1, 2, 3] and first.through == 3
    with pytest.raises(KoboUnavailable, match="does not move past submission 3"):
        next(listing)


@responses.activate
def test_listed_items_without_a_usable_id_or_outside_the_range_are_left_out(source):
    items = [{"_id": 5, "_uuid": "a", "_validation_status": {"uid": "validation_status_approved",
                                                              "timestamp": 1741700000}},
             {"_id": "x"}, {"_uuid": "no id"}, "junk", {"_id": 500, "_uuid": "beyond"}, {"_id": -3}]
    responses.get(DATA, json=page(items))
    [listed] = list(source.listing(0, 100))
    assert listed.entries == [(5, ("a", "validation_status_approved", 1741700000))]
    assert listed.unusable == 5 and listed.through is None


@responses.activate
def test_present_is_a_listing_of_the_ids_never_a_count(source):
    responses.get(DATA, json=page([{"_id": 3}, {"_id": 99}, {"_id": "7"}], count=0))
    assert source.present([3, 7, 8]) == {3, 7}
    assert json.loads(params(responses.calls[0])["query"]) == {"_id": {"$in": [3, 7, 8]}}
