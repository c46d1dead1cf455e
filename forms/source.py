"""XLSForm sources kept as markdown tables (pyxform's own text format), one file per form.

A source is reviewable as a text diff: one XLSForm row per line. This module reads it into sheets
of rows while remembering each row's line in the file, so that every error (pyxform's, the
linter's) can point at the line a person must fix, and writes the `.xlsx` a data manager uploads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from common.errors import FormBuildError
from forms.headers import SHEETS, column_name, sheet_name

SOURCES_DIR = Path(__file__).parent / "sources"

_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_SEPARATOR = re.compile(r"^[\s|:-]+$")


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One XLSForm row: its cells by column header, the line it came from and its sheet row number."""

    cells: dict[str, str]
    line: int
    row: int  # row number as in the spreadsheet: the header is row 1, the first data row is row 2


@dataclass(slots=True)
class Sheet:
    name: str
    header: list[str]
    rows: list[SheetRow] = field(default_factory=list)


@dataclass(slots=True)
class XLSFormSource:
    """The sheets of one XLSForm (survey, choices, settings, ...) and where they came from."""

    path: Path | None
    sheets: dict[str, Sheet]
    notes: list[str] = field(default_factory=list)  # what the reader let pass that a person should know

    def rows(self, sheet: str) -> list[dict[str, str]]:
        found = self.sheets.get(sheet)
        return [r.cells for r in found.rows] if found else []

    def where(self, sheet: str, row: int) -> str:
        """'forms/sources/x.md line 12 (survey row 5)' for a spreadsheet row number."""
        name = self.path.name if self.path else "<form>"
        found = self.sheets.get(sheet)
        if found:
            for r in found.rows:
                if r.row == row:
                    return f"{name} line {r.line} ({sheet} row {row})"
        return f"{name} ({sheet} row {row})"

    @property
    def version(self) -> str | None:
        """settings.version, if the form has one."""
        settings = self.sheets.get("settings")
        if not settings or not settings.rows:
            return None
        return settings.rows[0].cells.get("version", "").strip() or None

    @property
    def stem(self) -> str:
        return self.path.stem if self.path else "form"


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(inner)]


_INLINE_COMMENT = re.compile(r"^(.*\|)\s*#[^|]*$")


def read_markdown(text: str, path: Path | None = None) -> XLSFormSource:
    """Parse pyxform's markdown layout: a line `| sheet |` opens a sheet, its next row is the header.

    As pyxform reads it: sheet names in any case (`| Survey |`), column headers as `forms.headers` reads
    them, `#` comment lines and a trailing `# comment` after the last cell ignored, and a form whose only
    sheet has another name read as its survey."""
    sheets: dict[str, Sheet] = {}
    notes: list[str] = []
    current: Sheet | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith("|") or stripped.startswith("#"):
            continue
        comment = _INLINE_COMMENT.match(stripped)
        if comment:
            stripped = comment.group(1)
        if _SEPARATOR.match(stripped):
            continue
        cells = _cells(stripped)
        first, rest = cells[0], cells[1:]
        if first:
            name = sheet_name(first)
            if name in sheets:
                notes.append(f"{_name(path)} line {number}: sheet '{first}' appears twice; pyxform reads the "
                             f"last one, and so do we")
            current = sheets[name] = Sheet(name=name, header=[])
            continue
        if current is None:
            raise FormBuildError(f"{_name(path)} line {number}: a row before any sheet name (| survey |)")
        if not current.header:
            current.header = [column_name(current.name, h) if h else "" for h in rest]
            _check_header(current, f"{_name(path)} line {number}")
            continue
        if not any(rest):
            continue
        if len(rest) > len(current.header):
            extra = [c for c in rest[len(current.header):] if c]
            if extra:
                raise FormBuildError(
                    f"{_name(path)} line {number}: {len(rest)} cells but the {current.name} header has "
                    f"{len(current.header)} columns"
                )
        row_cells = {h: v for h, v in zip(current.header, rest, strict=False) if h and v}
        current.rows.append(SheetRow(cells=row_cells, line=number, row=len(current.rows) + 2))
    return _with_survey(XLSFormSource(path=path, sheets=sheets, notes=notes), _name(path))


