"""Realistic submissions for the fake KoBo server, deterministic for a seed.

`generate(schema, n, seed=…)` works for any form. It walks the FormSchema in form order; every
question kind gets a plausible answer, selects pick codes from their own choice lists (honouring a
`choice_filter` it can read), repeats get a few instances. The form's own logic is respected by
evaluating its XPath: a question whose `relevant` is false gets no answer, answers are redrawn until
the `constraint` holds, and `calculate`s hold exactly what the form computes (`count(${participants})`,
`${post_score} - ${pre_score}`, `count-selected(…)`). An expression this small evaluator cannot read
is left unenforced (relevant counts as true, the constraint as met, the calculate as unanswered).

On top of that it knows the programme (by question name, so any form using these names profits):
names of people in Arabic and Kurdish script and, for foreign nationals and some officials, in Latin
script; ministries, police directorates, courts and NGOs with matching types and positions; Iraq's
governorates with their districts, venues and GPS positions; narratives in Arabic, Kurdish or English
built from the indicators actually ticked; repeats of realistic size (5–35 participants, 1–3 knowledge
checks, 0–4 family members); optional questions sometimes left empty; the attendance sheet
photographed as a small valid JPEG.

Answers come out exactly as KoBo's API returns them: flat `group/question` keys, repeats as lists of
dicts keyed by full paths, every value a string, unanswered questions absent, and `start`/`end`/
`today`/`deviceid`/`username` as Collect writes them.

A group's or repeat's `relevant` (FormSchema.groups) gates every question inside it, as in the
screening's "no consent → nothing but consent and screener".
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import re
import struct
from bisect import bisect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from forms.schema import Field, FormSchema, Kind, Repeat

log = logging.getLogger(__name__)

IRAQ_TIME = dt.timezone(dt.timedelta(hours=3))  # Iraq keeps +03:00 all year
PERIOD_DAYS = 182  # submissions are spread over about six months
MAX_TRIES = 30  # redraws of an answer before giving up on a constraint (the question is then left empty)
DATE_SEARCH_DAYS = 120  # a date that random draws cannot place is searched for this many days around the visit

Instance = dict[str, Any]  # full path → str answer, or repeat path → list[Instance]
Value = Any  # an XPath value: str, float, bool, or a node-set (list)

@dataclass(frozen=True)
class GeneratedSubmission:
    answers: dict[str, Any]  # exactly as KoBo returns answers (flat keys, full-path repeat dicts, strings)
    submission_time: dt.datetime  # UTC (naive, like the fake store's clock), after `end`
    submitted_by: str | None
    attachments: dict[str, bytes]  # basename → bytes, for every image/file answer value


# =====================================================================================================
# A small XPath evaluator for ODK expressions (relevant, constraint, calculation, choice_filter)
# =====================================================================================================

class Unsupported(Exception):
    """An expression this evaluator cannot read; the generator then does not enforce it."""


_TOKEN = re.compile(r"""\s*(?:
    (\$\{[^}]*\})                       # ${name}
  | (\d+(?:\.\d*)?|\.\d+)               # number
  | ('[^']*'|"[^"]*")                   # string
  | (!=|<=|>=|[=<>+\-*(),])             # operator
  | ([A-Za-z_][\w.:-]*)                 # function name, keyword, bare name
  | (\.)                                # the current node
)""", re.VERBOSE)
_KEYWORDS = {"and", "or", "div", "mod"}
_PRECEDENCE = {"or": 1, "and": 2, "=": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4,
               "+": 5, "-": 5, "*": 6, "div": 6, "mod": 6}
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAN = float("nan")


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    text = text.strip()
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot read {text[pos:pos + 20]!r}")
        pos = m.end()
        ref, num, string, op, name, dot = m.groups()
        if ref:
            out.append(("ref", ref[2:-1].strip()))
        elif num:
            out.append(("num", float(num)))
        elif string is not None:
            out.append(("str", string[1:-1]))
        elif op:
            out.append(("op", op))
        elif name:
            out.append(("op" if name in _KEYWORDS else "name", name))
        elif dot:
            out.append(("dot", "."))
    return out


class _Parser:
    """Precedence climbing over the tokens; the result is a tree of tuples."""

    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.i = 0

    def parse(self) -> tuple:
        tree = self.expr(1)
        if self.i != len(self.tokens):
            raise Unsupported(f"unexpected {self.tokens[self.i][1]!r}")
        return tree

    def peek(self) -> tuple[str | None, Any]:
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def expect(self, op: str) -> None:
        if self.peek() != ("op", op):
            raise Unsupported(f"expected {op!r}")
        self.i += 1

    def expr(self, min_prec: int) -> tuple:
        left = self.unary()
        while True:
            kind, value = self.peek()
            prec = _PRECEDENCE.get(value) if kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.i += 1
            left = ("bin", value, left, self.expr(prec + 1))

    def unary(self) -> tuple:
        if self.peek() == ("op", "-"):
            self.i += 1
            return ("neg", self.unary())
        return self.primary()

    def primary(self) -> tuple:
        kind, value = self.peek()
        self.i += 1
        if kind in ("num", "str", "ref"):
            return (kind, value)
        if kind == "dot":
            return ("dot",)
        if (kind, value) == ("op", "("):
            inner = self.expr(1)
            self.expect(")")
            return inner
        if kind == "name":
            if self.peek() != ("op", "("):
                return ("name", value)
            self.i += 1
            args: list[tuple] = []
            if self.peek() != ("op", ")"):
                args.append(self.expr(1))
                while self.peek() == ("op", ","):
                    self.i += 1
                    args.append(self.expr(1))
            self.expect(")")
            return ("call", value, args)
        raise Unsupported(f"unexpected {value!r}")


def _refs(tree: tuple) -> list[str]:
    """Every ${name} an expression tree mentions."""
    if tree[0] == "ref":
        return [tree[1]]
    out: list[str] = []
    for part in tree[1:]:
        if isinstance(part, tuple):
            out += _refs(part)
        elif isinstance(part, list):
            for arg in part:
                out += _refs(arg)
    return out


# -- XPath values ----------------------------------------------------------------------------------

def _fmt(x: float) -> str:
    if x != x:
        return "NaN"
    if x in (math.inf, -math.inf):
        return "Infinity" if x > 0 else "-Infinity"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _str(v: Value) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _fmt(v)
    if isinstance(v, list):
        return _str(v[0]) if v and not isinstance(v[0], dict) else ""
    return "" if v is None else str(v)


def _date_number(s: str) -> float:
    """Dates and date-times as days since 1970-01-01, the way ODK does arithmetic on them."""
    if len(s) >= 10 and s[4] == "-" and s[7] == "-":
        try:
            if len(s) == 10:
                return float(dt.date.fromisoformat(s).toordinal() - _EPOCH_ORDINAL)
            t = dt.datetime.fromisoformat(s)
            t = t if t.tzinfo else t.replace(tzinfo=IRAQ_TIME)
            return (t - _EPOCH).total_seconds() / 86400
        except ValueError:
            return _NAN
    return _NAN


def _num(v: Value) -> float:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, float):
        return v
    s = _str(v).strip()
    if not s:
        return _NAN
    try:
        return float(s)
    except ValueError:
        return _date_number(s)


def _bool(v: Value) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, float):
        return not (v == 0 or v != v)
    if isinstance(v, list):
        return bool(v)
    return bool(v)


def _eq(a: Value, b: Value) -> bool:
    if isinstance(a, list):
        return any(_eq(x, b) for x in a if not isinstance(x, dict))
    if isinstance(b, list):
        return any(_eq(a, x) for x in b if not isinstance(x, dict))
    if isinstance(a, bool) or isinstance(b, bool):
        return _bool(a) == _bool(b)
    if isinstance(a, float) or isinstance(b, float):
        return _num(a) == _num(b)
    return _str(a) == _str(b)


def _nodes(v: Value) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _xround(x: float, digits: float = 0.0) -> float:
    scale = 10 ** int(digits)
    return math.floor(x * scale + 0.5) / scale if x == x else x


def _xint(x: float) -> float:
    return float(math.trunc(x)) if x == x and abs(x) != math.inf else x


def _xdate(v: Value) -> str:
    if isinstance(v, float):
        return dt.date.fromordinal(_EPOCH_ORDINAL + math.floor(v)).isoformat() if v == v else ""
    s = _str(v)
    return s[:10] if not math.isnan(_date_number(s)) else ""


def _substr(s: Value, start: Value, end: Value = None) -> str:
    text = _str(s)
    a = int(_num(start))
    return text[a:] if end is None else text[a:int(_num(end))]


def _after(s: Value, t: Value) -> str:
    text, sep = _str(s), _str(t)
    return text.split(sep, 1)[1] if sep in text else ""


def _before(s: Value, t: Value) -> str:
    text, sep = _str(s), _str(t)
    return text.split(sep, 1)[0] if sep in text else ""


def _item(parts: list[str], i: float) -> str:
    return parts[int(i)] if i == i and 0 <= i < len(parts) else ""


def _sum(ns: Value) -> float:
    # left to right in doubles, as JavaRosa and the JavaScript engines add (math.fsum would round differently)
    total = 0.0
    for x in _nodes(ns):
        total += _num(x)
    return total


def _extreme(pick: Callable[..., float]) -> Callable[..., float]:
    def run(*args: Value) -> float:
        values = [_num(x) for a in args for x in _nodes(a)]
        return _NAN if not values or any(v != v for v in values) else pick(values)
    return run


# name → (function of evaluated arguments, fewest args, most args)
_FUNCTIONS: dict[str, tuple[Callable[..., Value], int, int]] = {
    "selected": (lambda a, b: _str(b).strip() in _str(a).split(), 2, 2),
    "count-selected": (lambda a: float(len(_str(a).split())), 1, 1),
    "selected-at": (lambda a, i: _item(_str(a).split(), _num(i)), 2, 2),
    "count": (lambda ns: float(len(_nodes(ns))), 1, 1),
    "count-non-empty": (lambda ns: float(sum(1 for x in _nodes(ns) if _str(x))), 1, 1),
    "sum": (_sum, 1, 1),
    "max": (_extreme(max), 1, 99),
    "min": (_extreme(min), 1, 99),
    "not": (lambda a: not _bool(a), 1, 1),
    "true": (lambda: True, 0, 0),
    "false": (lambda: False, 0, 0),
    "boolean": (_bool, 1, 1),
    "number": (_num, 1, 1),
    "string": (_str, 1, 1),
    "int": (lambda a: _xint(_num(a)), 1, 1),
    "round": (lambda a, d=0.0: _xround(_num(a), _num(d)), 1, 2),
    "floor": (lambda a: float(math.floor(_num(a))) if _num(a) == _num(a) else _NAN, 1, 1),
    "ceiling": (lambda a: float(math.ceil(_num(a))) if _num(a) == _num(a) else _NAN, 1, 1),
    "abs": (lambda a: abs(_num(a)), 1, 1),
    "pow": (lambda a, b: _num(a) ** _num(b), 2, 2),
    "concat": (lambda *args: "".join(_str(a) for a in args), 0, 99),
    "join": (lambda sep, ns: _str(sep).join(_str(x) for x in _nodes(ns)), 2, 2),
    "string-length": (lambda a: float(len(_str(a))), 1, 1),
    "normalize-space": (lambda a: " ".join(_str(a).split()), 1, 1),
    "substr": (_substr, 2, 3),
    "substring-after": (_after, 2, 2),
    "substring-before": (_before, 2, 2),
    "contains": (lambda a, b: _str(b) in _str(a), 2, 2),
    "starts-with": (lambda a, b: _str(a).startswith(_str(b)), 2, 2),
    "ends-with": (lambda a, b: _str(a).endswith(_str(b)), 2, 2),
    "regex": (lambda a, p: re.search(_str(p), _str(a)) is not None, 2, 2),
    "coalesce": (lambda a, b: _str(a) or _str(b), 2, 2),
    "once": (lambda a: a, 1, 1),
    "decimal-date-time": (_num, 1, 1),
    "date": (_xdate, 1, 1),
    "date-time": (_xdate, 1, 1),
}
_BOOLEAN_FUNCTIONS = {"selected", "not", "true", "false", "boolean", "contains", "starts-with", "ends-with", "regex"}
_NODESET_ARGS = {"count", "count-non-empty", "sum", "max", "min", "join"}
_ENV_FUNCTIONS = {"today", "now", "random", "uuid"}

Expr = Callable[["_Env"], Value]


class _Scope:
    """Where an expression lives: the chain of repeats from the top to its question's repeat."""

    def __init__(self, index: _Index, home: str | None):
        self.index = index
        self.home = index.chain(home)

    def compile(self, text: str) -> Expr:
        return self._node(_Parser(text).parse(), nodes=False)

    def predicate(self, text: str) -> Callable[[_Env], bool]:
        """Like compile, but always returning a bool (relevant, constraint, choice_filter)."""
        tree = _Parser(text).parse()
        expr = self._node(tree, nodes=False)
        if (tree[0] == "bin" and tree[1] in ("or", "and", "=", "!=", "<", "<=", ">", ">=")) or \
                (tree[0] == "call" and tree[1] in _BOOLEAN_FUNCTIONS):
            return expr  # type: ignore[return-value]
        return lambda env: _bool(expr(env))

    def _node(self, tree: tuple, *, nodes: bool) -> Expr:
        kind = tree[0]
        if kind in ("num", "str"):
            const = tree[1]
            return lambda env: const
        if kind == "dot":
            return lambda env: env.dot
        if kind == "name":
            if tree[1] == "name":  # a choice's name inside a choice_filter
                return lambda env: env.choice
            raise Unsupported(f"bare name {tree[1]!r}")
        if kind == "ref":
            return self._ref(tree[1], nodes=nodes)
        if kind == "neg":
            inner = self._node(tree[1], nodes=False)
            return lambda env: -_num(inner(env))
        fast = self._fast(tree) if kind in ("bin", "call") else None
        if fast is not None:
            return fast
        if kind == "bin":
            return self._binary(tree[1], self._node(tree[2], nodes=False), self._node(tree[3], nodes=False))
        return self._call(tree[1], tree[2])

    def _text_of(self, tree: tuple) -> Callable[[_Env], str] | None:
        """A getter for `.` or a ${q} holding one value in this scope (the fast paths below use it)."""
        if tree[0] == "dot":
            return lambda env: env.dot
        if tree[0] != "ref":
            return None
        target = self.index.fields.get(tree[1])
        if target is None:
            return None
        owner = self.index.chain(target.repeat)
        if self.home[:len(owner)] != owner:
            return None
        level, path = len(owner) - 1, target.path
        return lambda env: env.chain[level].get(path, "")

    def _fast(self, tree: tuple) -> Expr | None:
        """The common shapes — `${q} = 'x'`, `. <= 10`, `selected(., 'x')`, `count-selected(${q})` —
        as one closure instead of a tree of them."""
        if tree[0] == "bin":
            op, a, b = tree[1], tree[2], tree[3]
            if op in ("=", "!=") and {a[0], b[0]} <= {"ref", "dot", "str"} and "str" in (a[0], b[0]):
                text = self._text_of(b if a[0] == "str" else a)
                const = a[1] if a[0] == "str" else b[1]
                if text is None:
                    return None
                if op == "=":
                    return lambda env: text(env) == const
                return lambda env: text(env) != const
            if op in ("<", "<=", ">", ">=") and b[0] == "num":
                left, limit = self._node(a, nodes=False), b[1]
                match op:
                    case "<":
                        return lambda env: _num(left(env)) < limit
                    case "<=":
                        return lambda env: _num(left(env)) <= limit
                    case ">":
                        return lambda env: _num(left(env)) > limit
                    case ">=":
                        return lambda env: _num(left(env)) >= limit
        elif tree[0] == "call" and tree[1] in ("selected", "count-selected"):
            args = tree[2]
            text = self._text_of(args[0]) if args else None
            if text is None:
                return None
            if tree[1] == "count-selected" and len(args) == 1:
                return lambda env: float(len(text(env).split()))
            if tree[1] == "selected" and len(args) == 2 and args[1][0] == "str":
                code = args[1][1].strip()
                return lambda env: code in text(env).split()
        return None

    @staticmethod
    def _binary(op: str, a: Expr, b: Expr) -> Expr:
        match op:
            case "or":
                return lambda env: _bool(a(env)) or _bool(b(env))
            case "and":
                return lambda env: _bool(a(env)) and _bool(b(env))
            case "=":
                return lambda env: _eq(a(env), b(env))
            case "!=":
                return lambda env: not _eq(a(env), b(env))
            case "<":
                return lambda env: _num(a(env)) < _num(b(env))
            case "<=":
                return lambda env: _num(a(env)) <= _num(b(env))
            case ">":
                return lambda env: _num(a(env)) > _num(b(env))
            case ">=":
                return lambda env: _num(a(env)) >= _num(b(env))
            case "+":
                return lambda env: _num(a(env)) + _num(b(env))
            case "-":
                return lambda env: _num(a(env)) - _num(b(env))
            case "*":
                return lambda env: _num(a(env)) * _num(b(env))
            case "div":
                return lambda env: _divide(_num(a(env)), _num(b(env)))
            case "mod":
                return lambda env: math.fmod(_num(a(env)), _num(b(env))) if _num(b(env)) else _NAN
        raise Unsupported(op)

    def _call(self, name: str, arg_trees: list[tuple]) -> Expr:
        if name == "if":
            if len(arg_trees) != 3:
                raise Unsupported("if() takes 3 arguments")
            c, yes, no = (self._node(t, nodes=False) for t in arg_trees)
            return lambda env: yes(env) if _bool(c(env)) else no(env)
        if name in _ENV_FUNCTIONS:
            if arg_trees:
                raise Unsupported(f"{name}() takes no arguments")
            return {"today": lambda env: env.today, "now": lambda env: env.now,
                    "random": lambda env: env.gen.rng.random(),
                    "uuid": lambda env: env.gen.uuid()}[name]
        spec = _FUNCTIONS.get(name)
        if spec is None:
            raise Unsupported(f"function {name}()")
        fn, fewest, most = spec
        if not fewest <= len(arg_trees) <= most:
            raise Unsupported(f"{name}() with {len(arg_trees)} arguments")
        args = [self._node(t, nodes=name in _NODESET_ARGS) for t in arg_trees]
        if len(args) == 1:
            (a,) = args
            return lambda env: fn(a(env))
        if len(args) == 2:
            a, b = args
            return lambda env: fn(a(env), b(env))
        return lambda env: fn(*(x(env) for x in args))

    def _ref(self, name: str, *, nodes: bool) -> Expr:
        index = self.index
        target = index.fields.get(name)
        if target is not None:
            path, owner = target.path, index.chain(target.repeat)
            if self.home[:len(owner)] == owner:  # in scope: the one value of this instance or an ancestor
                level = len(owner) - 1
                if nodes:
                    return lambda env: [env.chain[level].get(path, "")]
                return lambda env: env.chain[level].get(path, "")
            parents, leaf = owner, path
        else:
            repeat = index.repeats.get(name)
            if repeat is None:
                raise Unsupported(f"${{{name}}} is not a question of this form")
            parents, leaf = index.chain(repeat.parent), repeat.path
        common = 0
        while common < min(len(self.home), len(parents)) and self.home[common] == parents[common]:
            common += 1
        start, descend, is_repeat = common - 1, parents[common:], target is None

        def collect(env: _Env) -> list[Any]:
            items: list[Instance] = [env.chain[start]]
            for step in descend:
                items = [inst for item in items for inst in item.get(step, ())]
            if is_repeat:
                return [inst for item in items for inst in item.get(leaf, ())]
            return [item.get(leaf, "") for item in items]

        if nodes:
            return collect
        return lambda env: _str(collect(env))


