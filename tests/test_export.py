"""Exports and the pandas API read the analysts' views: current rows, pseudonyms, labels; RTL text intact."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from common.errors import ConfigError
from tests.conftest import household_submission
from warehouse.dictionary import dictionary
from warehouse.export import export_form, read_form
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse

KURDISH = "ئەم دێڕە بە کوردییە 🌍"


@pytest.fixture()
def loaded(warehouse_url, household_schema, household_content):
    wh = Warehouse(warehouse_url, pseudonymizer=Pseudonymizer("export-test-key-0123456789"))
    form = wh.register_form(asset_uid="aHouse", server_url="http://kobo.test", name="Household survey",
                            schema=household_schema, version_uid="v1", content=household_content)
    subs = [household_submission(1), household_submission(2, _submission_time="2026-04-02T10:00:00"),
            household_submission(3, **{"household/members": [{"household/members/member_age": "9",
                                                               "household/members/member_needs": "water"}]})]
    subs[0]["household/members"][1]["household/members/member_name"] = KURDISH
    wh.load_page(form, subs, None)
    wh.mark_deleted(form, [3])
    yield wh
    wh.dispose()


def test_read_form_gives_current_rows_with_labels(loaded):
    frames = read_form(loaded, "household", lang="ar")
    assert next(iter(frames)) == "household"
    assert sorted(frames["household"]["_id"]) == [1, 2]  # 3 was deleted
    assert set(frames["household__crops"]["_submission_id"]) == {1, 2}
    assert frames["household"]["crops"].tolist() == ["غذاء, مأوى"] * 2
    assert frames["household"]["hh_head_name"].str.startswith("p_").all()


def test_join_repeats_brings_parent_columns(loaded):
    frames = read_form(loaded, "household", join_repeats=True)
    visits = frames["household__visits"]
    assert "household__members.member_age" in visits and "household.hh_size" in frames["household__members"]
    assert set(visits["household__members.member_age"]) == {34}


def test_since_filters_every_table(loaded):
    frames = read_form(loaded, "household", since=dt.date(2026, 4, 1))
    assert frames["household"]["_id"].tolist() == [2]
    assert set(frames["household__members"]["_submission_id"]) == {2}


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_export_round_trips_arabic_and_kurdish(loaded, tmp_path, fmt):
    tmp_path = tmp_path / "out"
    paths = export_form(loaded, "household", fmt, tmp_path, lang="ar")
    if fmt == "xlsx":
        [path] = paths
        sheets = pd.read_excel(path, sheet_name=None)
        assert set(sheets) >= {"household", "members", "visits", "crops"}
        root = sheets["household"]
    else:
        assert {p.name for p in paths} >= {f"household_ar.{fmt}", f"household__members_ar.{fmt}"}
        reader = pd.read_csv if fmt == "csv" else pd.read_parquet
        root = reader(tmp_path / f"household_ar.{fmt}")
    assert root["crops"].tolist() == ["غذاء, مأوى"] * 2
    raw = (tmp_path / "household_ar.csv").read_bytes() if fmt == "csv" else b""
    if fmt == "csv":
        assert raw.startswith(b"\xef\xbb\xbf") and "غذاء".encode() in raw


def test_export_codes_keep_pseudonyms_not_names(loaded, tmp_path):
    export_form(loaded, "household", "csv", tmp_path / "out")
    text = "".join(p.read_text(encoding="utf-8-sig") for p in (tmp_path / "out").iterdir())
    assert "food shelter" in text and KURDISH not in text and "Amina" not in text


def test_unknown_language_and_form(loaded, tmp_path):
    with pytest.raises(ConfigError, match="has no language 'fr'"):
        read_form(loaded, "household", lang="fr")
    with pytest.raises(ConfigError, match="no form 'nope'"):  # a wrong name given: exit 2, like any wrong flag
        read_form(loaded, "nope")


def test_dictionary_lists_every_column_with_labels_and_versions(loaded):
    entries = {(e["table_name"], e["column_name"]): e for e in dictionary(loaded)}
    e = entries[("household", "hh_size")]
    assert e["label_en"] == "Household size" and e["label_ar"] == "حجم الأسرة" and e["versions"] == "v1"
    assert entries[("household", "hh_head_name")]["sensitive"] is True
    assert entries[("household__visits", "vaccinated")]["choice_list"] == "yes_no"
