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
from forms.source import XLSFormSource

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
_GROUP_OPEN = {"begin_group", "begin_repeat", "begin group", "begin repeat"}
_GROUP_CLOSE = {"end_group", "end_repeat", "end group", "end repeat"}
_SELECT_PREFIXES = (
    "select_one_from_file",
    "select_multiple_from_file",
    "select_one",
    "select_multiple",
    "select one",
    "select multiple",
    "rank",
)
_TRUE = {"yes", "true", "true()", "1"}


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


def to_content(source: XLSFormSource) -> dict[str, Any]:
    """The KoBo `content` JSON for a form: {schema, survey, choices, settings, translations, translated}."""
    translations = translations_of(source)
    translated_cols: set[str] = set()
    survey: list[dict[str, Any]] = []
    stack: list[str] = []
    for sheet_row in source.sheets["survey"].rows:
        cells = dict(sheet_row.cells)
        raw_type = " ".join(cells.get("type", "").split())
        if not raw_type:
            raise FormBuildError(f"{source.where('survey', sheet_row.row)}: a row without a type")
        row = _row_to_content(cells, translations)
        translated_cols.update(k for k, v in row.items() if isinstance(v, list))
        lowered = raw_type.lower()
        for prefix in _SELECT_PREFIXES:
            if lowered.startswith(prefix + " "):
                row["type"] = prefix.replace(" ", "_")
                row["select_from_list_name"] = raw_type[len(prefix) + 1 :].strip()
                break
        else:
            row["type"] = lowered.replace(" ", "_") if lowered in _GROUP_OPEN | _GROUP_CLOSE else raw_type
        if "required" in row:
            row["required"] = str(row["required"]).strip().lower() in _TRUE
        t = row["type"]
        if t in ("end_group", "end_repeat"):
            if not stack:
                raise FormBuildError(f"{source.where('survey', sheet_row.row)}: {t} without a matching begin")
            stack.pop()
            row.pop("name", None)
            row["$kuid"] = _kuid(source.stem, "end", str(sheet_row.row))
            survey.append(row)
            continue
        name = row.get("name")
        if not name:
            if t in ("note",) or t.startswith("begin_"):
                name = f"{t}_{sheet_row.row}"
            else:
                raise FormBuildError(f"{source.where('survey', sheet_row.row)}: a '{t}' question without a name")
        xpath = "/".join([*stack, name])
        row["$autoname"] = name
        row["$xpath"] = xpath
        row["$kuid"] = _kuid(source.stem, xpath)
        if t in ("begin_group", "begin_repeat"):
            stack.append(name)
        survey.append(row)
    if stack:
        raise FormBuildError(f"{source.stem}: group or repeat '{stack[-1]}' is never closed")

    choices: list[dict[str, Any]] = []
    for sheet_row in source.sheets["choices"].rows if "choices" in source.sheets else []:
        row = _row_to_content(dict(sheet_row.cells), translations)
        translated_cols.update(k for k, v in row.items() if isinstance(v, list))
        if "list_name" not in row or "name" not in row:
            raise FormBuildError(f"{source.where('choices', sheet_row.row)}: a choice needs list_name and name")
        row["$autovalue"] = row["name"]
        row["$kuid"] = _kuid(source.stem, row["list_name"], row["name"])
        choices.append(row)

    settings = dict((source.rows("settings") or [{}])[0])
    return {
        "schema": "1",
        "survey": survey,
        "choices": choices,
        "settings": settings,
        "translated": sorted(translated_cols),
        "translations": translations,
    }


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
