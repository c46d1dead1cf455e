"""Class 9 and 5: a form's tables and views never take a name another object of the warehouse has or may have,
and label text is never read as SQL or as a bind parameter."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
import sqlalchemy as sa

from forms.content import to_content
from forms.source import read_source
from sync.engine import sync_asset
from tests.hostile.conftest import ROOT, T0, rows, warehouse
from tests.test_e2e import answers

HOUSEHOLD = to_content(read_source(ROOT / "tests" / "forms" / "household.md"))


def deploy(kobo, form_id: str, *, name: str = "A form", change=None) -> str:
    content = copy.deepcopy(HOUSEHOLD)
    content["settings"] = {**content.get("settings", {}), "form_id": form_id}
    if change:
        change(content)
    uid = kobo.store.create_asset(name, content)
    kobo.store.deploy(uid, active=True)
    for i in range(1, 3):
        kobo.store.add_submission(uid, answers(i), submission_time=T0 + dt.timedelta(minutes=i))
    return uid


def objects(wh) -> set[str]:
    with wh.engine.connect() as conn:
        inspector = sa.inspect(conn)
        schemas = [None, "analyst", "restricted"] if wh.has_schemas else [None]
        return {n for s in schemas for n in [*inspector.get_table_names(schema=s), *inspector.get_view_names(schema=s)]}


@pytest.mark.parametrize("form_id", ["sqlite_master", "sqlite_sequence", "amina_schema_version", "apscheduler_jobs",
                                     "forms", "fields", "sync_runs", "quarantine", "submissions_raw", "pg_class"])
def test_a_form_named_like_a_warehouse_object_gets_its_own_name(kobo, client, warehouse_url, form_id):
    uid = deploy(kobo, form_id)
    wh = warehouse(warehouse_url)
    report = sync_asset(client, wh, uid)
    assert report.status == "ok" and report.table != form_id and form_id in report.table  # still findable
    assert len(rows(wh, report.table)) == 2
    assert len(rows(wh, "forms")) == 1 and rows(wh, "sync_runs")[-1]["status"] == "ok"
    wh.dispose()


def test_a_form_named_like_another_forms_repeat_table_or_view(kobo, client, warehouse_url):
    first = deploy(kobo, "household")
    wh = warehouse(warehouse_url)
    sync_asset(client, wh, first)
    taken = objects(wh)
    assert {"household__members", "household_current", "household_en"} <= taken
    for form_id in ("household__members", "household_current", "household_en", "household__members_current"):
        uid = deploy(kobo, form_id)
        report = sync_asset(client, wh, uid)
        assert report.status == "ok" and report.table not in taken, form_id
        taken = objects(wh)
    assert len(rows(wh, "household")) == 2 and len(rows(wh, "household__members")) == 3  # the first form intact
    wh.dispose()


def test_a_new_repeat_never_takes_another_forms_table(kobo, client, tmp_path):
    wh = warehouse(str(tmp_path / "w.db"))
    other = deploy(kobo, "household__extra")  # a form whose table is what the next repeat would be called
    sync_asset(client, wh, other)
    uid = deploy(kobo, "household")
    sync_asset(client, wh, uid)

    def add_repeat(content):
        content["survey"][-1:-1] = [{"type": "begin_repeat", "name": "extra", "label": ["Extra"] * 2},
                                    {"type": "integer", "name": "n", "label": ["N"] * 2},
                                    {"type": "end_repeat"}]
    content = copy.deepcopy(HOUSEHOLD)
    content["settings"] = {**content["settings"], "form_id": "household", "version": "4"}
    add_repeat(content)
    kobo.store.replace_content(uid, content)
    kobo.store.redeploy(uid, version_id=kobo.store.asset(uid).version_id, active=True)
    kobo.store.add_submission(uid, {**answers(7), "extra": [{"extra/n": "5"}]},
                              submission_time=T0 + dt.timedelta(hours=1))
    report = sync_asset(client, wh, uid)
    assert report.status == "ok"
    names = {t for t, _k, _p in wh.tables_of(report.key)}
    assert "household__extra" not in names and any(n.startswith("household__extra_") for n in names)
    assert len(rows(wh, "household__extra")) == 2  # the other form's table untouched
    wh.dispose()


LABELS = ["نوع :العمل", ":word and :other", "50% of %s and %(x)s", "it's a 'quote'", "back\\slash\\",
          "semi; DROP TABLE forms; --", "<script>alert(1)</script>", "?", "$1 $$ $tag$", "\x00null"]


@pytest.mark.parametrize("label", LABELS)
def test_a_label_is_never_read_as_sql(kobo, client, warehouse_url, label):
    def relabel(content):
        for choice in content["choices"]:
            choice["label"] = [label, label]
        for row in content["survey"]:
            if row.get("label"):
                row["label"] = [label, label]
    uid = deploy(kobo, "household", change=relabel)
    wh = warehouse(warehouse_url)
    report = sync_asset(client, wh, uid)
    assert report.status == "ok"
    shown = label.replace("\x00", "\ufffd")
    visits = rows(wh, "household__visits_en", "1", schema="analyst")
    assert visits and all(v["vaccinated"] in (None, shown) for v in visits)
    assert {r["label"] for r in rows(wh, "choices")} == {shown}
    assert len(rows(wh, "forms")) == 1
    wh.dispose()
