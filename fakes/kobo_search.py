"""KoBo's Boolean search `q` (kpi/utils/query_parser, §5 of the API notes): `field:value` terms, values bare or
quoted, `AND` (or nothing) between terms, `OR`, `NOT`, parentheses; operators in capitals.

`parse_search(q)` reads `q` into a tree; `compile_search(tree, term)` makes the test of one item from it, where
`term(field, value)` makes the test of one term (`field` is None for a bare word); `conjuncts(tree)` are the
terms every match must satisfy (what an index can narrow on). A `q` the grammar cannot read raises
SearchSyntaxError (KoBo answers with no results); `term` may raise SearchRefused for a field KoBo refuses
(it answers 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Test = Callable[[Any], bool]
Term = Callable[[str | None, str], Test]
_TOKEN = re.compile(r'\(|\)|[^\s():]+:"(?:\\.|[^"])*"|[^\s():]+:\'(?:\\.|[^\'])*\'|"(?:\\.|[^"])*"|[^\s()]+')
_NAME = re.compile(r"[a-zA-Z_\[\]][a-zA-Z0-9\-_\[\]]*")


class SearchSyntaxError(ValueError):
    """`q` is not a search KoBo's grammar reads."""


class SearchRefused(ValueError):
    """A term KoBo refuses (an unknown field, a lookup it does not support): 400 with `detail`."""

    def __init__(self, detail: str = "Not supported field lookup"):
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Node:
    op: str  # "and", "or", "not", "term", "all" (an empty search)
    parts: tuple[Node, ...] = ()
    field: str | None = None
    value: str = ""


def parse_search(q: str) -> Node:
    tokens = _TOKEN.findall(q)
    if not tokens:
        return Node("all")
    try:
        tree, rest = _or(tokens)
    except IndexError:
        raise SearchSyntaxError(q) from None
    if rest:
        raise SearchSyntaxError(q)
    return tree


def compile_search(tree: Node, term: Term) -> Test:
    if tree.op == "all":
        return lambda _item: True
    if tree.op == "term":
        return term(tree.field, tree.value)
    parts = [compile_search(p, term) for p in tree.parts]
    if tree.op == "not":
        [inner] = parts
        return lambda item: not inner(item)
    if tree.op == "or":
        return lambda item: any(p(item) for p in parts)
    return lambda item: all(p(item) for p in parts)


def conjuncts(tree: Node) -> list[Node]:
    """The terms every item matching `tree` satisfies: `tree` itself, or the terms of a top-level AND."""
    if tree.op == "term":
        return [tree]
    if tree.op == "and":
        return [t for part in tree.parts for t in conjuncts(part)]
    return []


def _or(tokens: list[str]) -> tuple[Node, list[str]]:
    parts = []
    part, tokens = _and(tokens)
    parts.append(part)
    while tokens and tokens[0] == "OR":
        part, tokens = _and(tokens[1:])
        parts.append(part)
    return (parts[0] if len(parts) == 1 else Node("or", tuple(parts))), tokens


def _and(tokens: list[str]) -> tuple[Node, list[str]]:
    parts = []
    part, tokens = _not(tokens)
    parts.append(part)
    while tokens and tokens[0] not in ("OR", ")"):
        part, tokens = _not(tokens[1:] if tokens[0] == "AND" else tokens)
        parts.append(part)
    return (parts[0] if len(parts) == 1 else Node("and", tuple(parts))), tokens


def _not(tokens: list[str]) -> tuple[Node, list[str]]:
    if tokens[0] == "NOT":
        inner, rest = _not(tokens[1:])
        return Node("not", (inner,)), rest
    if tokens[0] == "(":
        inner, rest = _or(tokens[1:])
        if not rest or rest[0] != ")":
            raise SearchSyntaxError("unbalanced parentheses")
        return inner, rest[1:]
    if tokens[0] == ")":
        raise SearchSyntaxError("unbalanced parentheses")
    name, colon, value = tokens[0].partition(":")
    if not colon or not _NAME.fullmatch(name):
        return Node("term", value=_unquote(tokens[0])), tokens[1:]
    return Node("term", field=name, value=_unquote(value)), tokens[1:]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
