"""The form schema model: one typed, immutable description of one version of one form.

Everything downstream — warehouse tables and columns, SQL types, the flattener, the data
dictionary, the generator of test submissions — is derived from a `FormSchema` and from nothing
else. It is built from KoBo's asset `content` JSON; our own XLSForm sources reach it through
`forms.content.to_content`, so any KoBo form and ours follow exactly the same path.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from common.errors import FormBuildError
from forms.content import language_code

SENSITIVE_COLUMN = "amina::sensitive"
# XLSForm metadata: the device fills these when a form is opened or saved, the enumerator never does
METADATA_TYPES = frozenset({"start", "end", "today", "deviceid", "username", "phonenumber", "simserial",
                            "subscriberid", "email", "audit"})
# keys of a KoBo submission that are KoBo's or the form's bookkeeping, not answers to its questions
SYSTEM_PREFIXES = ("_", "formhub/", "meta/", "__version__")


def is_answer_key(key: str) -> bool:
    """Is this key of a submission's JSON an answer (or a repeat) of the form, not KoBo's bookkeeping?"""
    return not key.startswith(SYSTEM_PREFIXES)


class Kind(enum.StrEnum):
    """What a question's answer is, as far as storage is concerned."""

    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    TIME = "time"
    TEXT = "text"
    GEOPOINT = "geopoint"
    SELECT_ONE = "select_one"
    SELECT_MULTIPLE = "select_multiple"
    NONE = "none"  # notes and other rows that never carry an answer


# XLSForm type (lower case, aliases folded) → storage kind. Unknown types are stored as text.
_KINDS: dict[str, Kind] = {
    "integer": Kind.INTEGER,
    "int": Kind.INTEGER,
    "decimal": Kind.DECIMAL,
    "range": Kind.DECIMAL,
    "date": Kind.DATE,
    "today": Kind.DATE,
    "datetime": Kind.DATETIME,
    "start": Kind.DATETIME,
    "end": Kind.DATETIME,
    "time": Kind.TIME,
    "geopoint": Kind.GEOPOINT,
    "start-geopoint": Kind.GEOPOINT,
    "select_one": Kind.SELECT_ONE,
    "select_one_from_file": Kind.SELECT_ONE,
    "select_one_external": Kind.SELECT_ONE,
    "select_multiple": Kind.SELECT_MULTIPLE,
    "select_all_that_apply": Kind.SELECT_MULTIPLE,
    "select_multiple_from_file": Kind.SELECT_MULTIPLE,
    "note": Kind.NONE,
    "xml-external": Kind.NONE,
    "csv-external": Kind.NONE,
}
_STRUCTURE = {"begin_group", "end_group", "begin_repeat", "end_repeat", "begin_kobomatrix",
              "end_kobomatrix", "begin_score", "end_score", "begin_rank", "end_rank"}
_TRUE = {"yes", "true", "true()", "1", "y"}


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE if value is not None else False


@dataclass(frozen=True, slots=True)
class Choice:
    code: str
    labels: Mapping[str, str]  # language code → label


@dataclass(frozen=True, slots=True)
class ChoiceList:
    name: str
    choices: tuple[Choice, ...]

    def label(self, code: str, lang: str) -> str | None:
        for c in self.choices:
            if c.code == code:
                return c.labels.get(lang)
        return None


@dataclass(frozen=True, slots=True)
class Repeat:
    path: str  # KoBo flat key of the repeat, e.g. "participants" or "household/members"
    name: str
    parent: str | None  # path of the enclosing repeat, None at the top
    labels: Mapping[str, str]
    sensitive: bool = False
    row: int | None = None

    @property
    def depth(self) -> int:
        return self.path.count("/")


@dataclass(frozen=True, slots=True)
class Group:
    """A group or repeat as a container: what its `relevant` hides applies to every question inside."""

    path: str
    name: str
    relevant: str | None
    is_repeat: bool = False


@dataclass(frozen=True, slots=True)
class Field:
    """One question: what it is, where it lives, and how people see it."""

    path: str  # KoBo flat key: "group/sub/question"
    name: str
    type: str  # XLSForm type as written (folded to lower case, e.g. "select_one", "integer", "start")
    kind: Kind
    repeat: str | None  # innermost enclosing repeat path, None when at the submission's top level
    choice_list: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    hints: Mapping[str, str] = field(default_factory=dict)
    required: str | None = None
    relevant: str | None = None
    constraint: str | None = None
    constraint_message: Mapping[str, str] = field(default_factory=dict)
    calculation: str | None = None
    choice_filter: str | None = None
    appearance: str | None = None
    sensitive: bool = False
    row: int | None = None  # 1-based position among the survey rows (1 = the first question row)

    @property
    def stores_data(self) -> bool:
        return self.kind is not Kind.NONE

    @property
    def is_metadata(self) -> bool:
        return self.type in METADATA_TYPES

    def relative_path(self) -> str:
        """The path below the field's repeat: 'participants/p/name' in repeat 'participants' → 'p/name'."""
        if self.repeat is None:
            return self.path
        return self.path[len(self.repeat) + 1 :]


