"""XLSForm question types as pyxform and KoBo's importer read them, and how each is stored.

One table, ours, written from reading pyxform's `question_type_dictionary.py`, `aliases.py` and
`xls2json.py` (v4.5) and KoBo's `formpack/utils/replace_aliases.py`, `formpack/utils/expand_content.py`
and `kpi/utils/standardize_content.py`: every spelling either accepts maps to one canonical type, and the
canonical type says how its answer is stored (`Kind`) and what the data dictionary says about it.
`tests/test_types.py` holds the table against pyxform's own, so a pyxform upgrade that adds a type fails
a test instead of a sync.

Two readings:
- **strict** (`parse_type(..., strict=True)`): what pyxform and KoBo's importer accept in an XLSForm —
  runs of spaces folded to one, case as written (pyxform refuses `Integer`; KoBo's importer too).
- **lenient** (the default): what a sync reads from KoBo's `content`, which KoBo has already checked —
  any case, any whitespace, `_` for a space. An unknown type is kept and stored as text: a form
  definition never stops a sync.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """A canonical question type: how its answer is stored, and what the dictionary says of it."""

    name: str
    kind: Kind
    stored: str  # how the warehouse keeps the answer, in a few words (README table, dictionary note)
    metadata: bool = False  # filled in by the device, never by the enumerator
    media: bool = False  # the answer is a file name; the file is an attachment
    labels: bool = True  # for selects: False when the choices live in a file the form only names


def _t(name: str, kind: Kind, stored: str, **flags: bool) -> TypeInfo:
    return TypeInfo(name, kind, stored, **flags)


_TEXT = "text, as sent"
_FILE = "the file name (text); the file itself is listed in `attachments`"
_NO_LABELS = "choices are in a file the form names, not in the form: codes only, no labels"

# canonical type → how it is stored
TYPES: dict[str, TypeInfo] = {t.name: t for t in (
    _t("text", Kind.TEXT, _TEXT),
    _t("integer", Kind.INTEGER, "integer (BIGINT)"),
    _t("decimal", Kind.DECIMAL, "decimal (double)"),
    _t("range", Kind.DECIMAL, "decimal (double): a range may step in fractions"),
    _t("date", Kind.DATE, "date"),
    _t("time", Kind.TIME, "time of day with its offset, as text ('09:30:00.000+03:00')"),
    _t("datetime", Kind.DATETIME, "date and time, converted to UTC"),
    _t("geopoint", Kind.GEOPOINT, "four decimal columns: <q>_latitude, _longitude, _altitude, _precision"),
    _t("geotrace", Kind.TEXT, "the points as sent, text 'lat lon alt acc;lat lon alt acc;…'"),
    _t("geoshape", Kind.TEXT, "the points as sent, text 'lat lon alt acc;…' (first point = last)"),
    _t("select_one", Kind.SELECT_ONE, "the code (text); labels per language in `choices` and the views"),
    _t("select_multiple", Kind.SELECT_MULTIPLE,
       "the codes, space separated (text), and one bridge-table row per code in the order chosen"),
    _t("rank", Kind.SELECT_MULTIPLE,
       "the codes in rank order, space separated (text), and one bridge row per code (_position = its rank)"),
    _t("select_one_from_file", Kind.SELECT_ONE, "the code (text); " + _NO_LABELS, labels=False),
    _t("select_multiple_from_file", Kind.SELECT_MULTIPLE,
       "the codes, space separated, and a bridge row per code; " + _NO_LABELS, labels=False),
    _t("select_one_external", Kind.SELECT_ONE, "the code (text); " + _NO_LABELS, labels=False),
    _t("note", Kind.NONE, "no column: a note carries no answer"),
    _t("acknowledge", Kind.TEXT, "text ('OK' when acknowledged)"),
    _t("trigger", Kind.TEXT, "text ('OK' when acknowledged)"),
    _t("calculate", Kind.TEXT, "text: a calculation's result is a string in XForms"),
    _t("hidden", Kind.TEXT, _TEXT),
    _t("barcode", Kind.TEXT, _TEXT),
    _t("image", Kind.TEXT, _FILE, media=True),
    _t("audio", Kind.TEXT, _FILE, media=True),
    _t("video", Kind.TEXT, _FILE, media=True),
    _t("file", Kind.TEXT, _FILE, media=True),
    _t("osm", Kind.TEXT, _FILE, media=True),
    _t("background-audio", Kind.TEXT, _FILE, media=True),
    _t("audit", Kind.TEXT, "the audit log's file name (text), at meta/audit; the log is an attachment",
       metadata=True, media=True),
    _t("xml-external", Kind.NONE, "no column: a secondary instance, not a question"),
    _t("csv-external", Kind.NONE, "no column: a secondary instance, not a question"),
    _t("start", Kind.DATETIME, "date and time, converted to UTC", metadata=True),
    _t("end", Kind.DATETIME, "date and time, converted to UTC", metadata=True),
    _t("today", Kind.DATE, "date", metadata=True),
    _t("start-geopoint", Kind.GEOPOINT, "four decimal columns, as a geopoint", metadata=True),
    _t("background-geopoint", Kind.GEOPOINT, "four decimal columns, as a geopoint"),
    _t("deviceid", Kind.TEXT, _TEXT, metadata=True),
    _t("username", Kind.TEXT, _TEXT, metadata=True),
    _t("phonenumber", Kind.TEXT, _TEXT, metadata=True),
    _t("simserial", Kind.TEXT, _TEXT, metadata=True),
    _t("subscriberid", Kind.TEXT, _TEXT, metadata=True),
    _t("email", Kind.TEXT, _TEXT, metadata=True),
    _t("uri:deviceid", Kind.TEXT, _TEXT, metadata=True),
    _t("uri:username", Kind.TEXT, _TEXT, metadata=True),
    _t("uri:phonenumber", Kind.TEXT, _TEXT, metadata=True),
    _t("uri:simserial", Kind.TEXT, _TEXT, metadata=True),
    _t("uri:subscriberid", Kind.TEXT, _TEXT, metadata=True),
    _t("uri:email", Kind.TEXT, _TEXT, metadata=True),
)}

# Spellings of question types (not selects, not groups) → canonical type. pyxform's alternative names
# (its "q …", "add … prompt", "get …" families and the rest of its table) and KoBo's (formpack's
# `types` aliases). Keys are as pyxform spells them: the strict reading is case-sensitive.
QUESTION_ALIASES: dict[str, str] = {
    **{t: t for t in TYPES},
    "dateTime": "datetime", "date time": "datetime", "string": "text", "int": "integer",
    "percentage": "integer", "number of days in last month": "integer",
    "number of days in last six months": "integer", "number of days in last year": "integer",
    "photo": "image", "location": "geopoint", "gps": "geopoint", "imei": "deviceid",
    "device id": "deviceid", "sim id": "simserial", "subscriber id": "subscriberid",
    "phone number": "phonenumber", "start time": "start", "end time": "end",
    "get start time": "start", "get end time": "end", "get today": "today", "get device id": "deviceid",
    "get sim id": "simserial", "get subscriber id": "subscriberid", "get phone number": "phonenumber",
    "q picture": "image", "q image": "image", "q audio": "audio", "q video": "video", "q int": "integer",
    "q decimal": "decimal", "q date": "date", "q date time": "datetime", "q dateTime": "datetime",
    "q string": "text", "q note": "note", "q acknowledge": "acknowledge", "q barcode": "barcode",
    "q calculate": "calculate", "q geopoint": "geopoint", "q geoshape": "geoshape", "q geotrace": "geotrace",
    "q location": "geopoint", "q select": "select_multiple", "q select1": "select_one",
    "add text prompt": "text", "add integer prompt": "integer", "add decimal prompt": "decimal",
    "add date prompt": "date", "add date time prompt": "datetime", "add dateTime prompt": "datetime",
    "add note prompt": "note", "add acknowledge prompt": "acknowledge", "add barcode prompt": "barcode",
    "add calculate prompt": "calculate", "add location prompt": "geopoint", "add image prompt": "image",
    "add photo prompt": "image", "add audio prompt": "audio", "add video prompt": "video",
    "add file prompt": "file",
    # a select's bare type, as KoBo's content stores it (the list in `select_from_list_name`)
    "select_one": "select_one", "select one": "select_one", "select1": "select_one",
    "select one using": "select_one", "select_multiple": "select_multiple",
    "select all that apply": "select_multiple", "select multiple using": "select_multiple",
    "select multiple from": "select_multiple", "select one external": "select_one_external",
    "add select one prompt using": "select_one", "add select multiple prompt using": "select_multiple",
    "select all that apply from": "select_multiple",
}

# Select spellings that take a list name (`select_one yn`): pyxform's `aliases.select` and formpack's
# `selects_dict` (KoBo also reads `select many` / `select_many`).
SELECT_ALIASES: dict[str, str] = {
    "select_one": "select_one", "select one": "select_one", "select1": "select_one",
    "select one from": "select_one", "add select one prompt using": "select_one",
    "select_multiple": "select_multiple", "select multiple": "select_multiple",
    "select all that apply": "select_multiple", "select all that apply from": "select_multiple",
    "add select multiple prompt using": "select_multiple", "select many": "select_multiple",
    "select_many": "select_multiple",
    "select_one_from_file": "select_one_from_file", "select one from file": "select_one_from_file",
    "select_multiple_from_file": "select_multiple_from_file",
    "select multiple from file": "select_multiple_from_file",
    "select_one_external": "select_one_external", "select one external": "select_one_external",
    "rank": "rank",
}
# spellings KoBo's importer reads but pyxform does not: a form using them is KoBo-only
KOBO_ONLY_SELECTS = frozenset({"select many", "select_many", "select multiple", "select one external"})

# `or_other`, as pyxform (`or_other`, `or other`, `or specify other`) and formpack (`or.other`) read it
_OR_OTHER = r"(?:or specify other|or_other|or other)"

# begin/end of a container: pyxform's `group`, `repeat`, `lgroup` and `looped group` (a repeat),
# `loop` (a group per choice of a list); KoBo's `rank`, `score`, `kobomatrix` (expanded by KoBo).
CONTAINERS: dict[str, str] = {
    "group": "group", "repeat": "repeat", "lgroup": "repeat", "looped group": "repeat", "loop": "loop",
    "rank": "rank", "score": "score", "kobomatrix": "kobomatrix",
}
KOBO_CONTAINERS = frozenset({"rank", "score", "kobomatrix"})
# rows KoBo's form builder puts inside its own containers
KOBO_ROWS = {"rank__level": "rank", "score__row": "score"}


@dataclass(frozen=True, slots=True)
class ParsedType:
    """One survey row's type, read."""

    raw: str
    base: str  # canonical: 'integer', 'select_one', 'begin_group', 'end_repeat', 'begin_loop', 'rank__level', …
    list_name: str | None = None  # a select's choice list (or file name); a loop's list
    or_other: bool = False
    known: bool = True  # False: neither pyxform nor KoBo knows it (stored as text)
    kobo_only: bool = False  # KoBo's importer reads it, pyxform does not (KoBo expands it first)

    @property
    def container(self) -> str | None:
        """'group', 'repeat', 'loop', 'rank', 'score' or 'kobomatrix' for a begin/end row, else None."""
        if self.base.startswith(("begin_", "end_")):
            return self.base.split("_", 1)[1]
        return None

    @property
    def begins(self) -> bool:
        return self.base.startswith("begin_")

    @property
    def ends(self) -> bool:
        return self.base.startswith("end_")

    @property
    def info(self) -> TypeInfo:
        return TYPES.get(self.base) or TYPES["text"]

    @property
    def kind(self) -> Kind:
        if self.container or self.base in KOBO_ROWS:
            return Kind.NONE
        return self.info.kind if self.known else Kind.TEXT


