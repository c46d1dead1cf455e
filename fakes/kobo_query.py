"""KoBo's `query`, `sort` and `fields` over submission documents, the way KoBo's MongoHelper hands them to Mongo.

Spec: /work/shared/kobo-api.md §1.

* Operators are limited to KoBo's whitelist (`MongoHelper.KEY_WHITELIST`). KoBo base64-encodes any other key
  that starts with `$`, and every key holding a `.`, so Mongo reads them as literal field names: no submission
  has such a field, so a condition on one behaves as on a missing field (`{"$where": "1"}` and `{"a.b": "x"}`
  match nothing). Keys starting with `_validation_status.` stay dotted paths into the status object.
* Every answer is a string: a string never equals or compares with a number (Mongo's type bracketing), and a
  comparison never raises.
* `to_safe_dict` turns `"_id": <scalar>` into an int wherever such a pair appears (so at the top level and in
  `$or`/`$and` branches), but not inside operators: `{"_id": {"$gt": "12"}}` matches nothing.
* A query Mongo would refuse raises `QueryError`; the server answers 400 with its `body` (`["Unsupported query"]`,
  or `["$all needs an array"]`).

`Query.candidates` narrows a query to position ranges of a sorted index (`_id`, or `_submission_time` then `_id`),
so keyset pages (`{"_id": {"$gt": X}}`, or the (`_submission_time`, `_id`) cursor) cost a bisection, not a scan.
"""

from __future__ import annotations

import json
import operator
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WHITELIST = frozenset({"$or", "$and", "$in", "$nin", "$not", "$exists", "$gt", "$gte", "$lt", "$lte", "$regex",
                       "$options", "$all", "$elemMatch", "$ne", "$expr", "$ifNull"})
VALIDATION_STATUS_PREFIX = "_validation_status."  # NESTED_MONGO_RESERVED_ATTRIBUTES (kpi/constants.py)
UNSUPPORTED: list[str] = ["Unsupported query"]
REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0}

Document = Mapping[str, Any]
Predicate = Callable[[Document], bool]
Test = Callable[[Any], bool]  # a condition on the value of one field (MISSING when the field is absent)
INF = float("inf")


class _Missing:
    """The value of a field a document does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class QueryError(ValueError):
    """A query Mongo refuses; KoBo answers 400 with `body` (§1)."""

    def __init__(self, body: list[str] | None = None):
        self.body = list(body or UNSUPPORTED)
        super().__init__(self.body[0])


class BsonValue:
    """What `bson.json_util` makes of `{"$date": …}` or `{"$oid": …}`: a datetime or an ObjectId, which no answer
    (a string) ever equals or compares with (§1: use strings for `_submission_time`)."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: str, value: Any):
        self.kind, self.value = kind, value

    def __repr__(self) -> str:
        return f"BsonValue({self.kind}={self.value!r})"


def _bson_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and ("$date" in obj or "$oid" in obj):
        [(kind, value)] = obj.items()
        return BsonValue(kind, value)
    return obj


def parse_json(text: str) -> Any:
    """`json.loads(text, object_hook=bson.json_util.object_hook)` as KoBo parses `query`, `sort` and `fields`;
    raises ValueError on invalid JSON."""
    return json.loads(text, object_hook=_bson_hook)


# -- to_safe_dict ---------------------------------------------------------------------------------------------


