from __future__ import annotations

import pytest

from common.errors import FormBuildError
from forms.content import language_code, to_content
from forms.schema import FormSchema, Kind
from forms.source import read_markdown, read_xlsx, to_xlsx


def test_schema_from_source_knows_paths_repeats_types_and_languages(household_schema):
    s = household_schema
    assert s.form_id == "household" and s.version == "3"
    assert s.languages == ("en", "ar")
    assert s.field("household/members/visits/vaccinated").repeat == "household/members/visits"
    assert s.repeats_by_path["household/members/visits"].parent == "household/members"
    assert s.field("household/hh_size").kind is Kind.INTEGER
    assert s.field("household/location").kind is Kind.GEOPOINT
    assert s.field("crops").kind is Kind.SELECT_MULTIPLE and s.field("crops").choice_list == "needs"
    assert s.field("household/members/visits/visit_at").kind is Kind.DATETIME
    assert s.field("start").kind is Kind.DATETIME
    assert s.field("thanks").kind is Kind.NONE
    assert s.field("household/hh_head_name").labels == {"en": "Head of household", "ar": "رب الأسرة"}
    assert s.choice_lists["needs"].label("water", "ar") == "ماء"


def test_sensitive_column_and_extra_paths(household_content):
    s = FormSchema.from_content(household_content, sensitive=["household/income"])
    assert set(s.sensitive_paths) == {"household/hh_head_name", "household/location",
                                      "household/members/member_name", "household/income"}


def test_kobo_style_content_with_list_labels_and_untranslated_form():
    content = {
        "survey": [
            {"type": "begin_group", "$autoname": "g", "label": ["G"]},
            {"type": "select_one", "select_from_list_name": "yn", "$autoname": "q1", "label": ["Q1"],
             "required": True},
            {"type": "end_group"},
        ],
        "choices": [{"list_name": "yn", "$autovalue": "yes", "label": ["Yes"]}],
        "translations": [None],
        "settings": {},
    }
    s = FormSchema.from_content(content, title="Legacy form")
    assert s.languages == ("default",)
    assert s.field("g/q1").kind is Kind.SELECT_ONE and s.field("g/q1").required == "yes"
    assert s.choice_lists["yn"].choices[0].code == "yes"
    assert s.title == "Legacy form"


def test_xlsx_round_trip_keeps_content(household_content):
    from pathlib import Path

    source = read_markdown(Path("tests/forms/household.md").read_text(), Path("household.md"))
    again = to_content(read_xlsx(to_xlsx(source), "household.xlsx"))
    strip = [{k: v for k, v in r.items() if k != "$kuid"} for r in household_content["survey"]]
    assert [{k: v for k, v in r.items() if k != "$kuid"} for r in again["survey"]] == strip
    assert again["translations"] == household_content["translations"]


def test_language_codes():
    assert language_code("Arabic (ar)") == "ar"
    assert language_code("Kurdish (Sorani) (ckb)") == "ckb"
    assert language_code(None) == "default"
    assert language_code("Français") == "francais"


@pytest.mark.parametrize("text, message", [
    ("| survey |\n| | type | name |\n| | begin_group | g |\n", "never closed"),
    ("| survey |\n| | type | name |\n| | begin_group | g |\n| | end_repeat | |\n", "end_repeat closes the group"),
    ("| survey |\n| | type | name |\n| | Integer | n |\n", "unknown question type 'Integer'; did you mean 'integer'"),
    ("| survey |\n| | type | name |\n| | text | 1q |\n", "not a valid XML name"),
    ("| choices |\n| | list_name | name |\n", "no '| survey |'"),
])
def test_broken_sources_say_where(text, message):
    with pytest.raises(FormBuildError, match=message):
        to_content(read_markdown(text))


def test_groups_and_their_relevance_are_in_the_model():
    from forms.source import SOURCES_DIR

    s = FormSchema.from_source(SOURCES_DIR / "vot_screening.md")
    gated = {g.path for g in s.groups if g.relevant}
    assert {"location", "profile", "indicators", "outcome"} <= gated
    assert [g.path for g in s.relevant_groups("profile/full_name")] == ["profile"]
    assert s.relevant_groups("screener") == ()


def test_required_as_kobo_stores_it_yes_no_as_booleans_expressions_as_written():
    content = to_content(read_markdown("| survey |\n| | type | name | label | required |\n| | text | a | A | YES |\n"
                                       "| | text | b | B | ${a} != '' |\n| | text | c | C | false() |\n"))
    assert [r.get("required") for r in content["survey"]] == [True, "${a} != ''", False]
    s = FormSchema.from_content(content)
    assert [s.field(p).required for p in "abc"] == ["yes", "${a} != ''", None]


def test_a_tab_in_a_type_is_unknown_to_pyxform_and_so_to_our_reader():
    with pytest.raises(FormBuildError, match="unknown question type"):
        to_content(read_markdown("| survey |\n| | type | name | label |\n| | select_one\tyn | q | Q |\n"))