def _divide(a: float, b: float) -> float:
    if b == 0:
        return _NAN if a == 0 or a != a else math.copysign(math.inf, a)
    return a / b


class _Index:
    """Names → questions and repeats of one schema (names are unique in an XLSForm)."""

    def __init__(self, schema: FormSchema):
        self.schema = schema
        self.fields = {f.name: f for f in schema.fields}
        self.repeats = {r.name: r for r in schema.repeats}
        self._chains: dict[str | None, tuple[str | None, ...]] = {}

    def chain(self, repeat: str | None) -> tuple[str | None, ...]:
        found = self._chains.get(repeat)
        if found is None:
            found = (None,) if repeat is None else (*self.chain(self.schema.repeats_by_path[repeat].parent), repeat)
            self._chains[repeat] = found
        return found


# =====================================================================================================
# Programme data
# =====================================================================================================

KRI = ("erbil", "sulaymaniyah", "duhok", "halabja")

# Centre of each governorate (its capital): latitude, longitude, altitude in metres.
CENTRES: dict[str, tuple[float, float, float]] = {
    "baghdad": (33.3152, 44.3661, 41), "basra": (30.5085, 47.7804, 5), "nineveh": (36.3400, 43.1300, 223),
    "erbil": (36.1911, 44.0092, 420), "sulaymaniyah": (35.5613, 45.4306, 882), "duhok": (36.8669, 42.9503, 585),
    "halabja": (35.1778, 45.9861, 700), "kirkuk": (35.4681, 44.3922, 350), "anbar": (33.4258, 43.2994, 50),
    "babil": (32.4833, 44.4333, 34), "karbala": (32.6160, 44.0249, 30), "najaf": (32.0259, 44.3462, 60),
    "qadisiyah": (31.9889, 44.9250, 20), "muthanna": (31.3320, 45.2944, 12), "dhi_qar": (31.0439, 46.2575, 5),
    "maysan": (31.8356, 47.1448, 10), "wasit": (32.5128, 45.8182, 20), "diyala": (33.7500, 44.6333, 45),
    "salah_al_din": (34.6070, 43.6780, 110),
}
GOVERNORATE_AR = {
    "baghdad": "بغداد", "basra": "البصرة", "nineveh": "نينوى", "erbil": "أربيل", "sulaymaniyah": "السليمانية",
    "duhok": "دهوك", "halabja": "حلبجة", "kirkuk": "كركوك", "anbar": "الأنبار", "babil": "بابل", "karbala": "كربلاء",
    "najaf": "النجف", "qadisiyah": "القادسية", "muthanna": "المثنى", "dhi_qar": "ذي قار", "maysan": "ميسان",
    "wasit": "واسط", "diyala": "ديالى", "salah_al_din": "صلاح الدين",
}
DISTRICTS: dict[str, list[str]] = {
    "erbil": ["هەولێر", "سۆران", "شەقڵاوە", "کۆیە", "مەخموور", "Soran"],
    "sulaymaniyah": ["سلێمانی", "چەمچەماڵ", "ڕانیە", "پێنجوێن", "دوکان", "Chamchamal"],
    "duhok": ["دهۆک", "زاخۆ", "ئامێدی", "سێمێل", "شێخان", "Zakho"],
    "halabja": ["هەڵەبجە", "خورماڵ", "سیروان"],
    "baghdad": ["الكرخ", "الرصافة", "الأعظمية", "الكاظمية", "المحمودية", "أبو غريب", "Karrada"],
    "basra": ["البصرة", "الزبير", "أبو الخصيب", "القرنة", "الفاو", "شط العرب"],
    "nineveh": ["الموصل", "سنجار", "تلعفر", "الحمدانية", "تلكيف", "Sinjar"],
    "kirkuk": ["كركوك", "الحويجة", "داقوق", "دبس"],
    "anbar": ["الرمادي", "الفلوجة", "هيت", "القائم"],
    "babil": ["الحلة", "المسيب", "المحاويل", "الهاشمية"],
    "karbala": ["كربلاء", "عين التمر", "الهندية"],
    "najaf": ["النجف", "الكوفة", "المناذرة"],
    "qadisiyah": ["الديوانية", "عفك", "الشامية"],
    "muthanna": ["السماوة", "الرميثة", "الخضر"],
    "dhi_qar": ["الناصرية", "الشطرة", "سوق الشيوخ", "الرفاعي"],
    "maysan": ["العمارة", "المجر الكبير", "علي الغربي"],
    "wasit": ["الكوت", "الصويرة", "النعمانية"],
    "diyala": ["بعقوبة", "المقدادية", "خانقين", "بلدروز"],
    "salah_al_din": ["تكريت", "سامراء", "بيجي", "الدور", "الشرقاط"],
}
VENUES: dict[str, list[str]] = {
    "erbil": ["Divan Hotel, Erbil", "Erbil Rotana", "هۆڵی پارێزگای هەولێر", "IOM Iraq office, Erbil"],
    "baghdad": ["فندق بابل، بغداد", "قاعة وزارة الداخلية", "فندق المنصور ميليا", "مكتب المنظمة الدولية للهجرة، بغداد"],
    "sulaymaniyah": ["Grand Millennium Sulaimani", "هۆڵی زانکۆی سلێمانی", "هۆتێلی ئاشتی، سلێمانی"],
    "duhok": ["هۆڵی زانکۆی دهۆک", "Jiyan Hotel, Duhok", "IOM Iraq office, Duhok"],
    "basra": ["فندق البصرة الدولي", "قاعة مجلس محافظة البصرة"],
}
# (title, topic codes it covers)
TITLES: list[tuple[str, tuple[str, ...]]] = [
    ("Counter-trafficking training for NGOs",
     ("tip_basics", "trafficking_vs_smuggling", "law_28_2012", "victim_identification", "victim_assistance")),
    ("Psychosocial support and victim assistance in human trafficking cases",
     ("psychosocial_support", "victim_assistance", "victim_identification")),
    ("Trafficking in persons training for human rights officials",
     ("tip_basics", "community_policing", "psychosocial_support", "law_28_2012")),
    ("Building networks to identify and assist victims of trafficking and SGBV",
     ("victim_identification", "victim_assistance", "community_policing")),
    ("Community policing and protection principles in trafficking investigations",
     ("community_policing", "law_28_2012", "victim_identification")),
    ("Safe labour migration and fair recruitment", ("labour_migration", "trafficking_vs_smuggling", "tip_basics")),
    ("دورة تدريبية حول مكافحة الاتجار بالبشر للموظفين الحكوميين",
     ("tip_basics", "law_28_2012", "trafficking_vs_smuggling")),
    ("ورشة عمل حول التعرف على ضحايا الاتجار بالبشر وإحالتهم", ("victim_identification", "victim_assistance")),
    ("خولی ڕاهێنان لەسەر بەرەنگاربوونەوەی بازرگانیکردن بە مرۆڤ لە هەرێمی کوردستان",
     ("legal_framework_kri", "tip_basics", "victim_identification")),
    ("ڕاهێنان لەسەر پاڵپشتیی دەروونی و کۆمەڵایەتی بۆ قوربانییانی بازرگانیکردن بە مرۆڤ",
     ("psychosocial_support", "victim_assistance")),
]
TITLE_TOPICS = dict(TITLES)
OTHER_TOPICS = ["الاتجار بالأطفال عبر الإنترنت", "بازرگانیکردن بە منداڵ لە ڕێگەی ئینتەرنێتەوە", "Online recruitment",
                "Child labour", "عمالة الأطفال", "Gender-based violence"]