def _coerce_id(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def normalize(node: Any) -> Any:
    """A copy of a query with KoBo's `_id` coercion (`MongoHelper.to_safe_dict`): in every object, `"_id"` with a
    scalar value becomes `int(value)` when it can; lists are entered only for their objects."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, dict | list):
                out[key] = normalize(value)
            else:
                out[key] = _coerce_id(value) if key == "_id" else value
        return out
    if isinstance(node, list):
        return [normalize(item) if isinstance(item, dict) else item for item in node]
    return node


# -- values -----------------------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """Mongo's comparison bracket of a value: only values of the same kind are equal or ordered."""
    kind = type(value)
    if kind is str:
        return "string"
    if kind is bool:
        return "bool"
    if kind is int or kind is float:
        return "number"
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return "other"


def same(a: Any, b: Any) -> bool:
    """Mongo equality of two values: same kind, equal; objects and arrays element by element, in order."""
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "object":
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if kind == "array":
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if kind == "null":
        return True
    return bool(a == b)


def _never(_value: Any) -> bool:
    return False


def _is_null(value: Any) -> bool:
    return value is MISSING or value is None


# -- compiling a query into a predicate ---------------------------------------------------------------------


class Query:
    """One parsed KoBo `query` (§1): `Query(obj)` raises QueryError where Mongo would refuse it."""

    def __init__(self, spec: Mapping[str, Any] | None = None):
        if spec is not None and not isinstance(spec, Mapping):
            raise QueryError()
        self.spec: dict[str, Any] = normalize(dict(spec)) if spec else {}
        self.test: Predicate | None = _compile_document(self.spec) if self.spec else None

    def __call__(self, doc: Document) -> bool:
        return self.test is None or self.test(doc)

    def candidates(self, fields: tuple[str, ...], keys: Sequence[tuple[Any, ...]]) -> Candidates:
        """Positions in `keys` (sorted composite keys on `fields`) that can match; `exact` when all of them do."""
        full = [(0, len(keys))] if keys else []
        if not self.spec:
            return Candidates(full, True)
        return _Planner(fields, keys).document(self.spec)


def matches(doc: Document, query: Mapping[str, Any] | None) -> bool:
    """Does one submission match a KoBo `query`?"""
    return Query(query)(doc)


def _compile_document(spec: Mapping[str, Any]) -> Predicate:
    tests = [_compile_entry(key, value) for key, value in spec.items()]
    if not tests:
        return lambda _doc: True
    if len(tests) == 1:
        return tests[0]
    return lambda doc: all(test(doc) for test in tests)


def _compile_entry(key: str, value: Any) -> Predicate:
    if key in ("$or", "$and"):
        if not isinstance(value, list) or not value or not all(isinstance(c, dict) for c in value):
            raise QueryError()  # "$or/$and must be a nonempty array of objects"
        branches = [_compile_document(c) for c in value]
        if key == "$or":
            return lambda doc: any(branch(doc) for branch in branches)
        return lambda doc: all(branch(doc) for branch in branches)
    if key in WHITELIST:
        raise QueryError()  # `$in`, `$gt`… are not top-level operators; this fake does not evaluate `$expr`
    test = _compile_condition(value)
    if key.startswith(VALIDATION_STATUS_PREFIX):
        path = key.split(".")
        return lambda doc: test(_walk(doc, path))
    return lambda doc: test(doc.get(key, MISSING))


def _walk(doc: Document, path: list[str]) -> Any:
    value: Any = doc
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def _is_operator_object(value: Any) -> bool:
    """Mongo reads an object as operators when its first key is one (non-whitelisted `$` keys are encoded)."""
    return isinstance(value, dict) and bool(value) and next(iter(value)) in WHITELIST


def _compile_condition(value: Any) -> Test:
    if _is_operator_object(value):
        return _compile_operators(value)
    return _equals(value)


def _compile_operators(ops: Mapping[str, Any]) -> Test:
    if any(op not in WHITELIST for op in ops):
        raise QueryError()  # "unknown operator"
    tests = []
    for op, arg in ops.items():
        if op == "$options":
            if "$regex" not in ops:
                raise QueryError()  # "$options needs a $regex"
            continue
        builder = _OPERATORS.get(op)
        if builder is None:
            raise QueryError()  # $or/$and inside a field, $expr, $ifNull
        tests.append(builder(op, arg, ops))
    if len(tests) == 1:
        return tests[0]
    return lambda v: all(test(v) for test in tests)


def _equals(arg: Any) -> Test:
    """Equality, Mongo style: a field holding an array matches when the array or one of its elements is equal."""
    if type(arg) is str:
        return lambda v: v == arg or (type(v) is list and arg in v)
    if arg is None:
        return lambda v: v is MISSING or v is None or (type(v) is list and None in v)
    return lambda v: same(v, arg) or (type(v) is list and any(same(e, arg) for e in v))


def _not_equals(_op: str, arg: Any, _ops: Mapping[str, Any]) -> Test:
    equal = _equals(arg)
    return lambda v: not equal(v)


_COMPARE = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def _compare(op: str, arg: Any, _ops: Mapping[str, Any]) -> Test:
    compare = _COMPARE[op]
    kind = _kind(arg)
    if kind == "null":  # null sorts equal to null and to a missing field
        return (lambda v: _is_null(v) or (type(v) is list and None in v)) if op in ("$gte", "$lte") else _never
    if kind not in ("string", "number", "bool"):
        return _never  # objects, arrays, dates: no answer of that kind exists in a submission

    def one(v: Any) -> bool:
        return _kind(v) == kind and compare(v, arg)

    if kind == "string":
        return lambda v: (type(v) is str and compare(v, arg)) or (type(v) is list and any(one(e) for e in v))
    return lambda v: one(v) or (type(v) is list and any(one(e) for e in v))


def _element(arg: Any) -> Test:
    """One `$in` element: a regular expression (`{"$regex": …}`) or a value, compared without array expansion."""
    if isinstance(arg, dict) and "$regex" in arg:
        return _regex("$regex", arg["$regex"], arg)
    if arg is None:
        return _is_null
    return lambda v: same(v, arg)


def _in(_op: str, arg: Any, _ops: Mapping[str, Any]) -> Test:
    if not isinstance(arg, list):
        raise QueryError()  # "$in needs an array"
    strings = {a for a in arg if type(a) is str}
    numbers = {a for a in arg if type(a) is int or type(a) is float}
    others = [_element(a) for a in arg if type(a) not in (str, int, float)]
    arrays = [a for a in arg if isinstance(a, list)]

    def one(v: Any) -> bool:
        kind = type(v)
        if kind is str and v in strings:
            return True
        if (kind is int or kind is float) and v in numbers:
            return True
        return any(test(v) for test in others)

    def test(v: Any) -> bool:
        if type(v) is list:
            return any(one(e) for e in v) or any(same(v, a) for a in arrays)
        return one(v)

    return test


def _not_in(op: str, arg: Any, ops: Mapping[str, Any]) -> Test:
    inside = _in(op, arg, ops)
    return lambda v: not inside(v)


def _exists(_op: str, arg: Any, _ops: Mapping[str, Any]) -> Test:
    wanted = not (arg is None or arg is False or (type(arg) in (int, float) and arg == 0))
    return lambda v: (v is not MISSING) == wanted


def _regex(_op: str, arg: Any, ops: Mapping[str, Any]) -> Test:
    options = ops.get("$options", "")
    if not isinstance(arg, str) or not isinstance(options, str) or any(o not in REGEX_FLAGS for o in options):
        raise QueryError()  # "$regex has to be a string", "invalid flag in regex options"
    flags = 0
    for letter in options:
        flags |= REGEX_FLAGS[letter]
    try:
        search = re.compile(arg, flags).search
    except re.error as exc:
        raise QueryError() from exc
    return lambda v: (type(v) is str and search(v) is not None) or (
        type(v) is list and any(type(e) is str and search(e) is not None for e in v))


def _not(_op: str, arg: Any, _ops: Mapping[str, Any]) -> Test:
    if not _is_operator_object(arg):
        raise QueryError()  # "$not needs a regex or a document", "$not cannot be empty"
    inner = _compile_operators(arg)
    return lambda v: not inner(v)


def _all(_op: str, arg: Any, _ops: Mapping[str, Any]) -> Test:
    if not isinstance(arg, list):
        raise QueryError(["$all needs an array"])
    if not arg:
        return _never
    tests = [_elem_match("$elemMatch", a["$elemMatch"], a) if isinstance(a, dict) and "$elemMatch" in a
             else _equals(a) for a in arg]
    return lambda v: all(test(v) for test in tests)


def _elem_match(_op: str, arg: Any, _ops: Mapping[str, Any]) -> Test:
    if not isinstance(arg, dict):
        raise QueryError()  # "$elemMatch needs an Object"
    if _is_operator_object(arg) and next(iter(arg)) not in ("$and", "$or"):
        inner = _compile_operators(arg)
        return lambda v: type(v) is list and any(inner(e) for e in v)
    document = _compile_document(normalize(arg))
    return lambda v: type(v) is list and any(isinstance(e, Mapping) and document(e) for e in v)


_OPERATORS: dict[str, Callable[[str, Any, Mapping[str, Any]], Test]] = {
    "$gt": _compare, "$gte": _compare, "$lt": _compare, "$lte": _compare, "$ne": _not_equals,
    "$in": _in, "$nin": _not_in, "$exists": _exists, "$regex": _regex, "$not": _not, "$all": _all,
    "$elemMatch": _elem_match,
}


# -- narrowing a query to ranges of a sorted index --------------------------------------------------------------

Ranges = list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Candidates:
    """Disjoint ascending position ranges `[a, b)` of an index holding every match; `exact`: nothing else."""

    ranges: Ranges
    exact: bool

    @property
    def size(self) -> int:
        return sum(b - a for a, b in self.ranges)

    def positions(self, *, reverse: bool = False) -> Iterable[int]:
        if reverse:
            for a, b in reversed(self.ranges):
                yield from range(b - 1, a - 1, -1)
        else:
            for a, b in self.ranges:
                yield from range(a, b)

    def page(self, start: int, limit: int | None, *, reverse: bool = False) -> list[int]:
        """Positions `start … start+limit` of an exact candidate set, without walking the ones before."""
        out: list[int] = []
        want = self.size if limit is None else limit
        spans = reversed(self.ranges) if reverse else self.ranges
        for a, b in spans:
            if start >= b - a:
                start -= b - a
                continue
            take = min(want - len(out), b - a - start)
            if reverse:
                out.extend(range(b - 1 - start, b - 1 - start - take, -1))
            else:
                out.extend(range(a + start, a + start + take))
            start = 0
            if len(out) >= want:
                break
        return out


def _intersect(a: Ranges, b: Ranges) -> Ranges:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _union(a: Ranges, b: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(a + b):
        if lo >= hi:
            continue
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


class _Planner:
    """Ranges of an index on `fields` (the last one `_id`, so keys are unique) that a query can match."""

    def __init__(self, fields: tuple[str, ...], keys: Sequence[tuple[Any, ...]]):
        self.fields, self.keys, self.width = fields, keys, len(fields)
        self.lead_kind = _kind(keys[0][0]) if keys else "null"
        self.full: Ranges = [(0, len(keys))] if keys else []

    def document(self, spec: Mapping[str, Any]) -> Candidates:
        result = Candidates(self.full, True)
        for key, value in spec.items():
            part = self.entry(key, value, spec)
            result = Candidates(_intersect(result.ranges, part.ranges), result.exact and part.exact)
        return result

    def entry(self, key: str, value: Any, spec: Mapping[str, Any]) -> Candidates:
        if key in ("$and", "$or") and isinstance(value, list):
            parts = [self.document(c) for c in value if isinstance(c, dict)]
            ranges: Ranges = self.full if key == "$and" else []
            for part in parts:
                ranges = _intersect(ranges, part.ranges) if key == "$and" else _union(ranges, part.ranges)
            return Candidates(ranges, all(p.exact for p in parts))
        if key == self.fields[0]:
            return self.condition((), value)
        if self.width == 2 and key == self.fields[1]:
            lead = spec.get(self.fields[0], MISSING)
            if _kind(lead) == self.lead_kind and not _is_operator_object(lead):
                return self.condition((lead,), value)
        return Candidates(self.full, False)

    def condition(self, prefix: tuple[Any, ...], cond: Any) -> Candidates:
        """A condition on field number len(prefix) of the index, the fields before it fixed to `prefix`."""
        kind = _kind(cond)
        if not _is_operator_object(cond):
            if kind not in ("string", "number", "bool", "null"):
                return Candidates(self.full, False)
            return Candidates(self.point(prefix, cond), True)
        ranges, exact = self.full, True
        for op, arg in cond.items():
            if op in _COMPARE:
                part = self.bound(prefix, op, arg)
            elif op == "$in" and isinstance(arg, list) and all(_kind(a) in ("string", "number", "bool", "null")
                                                               for a in arg):
                part = []
                for a in arg:
                    part = _union(part, self.point(prefix, a))
            else:
                exact = False
                continue
            ranges = _intersect(ranges, part)
        return Candidates(ranges, exact)

    def _fits(self, prefix: tuple[Any, ...], value: Any) -> bool:
        """Is `value` of the kind this field holds? (Leading field: as found; `_id`: a number.)"""
        return _kind(value) == (self.lead_kind if not prefix else "number")

    def _probe(self, prefix: tuple[Any, ...], value: Any, fill: float) -> tuple[Any, ...]:
        return (*prefix, value, *([fill] * (self.width - len(prefix) - 1)))

    def point(self, prefix: tuple[Any, ...], value: Any) -> Ranges:
        if not self._fits(prefix, value):
            return []
        lo = bisect_left(self.keys, self._probe(prefix, value, -INF))
        hi = bisect_right(self.keys, self._probe(prefix, value, INF))
        return [(lo, hi)] if lo < hi else []

    def bound(self, prefix: tuple[Any, ...], op: str, value: Any) -> Ranges:
        if not self._fits(prefix, value):
            return []
        if prefix:  # stay inside the segment where the fields before are fixed
            lo, hi = bisect_left(self.keys, (*prefix, -INF)), bisect_right(self.keys, (*prefix, INF))
        else:
            lo, hi = 0, len(self.keys)
        if op == "$gt":
            lo = max(lo, bisect_right(self.keys, self._probe(prefix, value, INF)))
        elif op == "$gte":
            lo = max(lo, bisect_left(self.keys, self._probe(prefix, value, -INF)))
        elif op == "$lt":
            hi = min(hi, bisect_left(self.keys, self._probe(prefix, value, -INF)))
        else:
            hi = min(hi, bisect_right(self.keys, self._probe(prefix, value, INF)))
        return [(lo, hi)] if lo < hi else []


# -- sort and fields ------------------------------------------------------------------------------------------

_SORT_RANK = {"null": 1, "number": 2, "string": 3, "object": 4, "array": 5, "bool": 6, "other": 7}


def _sort_value(value: Any, descending: bool) -> tuple[int, Any]:
    """Mongo's sort order: missing and null first, then numbers, strings, objects, arrays, booleans; an array
    sorts by its smallest element ascending, its largest descending."""
    if type(value) is list and value:
        keys = [_sort_value(e, descending) for e in value]
        return max(keys) if descending else min(keys)
    kind = _kind(value)
    rank = _SORT_RANK[kind]
    if kind in ("number", "string", "bool"):
        return rank, value
    if kind == "null":
        return rank, 0
    return rank, json.dumps(value, sort_keys=True, default=str)


def sort_documents(docs: list[Document], sort: Sequence[tuple[str, int]]) -> list[Document]:
    """Stable multi-key sort (`cursor.sort([(key, ±1), …])`); ties keep the order given (`_id`)."""
    result = list(docs)
    for key, direction in reversed(list(sort)):
        descending = direction < 0
        if key.startswith(VALIDATION_STATUS_PREFIX):
            path = key.split(".")
            result.sort(key=lambda d, p=path, s=descending: _sort_value(_walk(d, p), s), reverse=descending)
        else:
            result.sort(key=lambda d, k=key, s=descending: _sort_value(d.get(k, MISSING), s), reverse=descending)
    return result


def parse_sort(spec: Any) -> list[tuple[str, int]]:
    """`sort` JSON object → [(key, 1 | -1)] in the order given; anything else Mongo refuses (QueryError)."""
    if not isinstance(spec, dict):
        raise QueryError()
    out = []
    for key, value in spec.items():
        try:
            direction = int(value)
        except (TypeError, ValueError):
            raise QueryError() from None
        if direction not in (1, -1):
            raise QueryError()  # "bad sort specification"
        out.append((key, direction))
    return out


ALWAYS_PROJECTED = ("_id", "_uuid", "meta/rootUuid")


def project(doc: Document, fields: Iterable[str]) -> dict[str, Any]:
    """KoBo's `fields` projection (§1): exactly these keys (Mongo keeps `_id`; KoBo adds `_uuid` and
    `meta/rootUuid` and drops `_userform_id`), in document order; `_validation_status` is always in the output
    (`{}` when not asked for) and `_attachments` only when asked for."""
    wanted = {*fields, *ALWAYS_PROJECTED} - {"_userform_id"}
    out = {key: value for key, value in doc.items() if key in wanted}
    if "_validation_status" not in out:
        out["_validation_status"] = {}
    if "meta/rootUuid" not in out and "meta/instanceID" in doc:
        out["meta/rootUuid"] = doc["meta/instanceID"]
    return out