def _check_header(sheet: Sheet, where: str) -> None:
    seen: set[str] = set()
    for h in sheet.header:
        if h and h in seen:
            raise FormBuildError(f"{where}: the {sheet.name} sheet has the column '{h}' twice (column names are "
                                 f"read without case: 'Label' is 'label')")
        seen.add(h)


def _with_survey(source: XLSFormSource, name: str) -> XLSFormSource:
    """pyxform reads a form whose only sheet is not called survey as its survey; otherwise one is needed."""
    if "survey" in source.sheets:
        return source
    if len(source.sheets) == 1:
        [(only, sheet)] = source.sheets.items()
        if only not in SHEETS:
            sheet.name = "survey"
            sheet.header = [column_name("survey", h) if h else "" for h in sheet.header]
            source.sheets = {"survey": sheet}
            source.notes.append(f"{name}: the only sheet, '{only}', is read as the survey (as pyxform does)")
            return source
    raise FormBuildError(f"{name}: no '| survey |' sheet found")


def read_source(path: str | Path) -> XLSFormSource:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FormBuildError(f"cannot read form source {p}: {exc.strerror}") from exc
    return read_markdown(text, p)


def content_digest(source: XLSFormSource) -> str:
    """A hash of everything in the form but its version: same questions, same digest."""
    h = hashlib.sha256()
    for sheet in source.sheets.values():
        h.update(("\x1e" + "\x1f".join([sheet.name, *sheet.header])).encode())
        for r in sheet.rows:
            cells = {k: v for k, v in r.cells.items() if not (sheet.name == "settings" and k == "version")}
            h.update(("\x1d" + "\x1f".join(f"{k}={v}" for k, v in sorted(cells.items()))).encode())
    return h.hexdigest()


def stamp_version(source: XLSFormSource, *, today: dt.date | None = None) -> XLSFormSource:
    """The source with its settings version stamped by the build, unless the author wrote one.

    The stamp is `YYYYMMDD.` + the first 8 hex digits of `content_digest`: a changed form gets a new
    version (which ODK Collect and KoBo need to see an update), an unchanged one built the same day
    keeps it, and a later build sorts after an earlier one.
    """
    if source.version:
        return source
    settings = source.sheets.get("settings")
    day = today or dt.datetime.now(dt.UTC).date()
    version = f"{day:%Y%m%d}.{content_digest(source)[:8]}"
    sheets = dict(source.sheets)
    if settings is None:
        sheets["settings"] = Sheet(name="settings", header=["version"], rows=[SheetRow({"version": version}, 0, 2)])
    else:
        header = settings.header if "version" in settings.header else [*settings.header, "version"]
        rows = settings.rows or [SheetRow({}, 0, 2)]
        first = replace(rows[0], cells={**rows[0].cells, "version": version})
        sheets["settings"] = Sheet(name="settings", header=header, rows=[first, *rows[1:]])
    return XLSFormSource(path=source.path, sheets=sheets)


AMINA_NAMESPACE = 'amina="https://amina-sync.org/xforms"'
SENSITIVE_BIND = "bind::amina:sensitive"


def with_sensitive_binds(source: XLSFormSource) -> XLSFormSource:
    """The source with its `amina::sensitive` marks also as a bind attribute (`bind::amina:sensitive`, in the
    `amina` namespace the settings declare), so the XForm itself says which questions are personal data: pyxform
    drops custom columns, and ODK Central serves only the XForm (forms.xform reads the attribute back)."""
    survey = source.sheets.get("survey")
    marked = [r for r in survey.rows if _truthy_cell(r.cells.get("amina::sensitive"))] if survey else []
    if survey is None or not marked or SENSITIVE_BIND in survey.header:
        return source
    sheets = dict(source.sheets)
    sheets["survey"] = Sheet(name=survey.name, header=[*survey.header, SENSITIVE_BIND], rows=[
        replace(r, cells={**r.cells, SENSITIVE_BIND: "yes"}) if r in marked else r for r in survey.rows])
    settings = source.sheets.get("settings")
    rows = settings.rows if settings is not None and settings.rows else [SheetRow({}, 0, 2)]
    declared = rows[0].cells.get("namespaces", "")
    if "amina=" not in declared:
        header = settings.header if settings is not None else []
        header = header if "namespaces" in header else [*header, "namespaces"]
        first = replace(rows[0], cells={**rows[0].cells, "namespaces": f"{declared} {AMINA_NAMESPACE}".strip()})
        sheets["settings"] = Sheet(name="settings", header=header, rows=[first, *rows[1:]])
    return XLSFormSource(path=source.path, sheets=sheets, notes=list(source.notes))


