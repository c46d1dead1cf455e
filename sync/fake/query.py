"""KoBo's `query`, `sort` and `fields` on submission documents, as KoBo's MongoHelper applies them.

See ../shared/kobo-api.md §1: operators are limited to KoBo's whitelist; any other `$` key, or a key
containing a dot (except `_validation_status.…`), is base64-encoded by KoBo into a literal field
name that no document has, so it matches nothing. Answers are strings: a string never equals or
compares with a number. `{"_id": "12"}` at the top level is coerced to an int; inside operators not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

WHITELIST = frozenset({"$or", "$and", "$in", "$nin", "$not", "$exists", "$gt", "$gte", "$lt", "$lte", "$regex",
                       "$options", "$all", "$elemMatch", "$ne", "$expr", "$ifNull"})
NESTED_PREFIX = "_validation_status."
_MISSING = object()


class QueryError(Exception):
    """A query KoBo answers with 400; `body` is KoBo's JSON body."""

    def __init__(self, body: Any):
        super().__init__(str(body))
        self.body = body


def _get(doc: Mapping[str, Any], key: str) -> Any:
    if key.startswith(NESTED_PREFIX):
        value: Any = doc
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return _MISSING
            value = value[part]
        return value
    return doc.get(key, _MISSING)


def _literal_key(key: str) -> bool:
    """A key KoBo would base64-encode: it can never match a document's field."""
    if key.startswith(NESTED_PREFIX):
        return False
    return key.startswith("$") or "." in key


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return type(a) is type(b)


def _compare(op: str, value: Any, arg: Any) -> bool:
    candidates = value if isinstance(value, list) else [value]
    for v in candidates:
        if v is _MISSING or not _same_kind(v, arg):
            continue
        try:
            if (op == "$gt" and v > arg) or (op == "$gte" and v >= arg) or (op == "$lt" and v < arg) or \
                    (op == "$lte" and v <= arg):
                return True
        except TypeError:
            continue
    return False


def _equals(value: Any, arg: Any) -> bool:
    if value is _MISSING:
        return arg is None
    if value == arg and _same_kind(value, arg):
        return True
    return isinstance(value, list) and not isinstance(arg, list) and any(
        v == arg and _same_kind(v, arg) for v in value)


def _regex(spec: Any, options: str = "") -> re.Pattern[str]:
    flags = 0
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL), ("x", re.VERBOSE)):
        if letter in options:
            flags |= flag
    try:
        return re.compile(str(spec), flags)
    except re.error as exc:
        raise QueryError(["Unsupported query"]) from exc


def _operators(value: Any, ops: Mapping[str, Any]) -> bool:
    for op, arg in ops.items():
        if op not in WHITELIST:
            return False
        if op in ("$gt", "$gte", "$lt", "$lte"):
            ok = _compare(op, value, arg)
        elif op == "$ne":
            ok = not _equals(value, arg)
        elif op == "$in":
            if not isinstance(arg, list):
                raise QueryError(["Unsupported query"])
            ok = any(_equals(value, a) for a in arg)
        elif op == "$nin":
            if not isinstance(arg, list):
                raise QueryError(["Unsupported query"])
            ok = not any(_equals(value, a) for a in arg)
        elif op == "$exists":
            ok = (value is not _MISSING) == bool(arg)
        elif op == "$regex":
            pattern = _regex(arg, str(ops.get("$options", "")))
            ok = isinstance(value, str) and pattern.search(value) is not None
        elif op == "$options":
            continue
        elif op == "$not":
            ok = not (_operators(value, arg) if isinstance(arg, Mapping) else
                      isinstance(value, str) and _regex(arg).search(value) is not None)
        elif op == "$all":
            if not isinstance(arg, list):
                raise QueryError(["$all needs an array"])
            items = value if isinstance(value, list) else [value]
            ok = all(any(_equals(i, a) for i in items) for a in arg)
        elif op == "$elemMatch":
            ok = isinstance(value, list) and isinstance(arg, Mapping) and any(
                matches(item, arg) if isinstance(item, Mapping) and not _is_operator_dict(arg)
                else _operators(item, arg) for item in value)
        else:  # $expr / $ifNull: aggregation expressions this fake does not evaluate
            raise QueryError(["Unsupported query"])
        if not ok:
            return False
    return True


def _is_operator_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(str(k).startswith("$") for k in value)


def matches(doc: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    for key, cond in query.items():
        if key in ("$or", "$and"):
            if not isinstance(cond, list) or not cond:
                raise QueryError(["Unsupported query"])
            parts = [matches(doc, c) if isinstance(c, Mapping) else False for c in cond]
            if not (any(parts) if key == "$or" else all(parts)):
                return False
            continue
        if _literal_key(key):
            return False
        value = _get(doc, key)
        if _is_operator_dict(cond):
            if not _operators(value, cond):
                return False
        elif not _equals(value, cond):
            return False
    return True


def prepare(query: Mapping[str, Any]) -> dict[str, Any]:
    """KoBo's `to_safe_dict` coercion: a top-level `_id` given directly as a string becomes an int."""
    out = dict(query)
    value = out.get("_id")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        out["_id"] = int(value)
    return out


def compile_filter(query: Mapping[str, Any] | None) -> Callable[[Mapping[str, Any]], bool]:
    if not query:
        return lambda _doc: True
    prepared = prepare(query)
    return lambda doc: matches(doc, prepared)


_TYPE_RANK = {type(None): 1, int: 2, float: 2, str: 3, dict: 4, list: 5, bool: 6}


def sort_key(keys: Sequence[tuple[str, int]]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """Mongo's order: missing and null first, then numbers, strings, objects, arrays, booleans."""
    def key(doc: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, _direction in keys:
            v = _get(doc, name)
            if v is _MISSING or v is None:
                out.append((0, 0))
            else:
                rank = _TYPE_RANK.get(type(v), 7)
                out.append((rank, v if rank in (2, 3) else str(v)))
        return tuple(out)
    return key


def sort_documents(docs: list[Mapping[str, Any]], sort: Sequence[tuple[str, int]]) -> list[Mapping[str, Any]]:
    """Stable sort by several keys, each ascending (1) or descending (-1)."""
    result = list(docs)
    for name, direction in reversed(list(sort)):
        result.sort(key=sort_key([(name, direction)]), reverse=int(direction) < 0)
    return result


def project(doc: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """KoBo's projection: exactly the named keys, plus `_uuid` and `meta/rootUuid`; `_validation_status`
    is always present (`{}` when not selected); `_attachments` only when selected."""
    wanted = set(fields) | {"_uuid", "meta/rootUuid"}
    out = {k: v for k, v in doc.items() if k in wanted}
    out["_validation_status"] = doc.get("_validation_status", {}) if "_validation_status" in fields else {}
    if "meta/rootUuid" not in out and "meta/instanceID" in doc:
        out["meta/rootUuid"] = doc["meta/instanceID"]
    return out
