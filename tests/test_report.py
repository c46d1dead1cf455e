"""`amina report`: every figure of the written page against SQL on the same warehouse, in three languages, on
SQLite and PostgreSQL; disclosure control with a cell of 3; escaping; and the page in headless Chromium."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import itertools
import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.report_helpers import (
    AR_DIGITS,
    Page,
    chart_records,
    demo_warehouse,
    number,
    read_page,
    small_counts_warehouse,
)
from warehouse.report import ReportOptions, build_report, write_report
from warehouse.report.disclosure import protect
from warehouse.report.model import Category, Cell, Figure, Shown
from warehouse.store import Warehouse

LANGS = ("en", "ar", "ckb")
NONE = "__no_answer__"
_dbs = itertools.count()


def _url(request, tmp_path_factory, backend: str) -> str:
    if backend == "sqlite":
        return str(tmp_path_factory.mktemp("report") / "warehouse.db")
    return request.getfixturevalue("postgres_server").create_database(f"report{next(_dbs)}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo(request, tmp_path_factory) -> Warehouse:
    """The four forms, 400 generated submissions; some screenings reviewed; the awareness form's last sync failed."""
    warehouse = demo_warehouse(_url(request, tmp_path_factory, request.param))
    key, _table = warehouse.find_form("awareness_session")
    run = warehouse.start_run(key, "http://127.0.0.1:1")
    warehouse.finish_run(run, status="failed", error="KoBo answered 503 <three> times")
    yield warehouse
    warehouse.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def small(request, tmp_path_factory) -> Warehouse:
    warehouse = small_counts_warehouse(_url(request, tmp_path_factory, request.param))
    yield warehouse
    warehouse.dispose()


# -- the figures, computed again from SQL over the analysts' views ----------------------------------------------


