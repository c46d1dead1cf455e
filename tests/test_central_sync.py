"""ODK Central as a source, end to end over real HTTP: the fake Central (fakes.central, which passes the Central
conformance tool) → sync.central_source → the warehouse, and the same data through the fake KoBo gives the
same tables, value for value."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.errors import KoboRefused
from fakes.central import FakeCentral
from fakes.generator import generate
from fakes.kobo import FakeKobo
from forms.build import compile_source
from forms.schema import FormSchema
from sync.central_client import CentralClient
from sync.central_source import CentralSource
from sync.client import KoboClient
from sync.engine import sync_asset
from sync.kobo_source import KoboSource
from sync.publish import publish_central, publish_xlsform
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]
KEY = "central-pseudonym-key-0123456789"
HOUSEHOLD = ROOT / "tests" / "forms" / "household.md"
SCREENING = ROOT / "forms" / "sources" / "vot_screening.md"
TRAINING = ROOT / "forms" / "sources" / "training_attendance.md"
# columns that say where a row came from, not what was answered: they differ between servers by design
PROVENANCE = {"_id", "_submission_id", "_uuid", "_root_uuid", "_instance_id", "_submission_time", "_submitted_by",
              "_version", "_status", "_validation_status", "_validation_by", "_validation_at", "_synced_at",
              "_duplicate_of", "_deleted_at"}


@pytest.fixture()
def central():
    with FakeCentral(seed=3) as server:
        yield server


def source_of(central: FakeCentral, project: int) -> CentralSource:
    return CentralSource(CentralClient(central.base_url, email=central.email, password=central.password,
                                       token_source="the test login"), project)


def published(central: FakeCentral, path: Path, n: int, seed: int = 1) -> tuple[int, str, FormSchema, list]:
    """A project with the form published through Central's API and `n` generated submissions sent as Collect."""
    project = central.store.create_project("amina")
    compiled = compile_source(path, validate=False, lint=False)
    client = CentralClient(central.base_url, email=central.email, password=central.password)
    form_id = publish_central(client, project.id, compiled.xform).form_id
    client.close()
    schema = FormSchema.from_xform(compiled.xform)
    items = list(generate(schema, n, seed=seed))
    central.store.load(project.id, form_id, items)
    return project.id, form_id, schema, items


def warehouse(url: str) -> Warehouse:
    return Warehouse(url, pseudonymizer=Pseudonymizer(KEY))


def table(wh: Warehouse, name: str) -> list[dict]:
    with wh.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(f'SELECT * FROM "{name}"')).mappings()]


