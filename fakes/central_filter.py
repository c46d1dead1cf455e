"""OData `$filter` and `$orderby` as ODK Central runs them on submissions (reference §5.2, §5.3).

Only six fields are filterable: `__id` and `__system/` `submissionDate`, `updatedAt`, `submitterId`, `reviewState`,
`deletedAt` — written `$root/Submissions/…` on a repeat table (the bare form is 501.5 there). Operators `eq ne lt
le gt ge and or not` and parentheses; the functions `year month day hour minute second` (any other is 501.4;
`now()` trips Central's deleted-row detector: 500). Literals: 'strings' (a doubled quote is not unescaped), numbers,
null, true/false, and bare or quoted timestamps, cast as PostgreSQL casts text (offsets honoured, a date alone is
midnight UTC). `eq null`/`ne null` are IS [NOT] NULL; other `eq`/`ne` are IS [NOT] DISTINCT FROM; every other
comparison with a null is unknown, and the logic is three-valued as in SQL. Unless the expression names
`__system/deletedAt` somewhere, only rows not deleted match.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fakes.central_records import Problem

FILTERABLE = ("__id", "__system/submissionDate", "__system/updatedAt", "__system/submitterId",
              "__system/reviewState", "__system/deletedAt")
DATE_FIELDS = frozenset({"submissionDate", "updatedAt", "deletedAt"})
FUNCTIONS = frozenset({"year", "month", "day", "hour", "minute", "second"})
ROOT = "$root/Submissions/"
Values = Mapping[str, Any]  # '__id', 'submissionDate', … → the row's value (datetime, int, str or None)

_TOKENS = re.compile(r"""\s*(?:
    (?P<string>'(?:''|[^'])*')
  | (?P<datetime>-?\d{4}-\d\d-\d\d(?:T\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)?)?)(?![\w.:-])
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])
  | (?P<paren>[(),])
  | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*(?:/\$?[A-Za-z_][A-Za-z0-9_]*)*)
)""", re.X)
_COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKENS.match(text, pos)
        if found is None or found.end() == pos:
            raise _parse_error(text, pos)
        kind = found.lastgroup or ""
        tokens.append(Token(kind, found.group(kind), found.start(kind)))
        pos = found.end()
    return tokens


def _parse_error(text: str, pos: int) -> Problem:
    return Problem(400.18, f"The OData filter expression you provided could not be parsed: unexpected "
                           f"{text[pos:pos + 12]!r} at position {pos}.", {"position": pos})


# -- the tree: ('or'|'and', a, b), ('not', a), ('cmp', op, a, b), ('field', name), ('call', fn, arg), ('lit', v)


class _Parser:
    def __init__(self, text: str, table_is_root: bool):
        self.text, self.tokens, self.i = text, _tokenize(text), 0
        self.root_table = table_is_root
        self.names: set[str] = set()

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise _parse_error(self.text, len(self.text))
        self.i += 1
        return token

    def parse(self) -> tuple:
        tree = self.or_()
        if self.peek() is not None:
            raise _parse_error(self.text, self.peek().pos)  # type: ignore[union-attr]
        return tree

    def _word(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text == word:
            self.i += 1
            return True
        return False

    def or_(self) -> tuple:
        left = self.and_()
        while self._word("or"):
            left = ("or", left, self.and_())
        return left

    def and_(self) -> tuple:
        left = self.not_()
        while self._word("and"):
            left = ("and", left, self.not_())
        return left

    def not_(self) -> tuple:
        if self._word("not"):
            return ("not", self.not_())
        return self.comparison()

    def comparison(self) -> tuple:
        left = self.operand()
        token = self.peek()
        if token is not None and token.kind == "name" and token.text in _COMPARISONS:
            self.i += 1
            return ("cmp", token.text, left, self.operand())
        return left

    def operand(self) -> tuple:
        token = self.take()
        if token.kind == "paren" and token.text == "(":
            inner = self.or_()
            closing = self.take()
            if closing.text != ")":
                raise _parse_error(self.text, closing.pos)
            return inner
        if token.kind == "string":
            return ("lit", token.text[1:-1])
        if token.kind == "datetime":
            return ("lit", token.text)
        if token.kind == "number":
            return ("lit", float(token.text) if any(c in token.text for c in ".eE") else int(token.text))
        if token.kind != "name":
            raise _parse_error(self.text, token.pos)
        nxt = self.peek()
        if nxt is not None and nxt.text == "(":  # a function call
            self.i += 1
            args = []
            if self.peek() is not None and self.peek().text != ")":  # type: ignore[union-attr]
                args.append(self.or_())
                while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                    self.i += 1
                    args.append(self.or_())
            closing = self.take()
            if closing.text != ")":
                raise _parse_error(self.text, closing.pos)
            return self.call(token.text, args)
        if token.text in ("null", "true", "false"):
            return ("lit", {"null": None, "true": True, "false": False}[token.text])
        return ("field", self.field(token.text))

    def call(self, name: str, args: list[tuple]) -> tuple:
        if name == "now":
            return ("now",)
        if name not in FUNCTIONS:
            raise Problem(501.4, f"The given OData filter expression uses features not supported by this server: "
                                 f"the function {name}().", {"function": name})
        if len(args) != 1:
            raise _parse_error(self.text, 0)
        return ("call", name, args[0])

    def field(self, name: str) -> str:
        """The filterable field a name is, or 501.5."""
        bare = name[len(ROOT):] if name.startswith(ROOT) else None
        ok = (bare in FILTERABLE) if not self.root_table else (name in FILTERABLE)
        if not ok:
            raise Problem(501.5, f"The given OData filter expression references fields not supported by this "
                                 f"server: {name}.", {"field": name})
        key = bare if bare is not None else name
        self.names.add(key)
        return key.split("/")[-1]


@dataclass(frozen=True)
class Filter:
    tree: tuple | None
    mentions_deleted: bool

    def __call__(self, values: Values) -> bool:
        if not self.mentions_deleted and values["deletedAt"] is not None:
            return False
        return self.tree is None or _eval(self.tree, values) is True


def parse_filter(text: str | None, *, root_table: bool = True) -> Filter:
    if text is None or not text.strip():
        return Filter(None, False)
    parser = _Parser(text, root_table)
    tree = parser.parse()
    if _has_now(tree):
        raise InternalError()
    if tree[0] in ("field", "lit", "call") and not (tree[0] == "lit" and isinstance(tree[1], bool)):
        raise Problem(400.18, "The OData filter expression you provided is not a condition.")
    return Filter(tree, "__system/deletedAt" in parser.names)


class InternalError(Exception):
    """Central answers 500 here: `now()` (a bug on master, reproduced) or a literal PostgreSQL cannot cast."""


def _has_now(tree: tuple) -> bool:
    return tree[0] == "now" or any(_has_now(t) for t in tree[1:] if isinstance(t, tuple))


# -- evaluation (three-valued, as SQL) ------------------------------------------------------------------------------


def _eval(tree: tuple, values: Values) -> bool | None:
    op = tree[0]
    if op == "and":
        a, b = _eval(tree[1], values), _eval(tree[2], values)
        return False if a is False or b is False else None if a is None or b is None else True
    if op == "or":
        a, b = _eval(tree[1], values), _eval(tree[2], values)
        return True if a is True or b is True else None if a is None or b is None else False
    if op == "not":
        a = _eval(tree[1], values)
        return None if a is None else not a
    if op == "cmp":
        return _compare(tree[1], tree[2], tree[3], values)
    if op == "lit" and isinstance(tree[1], bool):
        return tree[1]
    raise Problem(400.18, "The OData filter expression you provided is not a condition.")


def _kind(tree: tuple) -> str | None:
    """What a side compares as: 'date', 'int', 'text' (a field or function), None for a literal."""
    if tree[0] == "field":
        return "date" if tree[1] in DATE_FIELDS else "int" if tree[1] == "submitterId" else "text"
    if tree[0] == "call":
        return "int"
    return None


def _value(tree: tuple, values: Values, as_kind: str | None) -> Any:
    if tree[0] == "field":
        return values[tree[1]]
    if tree[0] == "call":
        inner = _value(tree[2], values, "date")
        if inner is None:
            return None
        if not isinstance(inner, dt.datetime):
            raise InternalError()
        return getattr(inner.astimezone(dt.UTC), tree[1])
    literal = tree[1]
    if literal is None or as_kind is None:
        return literal
    return _cast(literal, as_kind)


def _cast(literal: Any, kind: str) -> Any:
    """A literal as PostgreSQL casts text to the column's type; what it cannot cast is Central's 500."""
    try:
        if kind == "date":
            text = str(literal)
            if re.fullmatch(r"-?\d{4}-\d\d-\d\d", text):
                return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed
        if kind == "int":
            return int(literal) if not isinstance(literal, float) else literal
        return str(literal)
    except (ValueError, TypeError):
        raise InternalError() from None


_ORDER: dict[str, Callable[[Any, Any], bool]] = {"lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
                                                 "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


def _compare(op: str, left: tuple, right: tuple, values: Values) -> bool | None:
    kind = _kind(left) or _kind(right)
    a, b = _value(left, values, kind), _value(right, values, kind)
    null_literal = (left[0] == "lit" and left[1] is None) or (right[0] == "lit" and right[1] is None)
    if op in ("eq", "ne"):
        if null_literal:  # IS NULL / IS NOT NULL
            other = a if right[0] == "lit" and right[1] is None else b
            return (other is None) == (op == "eq")
        same = a == b  # IS [NOT] DISTINCT FROM: a null is a value
        return same if op == "eq" else not same
    if a is None or b is None:
        return None
    try:
        return _ORDER[op](a, b)
    except TypeError:
        raise InternalError() from None


# -- $orderby --------------------------------------------------------------------------------------------------


def parse_orderby(text: str, *, root_table: bool = True) -> list[tuple[str, bool]]:
    """[(field key, descending)]: filterable fields only (501.5 otherwise); on repeat tables both spellings."""
    out = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise Problem(400.18, f"The OData $orderby expression could not be parsed: {part.strip()!r}.")
        name = words[0]
        bare = name[len(ROOT):] if name.startswith(ROOT) else name
        if bare not in FILTERABLE or (root_table and bare != name):
            raise Problem(501.5, f"The given OData $orderby expression references fields not supported by this "
                                 f"server: {name}.", {"field": name})
        out.append((bare.split("/")[-1], len(words) == 2 and words[1] == "desc"))
    return out
