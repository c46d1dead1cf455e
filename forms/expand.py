"""Survey rows as the XForm has them: names settled as KoBo settles them, and the structures that are
not plain groups and repeats expanded into groups and questions, the way KoBo and pyxform do before an
XForm exists. The data keys of a submission follow the XForm, so the schema walks these rows.

- **Names** (KoBo, `kpi/models/asset_snapshot.py` → `kpi/utils/autoname.py`): a row's name is its
  `name`, else `$autoname`, else one made from its label; a name used a second time, or not a valid XML
  name, is renamed `<name>_001`, `_002`, … exactly as KoBo renames it when it deploys (HandleDuplicates
  RENAME), since the data was collected with the renamed XForm.
- **KoBo's rank, score and matrix questions** (`kpi/utils/xlsform_preprocessors/`): `begin_rank` becomes a
  group holding one select_one per `rank__level`; `begin_score` a group holding a header select_one (shown
  as labels only, never answered) and one select_one per `score__row`; `begin_kobomatrix` a header group
  of notes and, per choice of its `kobo--matrix_list`, a group `<matrix>_<choice>` holding one question
  `<matrix>_<choice>_<column>` per column. KoBo's `$xpath` leaves the rank group and the matrix groups
  out, but the data keys have them: `prio/first`, `m_car/m_car_q1`.
- **pyxform's loop** (`begin loop over LIST`, `pyxform/builder.py`): a group holding, per choice of the
  list (but `none`), a group named after the choice with the loop's questions, `%(name)s` and
  `%(label)s` in their names and labels replaced by the choice's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from common.errors import FormBuildError
from forms.types import ParsedType, parse_type

_XML_NAME = re.compile(r"[^\W\d][\w.\-]*")


@dataclass(frozen=True, slots=True)
class SurveyRow:
    """One survey row: the content row (or one an expansion made), its type, and the row it came from."""

    row: Mapping[str, Any]
    type: ParsedType
    position: int  # 1-based position of the content row it comes from, for messages

    @property
    def name(self) -> str | None:
        name = self.row.get("name")
        return str(name) if name not in (None, "") else None

    def with_row(self, **changes: Any) -> SurveyRow:
        row = {k: v for k, v in {**self.row, **changes}.items() if v is not None}
        return replace(self, row=row)


def read_rows(survey: Sequence[Any]) -> list[SurveyRow]:
    """Content's survey rows, typed (a row that is not an object is refused, naming it)."""
    out = []
    for position, row in enumerate(survey, start=1):
        if not isinstance(row, Mapping):
            raise FormBuildError(f"survey row {position}: expected an object with a 'type', got "
                                 f"{type(row).__name__}")
        rtype = row.get("type")
        if isinstance(rtype, Mapping) and len(rtype) == 1:  # legacy KoBo content: {"select_one": "yn"}
            [(rtype, listed)] = rtype.items()
            row = {**row, "type": rtype, "select_from_list_name": listed}
        parsed = parse_type(rtype, list_name=_text(row.get("select_from_list_name") or row.get("file")),
                            or_other=_truthy(row.get("_or_other")))
        out.append(SurveyRow(row=row, type=parsed, position=position))
    return out


def settle_names(rows: list[SurveyRow]) -> list[SurveyRow]:
    """Every row but the ends of containers gets the name KoBo deploys it with (see the module doc)."""
    taken: list[str] = []
    named: dict[int, str] = {}
    for i, r in enumerate(rows):  # rows with a name first, in order, as KoBo does
        if r.type.ends or not _text(r.row.get("name")):
            continue
        name = _text(r.row.get("name")) or ""
        if not _XML_NAME.fullmatch(name) or name in taken:
            name = _unique(_slug(name), taken)
        named[i] = name
        taken.append(name)
    for i, r in enumerate(rows):  # then the others: $autoname, else the label, else type and $kuid
        if r.type.ends or i in named:
            continue
        auto = _text(r.row.get("$autoname")) or _text(str(r.row.get("$xpath") or "").rsplit("/", 1)[-1])
        if auto:
            name = auto if auto not in taken else _unique(auto, taken)
        else:
            label = _first(r.row.get("label"))
            slug = _slug(label)[:40] if label else ""
            if slug in ("", "_"):
                slug = _slug(f"{r.type.base}_{r.row.get('$kuid') or r.position}")
            name = _unique(slug, taken)
        named[i] = name
        taken.append(name)
    return [r.with_row(name=named[i]) if i in named else r for i, r in enumerate(rows)]


