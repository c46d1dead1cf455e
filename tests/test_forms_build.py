"""`amina forms build`: sources compile with pyxform (and ODK Validate); broken forms say where."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import FormBuildError
from forms.build import build_form, resolve_sources
from forms.source import source_paths

HERE = Path(__file__).parent
HAS_JAVA = shutil.which("java") is not None


def _write(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / f"{name}.md"
    p.write_text(body, encoding="utf-8")
    return p


@pytest.mark.skipif(not HAS_JAVA, reason="ODK Validate needs a Java runtime (scripts/setup installs it)")
@pytest.mark.parametrize("path", source_paths(), ids=lambda p: p.stem)
def test_shipped_forms_build_and_pass_odk_validate(path, tmp_path):
    built = build_form(path, tmp_path, validate=True)
    xml = built.xform.read_text(encoding="utf-8")
    assert built.xlsx.stat().st_size > 0 and "<h:html" in xml
    for lang in ("English (en)", "Arabic (ar)", "Sorani Kurdish (ckb)"):
        assert f'<translation lang="{lang}"' in xml


def test_the_four_programme_forms_are_shipped():
    assert {p.stem for p in source_paths()} == {"training_attendance", "vot_screening", "awareness_session",
                                                "assistance_referral"}


def test_test_form_builds(tmp_path):
    built = build_form(HERE / "forms" / "household.md", tmp_path, validate=False, lint=False)  # not one of ours
    assert 'nodeset="/data/household/members/visits/vaccinated"' in built.xform.read_text()


BROKEN = {
    "duplicate": ("| | text | a | A |\n| | text | b | B |\n| | text | a | C |\n", "line 6 (survey row 4)"),
    "unknown_type": ("| | text | a | A |\n| | fancy_widget | b | B |\n", "line 5 (survey row 3)"),
    "missing_list": ("| | select_one nolist | a | A |\n", "nolist"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_form_fails_with_pyxform_message_and_line(case, tmp_path):
    rows, where = BROKEN[case]
    path = _write(tmp_path, case, f"# {case}\n| survey |\n| | type | name | label |\n{rows}")
    with pytest.raises(FormBuildError) as info:
        build_form(path, tmp_path / "out", validate=False, lint=False)
    assert where in str(info.value)
    assert not (tmp_path / "out" / f"{case}.xml").exists()


@pytest.mark.skipif(not HAS_JAVA, reason="ODK Validate needs a Java runtime")
def test_bad_xpath_in_relevant_is_caught_by_odk_validate(tmp_path):
    path = _write(tmp_path, "bad_relevant", "| survey |\n| | type | name | label | relevant |\n"
                  "| | text | a | A | |\n| | text | b | B | ${a} = 'x' and ( |\n")
    with pytest.raises(FormBuildError, match=r"ODK Validate rejected the form: .*mismatched.*question 'b'"):
        build_form(path, tmp_path, validate=True, lint=False)


def test_unknown_form_name():
    with pytest.raises(FormBuildError, match="no form named 'nope'"):
        resolve_sources(["nope"])


def test_cli_build_error_is_one_line_and_nonzero(tmp_path):
    path = _write(tmp_path, "dup", "| survey |\n| | type | name | label |\n| | text | a | A |\n| | text | a | B |\n")
    proc = subprocess.run([sys.executable, "-m", "amina.cli", "forms", "build", str(path), "--no-validate",
                           "--no-lint", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: dup.md line 4 (survey row 3): pyxform:")


def test_version_is_stamped_by_the_build_from_date_and_content():
    from forms.source import read_markdown, stamp_version

    text = "| survey |\n| | type | name | label |\n| | text | a | A |\n| settings |\n| | form_id |\n| | f |\n"
    day = dt.date(2026, 11, 23)

    def version(src: str, on: dt.date = day) -> str:
        return stamp_version(read_markdown(src), today=on).sheets["settings"].rows[0].cells["version"]

    first = version(text)
    assert re.fullmatch(r"20261123\.[0-9a-f]{8}", first)
    assert version(text) == first  # same form, same day: same version
    assert version(text.replace("| A |", "| B |")) != first  # any change: a new version
    assert version(text, dt.date(2026, 11, 24)) > first  # a later build sorts after
    explicit = text.replace("| | form_id |\n| | f |", "| | form_id | version |\n| | f | 7 |")
    assert version(explicit) == "7"  # an author's own version is kept
    no_settings = version("| survey |\n| | type | name | label |\n| | text | a | A |\n")
    assert no_settings.startswith("20261123.")


def test_built_xform_carries_the_stamped_version(tmp_path):
    built = build_form(source_paths()[0], tmp_path, validate=False)
    assert re.fullmatch(r"\d{8}\.[0-9a-f]{8}", built.version)
    assert f'version="{built.version}"' in built.xform.read_text(encoding="utf-8")