# organisations by type (the codes of the attendance form's org_type list)
ORGANISATIONS: dict[str, list[str]] = {
    "ministry": ["وزارة العمل والشؤون الاجتماعية", "وزارة الهجرة والمهجرين", "وزارة الصحة – مكتب المفتش العام",
                 "اللجنة المركزية لمكافحة الاتجار بالبشر", "المفوضية العليا لحقوق الإنسان", "وزارة العدل",
                 "وەزارەتی کار و کاروباری کۆمەڵایەتی", "Government Emergency Cell"],
    "police": ["وزارة الداخلية – قسم مكافحة الاتجار بالبشر", "مديرية شرطة البصرة", "مديرية الشرطة المجتمعية – بغداد",
               "بەڕێوەبەرایەتیی گشتیی پۆلیسی هەولێر", "بەڕێوەبەرایەتیی پۆلیسی سلێمانی",
               "وەزارەتی ناوخۆی هەرێمی کوردستان", "Community Police Directorate, Duhok"],
    "judiciary": ["مجلس القضاء الأعلى", "محكمة تحقيق الرصافة – بغداد", "محكمة استئناف البصرة الاتحادية",
                  "ئەنجومەنی دادوەریی هەرێمی کوردستان", "دادگای لێکۆڵینەوەی هەولێر"],
    "local_ngo": ["United Iraqi Medical Association", "Kurdistan Village Reconstruction Organization",
                  "Women's Legal Assistance", "Voice of Older People", "Modern Education for Kurdistan",
                  "ڕێکخراوی هێلانەی منداڵانی کوردستان", "منظمة الأمل للتنمية الإنسانية",
                  "جمعية الدفاع عن حقوق المرأة – البصرة", "منظمة النور للإغاثة والتنمية"],
    "international_ngo": ["PAX", "Heartland Alliance International", "Norwegian Refugee Council",
                          "Danish Refugee Council", "International Medical Corps"],
    "un_io": ["IOM Iraq", "UNHCR", "UNFPA", "UNICEF", "UNAMI Human Rights Office"],
    "other": ["جامعة بغداد – كلية القانون", "زانکۆی سەڵاحەدین – کۆلێژی یاسا", "نقابة المحامين العراقيين"],
}
ORG_TYPE_OF = {name: kind for kind, names in ORGANISATIONS.items() for name in names}
POSITIONS: dict[str, list[str]] = {
    "ministry": ["مدير قسم", "باحث اجتماعي", "مدير دار الإيواء", "موظف حقوقي", "بەڕێوەبەری بەش",
                 "توێژەری کۆمەڵایەتی", "Protection focal point"],
    "police": ["ضابط تحقيق", "نقيب", "ملازم أول", "منتسب في الشرطة المجتمعية", "ئەفسەری لێکۆڵینەوە", "ڕائید"],
    "judiciary": ["قاضي تحقيق", "نائب المدعي العام", "باحث قضائي", "دادوەری لێکۆڵینەوە", "Judicial investigator"],
    "local_ngo": ["محامٍ", "أخصائي نفسي", "منسق مشروع", "ناشط", "متطوع", "پارێزەر", "ڕاوێژکاری دەروونی",
                  "Case manager"],
    "international_ngo": ["Programme coordinator", "Case manager", "Psychosocial worker", "منسق مشروع", "Lawyer"],
    "un_io": ["Protection officer", "Programme assistant", "Counter-trafficking officer", "مساعد برامج"],
    "other": ["أستاذ جامعي", "محامٍ", "مامۆستای زانکۆ"],
}

# names: (female first names, male first names, family names) per script or nationality
AR_FEMALE = ["فاطمة", "زينب", "مريم", "نور", "سارة", "هدى", "رنا", "شيماء", "آمنة", "زهراء", "رقية", "دعاء",
             "إسراء", "بان", "سرى", "ابتسام", "تقوى", "هبة", "أسماء", "رغد"]
AR_MALE = ["علي", "حسين", "محمد", "أحمد", "عمر", "مصطفى", "كرار", "حيدر", "عباس", "يوسف", "خالد", "سجاد",
           "مرتضى", "ياسر", "عمار", "فلاح", "سلام", "رعد", "قاسم", "إبراهيم", "جاسم", "كاظم", "صالح"]
AR_FAMILY = ["الجبوري", "العبيدي", "الساعدي", "التميمي", "الدليمي", "الموسوي", "الحسيني", "الربيعي", "الشمري",
             "الزبيدي", "الخفاجي", "العزاوي", "الكعبي", "الطائي", "البياتي", "اللامي", "المالكي", "الكناني"]
CKB_FEMALE = ["ژیان", "شیلان", "ڕۆژان", "هەڵاڵە", "بەفرین", "نازدار", "سۆزان", "کوێستان", "ئاواز", "گوڵاڵە",
              "ڕووناک", "هێڤی", "دیلان", "پەخشان", "چنوور", "شەونم"]
CKB_MALE = ["ئارام", "هێمن", "ڕێبوار", "کاروان", "سەرهەنگ", "دڵشاد", "ئازاد", "شوان", "بەختیار", "سیروان",
            "هاوڕێ", "ڕێباز", "دارا", "کامەران", "ئاسۆ", "بەرزان"]
CKB_ELDERS = ["عومەر", "مەحموود", "ئەحمەد", "کەریم", "عەبدوڵڵا", "ڕەسووڵ", "حەسەن", "عەلی", "قادر", "جەلال",
              "ئیبراهیم", "سەلیم", "فەرەج", "ئەمین", "مستەفا", "عوسمان"]  # names of fathers and grandfathers
LATIN_IRAQI = (["Zainab", "Noor", "Sara", "Huda", "Rana", "Shilan", "Rozhan", "Ban", "Ibtisam", "Zahraa"],
               ["Ali", "Hussein", "Mohammed", "Ahmed", "Omar", "Karwan", "Rebwar", "Falah", "Dara", "Aram"],
               ["Al-Jubouri", "Hassan", "Aziz", "Othman", "Saleh", "Kareem", "Abdullah", "Mahmood", "Al-Tamimi"])
FOREIGN_NAMES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "bangladeshi": (["Rahima", "Shapla", "Nasrin", "Fatema", "Rina", "Moushumi"],
                    ["Mohammad", "Abdul", "Rafiq", "Jahid", "Sohel"],
                    ["Begum", "Akter", "Khatun", "Hossain", "Islam", "Rahman", "Uddin"]),
    "nepali": (["Sita", "Anita", "Sunita", "Gita", "Kamala", "Sarita"], ["Ram", "Bikash", "Suman", "Prakash"],
               ["Gurung", "Rai", "Tamang", "Magar", "Shrestha", "Thapa", "Limbu"]),
    "filipino": (["Maria", "Joy", "Rosalie", "Jennifer", "Maricel", "Analyn"], ["Jose", "Mark", "Rodel"],
                 ["Santos", "Reyes", "Cruz", "Bautista", "Garcia", "Dela Cruz", "Mendoza"]),
    "indian": (["Priya", "Lakshmi", "Anjali", "Kavitha"], ["Sunil", "Ravi", "Manoj", "Arun"],
               ["Das", "Nair", "Kumar", "Singh", "Pillai"]),
    "sri_lankan": (["Nimali", "Chamari", "Dilani", "Sandya"], ["Nuwan", "Kasun", "Ruwan"],
                   ["Perera", "Fernando", "Silva", "Jayasinghe", "Wickramasinghe"]),
    "ethiopian": (["Tigist", "Hiwot", "Meron", "Selam", "Bethlehem", "Almaz"], ["Dawit", "Yonas", "Abel"],
                  ["Alemu", "Bekele", "Tesfaye", "Girma", "Haile", "Mekonnen"]),
    "kenyan": (["Mercy", "Faith", "Grace", "Esther", "Lucy"], ["Brian", "Kevin", "Peter"],
               ["Wanjiru", "Achieng", "Otieno", "Mwangi", "Njeri", "Kamau"]),
    "ugandan": (["Grace", "Sarah", "Joan", "Harriet", "Prossy"], ["Joseph", "Isaac", "Ronald"],
                ["Nakato", "Namubiru", "Nansubuga", "Okello", "Mugisha"]),
    "pakistani": (["Amina", "Fatima", "Saima", "Nazia"], ["Imran", "Asif", "Bilal", "Tariq"],
                  ["Bibi", "Khan", "Hussain", "Akhtar", "Malik"]),
    "turkish": (["Ayşe", "Elif", "Zeynep", "Fatma"], ["Mehmet", "Mustafa", "Emre"],
                ["Yılmaz", "Kaya", "Demir", "Şahin", "Çelik"]),
    "iranian": (["مریم", "زهرا", "فاطمه", "نرگس", "سمیرا"], ["رضا", "علی", "مهدی", "حسین"],
                ["رضایی", "محمدی", "حسینی", "احمدی", "کریمی"]),
    "syrian": (["ريم", "لينا", "هبة", "رهف", "آية"], ["خالد", "محمد", "أحمد", "عمر"],
               ["الحلبي", "الشامي", "الحمصي", "الإدلبي", "الديري"]),
    "other": (["Fatou", "Aisha", "Marie", "Olga"], ["Moussa", "Ivan"], ["Diallo", "Traoré", "Mensah", "Petrova"]),
}