def _text(value: object) -> str:
    """A value as SQLite spells it (PostgreSQL gives datetimes as objects)."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(value)


def answers_of(wh: Warehouse, name: str) -> Counter:
    """The rows of a table without their provenance, as a multiset (order and server ids do not matter)."""
    return Counter(tuple(sorted((k, _text(v)) for k, v in row.items() if k not in PROVENANCE))
                   for row in table(wh, name))


@pytest.mark.parametrize("path", [HOUSEHOLD, SCREENING, TRAINING], ids=["household", "screening", "training"])
def test_the_same_submissions_from_central_and_from_kobo_give_the_same_tables(central, path, warehouse_url,
                                                                               tmp_path):
    project, form_id, _schema, items = published(central, path, 40)
    via_central = warehouse(warehouse_url)
    report = sync_asset(source_of(central, project), via_central, form_id, page_size=15)
    assert report.status == "ok" and report.fetched == 40 and report.bad_values == 0 and report.quarantined == 0
    with FakeKobo(seed=3) as kobo:
        client = KoboClient(kobo.base_url, kobo.token)
        compiled = compile_source(path, validate=False, lint=False)
        uid = publish_xlsform(client, compiled.xlsx, f"{path.stem}.xlsx", poll_seconds=0.01).asset_uid
        kobo.store.add_submissions(uid, items)
        via_kobo = warehouse(str(tmp_path / "kobo.db"))
        assert sync_asset(KoboSource(client), via_kobo, uid).fetched == 40
    tables_central = [t for t, _k, _p in via_central.tables_of(report.key)]
    tables_kobo = [t for _uid, t, _n in via_kobo.row_counts()]
    assert tables_central == tables_kobo  # the same tables, with the same names
    for name in tables_central:
        assert answers_of(via_central, name) == answers_of(via_kobo, name), name
    via_central.dispose()
    via_kobo.dispose()


def test_edits_reviews_deletions_restorations_and_purges_are_found(central, tmp_path):
    project, form_id, _schema, _items = published(central, HOUSEHOLD, 12)
    source = source_of(central, project)
    wh = warehouse(str(tmp_path / "w.db"))
    first = sync_asset(source, wh, form_id, overlap=dt.timedelta(0))
    roots = sorted(s.root_id for s in central.store.form(project, form_id).submissions.values()
                   if s.deleted_at is None)
    central.clock.advance(dt.timedelta(minutes=1)) if hasattr(central, "clock") else None
    central.store.edit(project, form_id, roots[0], {"household/hh_size": "11"})
    central.store.review(project, form_id, roots[1], "approved")
    central.store.delete(project, form_id, roots[2])
    second = sync_asset(source, wh, form_id, overlap=dt.timedelta(0), full_sweep_every=None)
    rows = {r["_root_uuid"]: r for r in table(wh, "household")}
    bare = {r: r.removeprefix("uuid:") for r in roots}
    assert rows[bare[roots[0]]]["hh_size"] == 11 and rows[bare[roots[0]]]["_validation_status"] == "edited"
    assert rows[bare[roots[1]]]["_validation_status"] == "approved"
    assert rows[bare[roots[2]]]["_deleted_at"] is not None
    assert (first.inserted, second.updated, second.deleted) == (12, 2, 1)
    central.store.restore(project, form_id, roots[2])
    central.store.delete(project, form_id, roots[3])
    central.store.purge(force=True)  # soft-deleted → gone without a trace
    third = sync_asset(source, wh, form_id, overlap=dt.timedelta(0), full_sweep_every=dt.timedelta(0))
    rows = {r["_root_uuid"]: r for r in table(wh, "household")}
    assert third.sweep_mode == "full"
    assert rows[bare[roots[2]]]["_deleted_at"] is None  # restored: back in the views
    assert rows[bare[roots[3]]]["_deleted_at"] is not None  # purged: marked deleted, its data kept
    assert sum(r["_deleted_at"] is None for r in rows.values()) == 11
    wh.dispose()


def test_an_unchanged_form_costs_one_not_modified_answer(central, tmp_path):
    project, form_id, _schema, _items = published(central, HOUSEHOLD, 5)
    source = source_of(central, project)
    wh = warehouse(str(tmp_path / "w.db"))
    sync_asset(source, wh, form_id, sweep_every=0)
    sync_asset(source, wh, form_id, sweep_every=0)  # the question now has its watermark: remember its ETag
    before = source.requests_made
    quiet = sync_asset(source, wh, form_id, sweep_every=0)
    assert quiet.fetched == 0 and quiet.status == "ok"
    assert source.requests_made - before == 3  # the form, its XForm, and one 304 for the data
    wh.dispose()


def test_a_review_of_an_old_submission_is_found_when_the_answer_spans_pages(central, tmp_path):
    """Central's ETag hashes only the rows of the page it answers (the newest $top): when the new-data question
    spans several pages (more rows in the overlap than a page holds), a 304 for its first page says nothing of
    the others, so its ETag must not be kept. Found on a real Central, where a bulk review went unseen."""
    project, form_id, _schema, _items = published(central, HOUSEHOLD, 30)
    source = source_of(central, project)
    wh = warehouse(str(tmp_path / "w.db"))
    every_row = dt.timedelta(days=36500)  # the overlap reaches back past every submission: 3 pages of 10
    sync_asset(source, wh, form_id, page_size=10, overlap=every_row, sweep_every=0)
    sync_asset(source, wh, form_id, page_size=10, overlap=every_row, sweep_every=0)
    oldest = min(central.store.form(project, form_id).submissions.values(), key=lambda s: s.created_at)
    central.store.review(project, form_id, oldest.root_id, "approved")
    found = sync_asset(source, wh, form_id, page_size=10, overlap=every_row, sweep_every=0)
    assert found.fetched == 30 and found.updated == 1
    [status] = [r["_validation_status"] for r in table(wh, "household") if r["_root_uuid"] == oldest.root_id
                or r["_instance_id"] == oldest.root_id]
    assert status == "approved"
    wh.dispose()


def test_attachments_are_downloaded_once_with_their_bytes(central, tmp_path):
    """The photos Collect sent with each submission come from Central's attachments endpoint, byte for byte,
    into a folder per asset; a second sync downloads nothing."""
    project, form_id, _schema, items = published(central, HOUSEHOLD, 6)
    sent = {name: data for g in items for name, data in g.attachments.items()}
    assert sent, "the generator gave the household's photos no files"
    source = source_of(central, project)
    wh = warehouse(str(tmp_path / "w.db"))
    files = tmp_path / "files"
    first = sync_asset(source, wh, form_id, attachments_dir=files)
    got = {p.name: p.read_bytes() for p in files.rglob("*") if p.is_file()}
    assert first.attachments == len(sent) and got == sent
    assert all(p.resolve().is_relative_to(files.resolve()) for p in files.rglob("*"))
    assert sync_asset(source, wh, form_id, attachments_dir=files).attachments == 0
    wh.dispose()


def test_a_session_that_expires_is_renewed_and_cookies_are_never_sent(tmp_path):
    with FakeCentral(seed=4, session_lifetime=dt.timedelta(seconds=1)) as central:
        project, form_id, _schema, _items = published(central, HOUSEHOLD, 3)
        source = source_of(central, project)
        wh = warehouse(str(tmp_path / "w.db"))
        sync_asset(source, wh, form_id)
        assert len(source.client._session.cookies) == 0
        central.clock.advance(dt.timedelta(seconds=5)) if hasattr(central, "clock") else __import__("time").sleep(1.2)
        central.store.load(project, form_id, generate(FormSchema.from_xform(
            compile_source(HOUSEHOLD, validate=False, lint=False).xform), 2, seed=9))
        again = sync_asset(source, wh, form_id)
        assert again.status == "ok" and again.inserted == 2
        wh.dispose()


def test_next_links_on_another_domain_are_rebased_on_the_configured_server(tmp_path):
    with FakeCentral(seed=5, domain="https://central.example.org") as central:
        project, form_id, _schema, _items = published(central, HOUSEHOLD, 25)
        wh = warehouse(str(tmp_path / "w.db"))
        report = sync_asset(source_of(central, project), wh, form_id, page_size=10)
        assert report.fetched == 25 and report.pages == 3
        wh.dispose()


def test_a_new_form_version_extends_the_tables(central, tmp_path):
    project, form_id, _schema, _items = published(central, HOUSEHOLD, 4)
    source = source_of(central, project)
    wh = warehouse(str(tmp_path / "w.db"))
    sync_asset(source, wh, form_id)
    compiled = compile_source(HOUSEHOLD, validate=False, lint=False)
    newer = compiled.xform.replace('version="3"', 'version="4"').replace(
        "<crops/>", "<crops/><remarks/>").replace(
        '<bind nodeset="/household/crops"', '<bind nodeset="/household/remarks" type="string"/>'
        '<bind nodeset="/household/crops"')
    assert "<remarks/>" in newer
    client = CentralClient(central.base_url, email=central.email, password=central.password)
    assert publish_central(client, project, newer).redeployed
    client.close()
    central.store.add_answers(project, form_id, {"remarks": "a new question"})
    report = sync_asset(source, wh, form_id)
    assert report.status == "ok" and report.bad_values == 0
    assert {r["remarks"] for r in table(wh, "household")} >= {"a new question"}
    wh.dispose()


def test_an_encrypted_form_is_refused_clearly(central, tmp_path):
    project, form_id, _schema, _items = published(central, HOUSEHOLD, 2)
    central.store.enable_encryption(project, "a passphrase long enough")
    with pytest.raises(KoboRefused, match="uses managed encryption"):
        sync_asset(source_of(central, project), warehouse(str(tmp_path / "w.db")), form_id)


def test_a_next_link_given_twice_stops_the_paging_with_a_clear_error():
    """A server whose nextLinks loop (page 2 links back to page 1's link) is refused, not followed for ever."""
    import responses

    base = "https://central.example.org"
    service = "/v1/projects/1/forms/f.svc/Submissions"
    row = {"__id": "uuid:1", "__system": {"submissionDate": "2026-03-01T00:00:00.000Z"}}
    client = CentralClient(base, token="t" * 64)
    with responses.RequestsMock() as mock:
        looping = {"value": [row], "@odata.nextLink": f"{base}{service}?$skiptoken=a"}
        mock.get(f"{base}{service}", json=looping)
        first = client.odata(service, {"$top": "1"})
        mock.get(f"{base}{service}?$skiptoken=a", json=looping)
        with pytest.raises(KoboRefused, match="nextLink of f it had given before"):
            list(client.pages(first, "f"))
    client.close()
