"""`amina forms build`: XLSForm sources → the `.xlsx` to upload to KoBo and the XForm XML.

The XForm is compiled by pyxform from the very `.xlsx` we ship, so what KoBo will compile is what
we checked. A form pyxform or ODK Validate rejects fails the build with their message and the
source line and sheet row it points at.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from amina.errors import FormBuildError
from forms.source import XLSFormSource, read_source, source_paths, to_xlsx

_ROW_REF = re.compile(r"\[row\s*:\s*(\d+)\]")
_SHEET_REF = re.compile(r"On the '(\w+)' sheet")
_QUOTED = re.compile(r"'([^']+)'")
_NODE_REF = re.compile(r"node \[\$\{(\w+)\}\]|/data/([\w/]+)")


@dataclass(slots=True)
class BuiltForm:
    name: str
    source: Path
    xlsx: Path
    xform: Path
    warnings: list[str] = field(default_factory=list)


def compile_xform(source: XLSFormSource, xlsx: bytes, *, validate: bool) -> tuple[str, list[str]]:
    """(XForm XML, pyxform warnings) or FormBuildError pointing at the source line."""
    from pyxform.errors import PyXFormError
    from pyxform.validators.odk_validate import ODKValidateError
    from pyxform.xls2xform import convert

    check_choice_lists(source)
    warnings: list[str] = []
    try:
        result = convert(io.BytesIO(xlsx), warnings=warnings, validate=validate, pretty_print=True,
                         file_type=".xlsx", form_name="data")
    except ODKValidateError as exc:
        raise FormBuildError(f"{source.stem}: ODK Validate rejected the form: {_validate_reason(source, exc)}"
                             ) from exc
    except PyXFormError as exc:
        raise FormBuildError(f"{_locate(source, str(exc))}: pyxform: {exc}") from exc
    except OSError as exc:  # java missing when validate=True
        raise FormBuildError(f"{source.stem}: could not run ODK Validate ({exc}); is Java installed?") from exc
    return result.xform, warnings


def _locate(source: XLSFormSource, message: str) -> str:
    """Where pyxform's message points: its '[row : N]', else the first row holding a quoted value."""
    row = _ROW_REF.search(message)
    sheet = _SHEET_REF.search(message)
    if row:
        return source.where(sheet.group(1) if sheet else "survey", int(row.group(1)))
    for token in _QUOTED.findall(message):
        for sheet_name in ("survey", "choices"):
            for r in source.sheets[sheet_name].rows if sheet_name in source.sheets else []:
                if any(v == token or token in v.split() for v in r.cells.values()):
                    return source.where(sheet_name, r.row)
    return source.path.name if source.path else source.stem


def check_choice_lists(source: XLSFormSource) -> None:
    """Every select names a choice list that exists (pyxform's own message names neither list nor row)."""
    defined = {r.get("list_name") for r in source.rows("choices")}
    for r in source.sheets["survey"].rows:
        parts = r.cells.get("type", "").split()
        if len(parts) == 2 and parts[0] in ("select_one", "select_multiple", "rank") and parts[1] not in defined:
            raise FormBuildError(f"{source.where('survey', r.row)}: the choice list '{parts[1]}' of question "
                                 f"'{r.cells.get('name')}' is not in the choices sheet")


def _validate_reason(source: XLSFormSource, exc: Exception) -> str:
    lines = [ln.strip(" :>") for ln in str(exc).splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(("ODK Validate Errors", "The following files",
                                                                "${tmp", "Result:", "XForm is invalid"))]
    reason = " ".join(useful) or str(exc)
    node = _NODE_REF.search(reason)
    if node:
        name = (node.group(1) or node.group(2)).split("/")[-1]
        for r in source.sheets["survey"].rows:
            if r.cells.get("name") == name:
                return f"{reason} (question '{name}', {source.where('survey', r.row)})"
    return reason


def build_form(path: Path, out_dir: Path, *, validate: bool = True, lint: bool = True) -> BuiltForm:
    """Compile one source; with `lint`, our conventions (forms.lint) must hold too."""
    source = read_source(path)
    if lint:
        from forms.lint import lint as lint_source

        findings = lint_source(source)
        if findings:
            listed = "\n".join(f"  - {f}" for f in findings)
            raise FormBuildError(f"{path.name}: {len(findings)} finding(s) of the form linter:\n{listed}")
    xlsx = to_xlsx(source)
    xform, warnings = compile_xform(source, xlsx, validate=validate)
    out_dir.mkdir(parents=True, exist_ok=True)
    xlsx_path = out_dir / f"{path.stem}.xlsx"
    xform_path = out_dir / f"{path.stem}.xml"
    xlsx_path.write_bytes(xlsx)
    xform_path.write_text(xform, encoding="utf-8")
    return BuiltForm(name=path.stem, source=path, xlsx=xlsx_path, xform=xform_path, warnings=warnings)


def resolve_sources(names: list[str] | None) -> list[Path]:
    """Source paths for form names ('vot_screening'), file paths, or every shipped form."""
    if not names:
        found = source_paths()
        if not found:
            raise FormBuildError("no form sources found in forms/sources/")
        return found
    shipped = {p.stem: p for p in source_paths()}
    out = []
    for name in names:
        p = Path(name)
        if p.suffix == ".md" and p.exists():
            out.append(p)
        elif name in shipped:
            out.append(shipped[name])
        else:
            known = ", ".join(sorted(shipped)) or "none"
            raise FormBuildError(f"no form named '{name}' (known forms: {known}; or give a path to a .md source)")
    return out
