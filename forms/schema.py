"""The form schema model: one typed, immutable description of one version of one form.

Everything downstream — warehouse tables and columns, SQL types, the flattener, the data
dictionary, the generator of test submissions — is derived from a `FormSchema` and from nothing
else. It is built from KoBo's asset `content` JSON; our own XLSForm sources reach it through
`forms.content.to_content`, so any KoBo form and ours follow exactly the same path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from common.errors import FormBuildError
from forms.content import language_code
from forms.expand import SurveyRow, expand, read_rows, settle_names
from forms.types import SELECT_TYPES, TYPES, Kind

__all__ = ["Choice", "ChoiceList", "Field", "FormSchema", "Group", "Kind", "Repeat", "is_answer_key"]

SENSITIVE_COLUMN = "amina::sensitive"
# XLSForm metadata: the device fills these when a form is opened or saved, the enumerator never does
METADATA_TYPES = frozenset(t.name for t in TYPES.values() if t.metadata)
# keys of a KoBo submission that are KoBo's or the form's bookkeeping, not answers to its questions
SYSTEM_PREFIXES = ("_", "formhub/", "meta/", "__version__")


def is_answer_key(key: str) -> bool:
    """Is this key of a submission's JSON an answer (or a repeat) of the form, not KoBo's bookkeeping?"""
    return not key.startswith(SYSTEM_PREFIXES)


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
    count: str | None = None  # repeat_count: how many instances the form asks for (an expression)

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

    path: str  # the key KoBo writes the answer under: "group/sub/question"
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
    default: str | None = None
    sensitive: bool = False
    row: int | None = None  # 1-based position in the survey as the XForm has it (KoBo's structures expanded)
    generated: str | None = None  # set for a node pyxform adds: "or_other of q", "repeat_count of r"

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

    @classmethod
    def from_xform(cls, xml: str | bytes, *, sensitive: Iterable[str] = ()) -> FormSchema:
        """Build from an XForm, as ODK Central serves it (forms.xform; `sensitive` as for `from_content`)."""
        from forms.xform import schema_from_xform

        return schema_from_xform(xml, sensitive=sensitive)


class _Builder:
    """Walks the survey as the XForm has it (forms.expand) and records every node that carries data under the
    key KoBo writes it with: the group path (no groups with the `flat` setting), `meta/audit` for the audit,
    and the nodes pyxform adds — `<select>_other` after an `or_other` select, `<repeat>_count` before a
    repeat whose repeat_count is an expression. KoBo's `$xpath` is not trusted: for rank and matrix
    questions and under `flat` it is not the data's key."""

    def __init__(self, content: Mapping[str, Any], sensitive: set[str]):
        if not isinstance(content, Mapping) or not isinstance(content.get("survey"), list):
            raise FormBuildError("the form content has no 'survey' list: is this a KoBo survey asset?")
        self.content = content
        self.extra_sensitive = sensitive
        translations = content.get("translations") or [None]
        if not isinstance(translations, list):
            raise FormBuildError("the form content's 'translations' is not a list")
        self.translations: list[str | None] = [t if t is None else str(t) for t in translations]
        self.codes = unique_codes([language_code(t) for t in self.translations])
        if not isinstance(content.get("choices") or [], list):
            raise FormBuildError("the form content's 'choices' is not a list of choices")

    def _texts(self, row: Mapping[str, Any], column: str) -> dict[str, str]:
        value = row.get(column)
        if value is None:
            return {}
        if isinstance(value, list):
            return {code: str(v) for code, v in zip(self.codes, value, strict=False) if v not in (None, "")}
        if isinstance(value, Mapping):  # pyxform's own JSON: {language: text}
            by_name = {t: c for t, c in zip(self.translations, self.codes, strict=False)}
            return {by_name.get(k, language_code(str(k))): str(v) for k, v in value.items() if v not in (None, "")}
        # an untranslated string: it holds for every language
        return {code: str(value) for code in self.codes}

    def build(self, *, form_id: str | None, title: str | None, version: str | None) -> FormSchema:
        settings = self.content.get("settings") or {}
        if isinstance(settings, list):  # very old KoBo content keeps settings as a one-row list
            settings = settings[0] if settings and isinstance(settings[0], Mapping) else {}
        if not isinstance(settings, Mapping):
            settings = {}
        raw_choices = self._raw_choices()
        rows = expand(settle_names(read_rows(self.content["survey"])), raw_choices)
        walk = _Walk(self, flat=_flat(settings.get("flat")))
        for position, r in enumerate(rows, start=1):
            walk.row(r, position)
        choice_lists = self._choice_lists(raw_choices, walk.or_other_lists)
        return FormSchema(
            form_id=form_id or str(settings.get("form_id") or settings.get("id_string") or "form"),
            title=title or str(settings.get("form_title") or settings.get("title") or form_id or "form"),
            version=version or (str(settings["version"]) if settings.get("version") else None),
            languages=tuple(self.codes),
            language_names=dict(zip(self.codes, self.translations, strict=False)),
            fields=tuple(walk.fields),
            repeats=tuple(walk.repeats),
            choice_lists=choice_lists,
            groups=tuple(walk.groups),
        )

    def _raw_choices(self) -> dict[str, list[Mapping[str, Any]]]:
        out: dict[str, list[Mapping[str, Any]]] = {}
        for row in self.content.get("choices") or []:
            if isinstance(row, Mapping) and row.get("list_name") not in (None, ""):
                out.setdefault(str(row["list_name"]), []).append(row)
        return out

    def _choice_lists(self, raw: Mapping[str, list[Mapping[str, Any]]], or_other: set[str]) -> dict[str, ChoiceList]:
        lists: dict[str, ChoiceList] = {}
        for name, rows in raw.items():
            choices: list[Choice] = []
            seen: set[str] = set()
            for row in rows:
                code = row.get("name") if row.get("name") not in (None, "") else row.get("$autovalue")
                if code in (None, "") or str(code) in seen:
                    continue
                seen.add(str(code))
                choices.append(Choice(code=str(code), labels=self._texts(row, "label")))
            if name in or_other and "other" not in seen:  # pyxform adds the choice `other`, labelled "Other"
                choices.append(Choice(code="other", labels={code: "Other" for code in self.codes}))
            lists[name] = ChoiceList(name, tuple(choices))
        return lists


