"""The columnar load path stores exactly what the row path stores, value for value, on both engines.

The same submissions go into two warehouses, one per load path (`Warehouse(load_path="rows" | "columnar")`), with
the clock fixed, and every table of both is compared as the database holds it (tests/crosscheck.py): the demo's
forms (through the fake KoBo server, then edits, double uploads, deletions and bad values), the spec-coverage
corpus (every question type and structure), and hostile pages handed to `load_page` directly.
"""

from __future__ import annotations

import copy
import datetime as dt
from itertools import count

import pytest

from amina.demo import publish_and_fill
from fakes.kobo import FakeKobo
from forms.schema import FormSchema
from sync import engine, sweep
from sync.client import KoboClient
from sync.engine import sync_asset
from tests.conftest import household_submission
from tests.crosscheck import differences, snapshot
from tests.test_corpus import CONTENT, XLSFORMS, _fill, _from_content, _publish, versions_of
from warehouse import store
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse, Watermark

FIXED = dt.datetime(2026, 4, 1, 12, 0, 0, 123456)
KEY = "cross-check-key-0123456789abcdef"
PATHS = ("rows", "columnar")
_databases = count()


@pytest.fixture(params=["sqlite", "postgresql"])
def two_warehouses(request, tmp_path, monkeypatch):
    """An empty warehouse per load path, on one engine, with the clock stopped."""
    for module in (store, engine, sweep):  # every clock a run reads, so both runs write the same times
        monkeypatch.setattr(module, "utcnow", lambda: FIXED)
    if request.param == "sqlite":
        urls = [str(tmp_path / f"{path}.db") for path in PATHS]
    else:
        pg = request.getfixturevalue("postgres_server")
        n = next(_databases)
        urls = [pg.create_database(f"cross_{path}_{n}") for path in PATHS]
    whs = [Warehouse(url, pseudonymizer=Pseudonymizer(KEY), load_path=path) for url, path in zip(urls, PATHS,
                                                                                                  strict=True)]
    yield whs
    for wh in whs:
        wh.dispose()


def assert_same(whs: list[Warehouse]) -> None:
    rows, columnar = (snapshot(wh) for wh in whs)
    assert sum(len(t) - 1 for t in rows.values()) > 0
    assert differences(rows, columnar) == []


def test_demo_data_and_its_changes(two_warehouses):
    with FakeKobo(seed=11) as server:
        forms = publish_and_fill(server, 600, seed=4)
        client = KoboClient(server.base_url, server.token, token_source="the test token")
        try:
            def sync_all() -> None:
                for wh in two_warehouses:
                    for form in forms:
                        report = sync_asset(client, wh, form.asset_uid, page_size=97, sweep_every=1)
                        assert report.status == "ok", report.error

            sync_all()
            assert_same(two_warehouses)
            for form in forms:  # edits (one with values no column can hold), a double upload, deletions
                ids = sorted(server.store.asset(form.asset_uid).submissions)
                integer = next((f.path for f in form.schema.fields if f.kind.value == "integer" and not f.repeat),
                               None)
                server.store.edit_submission(form.asset_uid, ids[0], {integer: "twelve"} if integer else {})
                server.store.edit_submission(form.asset_uid, ids[1], {})
                again = copy.deepcopy(server.store.submission(form.asset_uid, ids[2]))
                answers = {k: v for k, v in again.items() if not k.startswith("_")}
                server.store.add_submission(form.asset_uid, answers)
                server.store.delete_submissions(form.asset_uid, ids[3:5])
            sync_all()
        finally:
            client.close()
    assert_same(two_warehouses)


def test_spec_coverage_corpus(two_warehouses):
    with FakeKobo(seed=7) as server:
        client = KoboClient(server.base_url, server.token, token_source="the test token")
        try:
            uids = []
            for seed, path in enumerate(XLSFORMS, start=1):
                try:
                    uid = _publish(server, client, path)
                except Exception:  # a form KoBo's importer refuses (the corpus has some on purpose)
                    continue
                _fill(server, uid, FormSchema.from_content(server.store.asset(uid).content), seed)
                uids.append(uid)
            for seed, path in enumerate(CONTENT, start=100):
                for index, content in enumerate(versions_of(path)[:1]):
                    uid = _from_content(server, f"{path.stem}-{index}", content)
                    _fill(server, uid, FormSchema.from_content(content), seed)
                    uids.append(uid)
            assert len(uids) >= len(XLSFORMS) - 1 + len(CONTENT)  # all but the one KoBo refuses (loop.md)
            for wh in two_warehouses:
                for uid in uids:
                    report = sync_asset(client, wh, uid, page_size=5)
                    assert report.status == "ok", (uid, report.error)
        finally:
            client.close()
    assert_same(two_warehouses)


def _hostile_pages() -> list[tuple[list, bool]]:
    """Pages with everything the conversion boundary handles (see tests/hostile/): each is stored by both paths."""
    good = [household_submission(i) for i in range(1, 6)]
    odd = household_submission(10)
    odd.update({"household/hh_size": "3.0", "household/income": "1e3", "household/visit_date": "2026-03-10T08:00",
                "start": "2026-03-10T06:12:45Z", "end": "20260310T061245"})
    bad = household_submission(11)
    bad.update({"household/hh_size": "three", "household/visit_date": "10/03/2026", "household/income": "inf",
                "not_in_form": "x", "household/members": "oops", "start": "2026-02-30T10:00:00"})
    typed = household_submission(12)
    typed.update({"household/hh_size": 4, "household/income": 12.5, "household/crops": ["food"],
                  "household/hh_head_name": 7, "_submission_time": 5, "_validation_status": "approved"})
    spaced = household_submission(13)
    spaced.update({"household/crops": "  food\t shelter\u2003water  ", "household/location": "36.1  44.2",
                   "_validation_status": {"uid": "validation_status_approved", "by_whom": "ana", "timestamp": 17e8}})
    far = household_submission(14)
    far.update({"household/hh_size": str(2**63), "household/location": "91 44",
                "_submission_time": "0001-01-01T00:00:00+01:00"})
    duplicate = household_submission(15, **{"meta/instanceID": household_submission(2)["meta/instanceID"]})
    no_number = household_submission(16)
    no_number["_id"] = "sixteen"
    first = [*good, odd, bad, typed, spaced, far, duplicate, household_submission(3, _uuid="later"),
             {"no": "id"}, "not an object", no_number]
    dirty = household_submission(20)
    dirty["household/hh_head_name"] = "nul\x00here"
    dirty["household/members"][0]["household/members/member_name"] = "lone \ud800 surrogate"
    edited = household_submission(1, _uuid="edited-1")
    edited["household/members"] = edited["household/members"][:1]
    deleted_then_back = household_submission(4)
    double = household_submission(21, **{"meta/instanceID": household_submission(1)["meta/instanceID"]})
    return [(first, False), ([dirty, double], True), ([edited, deleted_then_back], False)]


def test_hostile_pages(two_warehouses, household_content):
    for wh in two_warehouses:
        form = wh.register_form(asset_uid="aHouse", server_url="https://kf.example.org", name="Household",
                                schema=FormSchema.from_content(household_content), version_uid="v1",
                                content=household_content)
        for number, (page, dirty) in enumerate(_hostile_pages(), start=1):
            wh.load_page(form, page, Watermark(f"2026-03-1{number}T00:00:00", number), dirty=dirty)
            if number == 2:
                wh.mark_deleted(form, [4, 5])
    assert_same(two_warehouses)