@dataclass(frozen=True)
class FormSchema:
    """One version of one form. Immutable; safe to share and to cache compiled functions on."""

    form_id: str
    title: str
    version: str | None
    languages: tuple[str, ...]  # language codes in the form's order; the default language first
    language_names: Mapping[str, str | None]  # code → name as the form spells it ('Arabic (ar)')
    fields: tuple[Field, ...]
    repeats: tuple[Repeat, ...]
    choice_lists: Mapping[str, ChoiceList]
    conflicts: Mapping[str, str] = field(default_factory=dict)  # path → how versions disagree on its type
    groups: tuple[Group, ...] = ()  # every group and repeat, outermost first

    def relevant_groups(self, path: str) -> tuple[Group, ...]:
        """The groups and repeats (`path` itself included) whose `relevant` must hold for it to be asked."""
        return tuple(g for g in self.groups if g.relevant and (path == g.path or path.startswith(g.path + "/")))

    @property
    def default_language(self) -> str:
        return self.languages[0]

    @cached_property
    def by_path(self) -> dict[str, Field]:
        return {f.path: f for f in self.fields}

    @cached_property
    def repeats_by_path(self) -> dict[str, Repeat]:
        return {r.path: r for r in self.repeats}

    def field(self, path: str) -> Field:
        try:
            return self.by_path[path]
        except KeyError:
            raise KeyError(f"form {self.form_id} has no question '{path}'") from None

    def fields_in(self, repeat: str | None) -> tuple[Field, ...]:
        """Questions that live directly in `repeat` (None = the submission's top level)."""
        return tuple(f for f in self.fields if f.repeat == repeat)

    def child_repeats(self, parent: str | None) -> tuple[Repeat, ...]:
        return tuple(r for r in self.repeats if r.parent == parent)

    @property
    def sensitive_paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.fields if f.sensitive)

    def merged(self, other: FormSchema) -> FormSchema:
        """This version plus what `other` (another version of the same form) has and this one lacks.

        The warehouse keeps one set of tables per form across versions: questions removed in a newer
        version keep their column (and data), questions added get one. Where both versions define a
        question, this one's definition wins (a changed type keeps this version's column type; values
        that do not fit it are kept raw and reported, never lost)."""
        fields = list(self.fields)
        have = set(self.by_path)
        fields += [f for f in other.fields if f.path not in have]
        conflicts = dict(other.conflicts)
        conflicts.update(self.conflicts)
        for f in other.fields:
            mine = self.by_path.get(f.path)
            if mine is not None and mine.kind != f.kind and mine.stores_data and f.stores_data:
                conflicts[f.path] = (f"version {other.version or '?'} has it as {f.kind.value}; its column keeps "
                                     f"{mine.kind.value} (values that do not fit are kept raw and reported)")
        repeats = list(self.repeats) + [r for r in other.repeats if r.path not in self.repeats_by_path]
        known_groups = {g.path for g in self.groups}
        groups = self.groups + tuple(g for g in other.groups if g.path not in known_groups)
        lists = dict(self.choice_lists)
        for name, cl in other.choice_lists.items():
            if name not in lists:
                lists[name] = cl
            else:
                codes = {c.code for c in lists[name].choices}
                extra = tuple(c for c in cl.choices if c.code not in codes)
                if extra:
                    lists[name] = ChoiceList(name, lists[name].choices + extra)
        languages = self.languages + tuple(lang for lang in other.languages if lang not in self.languages)
        names = {**other.language_names, **self.language_names}
        return FormSchema(form_id=self.form_id, title=self.title, version=self.version, languages=languages,
                          language_names=names, fields=tuple(fields), repeats=tuple(repeats), choice_lists=lists,
                          conflicts=conflicts, groups=groups)

    # -- builders ---------------------------------------------------------------------------------

    @classmethod
    def from_content(
        cls,
        content: Mapping[str, Any],
        *,
        form_id: str | None = None,
        title: str | None = None,
        version: str | None = None,
        sensitive: Iterable[str] = (),
    ) -> FormSchema:
        """Build from KoBo's asset `content` JSON (any deployed KoBo survey).

        `sensitive` lists extra question paths (or names) to treat as personal data, for forms whose
        XLSForm has no `amina::sensitive` column.
        """
        return _Builder(content, set(sensitive)).build(form_id=form_id, title=title, version=version)

    @classmethod
    def from_source(cls, path: str | Path) -> FormSchema:
        """Build from one of our XLSForm sources (markdown) or an .xlsx file."""
        from forms.content import to_content
        from forms.source import read_source, read_xlsx

        p = Path(path)
        source = read_xlsx(p.read_bytes(), p.name) if p.suffix == ".xlsx" else read_source(p)
        return cls.from_content(to_content(source))