# mobile numbers abroad: country prefix with the mobile digit, and how many digits follow
FOREIGN_MOBILES: dict[str, tuple[str, int]] = {
    "bangladeshi": ("+8801", 9), "filipino": ("+639", 9), "nepali": ("+97798", 8), "indian": ("+919", 9),
    "sri_lankan": ("+947", 8), "ethiopian": ("+2519", 8), "kenyan": ("+2547", 8), "ugandan": ("+2567", 8),
    "pakistani": ("+923", 9),
}

# narrative sentences keyed by indicator code, in the person's own words (first person, so the same
# sentence fits a woman or a man), in Arabic, Sorani Kurdish and English
NARRATIVE: dict[str, dict[str, list[str]]] = {
    "deception": {
        "ar": ["وعدني الوكيل بعمل في مطعم براتب جيد، لكنني أُجبرت على العمل في منزل دون أجر.",
               "قالوا لي إن العمل في البناء قانوني وبعقد رسمي، ولم يكن هناك أي عقد."],
        "ckb": ["بەڵێنیان پێدام کارێکی باشم لە چێشتخانەیەک بۆ بدۆزنەوە، بەڵام ناچار کرام لە ماڵێکدا بێ مووچە کار بکەم.",
                "پێیان وتم کارەکە یاسایی دەبێت و گرێبەستی هەیە، بەڵام هیچ گرێبەستێک نەبوو."],
        "en": ["A recruitment agency promised me a job as a hotel cleaner; when I arrived they placed me in a house.",
               "They told me the construction job came with a legal contract and residency; there was none."],
    },
    "coercion": {
        "ar": ["هددوني بإيذاء عائلتي إن رفضت السفر.", "أجبروني على التوقيع على ورقة لا أعرف مضمونها."],
        "ckb": ["هەڕەشەیان لێ کردم کە ئەگەر گەشت نەکەم زیان بە خێزانەکەم دەگەیەنن.",
                "ناچاریان کردم واژۆ لەسەر کاغەزێک بکەم کە نەمدەزانی چی تێدایە."],
        "en": ["They threatened to hurt my family if I refused to travel.",
               "They made me sign a paper I could not read."],
    },
    "abduction": {
        "ar": ["اختُطفت من المخيم ونُقلت إلى مدينة أخرى."],
        "ckb": ["لە کەمپەکەوە ڕفێندرام و گوازرامەوە بۆ شارێکی تر."],
        "en": ["I was taken from the camp by force and moved to another city."],
    },
    "debt_bondage": {
        "ar": ["قالوا إن عليّ ديناً بقيمة تكاليف السفر ولا يمكنني المغادرة قبل سداده."],
        "ckb": ["پێیان وتم قەرزاری تێچووی گەشتەکەم و تا نەیدەمەوە ناتوانم بڕۆم."],
        "en": ["The employer said I owed the cost of my visa and ticket and had to work it off."],
    },
    "labour": {
        "ar": ["كنت أعمل أكثر من 16 ساعة يومياً في تنظيف المنازل.", "عملت في معمل طابوق دون يوم راحة."],
        "ckb": ["ڕۆژانە زیاتر لە 16 کاتژمێر لە پاککردنەوەی ماڵدا کارم دەکرد.",
                "لە کارگەیەکی خشتدا بێ ڕۆژی پشوو کارم دەکرد."],
        "en": ["I worked more than 16 hours a day cleaning houses.", "I worked in a brick factory without a day off."],
    },
    "sexual": {
        "ar": ["أُجبرت على الاستغلال الجنسي في شقة مغلقة."],
        "ckb": ["ناچار کرام بە چەوساندنەوەی سێکسی لە شوقەیەکی داخراودا."],
        "en": ["I was forced into sexual exploitation in a locked apartment."],
    },
    "forced_marriage": {
        "ar": ["زوّجوني بالإكراه عندما كان عمري ستة عشر عاماً."],
        "ckb": ["بە زۆر بەشوویان دام کاتێک تەمەنم شازدە ساڵ بوو."],
        "en": ["I was married off against my will at sixteen."],
    },
    "forced_criminality": {
        "ar": ["أجبروني على نقل المخدرات بين المحافظات."],
        "ckb": ["ناچاریان کردم ماددەی هۆشبەر لە نێوان پارێزگاکاندا بگوازمەوە."],
        "en": ["They forced me to carry drugs between governorates."],
    },
    "begging": {
        "ar": ["أجبروني على التسول عند التقاطعات وتسليم كل ما أجمعه."],
        "ckb": ["ناچاریان دەکردم لە چوارڕیانەکاندا سواڵ بکەم و هەموو پارەکە ڕادەست بکەم."],
        "en": ["I was made to beg at traffic lights and hand over all the money."],
    },
    "organ_removal": {
        "ar": ["عرضوا عليّ مبلغاً مقابل بيع كليتي ثم هددوني عندما رفضت."],
        "ckb": ["پارەیان پێشنیار کرد بۆ فرۆشتنی گورچیلەکەم و کاتێک ڕەتم کردەوە هەڕەشەیان لێ کردم."],
        "en": ["They offered me money for a kidney and threatened me when I refused."],
    },
    "documents_confiscated": {
        "ar": ["أخذ صاحب العمل جواز سفري عند الوصول ولم يُعده."],
        "ckb": ["خاوەنکارەکە پاسپۆرتەکەمی لێ سەندم و نەیدایەوە."],
        "en": ["My passport was taken when I arrived and never returned."],
    },
    "movement_restricted": {
        "ar": ["لم يسمحوا لي بمغادرة المنزل أو استخدام الهاتف."],
        "ckb": ["ڕێگەیان پێ نەدەدام لە ماڵەکە بچمە دەرەوە یان تەلەفۆن بەکاربهێنم."],
        "en": ["I was not allowed to leave the house or use a phone."],
    },
    "threats": {
        "ar": ["كان صاحب العمل يضربني ويهددني بالترحيل."],
        "ckb": ["خاوەنکارەکە لێی دەدام و هەڕەشەی دەرکردنی لێ دەکردم."],
        "en": ["The employer beat me and threatened to have me deported."],
    },
    "unpaid_wages": {
        "ar": ["عملت لأشهر دون أن أتقاضى أجري."],
        "ckb": ["چەند مانگێک کارم کرد بەبێ ئەوەی مووچەم پێ بدرێت."],
        "en": ["I worked for months without being paid."],
    },
    "closing": {
        "ar": ["تمكنت من الهرب واتصلت بالخط الساخن للشرطة.", "أبلغت جارةٌ منظمةً محلية عن حالتي."],
        "ckb": ["توانیم ڕابکەم و پەیوەندیم بە هێڵی گەرمی پۆلیسەوە کرد.",
                "دراوسێیەک ڕێکخراوێکی ناوخۆیی ئاگادار کردەوە."],
        "en": ["I managed to escape and called the police hotline.", "A neighbour alerted a local NGO."],
    },
    "no_indicator": {
        "ar": ["جئت أطلب المساعدة في استخراج وثائقي، ولم يجبرني أحد على شيء."],
        "ckb": ["هاتووم بۆ یارمەتی لە دەرکردنی بەڵگەنامەکانم، کەس ناچاری هیچ شتێکی نەکردووم."],
        "en": ["I came for help with my documents; nobody forced me to do anything."],
    },
}
SHORT_TEXT = {
    "ar": ["لا توجد ملاحظات", "تمت المتابعة هاتفياً", "بحاجة إلى زيارة ثانية", "الأسرة تسكن في مخيم"],
    "ckb": ["هیچ تێبینییەک نییە", "بە تەلەفۆن بەدواداچوون کرا", "پێویستی بە سەردانی دووەم هەیە",
            "خێزانەکە لە کەمپ دەژین"],
    "en": ["No remarks", "Followed up by phone", "Needs a second visit", "The family lives in a camp"],
}

# one flat-grey baseline JPEG (8×8 blocks, DC only), valid for any decoder; a comment makes each unique
_JPEG_SIZE = (64, 48)


