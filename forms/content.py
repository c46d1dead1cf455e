"""XLSForm rows → KoBo's asset `content` JSON.

KoBo stores every form as `content`: the XLSForm rows as JSON, with translated columns turned into
lists aligned with `content.translations`, `select_one yn` split into `type` + `select_from_list_name`,
and each row given `$autoname`/`$xpath`/`$kuid`. Turning our own sources into exactly that shape
means the schema model has one input format, whatever the form's origin: our sources, an `.xlsx`
uploaded to the fake server, or any asset on a real KoBo server.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

from common.errors import FormBuildError
from forms.expand import read_rows, settle_names
from forms.source import XLSFormSource
from forms.types import parse_type

# Columns that XLSForm lets one translate with `column::Language (code)`.
TRANSLATABLE = (
    "label",
    "hint",
    "guidance_hint",
    "constraint_message",
    "required_message",
    "media::image",
    "media::audio",
    "media::video",
    "media::big-image",
    "image",
    "audio",
    "video",
    "big-image",
)
# pyxform's yes/no spellings (aliases.yes_no), which KoBo's importer turns into true/false
_YES_NO = {**{v: True for v in ("yes", "Yes", "YES", "true", "True", "TRUE", "true()")},
           **{v: False for v in ("no", "No", "NO", "false", "False", "FALSE", "false()")}}


def _split_translated(column: str) -> tuple[str, str | None]:
    """'label::Arabic (ar)' → ('label', 'Arabic (ar)'); 'label' → ('label', None); others unchanged."""
    for base in TRANSLATABLE:
        if column == base:
            return base, None
        if column.startswith(base + "::"):
            return base, column[len(base) + 2 :].strip()
    return column, None


def translations_of(source: XLSFormSource) -> list[str | None]:
    """The form's languages in KoBo's order: the default language first, then as the columns appear."""
    seen: list[str | None] = []
    for sheet in ("survey", "choices"):
        found = source.sheets.get(sheet)
        for column in found.header if found else []:
            base, lang = _split_translated(column)
            if base in TRANSLATABLE and lang not in seen:
                seen.append(lang)
    if not seen:
        seen = [None]
    settings = (source.rows("settings") or [{}])[0]
    default = settings.get("default_language")
    if default and default in seen:
        seen.remove(default)
        seen.insert(0, default)
    return seen


def _kuid(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:9]


def _row_to_content(row: dict[str, str], translations: list[str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    translated: dict[str, list[str | None]] = {}
    for column, value in row.items():
        base, lang = _split_translated(column)
        if base in TRANSLATABLE:
            translated.setdefault(base, [None] * len(translations))[translations.index(lang)] = value
        else:
            out[column] = value
    out.update(translated)
    return out


# rows KoBo's importer moves to the top of the survey, by their type as written
# (formpack `expand_content`: "prepend meta questions to the beginning of the survey")
KOBO_META_TYPES = frozenset({"start", "today", "end", "deviceid", "phone_number", "audit", "username", "phonenumber",
                             "imei", "start-geopoint"})
_XPATH_CONTAINERS = ("group", "repeat", "score")  # KoBo's `$xpath` nests these only (kpi/utils/absolute_paths.py)


def to_content(source: XLSFormSource) -> dict[str, Any]:
    """The KoBo `content` JSON for a form, as KoBo's importer makes it from the XLSForm (see `convert`)."""
    return convert(source)[0]


def convert(source: XLSFormSource) -> tuple[dict[str, Any], list[int]]:
    """The KoBo `content` JSON for a form, as KoBo's importer makes it from the XLSForm, and for each of its
    survey rows the sheet row it comes from.

    {schema, survey, choices, settings, translations, translated}: every type read as pyxform reads it
    (an unknown one is refused, naming the row) and stored as KoBo stores it — `select_one` with
    `select_from_list_name`, `_or_other` for `or_other`; the metadata rows (`start`, `end`, …) moved to
    the top of the survey; every row with `$autoname` (a row without a name gets KoBo's name from its
    label), `$xpath` as KoBo computes it, and `$kuid`."""
    translations = translations_of(source)
    translated_cols: set[str] = set()
    rows: list[tuple[int, dict[str, Any], bool]] = []  # (sheet row, content row, moved to the top by KoBo)
    opened: list[tuple[str, int]] = []  # (container, sheet row) of the open begin rows
    siblings: list[dict[str, int]] = [{}]  # per open container: name → sheet row (pyxform: unique among siblings)
    for sheet_row in source.sheets["survey"].rows:
        where = source.where("survey", sheet_row.row)
        cells = dict(sheet_row.cells)
        raw_type = " ".join(cells.get("type", "").split(" ")).strip()
        if not raw_type:
            if not (cells.get("name") or any(k.split("::")[0] == "label" for k in cells)):
                continue  # pyxform skips a row with neither type, name nor label
            raise FormBuildError(f"{where}: a row without a type (pyxform: 'Question with no type')")
        parsed = parse_type(raw_type, strict=True)
        if not parsed.known:
            raise FormBuildError(f"{where}: unknown question type '{raw_type}'{_did_you_mean(raw_type)}")
        row = _row_to_content(cells, translations)
        translated_cols.update(k for k, v in row.items() if isinstance(v, list))
        row["type"] = parsed.base
        name = row.get("name")
        if name and not parsed.ends:
            if name in siblings[-1]:
                raise FormBuildError(f"{where}: the name '{name}' is already used on survey row "
                                     f"{siblings[-1][name]} in the same group; pyxform (and KoBo) need another name")
            siblings[-1][name] = sheet_row.row
        if parsed.container:
            if parsed.ends:
                _close(opened, parsed.container, where)
                siblings.pop()
                row.pop("name", None)
            else:
                opened.append((parsed.container, sheet_row.row))
                siblings.append({})
                if parsed.list_name:  # `begin loop over LIST`
                    row["select_from_list_name"] = parsed.list_name
        elif parsed.list_name:
            row["select_from_list_name"] = parsed.list_name
        if parsed.or_other:
            row["_or_other"] = True
        if "required" in row:  # yes/no as KoBo stores them (true/false); an expression stays as written
            flag = str(row["required"]).strip()
            if flag in _YES_NO:
                row["required"] = _YES_NO[flag]
        name = row.get("name")
        if name and not _XML_NAME.fullmatch(name):
            raise FormBuildError(f"{where}: the name '{name}' is not a valid XML name (pyxform and KoBo refuse it): "
                                 f"start with a letter or _, then letters, digits, _, - or .")
        rows.append((sheet_row.row, row, raw_type in KOBO_META_TYPES))
    if opened:
        container, row_number = opened[-1]
        raise FormBuildError(f"{source.where('survey', row_number)}: {container} opened here is never closed")
    moved = [(n, row) for n, row, meta in rows if meta] + [(n, row) for n, row, meta in rows if not meta]
    survey = _name_rows(source, moved)
    sheet_rows = [n for n, _ in moved]
    choices = _choices(source, translations, translated_cols)
    settings = dict((source.rows("settings") or [{}])[0])
    content: dict[str, Any] = {
        "schema": "1",
        "survey": survey,
        "choices": choices,
        "settings": settings,
        "translated": sorted(translated_cols),
        "translations": translations,
    }
    for sheet in EXTRA_SHEETS:  # kept as KoBo keeps them, cells as written, for the deployed XLSForm
        if source.rows(sheet):
            content[sheet] = [dict(r) for r in source.rows(sheet)]
    return content, sheet_rows


