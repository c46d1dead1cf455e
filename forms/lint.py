"""Our own conventions for the programme's XLSForms, checked in `amina forms build`.

pyxform and ODK Validate say whether a form works; this says whether it is one of ours: every label,
hint and constraint message in English, Arabic and Sorani Kurdish; every choice list used; names in
snake_case of at most 40 characters, used once in the whole form; questions that identify a person
marked `amina::sensitive`. Each finding names the file line and the sheet row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from forms.content import TRANSLATABLE, language_code
from forms.source import XLSFormSource
from forms.types import SELECT_TYPES, parse_type

REQUIRED_LANGUAGES = ("en", "ar", "ckb")
MAX_NAME = 40
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
# Question names that, in this programme, identify a person (a warning sign, not a proof).
PERSONAL = re.compile(r"(^|_)(name|phone|mobile|gps|address|document|passport|id_number|narrative|"
                      r"photo|signature|email|facilitators?)($|_)")
NO_INPUT = {"calculate", "note", "start", "end", "today", "deviceid", "username", "subscriberid", "simserial",
            "phonenumber", "audit", "hidden", "begin_group", "end_group", "begin_repeat", "end_repeat",
            "begin group", "end group", "begin repeat", "end repeat"}
STRUCTURE = {"begin_group", "end_group", "begin_repeat", "end_repeat", "begin group", "end group", "begin repeat",
             "end repeat"}


@dataclass(frozen=True, slots=True)
class Finding:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _columns(source: XLSFormSource, sheet: str, base: str) -> dict[str, str]:
    """language code → column header, for a translatable column of a sheet."""
    found = source.sheets.get(sheet)
    out = {}
    for header in found.header if found else []:
        if header.startswith(base + "::"):
            out[language_code(header[len(base) + 2:].strip())] = header
    return out


def lint(source: XLSFormSource) -> list[Finding]:
    findings: list[Finding] = []
    add = findings.append
    survey = source.sheets["survey"]
    for base in ("label", "hint", "constraint_message"):
        have = _columns(source, "survey", base)
        missing = [lang for lang in REQUIRED_LANGUAGES if lang not in have]
        if missing:
            add(Finding(f"{source.stem} (survey)", f"no {base} column for {', '.join(missing)} "
                        f"(expected {base}::English (en), {base}::Arabic (ar), {base}::Sorani Kurdish (ckb))"))
    labels, hints, messages = (_columns(source, "survey", b) for b in ("label", "hint", "constraint_message"))
    seen: dict[str, int] = {}
    used_lists: set[str] = set()
    for row in survey.rows:
        cells = row.cells
        where = source.where("survey", row.row)
        rtype = " ".join(cells.get("type", "").split()).lower()
        name = cells.get("name", "")
        if rtype in ("end_group", "end_repeat", "end group", "end repeat"):
            continue
        parsed = parse_type(cells.get("type", ""))
        if parsed.base in SELECT_TYPES and parsed.list_name:
            used_lists.add(parsed.list_name)
        if name:
            if not SNAKE.match(name):
                add(Finding(where, f"name '{name}' is not snake_case (a-z, 0-9, _; starting with a letter)"))
            if len(name) > MAX_NAME:
                add(Finding(where, f"name '{name}' has {len(name)} characters; at most {MAX_NAME}"))
            if name in seen:
                add(Finding(where, f"name '{name}' is already used on survey row {seen[name]}"))
            seen.setdefault(name, row.row)
        asks = rtype not in NO_INPUT
        shows_text = asks or rtype in STRUCTURE or rtype == "note"
        if shows_text:
            for lang, column in labels.items():
                if lang in REQUIRED_LANGUAGES and not cells.get(column):
                    add(Finding(where, f"'{name}' has no label in {lang}"))
        if asks:
            for lang in REQUIRED_LANGUAGES:
                if lang in hints and not cells.get(hints[lang]):
                    add(Finding(where, f"'{name}' has no hint in {lang}"))
        if cells.get("constraint"):
            for lang in REQUIRED_LANGUAGES:
                if lang not in messages or not cells.get(messages[lang]):
                    add(Finding(where, f"'{name}' has a constraint but no constraint message in {lang}"))
        sensitive = cells.get("amina::sensitive", "").strip().lower() in ("yes", "true", "1")
        if asks and PERSONAL.search(name) and not sensitive:
            add(Finding(where, f"'{name}' looks like personal data: mark it amina::sensitive = yes"))
    choice_labels = _columns(source, "choices", "label")
    defined: dict[str, int] = {}
    for row in source.sheets["choices"].rows if "choices" in source.sheets else []:
        cells = row.cells
        where = source.where("choices", row.row)
        list_name = cells.get("list_name", "")
        defined.setdefault(list_name, row.row)
        for lang in REQUIRED_LANGUAGES:
            if lang not in choice_labels or not cells.get(choice_labels[lang]):
                add(Finding(where, f"choice '{list_name}/{cells.get('name')}' has no label in {lang}"))
    for list_name, first_row in defined.items():
        if list_name not in used_lists:
            add(Finding(source.where("choices", first_row), f"choice list '{list_name}' is not used by any question"))
    for column in survey.header:
        base = column.split("::")[0]
        if base in TRANSLATABLE and "::" not in column and base in ("label", "hint"):
            add(Finding(f"{source.stem} (survey)", f"column '{column}' has no language: use {column}::English (en)"))
    return findings
