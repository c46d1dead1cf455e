"""Our type table (forms/types.py) against pyxform's own tables: every type, alias and spelling pyxform
accepts is read, and stored as what pyxform binds it to."""

from __future__ import annotations

import pytest
from pyxform import aliases
from pyxform.question_type_dictionary import QUESTION_TYPE_DICT

from forms.types import QUESTION_ALIASES, SELECT_ALIASES, TYPES, Kind, parse_type, storage_note

# pyxform's XForm bind type → how we store it (the exceptions are spelled out)
BIND_KINDS = {"int": {Kind.INTEGER, Kind.DECIMAL}, "decimal": {Kind.DECIMAL}, "date": {Kind.DATE},
              "dateTime": {Kind.DATETIME}, "time": {Kind.TIME}, "geopoint": {Kind.GEOPOINT},
              "string": {Kind.TEXT, Kind.SELECT_ONE, Kind.SELECT_MULTIPLE, Kind.NONE},
              "binary": {Kind.TEXT}, "barcode": {Kind.TEXT}, "geoshape": {Kind.TEXT}, "geotrace": {Kind.TEXT},
              "odk:rank": {Kind.SELECT_MULTIPLE}, None: {Kind.NONE, Kind.TEXT}}


@pytest.mark.parametrize("name", sorted(QUESTION_TYPE_DICT))
def test_every_pyxform_question_type_is_read_strictly_and_stored_as_pyxform_binds_it(name):
    parsed = parse_type(name, strict=True)
    assert parsed.known, name
    bind = QUESTION_TYPE_DICT[name].get("bind", {}).get("type")
    assert parsed.kind in BIND_KINDS[bind], (name, bind, parsed.kind)
    readonly_note = QUESTION_TYPE_DICT[name].get("bind", {}).get("readonly") == "true()"
    assert (parsed.kind is Kind.NONE) == (readonly_note or name in ("xml-external", "csv-external")), name


@pytest.mark.parametrize("alias", sorted(aliases.select))
@pytest.mark.parametrize("other", ["", " or_other", " or other", " or specify other"])
def test_every_pyxform_select_spelling_takes_a_list_and_or_other(alias, other):
    parsed = parse_type(f"{alias} my_list{other}", strict=True)
    assert parsed.known and parsed.list_name == "my_list" and parsed.or_other == bool(other)
    expected = {"select one": Kind.SELECT_ONE, "select all that apply": Kind.SELECT_MULTIPLE,
                "select one external": Kind.SELECT_ONE, "rank": Kind.SELECT_MULTIPLE}[aliases.select[alias]]
    assert parsed.kind is expected
    assert parsed.base.endswith("_from_file") == (alias in aliases.select_from_file)


@pytest.mark.parametrize("control", sorted(aliases.control))
@pytest.mark.parametrize("edge", ["begin", "end"])
@pytest.mark.parametrize("join", [" ", "_", "  "])
def test_every_pyxform_group_spelling_opens_and_closes(control, edge, join):
    parsed = parse_type(f"{edge}{join}{control}", strict=True)
    assert parsed.known and parsed.container == {"group": "group", "lgroup": "repeat", "repeat": "repeat",
                                                 "loop": "loop", "looped group": "repeat"}[control]
    assert parsed.begins == (edge == "begin")


def test_case_and_whitespace_as_pyxform_and_kobo_tolerate_them():
    assert parse_type("select_one  yn", strict=True).list_name == "yn"  # runs of spaces fold
    assert parse_type("  integer ", strict=True).base == "integer"
    assert not parse_type("Integer", strict=True).known  # pyxform: "Unknown question type 'Integer'"
    assert parse_type("Integer").base == "integer"  # a sync reads KoBo's content leniently
    assert parse_type("dateTime", strict=True).base == parse_type("datetime", strict=True).base == "datetime"
    assert parse_type("select_one_yn_or_specify_other").list_name == "yn"
    assert parse_type("select_one_yes_no_or_specify_other").list_name == "yes_no"
    assert not parse_type("select_one_yn_or_specify_other", strict=True).known
    assert parse_type("select_one_or_other yn", strict=True).or_other  # formpack's spelling
    legacy = parse_type("select_one", list_name="yn", or_other=True)  # KoBo content: type + _or_other
    assert legacy.or_other and legacy.list_name == "yn"
    assert not parse_type("something_new").known and parse_type("something_new").kind is Kind.TEXT
    assert parse_type("osm building_tags", strict=True).base == "osm"  # pyxform's RE_OSM


def test_kobo_spellings():
    for spelling, base in [("select many x", "select_multiple"), ("begin score", "begin_score"),
                           ("begin_kobomatrix", "begin_kobomatrix"), ("end rank", "end_rank"),
                           ("rank__level", "rank__level"), ("select one external x", "select_one_external")]:
        parsed = parse_type(spelling, strict=True)
        assert parsed.known and parsed.base == base and parsed.kobo_only, spelling


def test_our_tables_name_only_types_pyxform_or_kobo_know():
    known = (set(QUESTION_TYPE_DICT) | set(aliases.select) | set(aliases._type_alias_map)
             | {"rank", "select_one_from_file", "select_multiple_from_file", "select_one_external"})
    kobo = {"select many", "select_many", "select multiple", "select one external"}
    assert set(SELECT_ALIASES) <= set(aliases.select) | kobo
    assert set(QUESTION_ALIASES) - known <= {"select_one", "select_multiple", "datetime", "start-geopoint",
                                             "background-geopoint", "text", "select_one_external"} | set(TYPES)
    for name in TYPES:  # a canonical type is one pyxform writes in an XForm (or a select pyxform reads)
        assert name in QUESTION_TYPE_DICT or name in aliases.select or name in SELECT_ALIASES, name


def test_the_dictionary_says_what_the_sql_type_does_not():
    assert "no labels" in storage_note("select_one_from_file")
    assert "rank order" in storage_note("rank")
    assert "attachments" in storage_note("image")
    assert storage_note("integer") is None and storage_note("select_one") is None


def test_the_readme_says_how_every_type_is_stored():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| question type (and its other spellings) | stored as |"):]
    table = table[:table.index("\n\n")]
    missing = [t for t in TYPES if f"`{t}" not in table and not t.startswith("uri:")]
    assert not missing, f"README's type table does not say how these are stored: {missing}"