class Sql:
    def __init__(self, warehouse: Warehouse):
        self.engine = warehouse.engine
        self.pg = warehouse.has_schemas

    def v(self, name: str) -> str:
        return f'analyst."{name}"' if self.pg else f'"{name}"'

    def month(self, col: str) -> str:
        return f"to_char({col}, 'YYYY-MM')" if self.pg else f"substr({col}, 1, 7)"

    def rows(self, sql: str) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]

    def one(self, sql: str) -> dict[str, dict[str, float]]:
        """{row key: {column: value}} from (row, column, value) rows."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for key, col, value in self.rows(sql):
            out[NONE if key is None else str(key)][col] = float(value)
        return dict(out)


def expected_figures(sql: Sql) -> dict[str, dict[str, dict[str, float]]]:
    s, p, k = sql.v("training_attendance_current"), sql.v("training_attendance__participants_current"), \
        sql.v("training_attendance__knowledge_checks_current")
    a = sql.v("awareness_session_current")
    vs, ex = sql.v("vot_screening_current"), sql.v("vot_screening__exploitation_current")
    c, i = sql.v("assistance_referral_current"), sql.v("assistance_referral__assistance_items_current")
    ps = f"{p} p JOIN {s} s ON s._id = p._submission_id"
    out: dict[str, dict[str, dict[str, float]]] = {}
    by_month = sql.one(f"SELECT {sql.month('start_date')}, 'sessions', count(*) FROM {s} GROUP BY 1")
    for key, row in sql.one(f"SELECT {sql.month('s.start_date')}, 'participants', count(*) FROM {ps} "
                            "GROUP BY 1").items():
        by_month.setdefault(key, {}).update(row)
    out["training.by_month"] = by_month
    for fid, col in (("by_sex", "sex"), ("by_organisation_type", "organisation_type"),
                     ("by_work_governorate", "work_governorate"), ("days_attended", "days_attended")):
        out[f"training.{fid}"] = sql.one(f"SELECT p.{col}, 'participants', count(*) FROM {ps} GROUP BY 1")
    items: dict[str, dict[str, float]] = {}
    for item, pre, post in sql.rows(f"SELECT item, avg(pre_score * 1.0), avg(post_score * 1.0) FROM {k} "
                                    "WHERE pre_score IS NOT NULL AND post_score IS NOT NULL GROUP BY item"):
        items[item] = {"pre": float(pre), "post": float(post), "change": float(post) - float(pre)}
    out["training.knowledge_by_item"] = items
    sessions: dict[str, dict[str, float]] = {}
    bins: dict[str, dict[str, float]] = defaultdict(lambda: {"sessions": 0})
    for sid, pre, post in sql.rows(f"SELECT _submission_id, avg(pre_score * 1.0), avg(post_score * 1.0) FROM {k} "
                                   "WHERE pre_score IS NOT NULL AND post_score IS NOT NULL GROUP BY 1"):
        change = float(post) - float(pre)
        sessions[str(sid)] = {"pre": float(pre), "post": float(post), "change": change}
        bins[str(math.floor(change))]["sessions"] += 1
    out["training.sessions"], out["training.change_distribution"] = sessions, dict(bins)

    aw = sql.one(f"SELECT governorate, 'sessions', count(*) FROM {a} GROUP BY 1")
    for key, row in sql.one(f"SELECT governorate, 'attendees', sum(total) FROM {a} GROUP BY 1").items():
        aw[key].update(row)
    out["awareness.by_governorate"] = aw
    am = sql.one(f"SELECT {sql.month('session_date')}, 'sessions', count(*) FROM {a} GROUP BY 1")
    for key, row in sql.one(f"SELECT {sql.month('session_date')}, 'attendees', sum(total) FROM {a} "
                            "GROUP BY 1").items():
        am[key].update(row)
    out["awareness.by_month"] = am
    out["awareness.by_governorate_month"] = sql.one(
        f"SELECT governorate, {sql.month('session_date')}, sum(total) FROM {a} GROUP BY 1, 2")
    sums = sql.rows(f"SELECT sum(women), sum(men), sum(under_18), sum(age_18_59), sum(age_60_plus) FROM {a}")[0]
    sums = [float(x or 0) for x in sums]
    out["awareness.by_sex"] = {"women": {"attendees": sums[0]}, "men": {"attendees": sums[1]}}
    out["awareness.by_age"] = {"under_18": {"attendees": sums[2]}, "age_18_59": {"attendees": sums[3]},
                               "age_60_plus": {"attendees": sums[4]}}

    out["screening.outcome"] = sql.one(f"SELECT presumed_victim, 'screenings', count(*) FROM {vs} GROUP BY 1")
    out["screening.by_month"] = sql.one(f"SELECT {sql.month('today')}, 'screenings', count(*) FROM {vs} GROUP BY 1")
    victims = f"{vs} WHERE presumed_victim = 'yes'"
    for fid, col in (("victims_by_sex", "sex"), ("victims_by_nationality", "nationality"),
                     ("victims_by_referral", "referral")):
        out[f"screening.{fid}"] = sql.one(f"SELECT {col}, 'victims', count(*) FROM {victims} GROUP BY 1")
    ages: dict[str, dict[str, float]] = defaultdict(lambda: {"victims": 0})
    for (age,) in sql.rows(f"SELECT age FROM {victims}"):
        band = NONE if age is None else "0-17" if age < 18 else "18-59" if age < 60 else "60+"
        ages[band]["victims"] += 1
    out["screening.victims_by_age"] = dict(ages)
    out["screening.victims_by_exploitation"] = sql.one(
        f"SELECT b.code, 'victims', count(DISTINCT b._submission_id) FROM {ex} b JOIN {vs} t ON t._id = "
        "b._submission_id WHERE t.presumed_victim = 'yes' GROUP BY 1")
    out["assistance.items_by_type"] = sql.one(f"SELECT assistance_type, 'items', count(*) FROM {i} GROUP BY 1")
    out["assistance.referrals"] = sql.one(f"SELECT referral_partner, follow_up_status, count(*) FROM {c} "
                                          "GROUP BY 1, 2")
    waits: dict[str, dict[str, float]] = defaultdict(lambda: {"cases": 0})
    first: dict[int, Any] = {}
    for cid, day in sql.rows(f"SELECT _submission_id, delivery_date FROM {i}"):
        if day is not None:
            first[cid] = min(str(day), first.get(cid, "9999"))
    for cid, opened in sql.rows(f"SELECT _id, date_opened FROM {c}"):
        if cid not in first:
            waits["none_yet"]["cases"] += 1
            continue
        days = (dt.date.fromisoformat(first[cid][:10]) - dt.date.fromisoformat(str(opened)[:10])).days
        band = "0" if days <= 0 else "1-7" if days <= 7 else "8-30" if days <= 30 else "31-90" if days <= 90 else "91+"
        waits[band]["cases"] += 1
    out["assistance.days_to_first"] = dict(waits)
    return out


PROTECTED = ("screening.", "assistance.")
ADDITIVE_TOTALS = {  # figures with a total row: the total of each column
    "training.by_month", "training.by_sex", "training.by_organisation_type", "training.by_work_governorate",
    "training.days_attended", "training.change_distribution", "awareness.by_governorate", "awareness.by_month",
    "awareness.by_sex", "awareness.by_age", "screening.outcome", "screening.by_month", "screening.victims_by_sex",
    "screening.victims_by_nationality", "screening.victims_by_referral", "screening.victims_by_age",
    "assistance.items_by_type", "assistance.referrals", "assistance.days_to_first"}


def check_cell(text: str, expected: float, *, fid: str, where: str, threshold: int = 5) -> str:
    """Compare one written cell with the SQL value; returns how it was shown."""
    small = f"<{threshold}" if not any(ch in text for ch in AR_DIGITS) else "<" + "".join(
        AR_DIGITS[int(ch)] for ch in str(threshold))
    if text == small:
        assert fid.startswith(PROTECTED), (fid, where, text)
        assert expected < threshold, (fid, where, expected)
        return "small"
    if text == "•":
        assert fid.startswith(PROTECTED), (fid, where)
        return "hidden"
    assert number(text) == pytest.approx(expected, abs=0.051), (fid, where, text, expected)
    if fid.startswith(PROTECTED):
        assert expected >= threshold, (fid, where, expected)
    return "exact"


def compare(page: Page, expected: dict[str, dict[str, dict[str, float]]]) -> int:
    checked = 0
    for fid, want in expected.items():
        table = page.tables[fid]
        keys = set(table.rows)
        assert {k for k, row in want.items() if any(row.values())} <= keys, (fid, set(want) - keys)
        columns = [c for c in table.columns if c != "__total__"]
        for key, (_label, cells) in table.rows.items():
            for col, text in zip(columns, cells, strict=False):
                check_cell(text, want.get(key, {}).get(col, 0), fid=fid, where=f"{key}/{col}")
                checked += 1
        if fid in ADDITIVE_TOTALS:
            assert table.total is not None, fid
            for j, col in enumerate(columns):
                check_cell(table.total[j], sum(row.get(col, 0) for row in want.values()), fid=fid,
                           where=f"total/{col}")
        records = chart_records(page.specs.get(fid, {}))
        for record in records:  # the chart says what the table says, and never a hidden number
            row = next(k for k, (label, _) in table.rows.items() if label == record["row"])
            if record["value"] is None:
                assert fid.startswith(PROTECTED) and (record["text"] == "•" or record["text"].startswith("<"))
            else:
                assert record["value"] == pytest.approx(want.get(row, {}).get(columns[record["c"]], 0), abs=1e-9)
    return checked


@pytest.mark.parametrize("lang", LANGS)
def test_every_figure_matches_sql_on_the_same_warehouse(demo, lang, tmp_path):
    path = write_report(demo, tmp_path / f"report_{lang}.html", ReportOptions(lang=lang))
    page = read_page(path)
    assert page.html["lang"] == lang and page.html["dir"] == ("ltr" if lang == "en" else "rtl")
    expected = expected_figures(Sql(demo))
    assert compare(page, expected) > 300
    sql = Sql(demo)
    sessions, people, days = sql.rows(
        f"SELECT count(DISTINCT s._id), count(p._row_id), sum(p.days_attended) FROM "
        f"{sql.v('training_attendance_current')} s LEFT JOIN {sql.v('training_attendance__participants_current')} p "
        "ON p._submission_id = s._id")[0]
    screenings = sql.rows(f"SELECT count(*) FROM {sql.v('vot_screening_current')}")[0][0]
    headline_numbers = [number(v) for _label, v in page.headlines]
    for value in (sessions, people, days, screenings):
        assert value in headline_numbers
    if lang != "en":  # the language's digits, in tables and chart axes
        assert all(not any(ch.isascii() and ch.isdigit() for ch in text)
                   for _label, cells in page.tables["training.by_work_governorate"].rows.values() for text in cells)
        assert page.specs["training.by_sex"]["config"]["locale"]["number"]["numerals"][1] == "١"


@pytest.mark.parametrize("lang", LANGS)
def test_labels_are_the_forms_own_in_the_language(demo, lang):
    sql = Sql(demo)
    report = build_report(demo, ReportOptions(lang=lang))
    repeat = "c._submission_id = l._submission_id AND c._row_id = l._row_id"
    views = {"training.by_organisation_type": ("training_attendance__participants", "organisation_type", repeat),
             "screening.victims_by_nationality": ("vot_screening", "nationality", "c._id = l._id"),
             "assistance.items_by_type": ("assistance_referral__assistance_items", "assistance_type", repeat)}
    for fid, (table, col, on) in views.items():
        labels = dict(sql.rows(f"SELECT DISTINCT c.{col}, l.{col} FROM {sql.v(table + '_current')} c "
                               f"JOIN {sql.v(table + '_' + lang)} l ON {on}"))
        written = {r.key: r.label for r in report.figure(fid).rows}
        assert labels and all(written[code] == label for code, label in labels.items() if code is not None), fid
    if lang == "ar":
        assert report.figure("training.by_sex").rows[0].label == "أنثى"
        assert "الجنس" in report.figure("training.by_sex").title


def test_small_cells_and_their_complements_are_hidden(small, tmp_path):
    pages = {lang: read_page(write_report(small, tmp_path / f"{lang}.html", ReportOptions(lang=lang)))
             for lang in LANGS}
    sql = Sql(small)
    men, women = (sql.rows(f"SELECT count(*) FROM {sql.v('vot_screening_current')} WHERE presumed_victim = 'yes' "
                           f"AND sex = '{s}'")[0][0] for s in ("male", "female"))
    assert (men, women) == (3, 15)
    for lang, page in pages.items():
        sex = page.tables["screening.victims_by_sex"]
        lt5 = "<5" if lang == "en" else "<٥"
        assert sex.rows["male"][1] == [lt5] and sex.rows["female"][1] == ["•"]
        assert number(sex.total[0]) == 18  # the total stands; neither part can be worked out from it
        records = {r["row"]: r for r in chart_records(page.specs["screening.victims_by_sex"])}
        assert {r["value"] for r in records.values()} == {None}
        assert {r["text"] for r in records.values()} == {lt5, "•"}
        items = page.tables["assistance.items_by_type"]
        assert items.rows["legal"][1] == [lt5] and items.rows["shelter"][1] == ["•"]
        assert number(items.total[0]) == 15
        ages = page.tables["screening.victims_by_age"]  # 0 and 0 beside 18: the zeros would tell themselves
        assert ages.rows["0-17"][1] == [lt5] and ages.rows["60+"][1] == [lt5] and ages.rows["18-59"][1] == ["•"]
        assert len(page.missing) == 2  # the training and awareness forms are not in this warehouse
        compare(page, expected_figures_small(sql))
        rule = build_report(small, ReportOptions(lang=lang)).rule
        assert html_lib.escape(rule, quote=False) in read_text(tmp_path / f"{lang}.html")
    outcome = pages["en"].tables["screening.outcome"]  # 18 yes, 22 no: both shown, the total too
    assert [number(outcome.rows[k][1][0]) for k in ("yes", "no")] == [18, 22]


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def expected_figures_small(sql: Sql) -> dict[str, dict[str, dict[str, float]]]:
    vs, i = sql.v("vot_screening_current"), sql.v("assistance_referral__assistance_items_current")
    return {"screening.victims_by_sex": sql.one(f"SELECT sex, 'victims', count(*) FROM {vs} "
                                                "WHERE presumed_victim = 'yes' GROUP BY 1"),
            "screening.victims_by_nationality": sql.one(f"SELECT nationality, 'victims', count(*) FROM {vs} "
                                                        "WHERE presumed_victim = 'yes' GROUP BY 1"),
            "assistance.items_by_type": sql.one(f"SELECT assistance_type, 'items', count(*) FROM {i} GROUP BY 1")}


def test_a_threshold_of_ten_hides_more(small):
    report = build_report(small, ReportOptions(lang="en", threshold=10))
    sex = report.figure("screening.victims_by_sex")
    shown = {r.key: c[0].shown for r, c in zip(sex.rows, sex.cells, strict=True)}
    assert shown == {"male": Shown.SMALL, "female": Shown.HIDDEN}  # 3 and its complement, as at 5
    assert "10" in report.rule


def test_cross_table_complements_cover_rows_and_columns():
    rows, cols = [Category("a", "A"), Category("b", "B")], [Category("x", "X"), Category("y", "Y")]
    cells = [[Cell(3), Cell(40)], [Cell(30), Cell(50)]]
    figure = Figure("t", "t", "r", rows, cols, cells, protected=True, additive=True,
                    totals=[Cell(33), Cell(90)], row_totals=[Cell(43), Cell(80)], grand_total=Cell(123))
    protect([figure], [], 5)
    hidden = {(i, j) for i in range(2) for j in range(2) if cells[i][j].hidden}
    assert hidden == {(0, 0), (0, 1), (1, 0), (1, 1)} or len(hidden) >= 2
    for total, parts in figure.equations():  # no sum left with hidden parts worth less than the threshold
        secret = [p for p in parts if p.hidden]
        if not total.hidden and secret:
            assert sum(p.value for p in secret) >= 5
        if total.hidden:
            assert secret


def test_freshness_flags_failing_and_stale_syncs(demo, tmp_path):
    page = read_page(write_report(demo, tmp_path / "f.html", ReportOptions(lang="en")))
    rows = page.freshness
    assert rows["awareness_session"]["state_key"] == "failing"
    assert "KoBo answered 503 <three> times" in rows["awareness_session"]["error"]
    assert rows["vot_screening"]["state_key"] == "ok"
    sql = Sql(demo)
    awaiting, rejected = sql.rows(
        f"SELECT sum(CASE WHEN _validation_status IS NULL OR _validation_status = 'validation_status_on_hold' "
        f"THEN 1 ELSE 0 END), sum(CASE WHEN _validation_status = 'validation_status_not_approved' THEN 1 ELSE 0 END) "
        f"FROM {sql.v('vot_screening_current')}")[0]
    stored = sql.rows(f"SELECT count(*) FROM {sql.v('vot_screening_current')}")[0][0]
    assert (number(rows["vot_screening"]["awaiting"]), number(rows["vot_screening"]["rejected"])) == \
        (awaiting, rejected) and rejected == 7
    assert number(rows["vot_screening"]["stored"]) == stored
    stale = read_page(write_report(demo, tmp_path / "s.html", ReportOptions(lang="en", stale_after_hours=1e-9)))
    assert stale.freshness["vot_screening"]["state_key"] == "stale"


def test_a_period_keeps_only_its_days(small):
    report = build_report(small, ReportOptions(lang="en", start=dt.date(2026, 4, 1)))
    sex = report.figure("screening.victims_by_sex")  # only the 15 women screened in April
    assert {r.key: c[0].value for r, c in zip(sex.rows, sex.cells, strict=True)} == {"female": 15, "male": 0}
    assert sex.totals[0].value == 15
    assert report.figure("assistance.items_by_type").totals[0].value == 0


def test_labels_from_the_database_are_escaped(small, tmp_path):
    evil = "</script><script>window.__owned=1</script><b>x</b>"
    with small.engine.begin() as conn:
        conn.execute(sa.text("UPDATE choices SET label = :evil WHERE list_name = 'sex' AND code = 'male'"),
                     {"evil": evil})
    try:
        html = read_text(write_report(small, tmp_path / "evil.html", ReportOptions(lang="ar")))
    finally:
        with small.engine.begin() as conn:
            conn.execute(sa.text("UPDATE choices SET label = 'Male' WHERE list_name = 'sex' AND code = 'male' "
                                 "AND lang = 'en'"))
            conn.execute(sa.text("UPDATE choices SET label = 'ذكر' WHERE list_name = 'sex' AND code = 'male' "
                                 "AND lang = 'ar'"))
            conn.execute(sa.text("UPDATE choices SET label = 'نێر' WHERE list_name = 'sex' AND code = 'male' "
                                 "AND lang = 'ckb'"))
    assert evil not in html and "<b>x</b>" not in html
    assert "&lt;/script&gt;&lt;script&gt;window.__owned=1" in html  # in the table, as text
    assert "\\u003c/script\\u003e\\u003cscript\\u003ewindow.__owned=1" in html  # in the chart's JSON


def test_a_warehouse_without_a_form_gets_a_report_without_its_section(tmp_path):
    warehouse = Warehouse(str(tmp_path / "empty.db"))
    page = read_page(write_report(warehouse, tmp_path / "r.html", ReportOptions(lang="ckb")))
    assert len(page.missing) == 4 and all("vot_screening" in m or "training" in m or "awareness" in m
                                          or "assistance" in m for m in page.missing)
    assert page.freshness == {}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "amina.cli", "report", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_errors_are_one_line_with_their_exit_status(tmp_path):
    bad = cli("--db", str(tmp_path / "none.db"), "--from", "2026-02-30")
    assert bad.returncode == 2 and "--from: '2026-02-30' is not a date" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("--db", str(tmp_path / "none.db")).returncode == 2
    lang = cli("--db", str(tmp_path / "none.db"), "--lang", "fr")
    assert lang.returncode == 2 and "en, ar, ckb" in lang.stderr
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    out = cli("--db", str(broken), "--out", str(tmp_path / "r.html"))
    assert out.returncode == 5 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_the_analyst_role_makes_the_same_report(postgres_server, tmp_path):
    """amina_analyst may read the analyst schema and nothing else (test_warehouse proves the refusals): its
    report, by the API and by the CLI, is the owner's, freshness included."""
    url = postgres_server.create_database(f"report{next(_dbs)}")
    owner = demo_warehouse(url, submissions=100)
    owner.grant_analyst()
    analyst_url = url.replace("//amina@", "//amina_analyst@")
    analyst = Warehouse(analyst_url, create=False)
    try:
        with analyst.engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text('SELECT count(*) FROM public."sync_runs"'))
        mine, theirs = build_report(owner, ReportOptions()), build_report(analyst, ReportOptions())
        assert repr(theirs.sections) == repr(mine.sections)  # cells compare by identity: compare what they hold
        assert theirs.freshness == mine.freshness
        assert len(theirs.freshness) == 4 and any(f.cells for s in theirs.sections for f in s.figures)
        done = cli("--db", analyst_url, "--lang", "ar", "--out", str(tmp_path / "analyst.html"))
        assert done.returncode == 0, done.stderr
        assert len(read_page(tmp_path / "analyst.html").freshness) == 4
    finally:
        analyst.dispose()
        owner.dispose()