_SPACES = re.compile(r"\s+")


def _fold(text: str, *, strict: bool = False) -> str:
    """Runs of spaces as one (pyxform folds spaces only; a tab stays and the type is unknown to it)."""
    if strict:
        return re.sub(" +", " ", text.replace("\u00a0", " ").strip())
    return _SPACES.sub(" ", text.replace("\u00a0", " ")).strip()


def _build_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    selects = "|".join(re.escape(a) for a in sorted(SELECT_ALIASES, key=len, reverse=True))
    containers = "|".join(re.escape(c) for c in sorted(CONTAINERS, key=len, reverse=True))
    select = re.compile(rf"^(?P<select>{selects}) (?P<list>\S+)(?: (?P<other>{_OR_OTHER}))?$")
    control = re.compile(rf"^(?P<edge>begin|end)[ _](?P<container>{containers})(?: (?:over )?(?P<list>\S+))?$")
    return select, control


_SELECT, _CONTROL = _build_patterns()
# formpack's `select_one_or_other LIST`, which KoBo's importer reads as `select_one LIST or_other`
_KOBO_OR_OTHER = re.compile(r"^(?P<select>select_one|select_multiple)_or_other(?: (?P<list>\S+))?$")
# `select_one_LIST_or_specify_other`, met in old KoBo content (neither pyxform nor KoBo's importer writes it
# today): read when syncing, refused in an XLSForm
_LEGACY_OR_OTHER = re.compile(r"^(?P<select>select_one|select_multiple)_(?P<list>\S+?)_or_specify_other$")
_LOWER_QUESTIONS = {k.lower(): v for k, v in QUESTION_ALIASES.items()}