class _Builder:
    def __init__(self, content: Mapping[str, Any], sensitive: set[str]):
        if not isinstance(content, Mapping) or not isinstance(content.get("survey"), list):
            raise FormBuildError("the form content has no 'survey' list: is this a KoBo survey asset?")
        self.content = content
        self.extra_sensitive = sensitive
        translations = content.get("translations") or [None]
        self.translations: list[str | None] = list(translations)
        self.codes = [language_code(t) for t in self.translations]
        self.translated = set(content.get("translated") or ())

    def _texts(self, row: Mapping[str, Any], column: str) -> dict[str, str]:
        value = row.get(column)
        if value is None:
            return {}
        if isinstance(value, list):
            return {code: str(v) for code, v in zip(self.codes, value, strict=False) if v not in (None, "")}
        # an untranslated string: it holds for every language
        return {code: str(value) for code in self.codes}

    def build(self, *, form_id: str | None, title: str | None, version: str | None) -> FormSchema:
        settings = self.content.get("settings") or {}
        if isinstance(settings, list):  # very old KoBo content keeps settings as a one-row list
            settings = settings[0] if settings else {}
        fields: list[Field] = []
        repeats: list[Repeat] = []
        groups: list[Group] = []
        stack: list[tuple[str, str, bool]] = []  # (name, kind 'group'|'repeat', sensitive)
        seen: set[str] = set()
        position = 0
        for row in self.content["survey"]:
            position += 1
            rtype = str(row.get("type", "")).strip()
            folded = rtype.lower().replace(" ", "_")
            if folded.startswith("end_") and folded in _STRUCTURE:
                if stack:
                    stack.pop()
                continue
            name = row.get("name") or row.get("$autoname")
            if not name:
                if folded == "note" or folded.startswith("begin_"):
                    name = f"{folded}_{position}"
                else:
                    raise FormBuildError(f"survey row {position}: a '{rtype}' question without a name")
            xpath = row.get("$xpath") or "/".join([*(s[0] for s in stack), name])
            in_sensitive_group = any(s[2] for s in stack)
            sensitive = (
                in_sensitive_group
                or _truthy(row.get(SENSITIVE_COLUMN))
                or xpath in self.extra_sensitive
                or name in self.extra_sensitive
            )
            if folded.startswith("begin_") and folded in _STRUCTURE:
                is_repeat = folded == "begin_repeat"
                stack.append((name, "repeat" if is_repeat else "group", sensitive))
                groups.append(Group(path=xpath, name=name, relevant=row.get("relevant") or None, is_repeat=is_repeat))
                if is_repeat:
                    repeats.append(Repeat(path=xpath, name=name, parent=_enclosing_repeat(xpath, repeats),
                                          labels=self._texts(row, "label"), sensitive=sensitive, row=position))
                continue
            if xpath in seen:
                raise FormBuildError(f"survey row {position}: the name '{xpath}' is used twice")
            seen.add(xpath)
            choice_list = row.get("select_from_list_name")
            base_type = folded
            if not choice_list:  # XLSForm spelling "select_one yn" kept in type
                parts = rtype.split()
                if len(parts) == 2 and parts[0].lower() in _KINDS:
                    base_type, choice_list = parts[0].lower(), parts[1]
            fields.append(Field(
                path=xpath,
                name=name,
                type=base_type,
                kind=_KINDS.get(base_type, Kind.TEXT),
                repeat=_enclosing_repeat(xpath, repeats),
                choice_list=choice_list,
                labels=self._texts(row, "label"),
                hints=self._texts(row, "hint"),
                required=_bool_or_text(row.get("required")),
                relevant=row.get("relevant") or None,
                constraint=row.get("constraint") or None,
                constraint_message=self._texts(row, "constraint_message"),
                calculation=row.get("calculation") or None,
                choice_filter=row.get("choice_filter") or None,
                appearance=row.get("appearance") or None,
                sensitive=sensitive,
                row=position,
            ))
        choice_lists: dict[str, list[Choice]] = {}
        for row in self.content.get("choices") or []:
            list_name = row.get("list_name")
            code = row.get("name") if row.get("name") not in (None, "") else row.get("$autovalue")
            if not list_name or code in (None, ""):
                continue
            choice_lists.setdefault(str(list_name), []).append(
                Choice(code=str(code), labels=self._texts(row, "label")))
        return FormSchema(
            form_id=form_id or str(settings.get("form_id") or settings.get("id_string") or "form"),
            title=title or str(settings.get("form_title") or settings.get("title") or form_id or "form"),
            version=version or (str(settings["version"]) if settings.get("version") else None),
            languages=tuple(self.codes),
            language_names=dict(zip(self.codes, self.translations, strict=False)),
            fields=tuple(fields),
            repeats=tuple(repeats),
            choice_lists={k: ChoiceList(k, tuple(v)) for k, v in choice_lists.items()},
            groups=tuple(groups),
        )


def _enclosing_repeat(xpath: str, repeats: list[Repeat]) -> str | None:
    """The innermost repeat whose path is a proper prefix of `xpath`."""
    best: str | None = None
    for r in repeats:
        if xpath.startswith(r.path + "/") and (best is None or len(r.path) > len(best)):
            best = r.path
    return best


def _bool_or_text(value: Any) -> str | None:
    if value is None or value == "" or value is False:
        return None
    if value is True:
        return "yes"
    return str(value)
