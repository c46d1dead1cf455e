"""`amina forms lint`: would this XLSForm deploy on KoBo and sync? Any form, not only the programme's.

The form is read as KoBo's importer reads it (forms.content), turned into the rows KoBo deploys
(forms.deploy), and compiled by pyxform, the compiler KoBo itself uses: a form pyxform accepts passes;
one it refuses fails with pyxform's own reason, pointed at the source row it comes from. On the way, the
schema the sync would build is made (so what a sync would refuse is found here first) and what KoBo's
importer does differently from pyxform is said: names it gives, metadata it moves, forms it refuses.
(The programme's own conventions — three languages, snake_case names — are forms/lint.py, run by
`amina forms build`.)
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import FormBuildError
from forms.content import convert, kobo_refusals
from forms.deploy import DeployedForm, deployed_sheets, to_source
from forms.schema import FormSchema
from forms.source import XLSFormSource, read_source, read_xlsx, to_xlsx
from forms.types import parse_type

_ROW = re.compile(r"\[row\s*:\s*(\d+)\]\s*")
_NAMED = re.compile(r"named '([^']+)'")


@dataclass(slots=True)
class FormCheck:
    """What lint found in a form it accepts."""

    path: Path
    schema: FormSchema
    warnings: list[str] = field(default_factory=list)  # pyxform's, and what the reader let pass
    kobo: list[str] = field(default_factory=list)  # where KoBo's importer differs from pyxform for this form

    @property
    def kobo_refuses(self) -> bool:
        return any(line.startswith("KoBo's importer refuses") for line in self.kobo)

    @property
    def summary(self) -> str:
        s = self.schema
        stored = [f for f in s.fields if f.stores_data]
        return (f"{len(stored)} answer columns, {len(s.repeats)} repeat table(s), "
                f"{sum(1 for f in stored if f.kind.value == 'select_multiple')} select-multiple bridge(s); "
                f"languages: {', '.join(s.languages)}")


def read_any(path: Path) -> XLSFormSource:
    """An XLSForm as .xlsx or in pyxform's markdown layout."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FormBuildError(f"cannot read {path}: {exc.strerror}") from exc
        return read_xlsx(data, path.name)
    if path.suffix.lower() == ".md":
        return read_source(path)
    raise FormBuildError(f"{path}: give an XLSForm as .xlsx or .md (pyxform's markdown layout); .xls is not read")


def check_form(path: Path, *, validate: bool = False) -> FormCheck:
    """Check one XLSForm (or a KoBo asset's content saved as .json); FormBuildError (where, what, how to fix)
    when pyxform, KoBo or the sync would refuse it."""
    if path.suffix.lower() == ".json":
        return _check_content(path, validate=validate)
    source = read_any(path)
    content, sheet_rows = convert(source)
    schema = FormSchema.from_content(content)
    deployed = deployed_sheets(content)
    report = FormCheck(path=path, schema=schema, warnings=list(source.notes))

    def locate(sheet: str, row: int) -> str:
        if sheet == "choices" and "choices" in source.sheets:
            rows = source.sheets["choices"].rows
            return source.where("choices", rows[row - 2].row) if 2 <= row < len(rows) + 2 else _name(source)
        index = row - 2
        if 0 <= index < len(deployed.origins) and 1 <= deployed.origins[index] <= len(sheet_rows):
            return source.where("survey", sheet_rows[deployed.origins[index] - 1])
        return _name(source)

    for message in _compile(_name(source), deployed, locate, validate=validate):
        report.warnings.append(message)
    report.kobo += [f"KoBo's importer refuses this form ({kind}): {message}"
                    for kind, message in kobo_refusals(content)]
    report.kobo += _kobo_differences(source, content, sheet_rows)
    return report