def _truthy_cell(value: str | None) -> bool:
    return (value or "").strip().lower() in ("yes", "true", "true()", "1", "y")


def to_xlsx(source: XLSFormSource) -> bytes:
    """The workbook a data manager uploads to KoBo: one worksheet per sheet, no blank rows, every cell text
    (a label starting with '=' stays a label, never a formula a spreadsheet would run and pyxform read as
    empty). The workbook is read back and must give every cell as written, or the build is refused."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for sheet in source.sheets.values():
        ws = wb.create_sheet(title=sheet.name[:31])
        ws.append(sheet.header)
        for r in sheet.rows:
            ws.append([r.cells.get(h) for h in sheet.header])
        for row in ws.iter_rows():
            for cell in row:
                if cell.data_type == "f":  # openpyxl takes any text starting with "=" for a formula
                    cell.data_type = "s"
    buf = io.BytesIO()
    wb.save(buf)
    data = buf.getvalue()
    _check_round_trip(source, data)
    return data


def _check_round_trip(source: XLSFormSource, data: bytes) -> None:
    """Every cell of the source must come back from the workbook as it was written."""
    name = source.path.name if source.path is not None else "form.xlsx"
    back = read_xlsx(data, name)
    for sheet in source.sheets.values():
        again = back.sheets.get(sheet_name(sheet.name))
        for index, r in enumerate(sheet.rows):
            got = set(again.rows[index].cells.values()) if again is not None and index < len(again.rows) else set()
            for column, value in r.cells.items():
                if value and value not in got:
                    raise FormBuildError(f"{name} line {r.line}: the {sheet.name} sheet's {column} cell "
                                         f"{value[:40]!r} would not survive in the .xlsx; change the text")


def read_xlsx(data: bytes, name: str = "form.xlsx") -> XLSFormSource:
    """Read an .xlsx into the same sheets (the fake server's imports, `amina forms lint`): sheet and column
    names as pyxform reads them, cells as KoBo's importer writes them (an Excel TRUE is `TRUE`)."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a bad file
        raise FormBuildError(f"{name}: not a readable .xlsx workbook ({exc.__class__.__name__})") from exc
    sheets: dict[str, Sheet] = {}
    notes: list[str] = []
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        if not rows:
            continue
        title = sheet_name(ws.title)
        header = [column_name(title, _xlsx_str(h)) if _xlsx_str(h) else "" for h in rows[0]]
        sheet = Sheet(name=title, header=header)
        _check_header(sheet, f"{name} sheet '{ws.title}'")
        for index, values in enumerate(rows[1:], start=2):
            cells = {h: _xlsx_str(v) for h, v in zip(header, values, strict=False) if h and _xlsx_str(v)}
            if cells:
                sheet.rows.append(SheetRow(cells=cells, line=index, row=index))
        if title in sheets:
            notes.append(f"{name}: sheet '{ws.title}' appears twice; the last one is read")
        sheets[title] = sheet
    return _with_survey(XLSFormSource(path=Path(name), sheets=sheets, notes=notes), name)


def _xlsx_str(value: object) -> str:
    """A cell as pyxform's and KoBo's readers make it text: TRUE/FALSE, 3 not 3.0, no non-breaking spaces."""
    if value is None:
        return ""
    if value is True or value is False:
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("\u00a0", " ").strip()


def _name(path: Path | None) -> str:
    return path.name if path else "<form>"


def source_paths() -> list[Path]:
    """Every form source shipped in forms/sources/, in a stable order."""
    return sorted(SOURCES_DIR.glob("*.md"))