EXTRA_SHEETS = ("external_choices", "osm", "entities")


def kobo_refusals(content: dict[str, Any]) -> list[tuple[str, str]]:
    """What KoBo's importer refuses in a form pyxform may accept, as (KoBo's error type, message):
    a name used twice anywhere in the form (`kpi/models/import_export_task.py`: names must be unique in
    the whole form, not only within their group) and pyxform's `loop` (KoBo's type aliases do not know it)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for row in content.get("survey") or []:
        t = parse_type(row.get("type"), list_name=row.get("select_from_list_name"))
        if t.ends:
            continue
        if t.container == "loop":
            out.append(("ValueError", f"unknown type ['begin loop over {t.list_name}']: KoBo does not read "
                                      f"pyxform's loops"))
        name = row.get("name")
        if name and name in seen:
            out.append(("DuplicateNameException", f"Duplicate node name: {name}"))
        if name:
            seen.add(name)
    return out


_XML_NAME = re.compile(r"[^\W\d][\w.\-]*")


def _did_you_mean(raw: str) -> str:
    lenient = parse_type(raw)
    if lenient.known:
        return f"; did you mean '{lenient.base}'? (pyxform reads types case-sensitively)"
    return " (see the XLSForm question types at https://xlsform.org/en/#question-types)"


def _close(opened: list[tuple[str, int]], container: str, where: str) -> None:
    if not opened:
        raise FormBuildError(f"{where}: end_{container} without a matching begin_{container}")
    begun, row = opened.pop()
    if begun != container:
        raise FormBuildError(f"{where}: end_{container} closes the {begun} opened on survey row {row}; "
                             f"write end_{begun}")


def _name_rows(source: XLSFormSource, rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """`$autoname` (KoBo's name for a row without one), `$xpath` as KoBo computes it, and `$kuid`."""
    settled = settle_names(read_rows([row for _, row in rows]))
    survey: list[dict[str, Any]] = []
    stack: list[str] = []
    for (sheet_row, row), named in zip(rows, settled, strict=True):
        t = named.type
        if t.ends:
            if t.container in _XPATH_CONTAINERS and stack:
                stack.pop()
            row["$kuid"] = _kuid(source.stem, "end", str(sheet_row))
            survey.append(row)
            continue
        name = row.get("name") or named.name
        row["$autoname"] = name
        row["$xpath"] = "/".join([*stack, name])
        row["$kuid"] = _kuid(source.stem, row["$xpath"])
        if t.begins and t.container in _XPATH_CONTAINERS:
            stack.append(name)
        survey.append(row)
    return survey


def _choices(source: XLSFormSource, translations: list[str | None], translated_cols: set[str]) -> list[dict[str, Any]]:
    choices: list[dict[str, Any]] = []
    for sheet_row in source.sheets["choices"].rows if "choices" in source.sheets else []:
        row = _row_to_content(dict(sheet_row.cells), translations)
        translated_cols.update(k for k, v in row.items() if isinstance(v, list))
        where = source.where("choices", sheet_row.row)
        if "list_name" not in row:
            raise FormBuildError(f"{where}: a choice without a list_name")
        if "name" not in row:
            raise FormBuildError(f"{where}: choice of list '{row['list_name']}' without a name (pyxform: "
                                 f"'Choices must have a name')")
        row["$autovalue"] = row["name"]
        row["$kuid"] = _kuid(source.stem, row["list_name"], row["name"])
        choices.append(row)
    return choices


LANG_CODE = re.compile(r"\(([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*)\)\s*$")


def language_code(translation: str | None) -> str:
    """'Arabic (ar)' → 'ar'; 'Kurdish (Sorani) (ckb)' → 'ckb'; None (an untranslated form) → 'default'."""
    if translation is None:
        return "default"
    found = LANG_CODE.search(translation)
    if found:
        return found.group(1).lower()
    ascii_name = unicodedata.normalize("NFKD", translation).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    return slug or "default"