class _Walk:
    """The state of one walk over the expanded survey rows."""

    def __init__(self, builder: _Builder, *, flat: bool):
        self.b = builder
        self.flat = flat
        self.fields: list[Field] = []
        self.repeats: list[Repeat] = []
        self.groups: list[Group] = []
        self.stack: list[tuple[str, str | None, bool]] = []  # (path segment or None, repeat path or None, sensitive)
        self.seen: dict[str, int] = {}
        self.or_other_lists: set[str] = set()

    def _parent(self) -> list[str]:
        return [segment for segment, _, _ in self.stack if segment is not None]

    def _repeat(self) -> str | None:
        return next((rep for _, rep, _ in reversed(self.stack) if rep is not None), None)

    def row(self, r: SurveyRow, position: int) -> None:
        t = r.type
        if t.ends:
            if self.stack:
                self.stack.pop()
            return
        name = r.name
        if not name:
            raise FormBuildError(f"survey row {r.position}: a '{t.raw}' row without a name")
        row = r.row
        if t.begins:
            self._begin(r, name, position)
            return
        path = "meta/audit" if t.base == "audit" else "/".join([*self._parent(), name]) if not self.flat else name
        self._add(r, position, Field(
            path=path, name=name, type=t.base if t.known else t.raw.lower(), kind=t.kind, repeat=self._repeat(),
            choice_list=t.list_name if t.base in SELECT_TYPES else None, labels=self.b._texts(row, "label"),
            hints=self.b._texts(row, "hint"), required=_bool_or_text(row.get("required")),
            relevant=_text(row.get("relevant")), constraint=_text(row.get("constraint")),
            constraint_message=self.b._texts(row, "constraint_message"),
            calculation=_text(row.get("calculation")), choice_filter=_text(row.get("choice_filter")),
            appearance=_text(row.get("appearance")), default=_text(row.get("default")),
            sensitive=self._sensitive(row, path, name), row=position))
        if t.or_other and t.base in SELECT_TYPES:
            if t.list_name:
                self.or_other_lists.add(t.list_name)
            other = f"{name}_other"
            other_path = other if self.flat else "/".join([*self._parent(), other])
            self._add(r, position, Field(
                path=other_path, name=other, type="text", kind=Kind.TEXT, repeat=self._repeat(),
                labels={code: "Specify other." for code in self.b.codes}, relevant=f"selected(${{{name}}}, 'other')",
                sensitive=self._sensitive(row, path, name), row=position, generated=f"or_other of {name}"))

    def _begin(self, r: SurveyRow, name: str, position: int) -> None:
        t, row = r.type, r.row
        is_repeat = t.container == "repeat" and not self.flat
        path = "/".join([*self._parent(), name])
        sensitive = self._sensitive(row, path, name)
        count = _text(row.get("repeat_count") or row.get("jr:count") or row.get("count"))
        if t.container == "repeat" and count and not _REFERENCE.fullmatch(count):
            generated = f"{name}_count"  # pyxform's node for a repeat_count that is not a plain ${reference}
            self._add(r, position, Field(
                path=generated if self.flat else "/".join([*self._parent(), generated]), name=generated,
                type="calculate", kind=Kind.TEXT, repeat=self._repeat(), calculation=count, sensitive=sensitive,
                row=position, generated=f"repeat_count of {name}"))
        if self.flat:  # pyxform's `flat`: no group or repeat nests the data
            self.stack.append((None, None, sensitive))
            return
        self.groups.append(Group(path=path, name=name, relevant=_text(row.get("relevant")), is_repeat=is_repeat))
        if is_repeat:
            self.repeats.append(Repeat(path=path, name=name, parent=self._repeat(), labels=self.b._texts(row, "label"),
                                       sensitive=sensitive, row=position, count=count))
        self.stack.append((name, path if is_repeat else None, sensitive))

    def _sensitive(self, row: Mapping[str, Any], path: str, name: str) -> bool:
        extra = self.b.extra_sensitive
        return (any(s for _, _, s in self.stack) or _truthy(row.get(SENSITIVE_COLUMN)) or path in extra
                or name in extra)

    def _add(self, r: SurveyRow, position: int, f: Field) -> None:
        if f.path in self.seen:
            where = "the form's `flat` setting puts every question at the top, so " if self.flat else ""
            raise FormBuildError(f"survey row {r.position}: {where}the data key '{f.path}' is already used by survey "
                                 f"row {self.seen[f.path]}; rename one of the two")
        self.seen[f.path] = r.position
        self.fields.append(f)


_REFERENCE = re.compile(r"\$\{[^\W\d][\w.\-]*\}")


def _flat(value: Any) -> bool:
    """pyxform's `flat` setting is on for any value it is given (`settings.get("flat", False)`), even "no"."""
    if isinstance(value, bool):
        return value
    return value not in (None, "")


def unique_codes(codes: list[str]) -> list[str]:
    """Two translations that fold to the same code ('English', 'english') get distinct ones."""
    out: list[str] = []
    for code in codes:
        candidate, n = code, 1
        while candidate in out:
            n += 1
            candidate = f"{code}_{n}"
        out.append(candidate)
    return out


def _text(value: Any) -> str | None:
    if value in (None, "") or isinstance(value, bool):
        return None
    return str(value)


def _bool_or_text(value: Any) -> str | None:
    if value is None or value == "" or value is False:
        return None
    if value is True:
        return "yes"
    return str(value)
