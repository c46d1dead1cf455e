"""Classes 7, 11 and 4: the sweep cannot loop or wipe a form; exports and builds never carry a live formula."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from openpyxl import load_workbook

from common.errors import FormBuildError, KoboError
from sync.engine import sync_asset
from tests.hostile.conftest import T0, ids, rows, warehouse
from tests.test_e2e import answers

SWEEP_KEYS = {"_id", "_uuid", "_validation_status", "meta/rootUuid"}


def on_sweep(kobo, change) -> None:
    """Rewrite only the sweep's pages (those that hold nothing but ids, uuids and statuses)."""
    def rewrite(body):
        results = body.get("results") if isinstance(body, dict) else None
        if isinstance(results, list) and results and all(set(d) <= SWEEP_KEYS for d in results):
            return change(body)
        if isinstance(results, list) and not results and "fields" in str(body.get("next") or ""):
            return change(body)
        return body
    kobo.tamper("/data", rewrite)


def synced(kobo, client, uid, tmp_path, n: int = 5):
    for i in range(5, 5 + n - 4):
        kobo.store.add_submission(uid, answers(i), submission_time=T0 + dt.timedelta(minutes=i))
    wh = warehouse(str(tmp_path / "w.db"))
    sync_asset(client, wh, uid)
    return wh


def test_a_sweep_that_never_moves_past_its_first_page_stops(kobo, client, uid, tmp_path):
    wh = synced(kobo, client, uid, tmp_path)
    first = [{k: v for k, v in kobo.store.submission(uid, sid).items() if k in SWEEP_KEYS}
             for sid in sorted(ids(kobo, uid))[:2]]
    on_sweep(kobo, lambda b: {**b, "results": first,  # the first page, whatever the query asks
                              "next": f"{kobo.base_url}/api/v2/assets/{uid}/data/?start=2"})
    with pytest.raises(KoboError, match="does not move past"):
        sync_asset(client, wh, uid, page_size=2)
    assert rows(wh, "sync_runs")[-1]["status"] == "failed"  # recorded, never left running
    wh.dispose()


def test_an_empty_sweep_answer_never_marks_a_small_form_deleted(kobo, client, uid, tmp_path):
    wh = synced(kobo, client, uid, tmp_path)
    kobo.tamper("/data", lambda b: {**b, "count": 0, "next": None, "results": []}
                if isinstance(b, dict) and "fields" not in str(b) else b)
    for fraction in (0.5, 1.0):  # even allowed to delete everything, an empty answer the asset contradicts is refused
        with pytest.raises(KoboError, match="an empty answer is not read as 'all deleted'"):
            sync_asset(client, wh, uid, max_delete_fraction=fraction, overlap=dt.timedelta(0))
    assert all(r["_deleted_at"] is None for r in rows(wh, "household")) and len(rows(wh, "household")) == 5
    wh.dispose()


def test_a_shrinking_answer_is_refused_at_any_size(kobo, client, uid, tmp_path):
    wh = synced(kobo, client, uid, tmp_path)
    keep = sorted(ids(kobo, uid))[0]
    on_sweep(kobo, lambda b: {**b, "count": 1, "next": None, "results": [r for r in b["results"] if r["_id"] == keep]})
    with pytest.raises(KoboError, match="found 4 of 5 stored submissions missing"):
        sync_asset(client, wh, uid, overlap=dt.timedelta(0))
    assert all(r["_deleted_at"] is None for r in rows(wh, "household"))
    wh.dispose()


FORMULAS = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


def test_exports_neutralise_formulas_and_leave_numbers_alone(kobo, client, uid, tmp_path, amina):
    for i in range(10, 10 + len(FORMULAS)):
        kobo.store.add_submission(uid, {**answers(i), "household/members": [
            {"household/members/member_age": "-3", "household/members/member_needs": "food"}],
            "crops": "food", "household/visit_date": "2026-03-10", "household/hh_size": "4"},
            submission_time=T0 + dt.timedelta(hours=i))
        kobo.store.assets[uid].name = "Household"
    db = str(tmp_path / "w.db")
    assert amina("sync", "--server", kobo.base_url, "--asset", uid, "--db", db,
                 env={"KOBO_TOKEN": kobo.token}).returncode == 0
    wh = warehouse(db)
    with wh.engine.begin() as conn:  # answers a form could carry in any text question
        for sid, text in zip(sorted(ids(kobo, uid))[-len(FORMULAS):], FORMULAS, strict=True):
            conn.exec_driver_sql('UPDATE household SET "_submitted_by" = ? WHERE _id = ?', (text, sid))
    wh.dispose()
    out = tmp_path / "export"
    assert amina("export", "household", "--db", db, "--out", str(out)).returncode == 0
    with (out / "household.csv").open(encoding="utf-8-sig", newline="") as f:
        exported = list(csv.DictReader(f))
    values = {r["_submitted_by"] for r in exported}
    assert all(v == "" or v.startswith("'") for v in values if v and v[0] in "=+-@\t\r"), values
    assert {f"'{t}" for t in FORMULAS} <= values
    assert {r["hh_size"] for r in exported} >= {"4"}  # integers as integers, never 4.0, never quoted
    with (out / "household__members.csv").open(encoding="utf-8-sig") as f:
        assert "-3" in {r["member_age"] for r in csv.DictReader(f)}  # a negative number is a number
    assert all("T" in r["_submission_time"] for r in exported)  # ISO 8601
    assert amina("export", "household", "--db", db, "--format", "xlsx", "--out", str(out)).returncode == 0
    sheet = load_workbook(out / "household.xlsx")["submissions"] if "submissions" in load_workbook(
        out / "household.xlsx").sheetnames else load_workbook(out / "household.xlsx").worksheets[0]
    cells = [c for row in sheet.iter_rows() for c in row]
    assert not any(c.data_type == "f" for c in cells)
    texts = {c.value for c in cells if isinstance(c.value, str)}
    assert {t.replace("\r", "\n") for t in FORMULAS} <= texts  # (XML reads a lone CR as a line feed)


def test_a_label_starting_with_equals_is_built_as_text_or_refused(tmp_path):
    from forms.source import read_source, read_xlsx, to_xlsx

    source = tmp_path / "f.md"
    source.write_text("| survey |\n| | type | name | label |\n| | text | q | =1+1 is not a formula |\n"
                      "| settings |\n| | form_id |\n| | f |\n")
    xlsx = to_xlsx(read_source(Path(source)))
    back = read_xlsx(xlsx)
    assert back.sheets["survey"].rows[0].cells["label"] == "=1+1 is not a formula"
    assert FormBuildError  # the refusal path: tests/test_forms_build.py
