"""The warehouse, fed directly (no HTTP): tables from the schema, flattening, upserts, bad values."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from tests.conftest import household_submission
from warehouse import bookkeeping as bk
from warehouse.manifest import StoredForm
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse, Watermark

KEY = "test-pseudonym-key-0123456789"


@pytest.fixture()
def warehouse(warehouse_url):
    wh = Warehouse(warehouse_url, pseudonymizer=Pseudonymizer(KEY))
    yield wh
    wh.dispose()


@pytest.fixture()
def form(warehouse, household_schema, household_content):
    return warehouse.register_form(asset_uid="aHouse", server_url="http://kobo.test", name="Household survey",
                                   schema=household_schema, version_uid="v1", content=household_content)


def rows(warehouse, table, order="1"):
    schema = {"restricted_values": "restricted", "submissions_raw": "restricted"}.get(table)
    if table.endswith(("_current", "_en", "_ar")):
        schema = "analyst"
    name = f'"{schema}"."{table}"' if schema and warehouse.has_schemas else f'"{table}"'
    with warehouse.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY {order}"))]


def test_one_submission_fills_every_table(warehouse, form):
    result = warehouse.load_page(form, [household_submission(7)], Watermark("2026-03-10T06:20:11", 7))
    assert (result.inserted, result.updated, result.bad_values) == (1, 0, 0)
    [root] = rows(warehouse, "household")
    assert root["_id"] == 7 and root["hh_size"] == 2 and root["income"] == 350.5
    assert root["hh_head_name"] == Pseudonymizer(KEY).pseudonym("أمينة يوسف")  # personal data: a pseudonym
    assert (root["location_latitude"], root["location_longitude"], root["location_precision"]) == (36.2, 44.0, None)
    assert str(root["visit_date"]) == "2026-03-10"
    assert str(root["start"]) == "2026-03-10 06:12:45.123000"  # UTC
    assert root["_root_uuid"] == "00000000-0000-4000-8000-000000000007"
    members = rows(warehouse, "household__members", "_row_id")
    assert [(m["_row_id"], m["_position"], m["member_age"]) for m in members] == [("1", 1, 34), ("2", 2, 6)]
    assert members[0]["member_name"] == Pseudonymizer(KEY).pseudonym("amina ")  # normalized: case, spaces
    visits = rows(warehouse, "household__visits", "_row_id")
    assert [(v["_row_id"], v["_parent_row_id"], v["vaccinated"]) for v in visits] == [
        ("1.1", "1", "yes"), ("1.2", "1", None)]
    needs = rows(warehouse, "household__member_needs", "_position")
    assert [(n["_parent_row_id"], n["code"]) for n in needs] == [("1", "food"), ("1", "water")]
    crops = rows(warehouse, "household__crops", "_position")
    assert [(c["_parent_row_id"], c["code"]) for c in crops] == [(None, "food"), (None, "shelter")]
    assert rows(warehouse, "attachments")[0]["question_xpath"] == "photo"
    assert warehouse.watermark("aHouse") == Watermark("2026-03-10T06:20:11", 7)


def test_reloading_is_idempotent_and_an_edit_replaces_child_rows(warehouse, form):
    warehouse.load_page(form, [household_submission(1), household_submission(2)], None)
    again = warehouse.load_page(form, [household_submission(1), household_submission(2)], None)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    edited = household_submission(1, _uuid="new-uuid")
    edited["household/members"] = edited["household/members"][:1]
    result = warehouse.load_page(form, [edited], None)
    assert (result.inserted, result.updated) == (0, 1)
    assert len(rows(warehouse, "household")) == 2
    assert [m["_submission_id"] for m in rows(warehouse, "household__members", "_submission_id")] == [1, 2, 2]
    assert rows(warehouse, "submissions_raw", "submission_id")[0]["uuid"] == "new-uuid"


def test_bad_values_are_kept_raw_and_counted(warehouse, form):
    bad = household_submission(3)
    bad["household/hh_size"] = "three"
    bad["household/visit_date"] = "10/03/2026"
    bad["household/income"] = "a lot"
    bad["not_in_form"] = "x"
    bad["household/members"] = "oops"
    result = warehouse.load_page(form, [bad], None)
    assert result.inserted == 1 and result.bad_values == 5
    [root] = rows(warehouse, "household")
    assert root["hh_size"] is None and root["visit_date"] is None and root["income"] is None
    assert "hh_size" in root["_issues"] and "not_in_form" in root["_issues"]
    [raw] = rows(warehouse, "submissions_raw")
    assert '"three"' in raw["json"] and "a lot" in raw["json"]


def test_missing_group_and_empty_answers_are_null(warehouse, form):
    sub = {k: v for k, v in household_submission(4).items() if not k.startswith("household/")}
    result = warehouse.load_page(form, [sub], None)
    assert result.bad_values == 0
    [root] = rows(warehouse, "household")
    assert root["hh_size"] is None and root["hh_head_name"] is None
    assert rows(warehouse, "household__members") == []


def test_validation_status_is_stored(warehouse, form):
    sub = household_submission(5, _validation_status={"timestamp": 1741700000, "uid": "validation_status_approved",
                                                       "by_whom": "supervisor1", "label": "Approved"})
    warehouse.load_page(form, [sub], None)
    [root] = rows(warehouse, "household")
    assert root["_validation_status"] == "validation_status_approved" and root["_validation_by"] == "supervisor1"
    assert root["_validation_at"] is not None


def test_dictionary_tables(warehouse, form):
    fields = {(r["path"], r["part"]): r for r in rows(warehouse, "fields")}
    assert fields[("household/hh_size", "")]["column_name"] == "hh_size"
    assert fields[("household/hh_size", "")]["table_name"] == "household"
    assert fields[("household/location", "latitude")]["column_name"] == "location_latitude"
    assert fields[("crops", "")]["bridge_table"] == "household__crops"
    assert fields[("household/hh_head_name", "")]["sensitive"] in (1, True)
    labels = {(r["path"], r["lang"]): r["label"] for r in rows(warehouse, "field_labels")}
    assert labels[("household/members", "ar")] == "الأفراد"
    choices = {(r["list_name"], r["code"], r["lang"]): r["label"] for r in rows(warehouse, "choices")}
    assert choices[("needs", "water", "ar")] == "ماء"
    [f] = rows(warehouse, "forms")
    assert f["table_name"] == "household" and f["languages"] == "en ar"


def test_registering_twice_keeps_data_and_adds_new_columns(warehouse, form, household_content):
    from forms.schema import FormSchema

    warehouse.load_page(form, [household_submission(1)], None)
    content = dict(household_content)
    content["survey"] = [*household_content["survey"],
                         {"type": "integer", "name": "extra", "$autoname": "extra", "$xpath": "extra",
                          "label": ["Extra", "إضافي"]}]
    form2 = warehouse.register_form(asset_uid="aHouse", server_url="http://kobo.test", name="Household survey",
                                    schema=FormSchema.from_content(content), version_uid="v2", content=content)
    warehouse.load_page(form2, [household_submission(2, extra="9")], None)
    got = {r["_id"]: r for r in rows(warehouse, "household")}
    assert got[1]["hh_size"] == 2 and got[1]["extra"] is None and got[2]["extra"] == 9
    assert {r["version_uid"] for r in rows(warehouse, "form_versions")} == {"v1", "v2"}
    if warehouse.has_schemas:  # the added column carries its question, like the others
        with warehouse.engine.connect() as conn:
            comment = conn.execute(sa.text("SELECT col_description('household'::regclass, attnum) FROM pg_attribute "
                                           "WHERE attrelid = 'household'::regclass AND attname = 'extra'")).scalar()
        assert comment == "extra: Extra"


def test_two_assets_with_the_same_form_id_get_distinct_tables(warehouse, form, household_schema,
                                                                  household_content):
    other = warehouse.register_form(asset_uid="aOther", server_url="http://kobo.test", name="Household 2",
                                    schema=household_schema, version_uid="v1", content=household_content)
    assert other.tables.base != "household" and other.tables.base.startswith("household_")


def test_runs_are_recorded(warehouse):
    run = warehouse.start_run("aHouse", "http://kobo.test")
    warehouse.finish_run(run, status="failed", error="KoBo answered 401", fetched=0)
    [r] = rows(warehouse, "sync_runs")
    assert r["status"] == "failed" and r["error"] == "KoBo answered 401" and r["seconds"] >= 0
    assert isinstance(r["started_at"], str | dt.datetime)
    assert bk.sync_runs.name == "sync_runs"


def test_history_records_new_edited_and_validation_changes(warehouse, form):
    warehouse.load_page(form, [household_submission(1)], None, run_id=1)
    warehouse.load_page(form, [household_submission(1, _uuid="edited-1")], None, run_id=2)
    approved = household_submission(1, _uuid="edited-1",
                                    _validation_status={"timestamp": 1741700000, "uid": "validation_status_approved",
                                                        "by_whom": "supervisor1", "label": "Approved"})
    warehouse.load_page(form, [approved], None, run_id=3)
    history = rows(warehouse, "submission_history", "seen_at, run_id")
    assert [(h["change"], h["uuid"], h["run_id"]) for h in history] == [
        ("new", "00000000-0000-4000-8000-000000000001", 1), ("edited", "edited-1", 2), ("validation", "edited-1", 3)]
    assert history[-1]["validation_by"] == "supervisor1"


def test_deleted_submissions_are_marked_not_dropped_and_left_out_of_current_views(warehouse, form):
    warehouse.load_page(form, [household_submission(1), household_submission(2)], None)
    assert warehouse.mark_deleted(form, [2]) == 1
    assert warehouse.mark_deleted(form, [2]) == 0  # already marked
    assert len(rows(warehouse, "household")) == 2
    [gone] = [r for r in rows(warehouse, "household") if r["_id"] == 2]
    assert gone["_deleted_at"] is not None
    assert [r["_id"] for r in rows(warehouse, "household_current")] == [1]
    assert {r["_submission_id"] for r in rows(warehouse, "household__members_current")} == {1}
    assert StoredForm(warehouse, form).manifest(None, None).keys() == {1}
    assert rows(warehouse, "submission_history", "seen_at")[-1]["change"] == "deleted"


def test_double_uploads_are_flagged_and_not_counted_in_views(warehouse, form):
    first = household_submission(10)
    again = household_submission(11, **{"meta/instanceID": first["meta/instanceID"]})
    warehouse.load_page(form, [first, again], None)
    flagged = {r["_id"]: r["_duplicate_of"] for r in rows(warehouse, "household")}
    assert flagged == {10: None, 11: 10}
    assert [r["_id"] for r in rows(warehouse, "household_current")] == [10]


def test_manifest_ranges_and_validation_timestamps(warehouse, form):
    status = {"timestamp": 1741700000, "uid": "validation_status_on_hold", "by_whom": "s"}
    warehouse.load_page(form, [household_submission(i, _validation_status=status if i == 3 else {})
                               for i in range(1, 6)], None)
    m = StoredForm(warehouse, form).manifest(2, 5)
    assert sorted(m) == [2, 3, 4] and StoredForm(warehouse, form).manifest_of([3, 9]).keys() == {3}
    assert m[3][1:] == ("validation_status_on_hold", 1741700000)
    assert m[2][1:] == (None, None)


def test_personal_data_never_reaches_the_form_tables(warehouse, form):
    warehouse.load_page(form, [household_submission(1)], None)
    with warehouse.engine.connect() as conn:
        for _, table, _n in warehouse.row_counts():
            dump = str([tuple(r) for r in conn.execute(sa.text(f'SELECT * FROM "{table}"'))])
            for secret in ("أمينة يوسف", "Amina", "36.19", "44.01"):
                assert secret not in dump, (table, secret)
    restricted = {(r["path"], r["row_id"]): r["value"] for r in rows(warehouse, "restricted_values")}
    assert restricted == {("household/hh_head_name", ""): "أمينة يوسف",
                          ("household/location", ""): "36.19 44.01 410.0 5.0",
                          ("household/members/member_name", "1"): "Amina",
                          ("household/members/member_name", "2"): "Omar"}


def test_pseudonyms_link_the_same_person_and_depend_on_the_key():
    a, b = Pseudonymizer(KEY), Pseudonymizer("another-key-0123456789")
    assert a.pseudonym("Ali  Hassan") == a.pseudonym("ali hassan") != a.pseudonym("Ali Hasan")
    assert a.pseudonym("Ali Hassan") != b.pseudonym("Ali Hassan")
    assert KEY not in repr(a)


def test_a_form_with_personal_data_needs_a_key(warehouse_url, household_schema, household_content):
    from common.errors import ConfigError

    wh = Warehouse(warehouse_url)
    with pytest.raises(ConfigError, match="AMINA_PSEUDONYM_KEY"):
        wh.register_form(asset_uid="aHouse", server_url="http://kobo.test", name="Household survey",
                         schema=household_schema, version_uid="v1", content=household_content)
    wh.dispose()


def test_an_edit_replaces_restricted_values(warehouse, form):
    warehouse.load_page(form, [household_submission(1)], None)
    warehouse.load_page(form, [household_submission(1, _uuid="e", **{"household/hh_head_name": "Layla"})], None)
    values = {r["value"] for r in rows(warehouse, "restricted_values") if r["path"] == "household/hh_head_name"}
    assert values == {"Layla"}


def test_labelled_views_in_each_language(warehouse, form):
    warehouse.load_page(form, [household_submission(1)], None)
    [en] = rows(warehouse, "household_en")
    [ar] = rows(warehouse, "household_ar")
    assert en["crops"] == "Food, Shelter" and ar["crops"] == "غذاء, مأوى"
    assert en["hh_size"] == 2 and en["hh_head_name"].startswith("p_")
    visits = rows(warehouse, "household__visits_ar", "_row_id")
    assert [v["vaccinated"] for v in visits] == ["نعم", None]
    members = rows(warehouse, "household__members_en", "_row_id")
    assert [m["member_needs"] for m in members] == ["Food, Water", None]
    assert [r["code"] for r in rows(warehouse, "household__crops_current", "_position")] == ["food", "shelter"]


def test_analyst_role_reads_the_analyst_schema_and_is_refused_the_rest(postgres_server, household_schema,
                                                                        household_content):
    url = postgres_server.create_database("grants")
    wh = Warehouse(url, pseudonymizer=Pseudonymizer(KEY))
    form = wh.register_form(asset_uid="aHouse", server_url="http://kobo.test", name="Household survey",
                            schema=household_schema, version_uid="v1", content=household_content)
    wh.load_page(form, [household_submission(1)], None)
    assert wh.grant_analyst() == "amina_analyst"
    wh.grant_analyst()  # idempotent
    analyst = sa.create_engine(url.replace("//amina@", "//amina_analyst@"))
    with analyst.connect() as conn:
        [row] = conn.execute(sa.text('SELECT * FROM analyst."household_ar"')).mappings().all()
        assert row["crops"] == "غذاء, مأوى" and row["hh_head_name"].startswith("p_")
        assert conn.execute(sa.text("SELECT count(*) FROM analyst.fields")).scalar_one() > 0
    for forbidden in ('public."household"', 'restricted."restricted_values"', 'restricted."submissions_raw"',
                      'public."sync_state"'):
        with analyst.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text(f"SELECT * FROM {forbidden}"))
    analyst.dispose()
    wh.dispose()


def test_grants_on_sqlite_explain_why_not(tmp_path):
    from common.errors import WarehouseError

    with pytest.raises(WarehouseError, match="SQLite, which has no roles"):
        Warehouse(str(tmp_path / "w.db")).grant_analyst()


def _content(*rows):
    return {"survey": [{"type": t, "name": n, "$autoname": n, "label": [n.title()]} for t, n in rows],
            "choices": [], "translations": [None], "settings": {"form_id": "evolving"}}


def test_a_new_form_version_evolves_the_tables_without_losing_a_value(warehouse):
    from forms.schema import FormSchema

    v1 = _content(("integer", "count"), ("text", "dropped"), ("text", "kept"))
    v2 = _content(("text", "count"), ("text", "kept"), ("decimal", "added"))
    form1 = warehouse.register_form(asset_uid="aEvo", server_url="http://kobo.test", name="Evolving",
                                    schema=FormSchema.from_content(v1), version_uid="v1", content=v1)
    warehouse.load_page(form1, [{"_id": 1, "_uuid": "u1", "count": "3", "dropped": "old", "kept": "k"}], None)
    merged = FormSchema.from_content(v2).merged(FormSchema.from_content(v1))  # as the sync builds it
    form2 = warehouse.register_form(asset_uid="aEvo", server_url="http://kobo.test", name="Evolving",
                                    schema=merged, version_uid="v2", content=v2)
    result = warehouse.load_page(form2, [{"_id": 2, "_uuid": "u2", "count": "7", "kept": "k2", "added": "1.5"},
                                         {"_id": 3, "_uuid": "u3", "count": "many", "kept": "k3"}], None)
    assert result.bad_values == 1  # "many" does not fit the integer column: kept raw, reported
    got = {r["_id"]: r for r in rows(warehouse, "evolving")}
    assert (got[1]["count"], got[1]["dropped"], got[1]["added"]) == (3, "old", None)
    assert (got[2]["count"], got[2]["added"], got[2]["dropped"]) == (7, 1.5, None)
    assert got[3]["count"] is None and "count" in got[3]["_issues"]
    fields = {r["path"]: r for r in rows(warehouse, "fields")}
    assert "keeps integer" in fields["count"]["conflict"] and fields["count"]["sql_type"] == "BIGINT"
    assert fields["kept"]["versions"] == "v1 v2" and fields["added"]["versions"] == "v2"
    assert fields["dropped"]["versions"] == "v1" and fields["kept"]["conflict"] is None


def test_fixed_tables_are_migrated_with_alembic(warehouse_url):
    url = warehouse_url if "://" in warehouse_url else f"sqlite:///{warehouse_url}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a warehouse made before migrations existed: revision 0001's tables only
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("CREATE SCHEMA restricted"))
        from alembic import command
        from alembic.config import Config

        from warehouse.store import MIGRATIONS
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn.execution_options(
            schema_translate_map=None if engine.dialect.name == "postgresql" else {"restricted": None})
        command.upgrade(cfg, "0001")
        conn.execute(sa.text('DROP TABLE "amina_schema_version"'))
    engine.dispose()
    wh = Warehouse(warehouse_url)  # stamps 0001, then upgrades to head
    with wh.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM amina_schema_version")).scalar_one() == "0005"
        assert {"versions", "conflict"} <= {c["name"] for c in sa.inspect(conn).get_columns("fields")}
    wh.dispose()
    Warehouse(warehouse_url).dispose()  # idempotent


def test_a_warehouse_of_revision_0002_keeps_its_data_with_asset_keys(warehouse_url):
    """0003: every asset_uid column becomes asset_key (the uid), forms gains a normalised server_url."""
    from alembic import command
    from alembic.config import Config

    from warehouse.store import MIGRATIONS

    url = warehouse_url if "://" in warehouse_url else f"sqlite:///{warehouse_url}"
    engine = sa.create_engine(url)
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for schema in ("restricted", "analyst") if pg else ():
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn.execution_options(
            schema_translate_map=None if pg else {"restricted": None, "analyst": None})
        command.upgrade(cfg, "0002")
        conn.execute(sa.text("INSERT INTO forms (asset_uid, server_url, name, table_name) VALUES "
                             "('aOld1234567890', 'https://KF.kobotoolbox.org/api/v2/', 'Old form', 'old_form')"))
        conn.execute(sa.text("INSERT INTO sync_state (asset_uid, watermark_time, watermark_id, syncs_since_sweep, "
                             "updated_at) VALUES ('aOld1234567890', '2026-01-01T00:00:00', 41, 0, '2026-01-02')"))
        raw = '"restricted".submissions_raw' if pg else "submissions_raw"
        conn.execute(sa.text(f"INSERT INTO {raw} (asset_uid, submission_id, uuid, digest, json, fetched_at) VALUES "
                             "('aOld1234567890', 41, 'u', 'd', '{}', '2026-01-02')"))
        if pg:
            conn.execute(sa.text('CREATE VIEW analyst.forms AS SELECT * FROM forms'))
    engine.dispose()
    wh = Warehouse(warehouse_url)
    with wh.engine.connect() as conn:
        form = conn.execute(sa.select(bk.forms)).mappings().one()
        assert (form["asset_key"], form["asset_uid"], form["server_url"]) == (
            "aOld1234567890", "aOld1234567890", "https://kf.kobotoolbox.org")
        assert conn.execute(sa.select(bk.submissions_raw.c.asset_key)).scalar_one() == "aOld1234567890"
    assert wh.watermark("aOld1234567890") == Watermark("2026-01-01T00:00:00", 41)
    assert wh.asset_key("https://kf.kobotoolbox.org", "aOld1234567890") == "aOld1234567890"
    assert wh.asset_key("https://eu.kobotoolbox.org", "aOld1234567890") == "aOld1234567890@eu.kobotoolbox.org"
    wh.dispose()


def test_a_warehouse_of_revision_0003_gets_the_sweep_bookkeeping_and_can_go_back(warehouse_url):
    """0004: sync_state's sweep marks (the last full sweep starts as the last sweep: every sweep was full before),
    sync_runs' sweep cost, submission_history's found_by; and the way back to 0003."""
    from alembic import command
    from alembic.config import Config

    from warehouse.store import MIGRATIONS

    url = warehouse_url if "://" in warehouse_url else f"sqlite:///{warehouse_url}"
    engine = sa.create_engine(url)
    pg = engine.dialect.name == "postgresql"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        for schema in ("restricted", "analyst") if pg else ():
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        cfg.attributes["connection"] = conn.execution_options(
            schema_translate_map=None if pg else {"restricted": None, "analyst": None})
        command.upgrade(cfg, "0003")
        conn.execute(sa.text("INSERT INTO sync_state (asset_key, watermark_time, watermark_id, last_sweep_at, "
                             "syncs_since_sweep, updated_at) VALUES ('aOld1234567890', '2026-01-01T00:00:00', 41, "
                             "'2026-01-03 04:05:06', 0, '2026-01-03')"))
        conn.execute(sa.text("INSERT INTO submission_history (asset_key, submission_id, seen_at, change) VALUES "
                             "('aOld1234567890', 41, '2026-01-02', 'new')"))
    engine.dispose()
    wh = Warehouse(warehouse_url)
    state = wh.sweep_state("aOld1234567890")
    assert state.last_full_sweep_at == state.last_sweep_at == dt.datetime(2026, 1, 3, 4, 5, 6)
    assert state.validation_since is None and state.history_since is None
    with wh.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("sync_runs")}
        assert {"sweep_mode", "sweep_bytes", "sweep_detail"} <= columns
        assert conn.execute(sa.select(bk.submission_history.c.found_by)).scalar_one() is None
    wh.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn.execution_options(
            schema_translate_map=None if pg else {"restricted": None, "analyst": None})
        command.downgrade(cfg, "0003")
        assert "last_full_sweep_at" not in {c["name"] for c in sa.inspect(conn).get_columns("sync_state")}
        assert "found_by" not in {c["name"] for c in sa.inspect(conn).get_columns("submission_history")}
    engine.dispose()
    Warehouse(warehouse_url).dispose()  # and up again


def test_arabic_kurdish_and_emoji_round_trip_byte_for_byte(warehouse):
    import orjson

    from forms.schema import FormSchema

    text = "ئەم دێڕە بە کوردییە، وهذه بالعربية 🌍👩🏽‍⚕️ \u200f!"
    content = _content(("text", "note_text"), ("select_one", "code"))
    form = warehouse.register_form(asset_uid="aText", server_url="http://kobo.test", name="Texts",
                                   schema=FormSchema.from_content(content), version_uid="v1", content=content)
    sub = {"_id": 1, "_uuid": "u", "note_text": text, "code": "ڕێکخراو"}
    warehouse.load_page(form, [sub], None)
    [row] = rows(warehouse, "evolving")
    assert row["note_text"].encode("utf-8") == text.encode("utf-8") and row["code"] == "ڕێکخراو"
    [raw] = rows(warehouse, "submissions_raw")
    assert orjson.loads(raw["json"])["note_text"] == text


def test_the_watermark_never_moves_back(warehouse, form):
    warehouse.load_page(form, [household_submission(5)], Watermark("2026-03-10T06:20:11", 5))
    warehouse.load_page(form, [household_submission(2)], Watermark("2026-03-10T06:00:00", 2))  # an overlap re-read
    assert warehouse.watermark("aHouse") == Watermark("2026-03-10T06:20:11", 5)
    warehouse.load_page(form, [household_submission(9)], Watermark("2026-03-10T06:20:11", 9))
    assert warehouse.watermark("aHouse") == Watermark("2026-03-10T06:20:11", 9)
