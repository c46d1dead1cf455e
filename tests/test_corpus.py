"""The spec-coverage corpus (tests/corpus/): every question type, structure and setting of the XLSForm spec
and of KoBo's content format, in forms written for these tests as XLSForms (`xlsform/*.md`) and as KoBo
content (`content/*.json`).

1. Data keys: the schema keys each answer as KoBo's data has it — held against the XForm pyxform compiles
   from the rows KoBo deploys (XLSForms), and against keys written out by hand from KoBo's source (its own
   rank, score and matrix questions, which pyxform does not know).
2. Sync: each form is published through the fake KoBo server (imports API, or content), gets generated
   submissions, is synced over real HTTP into SQLite and PostgreSQL, and every answer is looked up value
   by value where the dictionary says it is (tests/corpus_check.py).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from fakes.generator import generate
from forms.content import kobo_refusals, to_content
from forms.schema import FormSchema, Kind
from forms.source import read_source, to_xlsx
from sync.engine import sync_asset
from sync.publish import publish_xlsform
from tests.corpus_check import Checker
from tests.xform_oracle import compile_deployed, xform_keys
from warehouse.store import Warehouse

CORPUS = Path(__file__).parent / "corpus"
XLSFORMS = sorted((CORPUS / "xlsform").glob("*.md"))
VERSIONS = sorted((CORPUS / "xlsform" / "versions").glob("v*.md"))
CONTENT = sorted((CORPUS / "content").glob("*.json"))
START = dt.date(2026, 1, 5)
PER_FORM = 12


def content_of(path: Path) -> dict:
    return to_content(read_source(path))


def versions_of(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["versions"]


def stored_paths(schema: FormSchema) -> set[str]:
    """Every key the form gives a data node (external instances have none)."""
    return {f.path for f in schema.fields if f.type not in ("xml-external", "csv-external")}


# -- 1. data keys --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [*XLSFORMS, *VERSIONS], ids=lambda p: p.stem)
def test_xlsform_data_keys_are_those_of_pyxforms_xform(path):
    content = content_of(path)
    schema = FormSchema.from_content(content)
    leaves, repeats = xform_keys(compile_deployed(content))
    assert stored_paths(schema) == leaves
    assert {r.path for r in schema.repeats} == repeats


@pytest.mark.parametrize("path", CONTENT, ids=lambda p: p.stem)
def test_kobo_content_data_keys_are_those_of_the_xform_kobo_deploys(path):
    for content in versions_of(path):
        schema = FormSchema.from_content(content)
        leaves, repeats = xform_keys(compile_deployed(content))
        assert stored_paths(schema) == leaves
        assert {r.path for r in schema.repeats} == repeats


KOBO_KEYS = {  # written out from kpi/utils/xlsform_preprocessors/*.py, not computed by our code
    "prio/first", "prio/second", "sat/service", "sat/staff",
    "fields_maize/fields_maize_planted", "fields_maize/fields_maize_hectares",
    "fields_beans/fields_beans_planted", "fields_beans/fields_beans_hectares",
    "water_source_other", "water_uses_other", "legacy_other_other", "visit/stops_count", "visit/stops/stop_name",
}


def test_kobo_content_data_keys_follow_kobo_not_xpath():
    [content] = versions_of(CORPUS / "content" / "kobo_structures.json")
    schema = FormSchema.from_content(content)
    assert set(schema.by_path) >= KOBO_KEYS
    xpaths = {row.get("$xpath") for row in content["survey"]}
    assert "first" in xpaths and "prio/first" not in xpaths  # KoBo's $xpath leaves the rank group out
    assert schema.field("prio/first").choice_list == "needs" and schema.field("prio/first").kind is Kind.SELECT_ONE
    assert schema.field("needs_order").kind is Kind.SELECT_MULTIPLE  # pyxform's rank: codes in rank order
    assert schema.field("village").choice_list == "villages.csv" and "villages.csv" not in schema.choice_lists
    assert [c.code for c in schema.choice_lists["water"].choices] == ["well", "river", "tap", "other"]
    assert schema.field("sat/sat").appearance == "label"  # the score's header: labels only, never answered
    assert schema.repeats_by_path["visit/stops"].count == "2"


def test_kobo_structures_read_the_same_as_content_and_as_xlsform():
    [content] = versions_of(CORPUS / "content" / "kobo_structures.json")
    from_json = FormSchema.from_content(content)
    from_xlsform = FormSchema.from_content(content_of(CORPUS / "xlsform" / "kobo_structures.md"))
    shape = [(f.path, f.type, f.kind, f.repeat, f.choice_list, dict(f.labels)) for f in from_json.fields]
    assert shape == [(f.path, f.type, f.kind, f.repeat, f.choice_list, dict(f.labels)) for f in from_xlsform.fields]
    assert from_json.choice_lists == from_xlsform.choice_lists and from_json.languages == ("en", "kiswahili")


def test_metadata_moves_to_the_top_as_kobo_imports_it():
    schema = FormSchema.from_content(content_of(CORPUS / "xlsform" / "all_types.md"))
    assert {"start", "end", "today", "deviceid", "username", "phonenumber", "start_location"} <= set(schema.by_path)
    assert "device/simserial" in schema.by_path  # not one of KoBo's metadata types: it stays in its group
    assert schema.field("meta/audit").type == "audit"


def test_flat_setting_and_generated_nodes():
    flat = FormSchema.from_content(content_of(CORPUS / "xlsform" / "flat.md"))
    assert [f.path for f in flat.fields] == ["full_name", "years", "street", "owner", "phones_count", "phone",
                                            "seen_on"]
    assert flat.repeats == ()
    spell = FormSchema.from_content(content_of(CORPUS / "xlsform" / "spellings.md"))
    other = spell.field("colour2_other")
    assert other.generated == "or_other of colour2" and other.relevant == "selected(${colour2}, 'other')"
    assert spell.field("Favourite_colour").labels["english"] == "Favourite colour"  # KoBo's name from the label


def test_what_kobos_importer_refuses():
    assert kobo_refusals(content_of(CORPUS / "xlsform" / "loop.md"))[0][0] == "ValueError"
    twice = to_content(read_source_text(
        "| survey |\n| | type | name |\n| | begin_group | a |\n| | text | q |\n| | end_group | |\n"
        "| | begin_group | b |\n| | text | q |\n| | end_group | |\n"))
    assert kobo_refusals(twice) == [("DuplicateNameException", "Duplicate node name: q")]
    assert [f.path for f in FormSchema.from_content(twice).fields] == ["a/q", "b/q_001"]  # as KoBo renames


def read_source_text(text: str):
    from forms.source import read_markdown

    return read_markdown(text)


# -- 2. sync, value by value ---------------------------------------------------------------------------------

def _publish(server, client, path: Path, asset_uid: str | None = None) -> str:
    xlsx = to_xlsx(read_source(path))
    return publish_xlsform(client, xlsx, f"{path.stem}.xlsx", asset_uid=asset_uid, poll_seconds=0.01).asset_uid


def _from_content(server, name: str, content: dict) -> str:
    uid = server.store.create_asset(name, content)
    server.store.deploy(uid, active=True)
    return uid


def _fill(server, uid: str, schema: FormSchema, seed: int, *, version: str | None = None) -> list[tuple[int, dict]]:
    out = []
    first = dt.datetime(2026, 1, 5, 8) + dt.timedelta(hours=seed)
    for i, sub in enumerate(generate(schema, PER_FORM, seed=seed, start_date=START)):
        doc = server.store.add_submission(uid, sub.answers, submitted_by=sub.submitted_by,
                                          submission_time=first + dt.timedelta(minutes=i),
                                          attachments=sub.attachments, version_uid=version)
        out.append((doc["_id"], sub.answers))
    return out


def _no_column(schema: FormSchema) -> set[str]:
    return {f.path for f in schema.fields if not f.stores_data}


def test_corpus_syncs_value_by_value(server, client, warehouse_url):
    wh = Warehouse(warehouse_url)
    problems: list[str] = []
    checked = 0
    pending: list[tuple[str, FormSchema, list[tuple[int, dict]]]] = []

    def sync(uid: str, schema: FormSchema, subs: list[tuple[int, dict]]) -> None:
        nonlocal checked
        report = sync_asset(client, wh, uid)
        assert report.status == "ok", (uid, report.error)
        checker = Checker(wh, uid, _no_column(schema))
        problems.extend(f"{schema.form_id}: {p}" for p in checker.check(subs))
        checked += checker.checked

    for seed, path in enumerate(p for p in XLSFORMS if p.stem != "loop"):  # KoBo refuses loops
        uid = _publish(server, client, path)
        schema = FormSchema.from_content(server.store.asset(uid).content)
        pending.append((uid, schema, _fill(server, uid, schema, seed)))
    for seed, path in enumerate(CONTENT, start=50):
        content = versions_of(path)[0]
        uid = _from_content(server, path.stem, content)
        schema = FormSchema.from_content(content)
        pending.append((uid, schema, _fill(server, uid, schema, seed)))
    for uid, schema, subs in pending:
        sync(uid, schema, subs)
    # KoBo content in several versions: each saved over the last and redeployed, as the form builder does
    for seed, path in enumerate(CONTENT, start=70):
        for later in versions_of(path)[1:]:
            uid = next(u for u, s, _ in pending if s.form_id == FormSchema.from_content(later).form_id)
            server.store.replace_content(uid, later)
            server.store.redeploy(uid, version_id=server.store.asset(uid).version_id)
            schema = FormSchema.from_content(later)
            subs = _fill(server, uid, schema, seed, version=server.store.asset(uid).deployed_version_id)
            sync(uid, schema, subs)
            pending.append((uid, schema, subs))

    # a form that changes: each version published over the last, submissions of each, a sync after each
    uid = None
    for seed, path in enumerate(VERSIONS, start=90):
        uid = _publish(server, client, path, uid)
        asset = server.store.asset(uid)
        schema = FormSchema.from_content(asset.content)
        subs = _fill(server, uid, schema, seed, version=asset.deployed_version_id)
        sync(uid, schema, subs)
        pending.append((uid, schema, subs))
    for uid, schema, subs in pending:  # every version's rows are still where they were
        problems.extend(f"{schema.form_id} (again): {p}" for p in Checker(wh, uid, _no_column(schema)).check(subs))

    assert not problems, "\n".join(problems[:40])
    assert checked > 2000


def test_views_and_dictionary_call_questions_by_their_own_names(server, client, warehouse_url):
    """A question named in Arabic or Kurdish has a stable hashed column; the labelled views call it by its own
    name, and the dictionary gives its name and labels. Labels replace codes (`other` included); a select from
    a file keeps its codes and the dictionary says why."""
    import sqlalchemy as sa

    from warehouse.dictionary import dictionary
    from warehouse.views import view_name

    wh = Warehouse(warehouse_url)
    uid = _publish(server, client, CORPUS / "xlsform" / "non_latin.md")
    schema = FormSchema.from_content(server.store.asset(uid).content)
    subs = _fill(server, uid, schema, 7)
    [kobo] = versions_of(CORPUS / "content" / "kobo_structures.json")
    kobo_uid = _from_content(server, "kobo_structures", kobo)
    server.store.add_submission(kobo_uid, {"water_source": "other", "water_source_other": "rain",
                                           "needs_order": "water health food", "village": "v17"})
    for asset in (uid, kobo_uid):
        assert sync_asset(client, wh, asset).status == "ok"
    entries = {e["path"]: e for e in dictionary(wh) if e["asset_key"] == uid}
    age = entries["العمر"]
    assert age["column_name"].startswith("x_") and age["name"] == "العمر" and age["label_ar"] == "العمر"
    view = view_name("non_latin", "ar")
    prefix = '"analyst".' if wh.engine.dialect.name == "postgresql" else ""
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT * FROM {prefix}"{view}" ORDER BY _id')).mappings().all()
        assert {"الاسم", "العمر", "الخدمات", "شوێن_latitude", "شوێن_precision"} <= set(rows[0])
        first = dict(subs[0][1])
        assert rows[0]["الاسم"] == first.get("الاسم") and str(rows[0]["العمر"]) == first.get("العمر", "None")
        labels = {"صحة": "صحة", "تعليم": "تعليم"}
        assert rows[0]["الخدمات"] == (", ".join(labels[c] for c in first["الخدمات"].split())
                                      if "الخدمات" in first else None)
        kobo_view = prefix + f'"{view_name("kobo_structures", "en")}"'
        [kobo_row] = conn.execute(sa.text(f"SELECT water_source, water_source_other, needs_order, village "
                                          f"FROM {kobo_view}")).all()
    assert tuple(kobo_row) == ("Other", "rain", "Water, Health, Food", "v17")
    kobo_entries = {e["path"]: e for e in dictionary(wh) if e["asset_key"] == kobo_uid}
    assert "no labels" in kobo_entries["village"]["note"] and kobo_entries["village"]["choice_list"] == "villages.csv"
    assert "rank order" in kobo_entries["needs_order"]["note"]
    assert kobo_entries["prio/first"]["label_en"] == "1st need"
