"""The form linter: our conventions, each finding with the file line and the sheet row."""

from __future__ import annotations

import pytest

from common.errors import FormBuildError
from forms.build import build_form
from forms.lint import lint
from forms.source import read_markdown, read_source, source_paths

HEAD = ("| survey |\n| | type | name | label::English (en) | label::Arabic (ar) | label::Sorani Kurdish (ckb) "
        "| hint::English (en) | hint::Arabic (ar) | hint::Sorani Kurdish (ckb) | constraint "
        "| constraint_message::English (en) | constraint_message::Arabic (ar) "
        "| constraint_message::Sorani Kurdish (ckb) | amina::sensitive |\n")
CHOICES = ("| choices |\n| | list_name | name | label::English (en) | label::Arabic (ar) "
           "| label::Sorani Kurdish (ckb) |\n| | yes_no | yes | Yes | نعم | بەڵێ |\n")
GOOD = "| | select_one yes_no | consent | Consent? | موافقة؟ | ڕەزامەندی؟ | Ask | اسأل | بپرسە | | | | | |\n"


def findings(rows: str, choices: str = CHOICES) -> list[str]:
    return [str(f) for f in lint(read_markdown(HEAD + GOOD + rows + choices))]


@pytest.mark.parametrize("path", source_paths(), ids=lambda p: p.stem)
def test_the_programme_forms_follow_the_conventions(path):
    assert lint(read_source(path)) == []


def test_a_clean_form_has_no_findings():
    assert findings("") == []


@pytest.mark.parametrize("row, expected", [
    ("| | text | village | Village | القرية | | Where | أين | لە کوێ | | | | | |\n",
     "line 4 (survey row 3): 'village' has no label in ckb"),
    ("| | integer | age | Age | العمر | تەمەن | Years | سنوات | ساڵ | . < 100 | Too old | كبير | | |\n",
     "'age' has a constraint but no constraint message in ckb"),
    ("| | text | Village-Name | V | ق | گ | h | ت | ڕ | | | | | |\n", "is not snake_case"),
    ("| | text | a_name_that_goes_on_far_too_long_for_a_tablet_screen | V | ق | گ | h | ت | ڕ | | | | | yes |\n",
     "at most 40"),
    ("| | text | consent | V | ق | گ | h | ت | ڕ | | | | | |\n", "name 'consent' is already used on survey row 2"),
    ("| | text | phone | Phone | هاتف | تەلەفۆن | h | ت | ڕ | | | | | |\n",
     "'phone' looks like personal data: mark it amina::sensitive = yes"),
])
def test_each_convention(row, expected):
    assert any(expected in f for f in findings(row)), findings(row)


def test_unused_choice_lists_and_untranslated_choices():
    extra = "| | colours | red | Red | أحمر | |\n"
    got = findings("", CHOICES + extra)
    assert any("choice list 'colours' is not used by any question" in f for f in got)
    assert any("choice 'colours/red' has no label in ckb" in f for f in got)
    assert any("(choices row 3)" in f for f in got)


def test_forms_build_fails_on_findings(tmp_path):
    path = tmp_path / "bad.md"
    path.write_text(HEAD + GOOD + "| | text | phone | Phone | هاتف | تەلەفۆن | h | ت | ڕ | | | | | |\n" + CHOICES,
                    encoding="utf-8")
    with pytest.raises(FormBuildError, match=r"bad.md: 1 finding\(s\) of the form linter:\n  - bad.md line 4"):
        build_form(path, tmp_path / "out", validate=False)