def _check_content(path: Path, *, validate: bool) -> FormCheck:
    """A KoBo form as JSON: an asset (`GET /api/v2/assets/{uid}/`), a version, a corpus file of versions (the
    last is checked) or the bare `content`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormBuildError(f"cannot read {path} as JSON: {exc}") from exc
    if isinstance(data, Mapping) and isinstance(data.get("versions"), list) and data["versions"]:
        data = data["versions"][-1]
    content = data.get("content") if isinstance(data, Mapping) and "survey" not in data else data
    if isinstance(content, str):  # KoBo also takes content as a JSON string
        content = json.loads(content)
    if not isinstance(content, Mapping):
        raise FormBuildError(f"{path.name}: no KoBo content (a 'survey' list) in this JSON")
    schema = FormSchema.from_content(content)
    deployed = deployed_sheets(content)

    def locate(sheet: str, row: int) -> str:
        index = row - 2
        if sheet == "survey" and 0 <= index < len(deployed.origins):
            return f"{path.name} (content survey row {deployed.origins[index]})"
        return f"{path.name} ({sheet} row {row - 1})"

    report = FormCheck(path=path, schema=schema)
    report.warnings += _compile(path.name, deployed, locate, validate=validate)
    report.kobo += [f"KoBo's importer would refuse this form as an XLSForm ({kind}): {message}"
                    for kind, message in kobo_refusals(dict(content))]
    return report


def _compile(name: str, deployed: DeployedForm, locate: Callable[[str, int], str], *, validate: bool) -> list[str]:
    from pyxform.errors import PyXFormError
    from pyxform.validators.odk_validate import ODKValidateError
    from pyxform.xls2xform import convert as pyxform_convert

    warnings: list[str] = []
    xlsx = to_xlsx(to_source(deployed))
    try:
        pyxform_convert(io.BytesIO(xlsx), warnings=warnings, validate=validate, file_type=".xlsx",
                        form_name="data")
    except ODKValidateError as exc:
        reason = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip() and "ODK Validate Errors" not in ln)
        raise FormBuildError(f"{name}: ODK Validate (JavaRosa) rejects the form: {reason}") from exc
    except PyXFormError as exc:
        where, message = _point(name, locate, str(exc), deployed)
        raise FormBuildError(f"{where}: pyxform refuses the form: {message}") from exc
    except OSError as exc:  # Java missing with --validate
        raise FormBuildError(f"{name}: could not run ODK Validate ({exc}); is Java installed?") from exc
    out = []
    for w in warnings:
        where, message = _point(name, locate, w, deployed)
        out.append(f"{where}: pyxform: {message}")
    return out


def _point(name: str, locate: Callable[[str, int], str], message: str, deployed: DeployedForm) -> tuple[str, str]:
    """(where in the source, message without pyxform's row number): pyxform numbers the rows KoBo deploys,
    which are not the source's (metadata moved to the top, KoBo's questions expanded); a message without a
    row that names a question ("the survey element named 'q'") points at that question's row."""
    found = _ROW.search(message)
    text = _ROW.sub("", message).strip()
    if found:
        return locate("choices" if "'choices' sheet" in message else "survey", int(found.group(1))), text
    named = _NAMED.search(message)
    if named:
        for row, cells in enumerate(deployed.sheets.get("survey", []), start=2):
            if cells.get("name") == named.group(1):
                return locate("survey", row), text
    return name, text


def _kobo_differences(source: XLSFormSource, content: dict, sheet_rows: list[int]) -> list[str]:
    """Where KoBo reads this form otherwise than pyxform alone would (one line per kind of difference)."""
    survey_rows = {r.row: r for r in source.sheets["survey"].rows}
    own: dict[str, list[int]] = {}
    moved: list[tuple[int, str]] = []
    out: list[str] = []
    for position, (row, sheet_row) in enumerate(zip(content["survey"], sheet_rows, strict=True)):
        original = survey_rows.get(sheet_row)
        if original is None:
            continue
        t = parse_type(row.get("type"), list_name=row.get("select_from_list_name"))
        if t.kobo_only:
            own.setdefault(original.cells.get("type", ""), []).append(sheet_row)
        if not t.ends and not original.cells.get("name"):
            out.append(f"{source.where('survey', sheet_row)}: no name: KoBo names it '{row.get('$autoname')}' "
                       f"after its label (pyxform alone refuses a question without a name)")
        if sheet_row > min(sheet_rows[position:]) and _in_container(source, sheet_row):
            moved.append((sheet_row, str(row.get("$autoname"))))
    if own:
        listed = "; ".join(f"'{t}' (survey row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows))})"
                           for t, rows in own.items())
        out.insert(0, f"{_name(source)}: KoBo's own types, expanded by its importer (pyxform alone does not read "
                      f"them): {listed}")
    if moved:
        names = ", ".join(f"{name} (survey row {row})" for row, name in moved)
        out.append(f"{_name(source)}: KoBo's importer moves its metadata to the top of the form, out of their "
                   f"groups; their answers are keyed by name alone: {names}")
    return out


def _in_container(source: XLSFormSource, sheet_row: int) -> bool:
    depth = 0
    for r in source.sheets["survey"].rows:
        if r.row >= sheet_row:
            return depth > 0
        t = parse_type(r.cells.get("type", ""))
        depth += 1 if t.begins else -1 if t.ends else 0
    return False


def _name(source: XLSFormSource) -> str:
    return source.path.name if source.path else source.stem