def expand(rows: list[SurveyRow], choices: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[SurveyRow]:
    """The rows with KoBo's rank, score and matrix questions and pyxform's loops expanded."""
    out: list[SurveyRow] = []
    i = 0
    while i < len(rows):
        r = rows[i]
        container = r.type.container if r.type.begins else None
        if container not in ("rank", "score", "kobomatrix", "loop"):
            out.append(r)
            i += 1
            continue
        end = _matching_end(rows, i)
        inner = expand(rows[i + 1:end], choices)
        if container == "rank":
            out += _rank(r, inner, rows[end] if end < len(rows) else r)
        elif container == "score":
            out += _score(r, inner, rows[end] if end < len(rows) else r)
        elif container == "kobomatrix":
            out += _matrix(r, inner, choices)
        else:
            out += _loop(r, inner, choices, rows[end] if end < len(rows) else r)
        i = end + 1
    return out


def _matching_end(rows: list[SurveyRow], begin: int) -> int:
    """Index of the row closing rows[begin] (len(rows) when the form never closes it)."""
    depth = 0
    for j in range(begin, len(rows)):
        if rows[j].type.begins:
            depth += 1
        elif rows[j].type.ends:
            depth -= 1
            if depth == 0:
                return j
    return len(rows)


def _group(source: SurveyRow, name: str, **extra: Any) -> SurveyRow:
    row = {"type": "begin_group", "name": name, **{k: v for k, v in extra.items() if v is not None}}
    return SurveyRow(row=row, type=parse_type("begin_group"), position=source.position)


def _end(source: SurveyRow) -> SurveyRow:
    return SurveyRow(row={"type": "end_group"}, type=parse_type("end_group"), position=source.position)


def _question(source: SurveyRow, row: Mapping[str, Any]) -> SurveyRow:
    clean = {k: v for k, v in row.items() if v is not None}
    return SurveyRow(row=clean, type=parse_type(clean.get("type"), list_name=_text(clean.get(
        "select_from_list_name"))), position=source.position)


def _kobo_group_name(r: SurveyRow) -> str:
    """KoBo's handlers name the group after the row's `name`, else its `$autoname` (settled already)."""
    return str(r.row.get("name"))


def _rank(begin: SurveyRow, inner: list[SurveyRow], end: SurveyRow) -> list[SurveyRow]:
    name = _kobo_group_name(begin)
    items = _text(begin.row.get("kobo--rank-items"))
    message = begin.row.get("kobo--rank-constraint-message")
    out = [_group(begin, name, relevant=begin.row.get("relevant"), appearance="field-list"),
           _question(begin, {"type": "note", "name": name, "label": begin.row.get("label")})]
    previous: list[str] = []
    for r in inner:
        if r.type.base != "rank__level":
            raise FormBuildError(f"survey row {r.position}: a KoBo rank question holds only rank__level rows, "
                                 f"not '{r.type.raw}'")
        level = str(r.row.get("name"))
        constraint = " and ".join(f"${{{level}}} != ${{{p}}}" for p in previous) or None
        out.append(_question(r, {**r.row, "type": "select_one", "select_from_list_name": items, "required": True,
                                 "constraint": constraint, "constraint_message": message,
                                 "appearance": r.row.get("appearance") or "minimal"}))
        previous.append(level)
    return [*out, _end(end)]


def _score(begin: SurveyRow, inner: list[SurveyRow], end: SurveyRow) -> list[SurveyRow]:
    name = _kobo_group_name(begin)
    listed = _text(begin.row.get("kobo--score-choices"))
    required = begin.row.get("required")
    common = {"type": "select_one", "select_from_list_name": listed}
    # the header keeps the begin row's name: KoBo expands before it moves $autoname into `name`
    out = [_group(begin, name, relevant=begin.row.get("relevant"), appearance="field-list"),
           _question(begin, {**{k: v for k, v in begin.row.items() if k not in ("required", "relevant")},
                             **common, "name": name, "appearance": "label"})]
    for r in inner:
        if r.type.base != "score__row":
            raise FormBuildError(f"survey row {r.position}: a KoBo score question holds only score__row rows, "
                                 f"not '{r.type.raw}'")
        out.append(_question(r, {**r.row, **common, "appearance": r.row.get("appearance") or "list-nolabel",
                                 "required": True if _truthy(required) else r.row.get("required")}))
    return [*out, _end(end)]


def _matrix(begin: SurveyRow, columns: list[SurveyRow],
            choices: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[SurveyRow]:
    name = _kobo_group_name(begin)
    listed = _text(begin.row.get("kobo--matrix_list"))
    if not listed or listed not in choices:
        raise FormBuildError(f"survey row {begin.position}: the KoBo matrix '{name}' names no choice list in "
                             f"kobo--matrix_list (found {listed!r}); its rows cannot be known")
    header = f"{name}_header"
    out = [_group(begin, header), _question(begin, {"type": "note", "name": f"{header}_note",
                                                    "label": begin.row.get("label")})]
    out += [_question(c, {"type": "note", "name": f"{header}_{c.row.get('name')}", "label": c.row.get("label")})
            for c in columns]
    out.append(_end(begin))
    for item in choices[listed]:
        code = _text(item.get("name")) or _text(item.get("$autovalue"))
        if not code:
            continue
        base = f"{name}_{code}"
        renamed = {f"${{{c.row.get('name')}}}": f"${{{base}_{c.row.get('name')}}}" for c in columns}
        out += [_group(begin, base), _question(begin, {"type": "note", "name": f"{base}_note",
                                                       "label": item.get("label")})]
        for c in columns:
            row = {"type": c.row.get("type"), "name": f"{base}_{c.row.get('name')}",
                   "select_from_list_name": c.row.get("select_from_list_name"),
                   "label": _join_labels(item.get("label"), c.row.get("label")), "required": c.row.get("required")}
            for key in ("relevant", "constraint"):
                value = c.row.get(key)
                if isinstance(value, str):
                    for old, new in renamed.items():
                        value = value.replace(old, new)
                row[key] = value
            out.append(_question(c, row))
        out.append(_end(begin))
    return out


def _loop(begin: SurveyRow, inner: list[SurveyRow], choices: Mapping[str, Sequence[Mapping[str, Any]]],
          end: SurveyRow) -> list[SurveyRow]:
    listed = begin.type.list_name
    if not listed or listed not in choices:
        raise FormBuildError(f"survey row {begin.position}: 'begin loop over {listed}': no such choice list")
    out = [_group(begin, str(begin.row.get("name")), relevant=begin.row.get("relevant"))]
    for item in choices[listed]:
        code = _text(item.get("name")) or _text(item.get("$autovalue"))
        if not code or code == "none":
            continue
        label = _first(item.get("label")) or code
        out.append(_group(begin, code))
        for r in inner:
            if r.type.ends:
                out.append(r)
                continue
            row = dict(r.row)
            for key in ("name", "label"):
                value = row.get(key)
                if isinstance(value, str):
                    row[key] = value.replace("%(name)s", code).replace("%(label)s", label)
                elif isinstance(value, list):
                    row[key] = [v.replace("%(name)s", code).replace("%(label)s", label) if isinstance(v, str)
                                else v for v in value]
            out.append(replace(r, row=row))
        out.append(_end(begin))
    return [*out, _end(end)]


def _join_labels(item: Any, column: Any) -> Any:
    """A matrix cell's label: the row's and the column's, per language."""
    if isinstance(item, list) or isinstance(column, list):
        items = item if isinstance(item, list) else [item]
        cols = column if isinstance(column, list) else [column]
        n = max(len(items), len(cols))
        items += [items[-1] if items else None] * (n - len(items))
        cols += [cols[-1] if cols else None] * (n - len(cols))
        return [f"{a}: {b}" if a and b else a or b for a, b in zip(items, cols, strict=True)]
    return f"{item}: {column}" if item and column else item or column


def _slug(text: str) -> str:
    """KoBo's `sluggify_label`: spaces and non-Latin runs become '_', no trailing '_', no '__', no leading digit."""
    out = re.sub(r"[^a-zA-Z0-9_]+", "_", re.sub(r"\s", "_", text.strip()))
    if out != "_" and out.endswith("_"):
        out = out[:-1]
    if out[:1].isdigit():
        out = "_" + out
    while "__" in out:
        out = out.replace("__", "_")
    return out


def _unique(name: str, taken: list[str]) -> str:
    """`name`, or `name_001`, `name_002`, … : the first not taken, compared without case (KoBo's way)."""
    lower = {t.lower() for t in taken}
    attempt, n = name, 0
    while attempt.lower() in lower:
        n += 1
        attempt = f"{name}_{n:03d}"
    return attempt


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        return next((str(v) for v in value if v), None)
    return str(value) if value else None


def _text(value: Any) -> str | None:
    return str(value).strip() if value not in (None, "") else None


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("yes", "true", "true()", "1", "y") if value is not None else False