# -- the page in a browser -------------------------------------------------------------------------------------

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists() and shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing: scripts/setup installs them")
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600",
                "--hide-scrollbars", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


RENDERED = """
const charts = [...document.querySelectorAll('.chart')];
return charts.map(c => { const svg = c.querySelector('svg');
  return [c.dataset.chart, svg ? svg.querySelectorAll('path, rect, text, line').length : 0,
          svg ? svg.getBoundingClientRect().width : 0]; });
"""


@pytest.mark.parametrize("demo", ["sqlite"], indirect=True)
@pytest.mark.parametrize("lang", LANGS)
def test_the_page_renders_in_headless_chromium(browser, demo, lang, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    path = write_report(demo, tmp_path / f"report_{lang}.html", ReportOptions(lang=lang))
    browser.get_log("browser")  # forget what an earlier page said
    browser.get(path.as_uri())
    expected = len(read_page(path).specs)
    WebDriverWait(browser, 20).until(
        lambda d: sum(1 for _id, marks, _w in d.execute_script(RENDERED) if marks > 0) == expected)
    charts = browser.execute_script(RENDERED)
    assert expected >= 15 and len(charts) == expected
    assert all(marks > 5 and width > 50 for _id, marks, width in charts), charts
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    direction = browser.execute_script("return getComputedStyle(document.body).direction")
    assert direction == ("ltr" if lang == "en" else "rtl")
    assert browser.execute_script("return window.__owned === undefined")
    shots = Path(os.environ.get("AMINA_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / f"report_{lang}.png"))


# -- the config's [report] and the scheduler ---------------------------------------------------------------------


def test_report_config_is_checked_key_by_key(tmp_path):
    from amina.config import parse_config

    base = {"servers": {"kf": {"url": "https://kf.kobotoolbox.org"}}, "assets": [{"uid": "all"}]}
    config = parse_config({**base, "report": {"path": "out/r.html", "lang": "ckb", "threshold": 10}},
                          tmp_path / "amina.toml")
    assert config.report.path == tmp_path.resolve() / "out" / "r.html"
    assert (config.report.lang, config.report.threshold) == ("ckb", 10)
    assert parse_config(base, tmp_path / "amina.toml").report is None
    from common.errors import ConfigError

    for bad, words in (({"paht": "r.html"}, "unknown key 'paht'"), ({"lang": "fr"}, "lang: 'fr'"),
                       ({"threshold": 0}, "threshold: '0'"), ({"threshold": "5"}, "threshold: '5'")):
        with pytest.raises(ConfigError, match=words):
            parse_config({**base, "report": bad}, tmp_path / "amina.toml")


def test_the_scheduler_rewrites_the_report_after_a_sync(server, asset_uid, tmp_path, monkeypatch):
    import scheduler
    from tests.test_e2e import add

    add(server, asset_uid, 1, 5)
    config = tmp_path / "amina.toml"
    config.write_text(f"""
[warehouse]
url = "{tmp_path / 'w.db'}"
[servers.fake]
url = "{server.base_url}"
token_env = "KOBO_TOKEN"
[[assets]]
uid = "{asset_uid}"
schedule = {{ every = "1h" }}
[report]
path = "reports/programme.html"
lang = "ar"
""")
    monkeypatch.setenv("KOBO_TOKEN", server.token)
    monkeypatch.setenv("AMINA_PSEUDONYM_KEY", "scheduler-report-key-0123456789")
    assert scheduler.run_job(str(config), f"sync:fake:{asset_uid}") == "ok"
    page = read_page(tmp_path / "reports" / "programme.html")
    assert page.html["dir"] == "rtl" and len(page.missing) == 4  # a household survey: none of the four forms
    assert number(page.freshness["household"]["stored"]) == 5


def test_a_form_of_another_version_leaves_its_part_out_saying_why(small):
    with small.engine.begin() as conn:
        conn.execute(sa.text("UPDATE fields SET name = 'nationality_v2' WHERE name = 'nationality'"))
    try:
        report = build_report(small, ReportOptions(lang="en"))
    finally:
        with small.engine.begin() as conn:
            conn.execute(sa.text("UPDATE fields SET name = 'nationality' WHERE name = 'nationality_v2'"))
    screening = next(s for s in report.sections if s.id == "screening")
    assert screening.figures == [] and "form vot_screening in the warehouse has no question nationality" in \
        screening.notes[0]
