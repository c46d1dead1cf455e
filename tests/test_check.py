"""`amina forms lint` (forms/check.py): accepts every form pyxform accepts, refuses with pyxform's reason
pointed at the source row, and says where KoBo's importer reads a form otherwise."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from common.errors import FormBuildError
from forms.check import check_form
from forms.content import to_content
from forms.source import read_markdown, read_xlsx, to_xlsx

CORPUS = Path(__file__).parent / "corpus" / "xlsform"
FORMS = [*sorted(CORPUS.glob("*.md")), *sorted((CORPUS / "versions").glob("*.md")),
         *sorted((Path(__file__).parents[1] / "forms" / "sources").glob("*.md")),
         Path(__file__).parent / "forms" / "household.md"]


def pyxform_accepts(text: str) -> bool:
    from pyxform.errors import PyXFormError
    from pyxform.xls2xform import convert

    try:
        convert(xlsform=io.BytesIO(text.encode()), file_type=".md", validate=False)
    except PyXFormError:
        return False
    return True


@pytest.mark.parametrize("path", FORMS, ids=lambda p: p.stem)
def test_every_corpus_and_programme_form_passes_as_markdown_and_as_xlsx(path, tmp_path):
    assert check_form(path).schema.fields
    xlsx = tmp_path / f"{path.stem}.xlsx"
    xlsx.write_bytes(to_xlsx(read_markdown(path.read_text(encoding="utf-8"), path)))
    assert [f.path for f in check_form(xlsx).schema.fields] == [f.path for f in check_form(path).schema.fields]


SURVEY = "| survey |\n| | type | name | label |\n"
CHOICES = "| choices |\n| | list_name | name | label |\n| | yn | yes | Yes |\n| | yn | no | No |\n"
VARIANTS = {  # name → (survey rows, pyxform's verdict is checked, what lint says when it refuses)
    "plain": ("| | text | q | Q |\n", None),
    "unknown type": ("| | Integer | n | N |\n", "unknown question type 'Integer'; did you mean 'integer'"),
    "list missing": ("| | begin_group | g | G |\n| | start | start | |\n| | select_one colours | c | C |\n"
                     "| | end_group | | |\n", "line 5 (survey row 4): pyxform refuses the form: List name not in"),
    "unclosed group": ("| | begin_group | g | G |\n| | text | q | Q |\n", "never closed"),
    "end without begin": ("| | text | q | Q |\n| | end_group | | |\n", "without a matching begin_group"),
    "bad name": ("| | text | 2q | Q |\n", "not a valid XML name"),
    "calculate without calculation": ("| | calculate | c | |\n", "line 3 (survey row 2): pyxform refuses the form: "
                                                                "Missing calculation"),
    "same name twice in a group": ("| | text | q | Q |\n| | text | q | Q2 |\n",
                                   "line 4 (survey row 3): the name 'q' is already used on survey row 2"),
    "same name in two groups": ("| | begin_group | a | A |\n| | text | q | Q |\n| | end_group | | |\n"
                                "| | begin_group | b | B |\n| | text | q | Q |\n| | end_group | | |\n", None),
    "two spaces and a looped group": ("| | begin looped group | r | R |\n| | select_one  yn | q | Q |\n"
                                      "| | end  looped group | | |\n", None),
}


@pytest.mark.parametrize("name", [n for n, v in VARIANTS.items() if v is not None])
def test_lint_refuses_exactly_what_pyxform_refuses_and_says_where(name, tmp_path):
    rows, refusal = VARIANTS[name]
    text = SURVEY + rows + CHOICES
    path = tmp_path / "form.md"
    path.write_text(text, encoding="utf-8")
    if refusal is None:
        assert pyxform_accepts(text)
        check_form(path)
        return
    assert not pyxform_accepts(text)
    with pytest.raises(FormBuildError, match=refusal.replace("(", r"\(").replace(")", r"\)")):
        check_form(path)


def test_kobo_differences_are_reported(tmp_path):
    path = tmp_path / "form.md"
    path.write_text(SURVEY + "| | begin_group | a | A |\n| | text | q | Q |\n| | end_group | | |\n"
                    "| | begin_group | b | B |\n| | text | q | Q |\n| | end | end | |\n| | end_group | | |\n", "utf-8")
    report = check_form(path)
    assert report.kobo_refuses and "Duplicate node name: q" in report.kobo[0]
    assert any("moves its metadata to the top" in line and "end (survey row 7)" in line for line in report.kobo)


def test_xlsx_as_kobo_reads_it_capitalised_sheets_list_name_and_excel_booleans():
    from openpyxl import Workbook

    wb = Workbook()
    survey = wb.active
    survey.title = "Survey"
    survey.append(["Type", "Name", "Label::English (en)"])
    survey.append(["select_one yn", "ok", "OK?"])
    choices = wb.create_sheet("CHOICES")
    choices.append(["List Name", "Name", "Label::English (en)"])
    choices.append(["yn", True, "Yes"])
    choices.append(["yn", False, "No"])
    buf = io.BytesIO()
    wb.save(buf)
    content = to_content(read_xlsx(buf.getvalue(), "booleans.xlsx"))
    assert [c["name"] for c in content["choices"]] == ["TRUE", "FALSE"]  # as KoBo's importer writes them
    assert content["survey"][0]["select_from_list_name"] == "yn"


def test_a_single_sheet_with_another_name_is_the_survey():
    source = read_markdown("| Sheet1 |\n| | type | name | label |\n| | text | q | Q |\n")
    assert [r["name"] for r in to_content(source)["survey"]] == ["q"]


def test_cli_lint_exit_codes(tmp_path):
    from amina.cli import app

    good, bad = tmp_path / "good.md", tmp_path / "bad.md"
    good.write_text(SURVEY + "| | text | q | Q |\n", "utf-8")
    bad.write_text(SURVEY + "| | Integer | n | N |\n", "utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["forms", "lint", str(good)])
    assert result.exit_code == 0 and "ok" in result.output
    result = runner.invoke(app, ["forms", "lint", str(bad)])
    assert isinstance(result.exception, FormBuildError) and result.exception.exit_code == 3
    assert "bad.md line 3 (survey row 2): unknown question type 'Integer'" in str(result.exception)


@pytest.mark.parametrize("path", [*sorted(CORPUS.glob("*.md"))], ids=lambda p: p.stem)
def test_forms_build_compiles_every_corpus_form_pyxform_compiles(path, tmp_path):
    from forms.build import build_form

    if pyxform_accepts(path.read_text(encoding="utf-8")):
        built = build_form(path, tmp_path, validate=False, lint=False)
        assert built.xform.read_text(encoding="utf-8").startswith("<?xml")
    else:  # KoBo's own types, or a question without a name: KoBo's importer reads them, pyxform alone does not
        assert path.stem in ("kobo_structures", "spellings")
        with pytest.raises(FormBuildError, match="pyxform"):
            build_form(path, tmp_path, validate=False, lint=False)


def test_lint_reads_a_kobo_asset_as_json(tmp_path):
    import json

    content = {"survey": [{"type": "start", "name": "start"}, {"type": "text", "name": "q", "label": ["Q"]},
                          {"type": "select_one", "select_from_list_name": "missing", "name": "s", "label": ["S"]}],
               "choices": [{"list_name": "yn", "name": "yes", "label": ["Yes"]}], "translations": [None]}
    path = tmp_path / "asset.json"
    path.write_text(json.dumps({"uid": "aX7Yk3mQ9pLrT2vB8cN4dW", "content": content}), "utf-8")
    with pytest.raises(FormBuildError, match=r"asset.json \(content survey row 3\): pyxform refuses the form: "
                                             r"List name not in choices sheet: missing"):
        check_form(path)
    content["survey"][2]["select_from_list_name"] = "yn"
    del content["survey"][1]["label"]
    path.write_text(json.dumps({"uid": "aX7Yk3mQ9pLrT2vB8cN4dW", "content": content}), "utf-8")
    with pytest.raises(FormBuildError, match=r"asset.json \(content survey row 2\): pyxform refuses the form: "
                                             r"The survey element named 'q' has no label or hint"):
        check_form(path)
    content["survey"][1]["label"] = ["Q"]
    path.write_text(json.dumps({"uid": "aX7Yk3mQ9pLrT2vB8cN4dW", "content": content}), "utf-8")
    assert [f.path for f in check_form(path).schema.fields] == ["start", "q", "s"]


def test_cli_lint_checks_every_file_and_names_the_refused(tmp_path):
    from amina.cli import app

    good, bad = tmp_path / "good.md", tmp_path / "bad.md"
    good.write_text(SURVEY + "| | text | q | Q |\n", "utf-8")
    bad.write_text(SURVEY + "| | text | q | Q |\n| | end_repeat | | |\n", "utf-8")
    result = CliRunner().invoke(app, ["forms", "lint", str(bad), str(good)])
    assert "ok" in result.output and str(good) in result.output.replace("\n", "")
    assert isinstance(result.exception, FormBuildError) and "1 of 2 forms refused: bad.md" in str(result.exception)
