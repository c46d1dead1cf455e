"""Class 6: personal data never reaches an analyst — not through a redeployed version that drops the mark, not
through a config that marks it late."""

from __future__ import annotations

import copy
import datetime as dt

import sqlalchemy as sa

from sync.engine import sync_asset
from tests.hostile.conftest import T0, rows, warehouse
from tests.hostile.test_names import HOUSEHOLD, deploy
from tests.test_e2e import answers


def analyst_rows(url: str, view: str) -> list[dict]:
    analyst = sa.create_engine(url.replace("//amina@", "//amina_analyst@"))
    with analyst.connect() as conn:
        found = [dict(r) for r in conn.execute(sa.text(f'SELECT * FROM analyst."{view}"')).mappings()]
    analyst.dispose()
    return found


def test_a_version_that_drops_the_mark_keeps_the_question_personal(kobo, client, postgres_server):
    url = postgres_server.create_database("sticky")
    uid = deploy(kobo, "household")
    wh = warehouse(url)
    sync_asset(client, wh, uid)
    wh.grant_analyst()
    unmarked = copy.deepcopy(HOUSEHOLD)
    unmarked["settings"] = {**unmarked["settings"], "form_id": "household", "version": "4"}
    for row in unmarked["survey"]:
        row.pop("amina::sensitive", None)  # version 4 forgets every personal-data mark
    kobo.store.replace_content(uid, unmarked)
    kobo.store.redeploy(uid, version_id=kobo.store.asset(uid).version_id, active=True)
    kobo.store.add_submission(uid, {**answers(8), "household/hh_head_name": "Layla Haddad"},
                              submission_time=T0 + dt.timedelta(hours=1))
    report = sync_asset(client, wh, uid)
    assert report.status == "ok"
    assert any("no longer marks" in n and "household/hh_head_name" in n for n in report.notes)
    seen = analyst_rows(url, "household_en")
    assert len(seen) == 3 and all(r["hh_head_name"].startswith("p_") for r in seen)
    assert "Layla Haddad" not in str(seen) and "Layla Haddad" not in str(analyst_rows(url, "household__members_en"))
    fields = {r["path"]: r for r in analyst_rows(url, "fields")}
    assert fields["household/hh_head_name"]["sensitive"] is True
    assert "Layla Haddad" in {r["value"] for r in rows(wh, "restricted_values", schema="restricted")}
    wh.dispose()


def test_a_question_marked_personal_later_has_its_stored_values_moved_out(kobo, client, warehouse_url):
    uid = deploy(kobo, "household")
    wh = warehouse(warehouse_url)
    sync_asset(client, wh, uid)
    assert {r["income"] for r in rows(wh, "household")} == {350.5}
    report = sync_asset(client, wh, uid, sensitive=("household/income", "household/members/member_age"))
    assert report.status == "ok"
    incomes = {r["income"] for r in rows(wh, "household")}
    assert all(isinstance(v, str) and v.startswith("p_") for v in incomes)
    ages = [r["member_age"] for r in rows(wh, "household__members")]
    assert ages and all(str(v).startswith("p_") for v in ages)
    kept = {(r["path"], r["value"]) for r in rows(wh, "restricted_values", schema="restricted")}
    assert ("household/income", "350.5") in kept and ("household/members/member_age", "34") in kept
    again = sync_asset(client, wh, uid)  # and it stays personal though the next run's config forgets it
    assert again.status == "ok" and all(str(r["income"]).startswith("p_") for r in rows(wh, "household"))
    wh.dispose()
