"""KoBo `content` → the XLSForm KoBo hands to pyxform when it deploys a form.

KoBo deploys a version by turning its content back into XLSForm rows (`kpi/models/asset_snapshot.py`:
names settled, its rank/score/matrix questions expanded, `$autoname` moved into `name`, translated
columns back to `label::Language`, `_or_other` back to `select_one list or_other`) and compiling those
with pyxform. `amina forms lint` compiles the same rows, so pyxform judges the form KoBo would deploy,
and every message can point back at the source row it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from forms.content import EXTRA_SHEETS
from forms.expand import SurveyRow, expand, read_rows, settle_names
from forms.source import Sheet, SheetRow, XLSFormSource
from forms.types import SELECT_TYPES

_DROPPED = {"select_from_list_name", "_or_other", "file", "type", "name", "required"}


@dataclass(frozen=True, slots=True)
class DeployedForm:
    """The sheets as rows of cells, and for each survey row the content row (1-based) it comes from."""

    sheets: dict[str, list[dict[str, str]]]
    origins: list[int]  # origins[i]: content survey row of sheet row i + 2


def deployed_sheets(content: Mapping[str, Any]) -> DeployedForm:
    """The XLSForm sheets (survey, choices, settings) KoBo would compile for this content."""
    translations = list(content.get("translations") or [None])
    choices_by_list: dict[str, list[Mapping[str, Any]]] = {}
    for row in content.get("choices") or []:
        if isinstance(row, Mapping) and row.get("list_name"):
            choices_by_list.setdefault(str(row["list_name"]), []).append(row)
    rows = expand(settle_names(read_rows(content.get("survey") or [])), choices_by_list)
    survey = [_survey_row(r, translations) for r in rows]
    choices = [_cells(row, translations, skip={"$autovalue"}) | {"name": str(row.get("name") or row.get("$autovalue"))}
               for row in content.get("choices") or [] if isinstance(row, Mapping)]
    settings = content.get("settings") or {}
    if isinstance(settings, Sequence) and not isinstance(settings, str):
        settings = settings[0] if settings else {}
    sheets = {"survey": survey, "choices": choices,
              "settings": [{k: _cell(v) for k, v in settings.items() if _cell(v)}] if settings else []}
    for extra in EXTRA_SHEETS:
        sheets[extra] = [{k: _cell(v) for k, v in row.items() if _cell(v)} for row in content.get(extra) or []
                         if isinstance(row, Mapping)]
    return DeployedForm(sheets={k: v for k, v in sheets.items() if v}, origins=[r.position for r in rows])


def _survey_row(r: SurveyRow, translations: list[str | None]) -> dict[str, str]:
    t = r.type
    cells = _cells(r.row, translations, skip=_DROPPED)
    if t.ends:
        cells["type"] = t.base
        return cells
    if t.base in SELECT_TYPES and t.list_name:
        kind = f"{t.base} {t.list_name}" + (" or_other" if t.or_other else "")
    elif t.container == "loop":
        kind = f"begin_loop over {t.list_name}"
    elif t.base == "osm" and t.list_name:
        kind = f"osm {t.list_name}"
    else:
        kind = t.base if t.known else t.raw
    cells["type"] = kind
    cells["name"] = str(r.row.get("name"))
    required = r.row.get("required")
    if required not in (None, "", False):
        cells["required"] = "yes" if required is True else str(required)
    return cells


def _cells(row: Mapping[str, Any], translations: list[str | None], *, skip: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in row.items():
        if key in skip or key.startswith("$") or key.startswith("kobo--"):
            continue
        if isinstance(value, list):
            for lang, text in zip(translations, value, strict=False):
                if text not in (None, ""):
                    out[key if lang is None else f"{key}::{lang}"] = str(text)
        elif _cell(value):
            out[key] = _cell(value)
    return out


def _cell(value: Any) -> str:
    if value is None or value is False:
        return ""
    if value is True:
        return "yes"
    if isinstance(value, (Mapping, list)):
        return ""
    return str(value)


def to_source(form: DeployedForm) -> XLSFormSource:
    """The sheets as an XLSFormSource (`forms.source.to_xlsx` writes the workbook pyxform reads)."""
    sheets: dict[str, Sheet] = {}
    for name, rows in form.sheets.items():
        header: list[str] = []
        for row in rows:
            header += [k for k in row if k not in header]
        sheets[name] = Sheet(name=name, header=header,
                             rows=[SheetRow(cells=row, line=i, row=i) for i, row in enumerate(rows, start=2)])
    return XLSFormSource(path=None, sheets=sheets)
