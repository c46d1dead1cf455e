"""KoboClient against recorded KoBo answers (`responses`): errors a data manager can act on, retries."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from common.errors import ConfigError, KoboRefused, KoboUnavailable
from sync.client import KoboClient, RetryPolicy

BASE = "https://kf.kobotoolbox.org"
DATA = f"{BASE}/api/v2/assets/aUid1234567890/data/"
TOKEN = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def sleeps():
    return []


@pytest.fixture()
def client(sleeps):
    return KoboClient(BASE, TOKEN, token_source="the token in KOBO_TOKEN", retry=RetryPolicy(attempts=3),
                      sleep=sleeps.append)


@responses.activate
def test_data_page__sends_token_and_json_params(client):
    responses.get(DATA, json={"count": 1, "next": None, "previous": None, "results": [{"_id": 1}]})
    page = client.data_page("aUid1234567890", query={"_id": {"$gt": 0}}, sort={"_id": 1}, fields=["_id"], limit=1000)
    assert page.count == 1 and page.results == [{"_id": 1}]
    req = responses.calls[0].request
    assert req.headers["Authorization"] == f"Token {TOKEN}"
    params = dict(p.split("=", 1) for p in req.url.split("?")[1].split("&"))
    assert params["limit"] == "1000" and "start" not in params
    assert json.loads(requests.utils.unquote(params["query"])) == {"_id": {"$gt": 0}}


@responses.activate
def test_iter_data_pages__follows_start_offsets(client):
    responses.get(DATA, json={"count": 3, "next": f"{DATA}?limit=2&start=2", "results": [{"_id": 1}, {"_id": 2}]})
    responses.get(DATA, json={"count": 3, "next": None, "results": [{"_id": 3}]})
    ids = [s["_id"] for p in client.iter_data_pages("aUid1234567890", limit=2) for s in p.results]
    assert ids == [1, 2, 3]
    assert "start=2" in responses.calls[1].request.url


@responses.activate
def test_wrong_token__one_actionable_line_without_the_token(client):
    responses.get(DATA, status=401, json={"detail": "Invalid token."})
    with pytest.raises(KoboRefused) as info:
        client.data_page("aUid1234567890")
    msg = str(info.value)
    assert msg.startswith("KoBo answered 401: the token in KOBO_TOKEN was refused by https://kf.kobotoolbox.org")
    assert TOKEN not in msg and info.value.status == 401
    assert len(responses.calls) == 1  # never retried


@responses.activate
def test_unknown_asset__says_so(client):
    responses.get(DATA, status=404, json={"detail": "No Asset matches the given query."})
    with pytest.raises(KoboRefused, match=r"no such asset on https://kf\.kobotoolbox\.org"):
        client.data_page("aUid1234567890")


@responses.activate
def test_bad_query__400_detail_is_shown(client):
    responses.get(DATA, status=400, json={"query": "Value must be valid JSON."})
    with pytest.raises(KoboRefused, match="query: Value must be valid JSON"):
        client.data_page("aUid1234567890", query="{bad")


@responses.activate
def test_transient_errors_are_retried_with_backoff_and_retry_after(client, sleeps):
    responses.get(DATA, status=503)
    responses.get(DATA, status=429, headers={"Retry-After": "7"}, json={"detail": "throttled"})
    responses.get(DATA, json={"count": 0, "next": None, "results": []})
    assert client.data_page("aUid1234567890").count == 0
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and sleeps[1] == 7.0


@responses.activate
def test_gives_up_after_the_bound(client, sleeps):
    responses.get(DATA, status=502)
    with pytest.raises(KoboUnavailable, match="KoBo answered 502, still failing after 3 tries"):
        client.data_page("aUid1234567890")
    assert len(responses.calls) == 3 and len(sleeps) == 2


@responses.activate
def test_not_json__is_an_error_not_zero_submissions(client):
    responses.get(DATA, body="<html>login</html>", content_type="text/html")
    with pytest.raises(KoboUnavailable, match="not JSON"):
        client.data_page("aUid1234567890")


def test_unreachable_server__one_line(sleeps):
    c = KoboClient("http://127.0.0.1:9", TOKEN, retry=RetryPolicy(attempts=2, base_delay=0.01), sleep=sleeps.append)
    with pytest.raises(KoboUnavailable, match=r"cannot connect \(connection refused\)"):
        c.asset("aUid1234567890")


def test_bad_server_url():
    with pytest.raises(ConfigError, match=r"has no scheme: write https://kf\.kobotoolbox\.org"):
        KoboClient("kf.kobotoolbox.org", TOKEN)


def test_repr_hides_token():
    assert TOKEN not in repr(KoboClient(BASE, TOKEN))


@responses.activate
def test_iter_assets__pages(client):
    url = f"{BASE}/api/v2/assets/"
    responses.get(url, json={"count": 2, "next": f"{url}?limit=1&start=1", "results": [{"uid": "a1"}]})
    responses.get(url, json={"count": 2, "next": None, "results": [{"uid": "a2"}]})
    assert [a["uid"] for a in client.iter_assets()] == ["a1", "a2"]