def _jpeg(comment: str) -> bytes:
    def segment(marker: int, payload: bytes) -> bytes:
        return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload

    width, height = _JPEG_SIZE
    bits = ((width + 7) // 8) * ((height + 7) // 8) * 2  # per block: DC category 0 ("0") + end of block ("0")
    scan = b"\x00" * (bits // 8) + (bytes((0xFF >> (bits % 8),)) if bits % 8 else b"")
    return b"".join((
        b"\xff\xd8",
        segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        segment(0xFE, comment.encode()),
        segment(0xDB, b"\x00" + b"\x01" * 64),
        segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
        segment(0xC4, b"\x00\x01" + b"\x00" * 15 + b"\x00"),  # DC table: one code, category 0
        segment(0xC4, b"\x10\x01" + b"\x00" * 15 + b"\x00"),  # AC table: one code, end of block
        segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
        scan,
        b"\xff\xd9",
    ))


class _Weighted:
    """A fixed weighted choice, drawn with one random() and a bisect."""

    __slots__ = ("cumulative", "items", "total")

    def __init__(self, pairs: Mapping[str, float] | Sequence[tuple[str, float]]):
        pairs = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
        self.items = [p[0] for p in pairs]
        self.cumulative = list(accumulate(p[1] for p in pairs))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> str:
        return self.items[bisect(self.cumulative, rng.random() * self.total)]


SCREENING_PLACES = _Weighted({"erbil": 22, "duhok": 14, "sulaymaniyah": 12, "baghdad": 18, "basra": 9,
                              "nineveh": 8, "kirkuk": 6, "najaf": 3, "karbala": 2, "anbar": 2, "halabja": 1,
                              "diyala": 1, "dhi_qar": 1, "babil": 1})
TRAINING_PLACES = _Weighted({"erbil": 30, "baghdad": 25, "sulaymaniyah": 10, "duhok": 10, "basra": 10,
                             "nineveh": 5, "kirkuk": 4, "najaf": 3, "karbala": 3})
ALL_GOVERNORATES = _Weighted({g: 1 for g in CENTRES})
NATIONALITIES = _Weighted({"iraqi": 30, "syrian": 10, "bangladeshi": 12, "filipino": 8, "ethiopian": 8,
                           "nepali": 6, "indian": 5, "sri_lankan": 5, "kenyan": 4, "ugandan": 4, "pakistani": 3,
                           "iranian": 2, "turkish": 1, "other": 2})
ORG_TYPES = _Weighted({"ministry": 28, "police": 20, "judiciary": 8, "local_ngo": 22, "international_ngo": 8,
                       "un_io": 8, "other": 6})
ORGANISERS = _Weighted({"iom": 50, "moi": 10, "ccct": 10, "molsa": 6, "momd": 5, "krg": 9, "ngo_partner": 8,
                        "other": 2})
TRAINING_DAYS = _Weighted({"1": 20, "2": 15, "3": 30, "4": 25, "5": 10})
FAMILY_SIZE = _Weighted({"0": 45, "1": 25, "2": 15, "3": 10, "4": 5})
RELATIONSHIPS = _Weighted({"child": 45, "spouse": 20, "sibling": 20, "parent": 8, "other": 7})
REFERRALS_YES = _Weighted({"iom_assistance": 30, "molsa_shelter": 15, "health_facility": 10,
                           "psychosocial_service": 15, "legal_aid": 10, "police_ct_unit": 10, "avrr": 10})
REFERRALS_NO = _Weighted({"no_referral": 50, "legal_aid": 15, "health_facility": 15, "psychosocial_service": 10,
                          "iom_assistance": 10})
EXCLUSIVE_CODES = frozenset({"none", "dont_know", "do_not_know", "refused", "prefer_not_to_say", "no_answer"})
# metadata the device writes (ODK Collect's property names); `uri:` types are the same with a scheme
META_TYPES = frozenset({"start", "end", "today", "deviceid", "username", "phonenumber", "simserial", "subscriberid",
                        "email", "start-geopoint", "uri:deviceid", "uri:username", "uri:phonenumber", "uri:simserial",
                        "uri:subscriberid", "uri:email"})
SKIPPED_TYPES = frozenset({"calculate", "note", "xml-external", "csv-external"})
ATTACHMENT_TYPES = {"image": "jpg", "file": "pdf", "audio": "m4a", "video": "mp4", "background-audio": "m4a",
                    "osm": "osm"}
# share of optional questions answered, by question name (default 0.85)
ANSWER_RATE = {"full_name": 0.7, "phone": 0.4, "document_number": 0.3, "narrative": 0.6, "district": 0.75,
               "gps": 0.9, "venue": 0.95, "facilitators": 0.9, "position": 0.85, "photo": 0.85}


# =====================================================================================================
# The plan: each form compiled once into steps in form order
# =====================================================================================================

Maker = Callable[["_Gen", "_Env", "_Step"], "str | None"]
Pred = Callable[["_Env"], bool]


_ANSWER, _BLOCK, _REPEAT, _META, _CALCULATE = range(5)


@dataclass(slots=True, eq=False)
class _Step:
    path: str
    name: str
    row: int
    field: Field | None = None
    level: _Level | None = None  # a repeat: its own steps
    relevant: Pred | None = None
    constraint: Pred | None = None
    calc: Expr | None = None
    make: Maker | None = None
    fallback: Maker | None = None  # the generic answer, drawn when `make` keeps failing the constraint
    choices: list[str] | None = None  # codes of the choice list, in order
    choice_set: frozenset[str] = frozenset()
    choice_filter: Pred | None = None
    required: bool = False
    rate: float = 0.85
    meta: str | None = None
    gate: Pred | None = None  # the relevants of the groups the question is in (FormSchema.groups)
    block: list[_Step] | None = None  # the questions of one such group, skipped together
    op: int = 0  # what _answer does with it: _ANSWER, _BLOCK, _REPEAT, _META or _CALCULATE

    def __post_init__(self) -> None:
        self.op = (_BLOCK if self.block is not None else _REPEAT if self.level is not None
                   else _META if self.meta is not None else _CALCULATE if self.calc is not None else _ANSWER)


@dataclass(slots=True, eq=False)
class _Level:
    repeat: Repeat | None
    steps: list[_Step] = field(default_factory=list)
    late: list[_Step] = field(default_factory=list)  # calculates that read questions further down
    order: list[str] = field(default_factory=list)


class _Env:
    """Evaluation context: the instances from the top to the current one, and the current values."""

    __slots__ = ("chain", "choice", "dot", "gen", "now", "personas", "today")

    def __init__(self, gen: _Gen):
        self.gen = gen
        self.chain: list[Instance] = []
        self.personas: list[dict[str, Any] | None] = []
        self.dot: str = ""
        self.choice: str = ""
        self.today: str = ""
        self.now: str = ""

    def answer(self, name: str) -> str:
        """The answer to question `name` in this instance or an enclosing one ('' if none)."""
        path = self.gen.paths.get(name)
        if path is None:
            return ""
        for inst in reversed(self.chain):
            if path in inst:
                return inst[path]
        return ""

    def persona(self) -> dict[str, Any]:
        """The person this instance is about, drawn on first use and kept for its other answers."""
        p = self.personas[-1]
        if p is None:
            p = self.personas[-1] = self.gen.new_persona(self)
        return p


def _compile(scope: _Scope, text: str | None, what: str, path: str) -> Any:
    """The compiled expression (a predicate unless it is a calculation), or None if it cannot be read."""
    if not text:
        return None
    try:
        return scope.compile(text) if what == "calculation" else scope.predicate(text)
    except Unsupported as exc:
        log.debug("generator does not enforce the %s of %s (%s): %s", what, path, exc, text)
        return None


def _reads_only_itself(text: str) -> bool:
    """True when an expression depends on `.` alone (no ${…}, no clock, no randomness)."""
    try:
        tree = _Parser(text).parse()
    except Unsupported:
        return False
    return not _refs(tree) and not any(f in text for f in _ENV_FUNCTIONS)


def _memoised(check: Pred, size: int = 4096) -> Pred:
    """A constraint on `.` alone, remembered per answer (select codes and ages repeat a lot)."""
    seen: dict[str, bool] = {}

    def run(env: _Env) -> bool:
        found = seen.get(env.dot)
        if found is None:
            found = check(env)
            if len(seen) < size:
                seen[env.dot] = found
        return found
    return run


def _is_required(f: Field) -> bool:
    return (f.required or "").strip().lower() in ("yes", "true", "true()", "1")


def _plan(schema: FormSchema, index: _Index) -> _Level:
    rows = {f.name: f.row or 0 for f in schema.fields} | {r.name: r.row or 0 for r in schema.repeats}

    def gated_by(path: str) -> tuple[str, str] | None:
        """(innermost gating group, the relevants of every enclosing gated group joined with `and`)."""
        found = schema.relevant_groups(path)
        if not found:
            return None
        return found[-1].path, " and ".join(f"({g.relevant})" for g in found)

    def build(repeat: Repeat | None) -> _Level:
        level = _Level(repeat)
        scope = _Scope(index, repeat.path if repeat else None)
        steps: list[_Step] = []
        for child in schema.child_repeats(level.repeat.path if level.repeat else None):
            steps.append(_Step(path=child.path, name=child.name, row=child.row or 0, level=build(child),
                               calc=_compile(scope, child.count, "calculation", child.path)))
        for f in schema.fields_in(level.repeat.path if level.repeat else None):
            step = _field_step(f, scope, _compile(scope, f.relevant, "relevant", f.path), schema)
            if step is None:
                continue
            steps.append(step)
            if step.calc is not None and f.calculation:
                try:
                    mentioned = _refs(_Parser(f.calculation).parse())
                except Unsupported:
                    mentioned = []
                if any(rows.get(n, 0) > step.row for n in mentioned):
                    level.late.append(step)
        steps.sort(key=lambda s: s.row)
        level.order = [s.path for s in steps]
        # consecutive questions of one gated group become one block, so the gate is read once
        for step in steps:
            gate = gated_by(step.path)
            if gate is None:
                level.steps.append(step)
                continue
            group, expression = gate
            step.gate = _compile(scope, expression, "relevant", group)
            last = level.steps[-1] if level.steps else None
            if last is not None and last.block is not None and last.name == group:
                last.block.append(step)
            else:
                level.steps.append(_Step(path=group, name=group, row=step.row, block=[step], relevant=step.gate))
        return level

    return build(None)


def _field_step(f: Field, scope: _Scope, relevant: Pred | None, schema: FormSchema) -> _Step | None:
    step = _Step(path=f.path, name=f.name, row=f.row or 0, field=f, relevant=relevant,
                 required=_is_required(f), rate=ANSWER_RATE.get(f.name, 0.85))
    if f.type in META_TYPES:
        step.meta, step.op = f.type, _META
        return step
    if f.type == "calculate":
        step.calc, step.op = _compile(scope, f.calculation, "calculation", f.path), _CALCULATE
        return step if step.calc is not None else None
    if f.kind is Kind.NONE or f.type in SKIPPED_TYPES:
        return None
    if f.type == "hidden":  # nobody types into a hidden question: it holds its default, if it has one
        if not f.default:
            return None
        default = f.default
        step.make = step.fallback = lambda gen, env, st: default
        step.required = True
        return step
    if "label" in (f.appearance or "").split():  # a select shown as a row of labels (KoBo's score header)
        return None
    if f.type == "audit":
        step.make = step.fallback = _audit
        step.required = True
        return step
    if f.choice_list:
        found = schema.choice_lists.get(f.choice_list)
        step.choices = [c.code for c in found.choices] if found else None
        step.choice_set = frozenset(step.choices or ())
        step.choice_filter = _compile(scope, f.choice_filter, "choice_filter", f.path)
    step.constraint = _compile(scope, f.constraint, "constraint", f.path)
    if step.constraint is not None and _reads_only_itself(f.constraint or ""):
        step.constraint = _memoised(step.constraint)
    named = NAMED.get(f.name)
    step.make = step.fallback = _generic_maker(f)
    share = _share_of_total(f) if f.kind is Kind.INTEGER else None
    if share is not None:  # "parts add up to the total": solve instead of redrawing at random
        step.make = step.fallback = share
    if named and f.kind in named[0]:
        step.make = _checked(named[1]) if step.choices is not None else named[1]
    return step


# =====================================================================================================
# Generation
# =====================================================================================================

@dataclass(frozen=True, slots=True)
class _Enumerator:
    account: str | None  # None: a web-form link, submitted anonymously
    device: str
    governorate: str


class _Gen:
    """State of one `generate` run: the random stream, the form's plan and the current submission."""

    def __init__(self, schema: FormSchema, rng: random.Random, first_day: dt.date, cap: dt.datetime | None):
        self.schema, self.rng, self.first_day, self.cap = schema, rng, first_day, cap
        self.index = _Index(schema)
        self.paths = {f.name: f.path for f in schema.fields}
        self.plan = _plan(schema, self.index)
        self.meta_paths = [(f.path, f.type) for f in schema.fields_in(None) if f.type in META_TYPES]
        self.extra_meta = {t for _, t in self.meta_paths} - {"start", "end", "today", "deviceid", "username"}
        self.days = [first_day + dt.timedelta(days=i) for i in range(PERIOD_DAYS)]
        self.iso_days = [d.isoformat() for d in self.days]
        self.midnights = [dt.datetime.combine(d, dt.time(), IRAQ_TIME) for d in self.days]
        self.form = schema.form_id
        self.enumerators = self._enumerators()
        self.scene: dict[str, Any] = {}
        self.attachments: dict[str, bytes] = {}

    def _enumerators(self) -> list[_Enumerator]:
        rng = self.rng
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        out = []
        for gov, count in (("erbil", 3), ("baghdad", 2), ("duhok", 2), ("sulaymaniyah", 2), ("basra", 1),
                           ("nineveh", 1), ("kirkuk", 1)):
            for i in range(1, count + 1):
                device = "collect:" + "".join(rng.choice(alphabet) for _ in range(16))
                out.append(_Enumerator(f"amina_{gov}_{i}", device, gov))
        out.append(_Enumerator(None, "ee.kobotoolbox.org:" + "".join(rng.choice(alphabet) for _ in range(16)),
                               "baghdad"))
        return out

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"

    # -- one submission --------------------------------------------------------------------------------

    def submission(self) -> GeneratedSubmission:
        rng = self.rng
        rnd = rng.random
        self.attachments = {}
        collect = self.enumerators[:-1]  # the last one is the anonymous web-form link
        enumerator = self.enumerators[-1] if rnd() < 0.04 else collect[int(rnd() * len(collect))]
        i = int(rnd() * PERIOD_DAYS)
        if self.days[i].weekday() == 4 and rnd() < 0.75:  # Friday: few interviews, no trainings
            i = max(0, i - 1 - int(rnd() * 4))
        day = self.days[i]
        training = self.form == "training_attendance"
        if training:
            gov = TRAINING_PLACES.pick(rng)
        else:
            gov = enumerator.governorate if rnd() < 0.75 else SCREENING_PLACES.pick(rng)
        start = self.midnights[i] + dt.timedelta(seconds=(8 + rnd() * (2 if training else 8.5)) * 3600)
        self.scene = {"day": day, "last_day": day, "governorate": gov, "start": start}
        env = _Env(self)
        env.today, env.now = self.iso_days[i], _collect_time(start)
        root: Instance = {}
        _fill(self, env, self.plan, root)

        end = self._end(start, root)
        if self.meta_paths:
            meta = {"start": env.now, "end": _collect_time(end), "today": env.today, "deviceid": enumerator.device,
                    "username": enumerator.account or "username not found"}  # what Enketo writes when anonymous
            if self.extra_meta:
                meta.update(self._device_properties(enumerator, env))
            for path, kind in self.meta_paths:
                if meta.get(kind):
                    root[path] = meta[kind]
        answers = {p: root[p] for p in self.plan.order if p in root}
        if len(answers) != len(root):
            answers.update((p, v) for p, v in root.items() if p not in answers)

        end_utc = end.astimezone(dt.UTC)
        delay = dt.timedelta(minutes=1 + rng.random() * 180)
        if rng.random() < 0.15:  # an offline team uploads days later
            delay += dt.timedelta(days=1 + rng.random() * 13)
        received = end_utc + delay
        if self.cap is not None and received > self.cap > end_utc:
            received = end_utc + (self.cap - end_utc) * rng.random()
        return GeneratedSubmission(answers=answers, submission_time=received.replace(microsecond=0, tzinfo=None),
                                   submitted_by=enumerator.account, attachments=self.attachments)

    def _device_properties(self, enumerator: _Enumerator, env: _Env) -> dict[str, str]:
        """The rarer metadata (phone number, SIM serial, subscriber id, e-mail, start location), as Collect
        reads them from the device; drawn only for forms that ask for them."""
        rng = self.rng
        account = enumerator.account or "anonymous"
        sim = "8996" + "".join(str(int(rng.random() * 10)) for _ in range(15))
        imsi = "41805" + "".join(str(int(rng.random() * 10)) for _ in range(10))
        phone = self.phone()
        lat, lon, alt = CENTRES[enumerator.governorate]
        values = {"phonenumber": phone, "simserial": sim, "subscriberid": imsi, "email": f"{account}@example.org",
                  "start-geopoint": f"{lat + (rng.random() - 0.5) * 0.05:.6f} {lon + (rng.random() - 0.5) * 0.05:.6f} "
                                    f"{alt:.1f} {4 + rng.random() * 10:.1f}"}
        values.update({f"uri:{k}": f"{k}:{v}" for k, v in values.items() if k != "start-geopoint"})
        values["uri:deviceid"] = enumerator.device
        values["uri:username"] = f"username:{account}"
        return values

    def _end(self, start: dt.datetime, root: Instance) -> dt.datetime:
        rng = self.rng
        last_day: dt.date = self.scene["last_day"]
        if last_day > start.date():  # a form kept open over a training of several days
            return dt.datetime.combine(last_day, dt.time(), IRAQ_TIME) + dt.timedelta(hours=14 + rng.random() * 3)
        if self.form == "training_attendance":
            minutes = 300 + rng.random() * 180
        elif root.get("consent") == "no":
            minutes = 2 + rng.random() * 4
        elif self.form == "vot_screening":
            minutes = 20 + rng.random() * 70
        else:
            minutes = 3 + rng.random() * 40
        return start + dt.timedelta(minutes=minutes, seconds=rng.random() * 60)

    # -- people ----------------------------------------------------------------------------------------

    def new_persona(self, env: _Env) -> dict[str, Any]:
        rng = self.rng
        depth = len(env.chain) - 1
        gov = self.scene["governorate"]
        if self.form == "vot_screening" and depth == 0:  # the person interviewed
            nationality = NATIONALITIES.pick(rng)
            sex = "female" if rng.random() < (0.9 if nationality != "iraqi" else 0.8) else "male"
            age = rng.randint(14, 17) if rng.random() < 0.1 else max(18, min(int(rng.gauss(29, 8)), 60))
            return {"sex": sex, "nationality": nationality, "age": age, "script": _script_for(rng, nationality, gov)}
        if self.form == "training_attendance" and depth == 1:  # a participant
            org_type = ORG_TYPES.pick(rng)
            work = gov if rng.random() < 0.5 else ALL_GOVERNORATES.pick(rng)
            script = "latin" if org_type in ("un_io", "international_ngo") and rng.random() < 0.5 else \
                _script_for(rng, "iraqi", work)
            return {"sex": "female" if rng.random() < 0.45 else "male", "nationality": "iraqi", "script": script,
                    "org_type": org_type, "governorate": work, "age": rng.randint(25, 60)}
        sex = "female" if rng.random() < 0.5 else "male"
        return {"sex": sex, "nationality": "iraqi", "script": _script_for(rng, "iraqi", gov),
                "age": rng.randint(0, 80)}

    def person_name(self, persona: Mapping[str, Any]) -> str:
        rng = self.rng
        female = persona.get("sex") == "female"
        script, nationality = persona.get("script", "ar"), persona.get("nationality", "iraqi")
        if nationality in FOREIGN_NAMES and script != "ckb":
            firsts_f, firsts_m, families = FOREIGN_NAMES[nationality]
            return f"{rng.choice(firsts_f if female else firsts_m)} {rng.choice(families)}"
        if script == "ckb":  # given name, father's name and often the grandfather's
            first = rng.choice(CKB_FEMALE if female else CKB_MALE + CKB_ELDERS)
            elders = rng.sample([e for e in CKB_ELDERS if e != first], 2)
            return " ".join([first, *elders[:1 + (rng.random() < 0.4)]])
        if script == "latin":
            firsts_f, firsts_m, families = LATIN_IRAQI
            return f"{rng.choice(firsts_f if female else firsts_m)} {rng.choice(families)}"
        first = rng.choice(AR_FEMALE if female else AR_MALE)  # given name, father's name, often a family name
        father = rng.choice([m for m in AR_MALE if m != first])
        return f"{first} {father} {rng.choice(AR_FAMILY)}" if rng.random() < 0.7 else f"{first} {father}"

    def phone(self, persona: Mapping[str, Any] | None = None) -> str:
        rng = self.rng
        home = FOREIGN_MOBILES.get(persona.get("nationality", "")) if persona else None
        if home and rng.random() < 0.15:  # the number from home, not an Iraqi SIM
            prefix, digits = home
            return prefix + "".join(str(int(rng.random() * 10)) for _ in range(digits))
        return rng.choice(("0750", "0751", "0770", "0771", "0772", "0780", "0781", "0782")) + \
            f"{int(rng.random() * 10_000_000):07d}"

    def text_in(self, pools: Mapping[str, list[str]], lang: str) -> str:
        return self.rng.choice(pools.get(lang) or pools["en"])

    def attachment(self, ext: str, what: str) -> str:
        """A file name as Collect writes it (milliseconds since the epoch) and its bytes."""
        start: dt.datetime = self.scene["start"]
        millis = int(start.timestamp() * 1000) + int(self.rng.random() * 3_600_000)
        name = f"{millis}.{ext}"
        while name in self.attachments:
            millis += 1
            name = f"{millis}.{ext}"
        comment = f"HIJRA AMINA fake {what} {name}"
        self.attachments[name] = _jpeg(comment) if ext == "jpg" else comment.encode()
        return name


_KURDISH_LETTERS = frozenset("ێۆڕڵەڤ")


def _script_of(text: str) -> str:
    if text.isascii():
        return "latin"
    return "ckb" if any(ch in _KURDISH_LETTERS for ch in text) else "ar"


def _written_in(rng: random.Random, options: Sequence[str], script: str) -> str:
    """Mostly one in the person's own script (a Kurdish official writes a Kurdish name), sometimes any."""
    mine = [o for o in options if _script_of(o) == script]
    return rng.choice(mine if mine and rng.random() < 0.8 else options)


def _script_for(rng: random.Random, nationality: str, governorate: str) -> str:
    if nationality == "syrian":
        return "ckb" if rng.random() < 0.3 else "ar"
    if nationality != "iraqi":
        return "latin"
    r = rng.random()
    if governorate in KRI:
        return "ckb" if r < 0.65 else "ar" if r < 0.9 else "latin"
    return "ar" if r < 0.88 else "latin" if r < 0.96 else "ckb"


def _collect_time(t: dt.datetime) -> str:
    """'2026-03-10T09:12:45.123+03:00', as ODK Collect writes start/end."""
    return t.astimezone(IRAQ_TIME).isoformat(timespec="milliseconds")


def _fill(gen: _Gen, env: _Env, level: _Level, out: Instance) -> None:
    """Answer every question of one instance (the top or one repeat instance), in form order."""
    env.chain.append(out)
    env.personas.append(None)
    try:
        _answer(gen, env, level.steps, out)
        for st in level.late:
            if (st.gate is None or st.gate(env)) and (st.relevant is None or st.relevant(env)):
                _calculate(st, env, out)
    finally:
        env.chain.pop()
        env.personas.pop()


def _answer(gen: _Gen, env: _Env, steps: list[_Step], out: Instance) -> None:
    rnd = gen.rng.random
    for st in steps:
        if st.relevant is not None and not st.relevant(env):
            continue
        op = st.op
        if op == _BLOCK:
            _answer(gen, env, st.block, out)  # type: ignore[arg-type]
            continue
        if op == _REPEAT:
            items: list[Instance] = []
            out[st.path] = items  # earlier instances are visible while the next one is filled
            for _ in range(_repeat_count(gen, env, st)):
                item: Instance = {}
                _fill(gen, env, st.level, item)  # type: ignore[arg-type]
                if item:
                    items.append(item)
            if not items:
                del out[st.path]
            continue
        if op == _CALCULATE:
            _calculate(st, env, out)
            continue
        if op == _META or (not st.required and rnd() >= st.rate):
            continue
        value = st.make(gen, env, st)  # type: ignore[misc]
        if value is not None and st.constraint is not None:
            env.dot = value
            tries = 0
            while not st.constraint(env):
                tries += 1
                if tries >= MAX_TRIES:
                    value = _search_dates(gen, env, st)
                    break
                # the programme's answer first; if the form wants otherwise, any plausible answer
                value = (st.make if tries < 5 else st.fallback)(gen, env, st)  # type: ignore[misc]
                if value is None:
                    break
                env.dot = value
        if value:
            out[st.path] = value


def _search_dates(gen: _Gen, env: _Env, st: _Step) -> str | None:
    """A date question whose constraint random draws keep missing (a window of a day or two between two other
    answers): try every day within DATE_SEARCH_DAYS of the visit, in random order. None for other kinds."""
    if st.field is None or st.field.kind is not Kind.DATE or st.constraint is None:
        return None
    day: dt.date = gen.scene["day"]
    offsets = list(range(-DATE_SEARCH_DAYS, DATE_SEARCH_DAYS + 1))
    gen.rng.shuffle(offsets)
    for offset in offsets:
        env.dot = (day + dt.timedelta(days=offset)).isoformat()
        if st.constraint(env):
            return env.dot
    return None


def _calculate(st: _Step, env: _Env, out: Instance) -> None:
    value = st.calc(env)  # type: ignore[misc]
    if isinstance(value, float) and (value != value or value in (math.inf, -math.inf)):
        out.pop(st.path, None)
        return
    text = _str(value)
    if text:
        out[st.path] = text
    else:
        out.pop(st.path, None)


def _repeat_count(gen: _Gen, env: _Env, st: _Step) -> int:
    if st.calc is not None:  # the form's repeat_count: exactly that many instances
        value = _num(st.calc(env))
        return 0 if value != value or value < 0 else min(int(value), 50)
    rng = gen.rng
    match st.name:
        case "participants":
            return 5 + min(int(rng.triangular(0, 31, 18)), 30)
        case "family_members":
            return int(FAMILY_SIZE.pick(rng))
        case "knowledge_checks":
            return 1 + int(rng.random() * 3)
    depth = len(env.chain) - 1
    return int(rng.random() * (5 if depth == 0 else 3))


# =====================================================================================================
# Answers: generic by kind, and by question name for the programme's questions
# =====================================================================================================

def _allowed(st: _Step, env: _Env) -> list[str]:
    codes = st.choices
    if codes is None:
        return []
    if st.choice_filter is None:
        return codes
    kept = []
    for code in codes:
        env.choice = code
        if st.choice_filter(env):
            kept.append(code)
    return kept


def _pick_one(gen: _Gen, env: _Env, st: _Step) -> str | None:
    codes = _allowed(st, env)
    if codes:
        return codes[int(gen.rng.random() * len(codes))]
    return None if st.choices is not None else str(1 + int(gen.rng.random() * 5))  # list unknown (from a file)


def _pick_many(gen: _Gen, env: _Env, st: _Step) -> str | None:
    rng = gen.rng
    codes = _allowed(st, env)
    if not codes:
        return None if st.choices is not None else str(1 + int(rng.random() * 5))
    exclusive = [c for c in codes if c in EXCLUSIVE_CODES]
    if exclusive and rng.random() < 0.1:
        return rng.choice(exclusive)
    pool = [c for c in codes if c not in EXCLUSIVE_CODES] or codes
    k = min(len(pool), 1 + int(rng.random() * rng.random() * 3.5))
    chosen = set(rng.sample(pool, k))
    return " ".join(c for c in codes if c in chosen)


def _text(gen: _Gen, env: _Env, st: _Step) -> str | None:
    rng = gen.rng
    name = st.name.lower()
    if "phone" in name or "mobile" in name or "tel" in name.split("_"):
        return gen.phone(env.persona())
    if "name" in name:
        return gen.person_name(env.persona())
    if "email" in name:
        return f"user{int(rng.random() * 10_000)}@example.org"
    if any(w in name for w in ("district", "village", "town", "city", "address", "location", "place")):
        return rng.choice(DISTRICTS[gen.scene["governorate"]])
    if any(w in name for w in ("organisation", "organization", "agency", "ngo")):
        return rng.choice(ORGANISATIONS[ORG_TYPES.pick(rng)])
    lang = "ckb" if gen.scene["governorate"] in KRI and rng.random() < 0.6 else "ar" if rng.random() < 0.8 else "en"
    if any(w in name for w in ("narrative", "story", "description", "details", "account", "explain")):
        return gen.text_in(NARRATIVE[rng.choice(list(NARRATIVE))], lang)
    return gen.text_in(SHORT_TEXT, lang)


def _integer(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    name = st.name.lower()
    if "age" in name.split("_"):
        return str(env.persona()["age"]) if rng.random() < 0.5 else str(int(rng.random() * 80))
    if st.constraint is not None and rng.random() < 0.5:  # constraints are usually small ranges
        return str(int(rng.random() * 11))
    if any(w in name for w in ("size", "count", "number", "members", "children", "people", "persons")):
        return str(1 + int(rng.random() * 10))
    return str(int(rng.random() * 61))


def _decimal(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    if any(w in st.name.lower() for w in ("income", "amount", "cost", "price", "salary", "wage")):
        return _fmt(round(50 + rng.random() * 1950, -1 if rng.random() < 0.7 else 0))
    return _fmt(round(rng.random() * 100, 1 + int(rng.random() * 2)))


def _date(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    day: dt.date = gen.scene["day"]
    if any(w in st.name.lower() for w in ("birth", "dob")):
        return (day - dt.timedelta(days=int(365.25 * (1 + rng.random() * 70)))).isoformat()
    return (day - dt.timedelta(days=int(rng.random() * 30))).isoformat()


def _datetime(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    day: dt.date = gen.scene["day"] - dt.timedelta(days=int(rng.random() * 30))
    t = dt.datetime.combine(day, dt.time(), IRAQ_TIME) + dt.timedelta(minutes=int(480 + rng.random() * 600))
    return _collect_time(t)


def _time(gen: _Gen, env: _Env, st: _Step) -> str:
    minutes = int(480 + gen.rng.random() * 600)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00.000+03:00"


def _geopoint(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    lat, lon, alt = CENTRES.get(env.answer("governorate") or gen.scene["governorate"], CENTRES["baghdad"])
    return (f"{lat + (rng.random() - 0.5) * 0.12:.6f} {lon + (rng.random() - 0.5) * 0.12:.6f} "
            f"{alt + (rng.random() - 0.5) * 40:.1f} {3 + rng.random() * 16:.1f}")


def _geoshape(gen: _Gen, env: _Env, st: _Step) -> str:
    first = _geopoint(gen, env, st)
    points = [first] + [_geopoint(gen, env, st) for _ in range(2)]
    if st.field is not None and st.field.type == "geoshape":
        points.append(first)
    return ";".join(points)


def _attachment(gen: _Gen, env: _Env, st: _Step) -> str:
    assert st.field is not None
    return gen.attachment(ATTACHMENT_TYPES.get(st.field.type, "bin"), st.field.type)


def _audit(gen: _Gen, env: _Env, st: _Step) -> str:
    """The audit log Collect attaches: always `audit.csv`."""
    gen.attachments["audit.csv"] = b"event,node,start,end\nform start,,1741597203456,\n"
    return "audit.csv"


def _rank(gen: _Gen, env: _Env, st: _Step) -> str | None:
    codes = list(_allowed(st, env))
    gen.rng.shuffle(codes)
    return " ".join(codes) or None


_SHARE = re.compile(r"^\s*((?:\$\{\w+\}\s*\+\s*)*)\.\s*(=|<=)\s*\$\{(\w+)\}\s*$")


def _share_of_total(f: Field) -> Maker | None:
    """For `${a} + ${b} + . = ${total}` the answer is what is left of the total; for `… + . <= ${total}`
    a random share of what is left. Other constraints get no solver."""
    found = _SHARE.match(f.constraint or "")
    if not found:
        return None
    parts = re.findall(r"\$\{(\w+)\}", found.group(1))
    exact, total_name = found.group(2) == "=", found.group(3)

    def make(gen: _Gen, env: _Env, st: _Step) -> str | None:
        try:
            left = int(env.answer(total_name)) - sum(int(env.answer(p) or 0) for p in parts)
        except ValueError:
            return None
        if left < 0:
            return None
        return str(left if exact else int(gen.rng.random() * (left + 1)))
    return make


def _generic_maker(f: Field) -> Maker:
    if f.type in ATTACHMENT_TYPES:
        return _attachment
    if f.type in ("geotrace", "geoshape"):
        return _geoshape
    if f.type == "background-geopoint":
        return _geopoint
    if f.type == "rank":
        return _rank
    if f.type in ("acknowledge", "trigger"):
        return lambda gen, env, st: "OK"
    if f.type == "barcode":
        return lambda gen, env, st: f"{int(gen.rng.random() * 10**12):012d}"
    if f.type == "range":
        return lambda gen, env, st: str(int(gen.rng.random() * 11))
    return _BY_KIND.get(f.kind, _text)


_BY_KIND: dict[Kind, Maker] = {
    Kind.SELECT_ONE: _pick_one, Kind.SELECT_MULTIPLE: _pick_many, Kind.INTEGER: _integer,
    Kind.DECIMAL: _decimal, Kind.DATE: _date, Kind.DATETIME: _datetime, Kind.TIME: _time,
    Kind.GEOPOINT: _geopoint, Kind.TEXT: _text,
}


def _checked(make: Maker) -> Maker:
    """A programme-specific select answer, kept only if its codes are in this form's list."""
    def run(gen: _Gen, env: _Env, st: _Step) -> str | None:
        value = make(gen, env, st)
        if value is None:
            return None
        allowed = st.choice_set if st.choice_filter is None else frozenset(_allowed(st, env))
        if value in allowed or all(code in allowed for code in value.split()):
            return value
        return (_pick_many if st.field is not None and st.field.kind is Kind.SELECT_MULTIPLE else _pick_one)(
            gen, env, st)
    return run


def _many(gen: _Gen, probabilities: Mapping[str, float], none_share: float) -> str:
    """Independent ticks of each code (at least one), or 'none' alone."""
    rng = gen.rng
    if rng.random() < none_share:
        return "none"
    chosen = [code for code, p in probabilities.items() if rng.random() < p]
    return " ".join(chosen) if chosen else max(probabilities, key=lambda c: probabilities[c])


# -- the programme's questions ----------------------------------------------------------------------

def _governorate(gen: _Gen, env: _Env, st: _Step) -> str:
    return gen.scene["governorate"]


def _work_governorate(gen: _Gen, env: _Env, st: _Step) -> str:
    return env.persona().get("governorate") or ALL_GOVERNORATES.pick(gen.rng)


def _screener(gen: _Gen, env: _Env, st: _Step) -> str | None:
    rng = gen.rng
    team = f"iom_{gen.scene['governorate']}"
    if team in (st.choices or ()) and rng.random() < 0.75:
        return team
    return rng.choice(("partner_ngo", "moi_ct", "iom_baghdad", "iom_erbil"))


def _consent(gen: _Gen, env: _Env, st: _Step) -> str:
    return "no" if gen.rng.random() < 0.08 else "yes"


def _full_name(gen: _Gen, env: _Env, st: _Step) -> str:
    return gen.person_name(env.persona())


def _sex(gen: _Gen, env: _Env, st: _Step) -> str:
    return env.persona()["sex"]


def _age(gen: _Gen, env: _Env, st: _Step) -> str:
    return str(env.persona()["age"])


def _nationality(gen: _Gen, env: _Env, st: _Step) -> str:
    return env.persona()["nationality"]


def _displacement(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    nationality = env.answer("nationality") or env.persona()["nationality"]
    if nationality == "iraqi":
        return rng.choice(("idp", "idp", "returnee", "host_community", "host_community"))
    if nationality == "syrian":
        return "refugee" if rng.random() < 0.9 else "migrant"
    if nationality == "iranian":
        return "refugee" if rng.random() < 0.5 else "migrant"
    return "migrant" if rng.random() < 0.95 else "refugee"


def _phone(gen: _Gen, env: _Env, st: _Step) -> str:
    return gen.phone(env.persona())


def _document_number(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    if env.persona().get("nationality") == "iraqi":
        return f"{int(rng.random() * 10**12):012d}"  # national card
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return rng.choice(letters) + (rng.choice(letters) if rng.random() < 0.4 else "") + \
        f"{int(rng.random() * 10**7):07d}"


def _district(gen: _Gen, env: _Env, st: _Step) -> str:
    return gen.rng.choice(DISTRICTS[env.answer("governorate") or gen.scene["governorate"]])


def _recruitment(gen: _Gen, env: _Env, st: _Step) -> str:
    return _many(gen, {"deception": 0.7, "coercion": 0.3, "abduction": 0.08, "debt_bondage": 0.25}, 0.08)


def _movement(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    nationality = env.answer("nationality")
    r = rng.random()
    if nationality and nationality not in ("iraqi", "syrian"):
        return "into_iraq" if r < 0.85 else "internal" if r < 0.95 else "none"
    if nationality == "syrian":
        return "into_iraq" if r < 0.6 else "internal" if r < 0.9 else "none"
    return "internal" if r < 0.6 else "across_borders" if r < 0.8 else "none"


def _exploitation(gen: _Gen, env: _Env, st: _Step) -> str:
    if env.answer("sex") == "male":
        odds = {"labour": 0.8, "forced_criminality": 0.15, "begging": 0.1, "organ_removal": 0.03, "other": 0.03}
    else:
        odds = {"labour": 0.55, "sexual": 0.4, "forced_marriage": 0.1, "begging": 0.03, "other": 0.03}
    return _many(gen, odds, 0.08)


def _control(gen: _Gen, env: _Env, st: _Step) -> str:
    foreign = env.answer("nationality") not in ("", "iraqi")
    return _many(gen, {"documents_confiscated": 0.7 if foreign else 0.35, "movement_restricted": 0.45,
                       "threats": 0.35, "unpaid_wages": 0.5}, 0.1)


def _presumed_victim(gen: _Gen, env: _Env, st: _Step) -> str:
    score = _num(env.answer("indicator_score"))
    chance = 0.9 if score >= 4 else 0.5 if score >= 2 else 0.1
    return "yes" if gen.rng.random() < chance else "no"


def _urgent_needs(gen: _Gen, env: _Env, st: _Step) -> str:
    victim = env.answer("presumed_victim") == "yes"
    foreign = env.answer("nationality") not in ("", "iraqi")
    return _many(gen, {"shelter": 0.4, "medical": 0.35, "psychosocial": 0.5, "legal": 0.3, "food": 0.2,
                       "cash": 0.35, "documentation": 0.5 if foreign else 0.25}, 0.03 if victim else 0.3)


def _referral(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    if env.answer("presumed_victim") == "yes":
        code = REFERRALS_YES.pick(rng)
        return "iom_assistance" if code == "avrr" and env.answer("nationality") == "iraqi" else code
    return REFERRALS_NO.pick(rng)


def _narrative(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    persona = env.persona()
    r = rng.random()
    if persona.get("script") == "latin" and r < 0.4:
        lang = "en"
    elif gen.scene["governorate"] in KRI:
        lang = "ckb" if r < 0.55 else "ar" if r < 0.8 else "en"
    else:
        lang = "ar" if r < 0.75 else "en" if r < 0.95 else "ckb"
    ticked = [c for q in ("recruitment", "exploitation", "control") for c in env.answer(q).split()
              if c in NARRATIVE]
    if not ticked:
        return gen.text_in(NARRATIVE["no_indicator"], lang)
    picked = rng.sample(ticked, min(len(ticked), 1 + int(rng.random() * 3)))
    sentences = [gen.text_in(NARRATIVE[c], lang) for c in ticked if c in picked]
    if rng.random() < 0.5:
        sentences.append(gen.text_in(NARRATIVE["closing"], lang))
    return " ".join(sentences)


def _relationship(gen: _Gen, env: _Env, st: _Step) -> str:
    return RELATIONSHIPS.pick(gen.rng)


def _member_sex(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    if env.answer("relationship") == "spouse":
        main = env.chain[0].get(gen.paths.get("sex", ""), "")
        return "male" if main == "female" else "female"
    return "female" if rng.random() < 0.5 else "male"


def _member_age(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    main = _num(env.chain[0].get(gen.paths.get("age", ""), ""))
    main = 30.0 if main != main else main
    match env.answer("relationship"):
        case "child":
            age = int(rng.random() * max(1, min(18, main - 14)))
        case "spouse":
            age = int(main + rng.uniform(-5, 12))
        case "parent":
            age = int(main + rng.uniform(18, 32))
        case "sibling":
            age = int(main + rng.uniform(-10, 10))
        case _:
            age = int(rng.random() * 70)
    return str(max(0, min(100, age)))


def _title(gen: _Gen, env: _Env, st: _Step) -> str:
    return gen.rng.choice(TITLES)[0]


def _topics(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    codes = set(TITLE_TOPICS.get(env.answer("title"), ()))
    pool = [c for c in st.choices or () if c != "other"]
    if pool and (not codes or rng.random() < 0.3):
        codes.add(rng.choice(pool))
    if rng.random() < 0.08:
        codes.add("other")
    order = st.choices or sorted(codes)
    return " ".join(c for c in order if c in codes)


def _topics_other(gen: _Gen, env: _Env, st: _Step) -> str:
    return gen.rng.choice(OTHER_TOPICS)


def _organiser(gen: _Gen, env: _Env, st: _Step) -> str:
    code = ORGANISERS.pick(gen.rng)
    return "iom" if code == "krg" and gen.scene["governorate"] not in KRI else code


def _venue(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    gov = env.answer("governorate") or gen.scene["governorate"]
    if gov in VENUES:
        return rng.choice(VENUES[gov])
    place = GOVERNORATE_AR.get(gov, "")
    return rng.choice((f"قاعة ديوان محافظة {place}", f"فندق {place} الدولي", f"مديرية شرطة {place}"))


def _start_date(gen: _Gen, env: _Env, st: _Step) -> str:
    return gen.scene["day"].isoformat()


def _end_date(gen: _Gen, env: _Env, st: _Step) -> str:
    start = env.answer("start_date")
    first = dt.date.fromisoformat(start) if start else gen.scene["day"]
    last = max(first, min(first + dt.timedelta(days=int(TRAINING_DAYS.pick(gen.rng)) - 1), gen.days[-1]))
    gen.scene["last_day"] = max(last, gen.scene["day"])
    return last.isoformat()


def _facilitators(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    names = []
    for _ in range(1 + int(rng.random() * 3)):
        persona = {"sex": "female" if rng.random() < 0.4 else "male", "nationality": "iraqi",
                   "script": "latin" if rng.random() < 0.4 else _script_for(rng, "iraqi", gen.scene["governorate"])}
        names.append(gen.person_name(persona))
    return ("، " if not names[0].isascii() else ", ").join(names)


def _organisation(gen: _Gen, env: _Env, st: _Step) -> str:
    persona = env.persona()
    names = ORGANISATIONS[persona.get("org_type") or ORG_TYPES.pick(gen.rng)]
    return _written_in(gen.rng, names, persona.get("script", "ar"))


def _organisation_type(gen: _Gen, env: _Env, st: _Step) -> str:
    return ORG_TYPE_OF.get(env.answer("organisation"), "") or env.persona().get("org_type") or "other"


def _position(gen: _Gen, env: _Env, st: _Step) -> str:
    kind = env.answer("organisation_type") or env.persona().get("org_type") or "other"
    return _written_in(gen.rng, POSITIONS.get(kind, POSITIONS["other"]), env.persona().get("script", "ar"))


def _days_attended(gen: _Gen, env: _Env, st: _Step) -> str:
    rng = gen.rng
    days = _num(env.answer("training_days"))
    days = 1 if days != days or days < 1 else int(days)
    return str(days if rng.random() < 0.75 else max(1, days - 1 - int(rng.random() * 2)))


def _sessions_attended(gen: _Gen, env: _Env, st: _Step) -> str | None:
    rng = gen.rng
    allowed = _allowed(st, env)
    wanted = _num(env.answer("days_attended"))
    k = len(allowed) if wanted != wanted else min(int(wanted), len(allowed))
    if not allowed or k < 1:
        return None
    chosen = set(rng.sample(allowed, k))
    return " ".join(c for c in allowed if c in chosen)


def _consent_contact(gen: _Gen, env: _Env, st: _Step) -> str:
    return "yes" if gen.rng.random() < 0.7 else "no"


def _knowledge_item(gen: _Gen, env: _Env, st: _Step) -> str | None:
    """A topic not yet tested for this participant."""
    rng = gen.rng
    parent = env.chain[-2] if len(env.chain) >= 2 else {}
    repeat = st.field.repeat if st.field else None
    done = {inst.get(st.path) for inst in parent.get(repeat or "", ())}
    left = [c for c in _allowed(st, env) if c not in done]
    return rng.choice(left) if left else None


def _pre_score(gen: _Gen, env: _Env, st: _Step) -> str:
    return str(min(10, max(0, int(gen.rng.gauss(4.5, 2)))))


def _post_score(gen: _Gen, env: _Env, st: _Step) -> str:
    pre = _num(env.answer("pre_score"))
    pre = 4 if pre != pre else int(pre)
    return str(min(10, max(0, pre + int(gen.rng.gauss(2.5, 1.8)))))


_SELECTS = frozenset({Kind.SELECT_ONE, Kind.SELECT_MULTIPLE})
_TEXT = frozenset({Kind.TEXT})
_INT = frozenset({Kind.INTEGER})
_DATE = frozenset({Kind.DATE})
# question name → (kinds it applies to, answer maker)
def _case_code(gen: _Gen, env: _Env, st: _Step) -> str:
    """A screening's case code: the governorate's three letters and a number (never a name)."""
    place = (env.answer("governorate") or "erbil")[:3].upper()
    return f"{place}-{int(gen.rng.random() * 10000):04d}"


NAMED: dict[str, tuple[frozenset[Kind], Maker]] = {
    "case_code": (_TEXT, _case_code),
    "consent": (_SELECTS, _consent),
    "screener": (_SELECTS, _screener),
    "governorate": (_SELECTS, _governorate),
    "work_governorate": (_SELECTS, _work_governorate),
    "district": (_TEXT, _district),
    "full_name": (_TEXT, _full_name),
    "participant_name": (_TEXT, _full_name),
    "sex": (_SELECTS, _sex),
    "age": (_INT, _age),
    "nationality": (_SELECTS, _nationality),
    "displacement_status": (_SELECTS, _displacement),
    "phone": (_TEXT, _phone),
    "document_number": (_TEXT, _document_number),
    "recruitment": (_SELECTS, _recruitment),
    "movement": (_SELECTS, _movement),
    "exploitation": (_SELECTS, _exploitation),
    "control": (_SELECTS, _control),
    "presumed_victim": (_SELECTS, _presumed_victim),
    "urgent_needs": (_SELECTS, _urgent_needs),
    "referral": (_SELECTS, _referral),
    "narrative": (_TEXT, _narrative),
    "relationship": (_SELECTS, _relationship),
    "member_sex": (_SELECTS, _member_sex),
    "member_age": (_INT, _member_age),
    "title": (_TEXT, _title),
    "topics": (_SELECTS, _topics),
    "topics_other": (_TEXT, _topics_other),
    "organiser": (_SELECTS, _organiser),
    "venue": (_TEXT, _venue),
    "start_date": (_DATE, _start_date),
    "end_date": (_DATE, _end_date),
    "facilitators": (_TEXT, _facilitators),
    "organisation": (_TEXT, _organisation),
    "organisation_type": (_SELECTS, _organisation_type),
    "position": (_TEXT, _position),
    "days_attended": (_INT, _days_attended),
    "sessions_attended": (_SELECTS, _sessions_attended),
    "consent_contact": (_SELECTS, _consent_contact),
    "item": (_SELECTS, _knowledge_item),
    "pre_score": (_INT, _pre_score),
    "post_score": (_INT, _post_score),
}


def generate(schema: FormSchema, n: int, *, seed: int = 0, start_date: dt.date | None = None
             ) -> Iterator[GeneratedSubmission]:
    """`n` submissions of `schema`, spread over the ~6 months from `start_date`.

    Deterministic for a given `seed` and `start_date`. Without `start_date` the period is the six months
    up to yesterday (so the output changes from one day to the next) and no submission is received later
    than the start of today, UTC.
    """
    rng = random.Random(seed)
    cap: dt.datetime | None = None
    if start_date is None:
        today = dt.datetime.now(dt.UTC).date()
        start_date = today - dt.timedelta(days=PERIOD_DAYS)  # the last day is yesterday
        cap = dt.datetime.combine(today, dt.time(), dt.UTC)  # aware here; returned times are naive UTC
    gen = _Gen(schema, rng, start_date, cap)
    for _ in range(n):
        yield gen.submission()
