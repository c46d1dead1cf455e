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

from common.errors import FormBuildError
from forms.source import XLSFormSource, source_paths, stamp_version, to_xlsx, with_sensitive_binds
from forms.types import parse_type

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
    version: str = ""


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
        t = parse_type(r.cells.get("type", ""), strict=True)
        if t.base in ("select_one", "select_multiple", "rank") and t.list_name and t.list_name not in defined \
                and "${" not in t.list_name:
            raise FormBuildError(f"{source.where('survey', r.row)}: the choice list '{t.list_name}' of question "
                                 f"'{r.cells.get('name')}' is not in the choices sheet")


def _validate_reason(source: XLSFormSource, exc: Exception) -> str:
    lines = [ln.strip(" :>") for ln in str(exc).splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(("ODK Validate Errors", "The following files",
                                                                "${tmp", "Result:", "XForm is invalid"))]
    return _point_at(source, " ".join(useful) or str(exc))


_EXPRESSION_COLUMNS = ("relevant", "constraint", "calculation", "choice_filter", "required", "default", "trigger",
                       "repeat_count", "label", "hint")
_FAILED_EXPRESSION = re.compile(r"(?:syntax error|Expression)[^:]*:\s*(.+)$")
_UNKNOWN_FUNCTION = re.compile(r"Function '([\w:-]+)' is not defined")


def _expression_row(source: XLSFormSource, reason: str) -> str | None:
    """The question whose expression an engine quotes (compiled: /data/g/q for ${q}) or whose unknown function
    it names."""
    unknown = _UNKNOWN_FUNCTION.search(reason)
    quoted = _FAILED_EXPRESSION.search(reason)
    if not unknown and not quoted:
        return None
    function = f"{unknown.group(1)}(" if unknown else None
    expression = re.sub(r"/data(?:/\w+)*/(\w+)", r"${\1}", quoted.group(1)).replace(" ", "") if quoted else None

    def matches(text: str) -> bool:
        text = text.replace(" ", "")
        return function in text if function else text == expression

    for r in source.sheets["survey"].rows:
        for column, text in r.cells.items():
            if column.split("::")[0] in _EXPRESSION_COLUMNS and matches(text):
                return f"{reason} (question '{r.cells.get('name')}', {column}, {source.where('survey', r.row)})"
    return None


def _point_at(source: XLSFormSource, reason: str) -> str:
    """An engine's message, with the question and source line it points at: the question whose expression it
    quotes, else the first question it names."""
    found = _expression_row(source, reason)
    if found:
        return found
    node = _NODE_REF.search(reason)
    if node:
        name = (node.group(1) or node.group(2)).split("/")[-1]
        for r in source.sheets["survey"].rows:
            if r.cells.get("name") == name:
                return f"{reason} (question '{name}', {source.where('survey', r.row)})"
    return reason


@dataclass(slots=True)
class CompiledForm:
    name: str
    source: XLSFormSource  # with its version stamped (forms.source.stamp_version)
    xlsx: bytes
    xform: str
    warnings: list[str] = field(default_factory=list)


def compile_source(path: Path, *, validate: bool = True, lint: bool = True) -> CompiledForm:
    """Read, lint (our conventions, forms.lint), stamp the version, and compile one source (pyxform, and
    ODK Validate with `validate`)."""
    from forms.check import read_any

    source = read_any(path)
    if lint:
        from forms.lint import lint as lint_source

        findings = lint_source(source)
        if findings:
            listed = "\n".join(f"  - {f}" for f in findings)
            raise FormBuildError(f"{path.name}: {len(findings)} finding(s) of the form linter:\n{listed}")
    source = with_sensitive_binds(stamp_version(source))
    xlsx = to_xlsx(source)
    xform, warnings = compile_xform(source, xlsx, validate=validate)
    return CompiledForm(name=path.stem, source=source, xlsx=xlsx, xform=xform, warnings=warnings)


def engine_check(forms: list[CompiledForm], *, engine: bool | None) -> str | None:
    """Load every form in @getodk/xforms-engine (ODK Web Forms). `engine`: True = required, None = when Node and
    the engine are installed, False = not at all. Returns why it was skipped, if it was; raises FormBuildError
    with the engine's message (and the source line it points at) for a form it rejects."""
    from forms import webforms

    if engine is False or not forms:
        return "the ODK Web Forms engine check was turned off" if engine is False else None
    reason = webforms.unavailable_reason()
    if reason:
        if engine:
            raise webforms.EngineUnavailable(f"cannot run @getodk/xforms-engine: {reason}")
        return f"the ODK Web Forms engine check was skipped: {reason}"
    runs = webforms.run_jobs({f.name: f.xform for f in forms}, [{"kind": "load", "form": f.name} for f in forms])
    for form, run in zip(forms, runs, strict=True):
        if run.status == "failure" or run.error:
            raise FormBuildError(f"{form.name}: @getodk/xforms-engine (ODK Web Forms) rejected the form: "
                                 f"{_point_at(form.source, run.error or run.status)}")
    return None


def build_forms(paths: list[Path], out_dir: Path, *, validate: bool = True, lint: bool = True,
                engine: bool | None = None) -> tuple[list[BuiltForm], str | None]:
    """Compile every source, check them all in the Web Forms engine (one Node process), then write the `.xlsx`
    and `.xml` of each. Nothing is written unless every form passes. Returns the forms and why the engine check
    was skipped, if it was (see `engine_check`)."""
    compiled = [compile_source(p, validate=validate, lint=lint) for p in paths]
    skipped = engine_check(compiled, engine=engine)
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    for form, path in zip(compiled, paths, strict=True):
        xlsx_path = out_dir / f"{form.name}.xlsx"
        xform_path = out_dir / f"{form.name}.xml"
        xlsx_path.write_bytes(form.xlsx)
        xform_path.write_text(form.xform, encoding="utf-8")
        built.append(BuiltForm(name=form.name, source=path, xlsx=xlsx_path, xform=xform_path, warnings=form.warnings,
                               version=form.source.version or ""))
    return built, skipped


def build_form(path: Path, out_dir: Path, *, validate: bool = True, lint: bool = True,
               engine: bool | None = False) -> BuiltForm:
    """`build_forms` for one source (without the engine check unless asked: Node costs a second and a half)."""
    [built], _ = build_forms([path], out_dir, validate=validate, lint=lint, engine=engine)
    return built


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
        if p.suffix.lower() in (".md", ".xlsx") and p.exists():
            out.append(p)
        elif name in shipped:
            out.append(shipped[name])
        else:
            known = ", ".join(sorted(shipped)) or "none"
            raise FormBuildError(f"no form named '{name}' (known forms: {known}; or give a path to a .md or .xlsx "
                                 f"XLSForm)")
    return out