def parse_type(raw: object, *, list_name: str | None = None, or_other: bool = False,
               strict: bool = False) -> ParsedType:
    """Read a survey row's `type` (with KoBo content's `select_from_list_name` and `_or_other`, if any).

    strict: as pyxform and KoBo's importer read an XLSForm (spaces folded, case kept); otherwise as a
    sync reads KoBo content (also any case, `_` for a space)."""
    text = _fold(str(raw), strict=strict) if raw is not None else ""
    parsed = _parse(text, list_name, or_other, QUESTION_ALIASES)
    if parsed is None and not strict:
        lowered = text.lower()
        for variant in (lowered, lowered.replace("_", " "), lowered.replace(" ", "_")):
            parsed = _parse(variant, list_name, or_other, _LOWER_QUESTIONS)
            if parsed is not None:
                break
        legacy = _LEGACY_OR_OTHER.match(lowered) if parsed is None else None
        if legacy:
            parsed = ParsedType(raw=text, base=legacy["select"], list_name=legacy["list"], or_other=True,
                                kobo_only=True)
    if parsed is None:
        return ParsedType(raw=text, base=text, list_name=list_name, or_other=or_other, known=False)
    return parsed


def _parse(text: str, list_name: str | None, or_other: bool, questions: dict[str, str]) -> ParsedType | None:
    if not text:
        return None
    if text in KOBO_ROWS:
        return ParsedType(raw=text, base=text, list_name=list_name, kobo_only=True)
    control = _CONTROL.match(text)
    if control:
        container = CONTAINERS[control["container"]]
        if control["edge"] == "end" and control["list"]:
            return None
        return ParsedType(raw=text, base=f"{control['edge']}_{container}", list_name=control["list"] or list_name,
                          kobo_only=container in KOBO_CONTAINERS)
    select = _SELECT.match(text)
    if select:
        alias = select["select"]
        return ParsedType(raw=text, base=SELECT_ALIASES[alias], list_name=select["list"],
                          or_other=or_other or bool(select["other"]), kobo_only=alias in KOBO_ONLY_SELECTS)
    if text.startswith("osm ") and len(text.split(" ")) == 2:  # pyxform's `osm TAGS` (tags on the osm sheet)
        return ParsedType(raw=text, base="osm", list_name=text.split(" ")[1])
    kobo = _KOBO_OR_OTHER.match(text)
    if kobo:
        return ParsedType(raw=text, base=kobo["select"], list_name=kobo["list"] or list_name, or_other=True,
                          kobo_only=True)
    base = questions.get(text)
    if base is None:
        return None
    return ParsedType(raw=text, base=base, list_name=list_name, or_other=or_other and base in SELECT_TYPES)


SELECT_TYPES = frozenset({"select_one", "select_multiple", "rank", "select_one_from_file",
                          "select_multiple_from_file", "select_one_external"})


# types whose storage the SQL type alone does not tell
_NOTABLE = frozenset({"rank", "geotrace", "geoshape", "time", "range", "calculate", "acknowledge", "trigger"})


def storage_note(xlsform_type: str) -> str | None:
    """What the data dictionary says of a column's question type beyond its SQL type (None: nothing more)."""
    info = TYPES.get(xlsform_type)
    if info is None or not (info.name in _NOTABLE or info.media or not info.labels):
        return None
    return info.stored
