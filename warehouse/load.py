"""Storing one page of submissions: the part of the conversion boundary that sees whole submissions.

Before anything is written, each submission of the page is checked:
- its `_id` must be a positive 64-bit integer; a submission without one is kept whole in quarantine
  (restricted) with the reason, and the page goes on;
- the same `_id` twice in one page: the later one wins (it is what the server holds now); the earlier
  one is recorded in the history as superseded and kept whole in quarantine;
- a page whose JSON held NUL characters or lone surrogates (the client says so) has them replaced in a
  copy, each such answer named in the row's `_issues`; the raw JSON keeps the original.

Then the page is written in one transaction (inside a savepoint). If the database refuses it anyway
(a value the boundary missed), the page is written again one submission at a time, each in its own
savepoint, and any submission the database still refuses is quarantined with the database's reason:
one bad submission never blocks a form. Errors that are not about the data (connection lost, disk
full, locks) are not retried here: the run fails and the next one starts from the same watermark.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from warehouse.convert import has_unstorable, json_text, scrub, submission_id


@dataclass(slots=True)
class PageResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_values: int = 0
    quarantined: int = 0


@dataclass(slots=True)
class Incoming:
    """One submission of a page that has a usable `_id`, ready to be compared and stored."""

    sid: int
    data: Mapping[str, Any]  # what the flattener reads (scrubbed when the page needed it)
    raw: str  # the JSON exactly as received
    digest: str
    issues: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SetAside:
    """A submission that cannot go into the form's tables, kept whole with the reason."""

    submission_id: str | None
    reason: str
    raw: str
    digest: str


@dataclass(slots=True)
class CheckedPage:
    incoming: list[Incoming]
    set_aside: list[SetAside]
    superseded: list[Incoming]  # earlier copies of an `_id` that appears again later in the page
    dirty: bool = False  # the client's lenient parser read the page (see `check_page`)


def _encode(submission: Mapping[str, Any]) -> tuple[str, str]:
    try:
        blob = orjson.dumps(submission)
    except TypeError:  # orjson refuses lone surrogates and integers beyond 64 bits: escape them instead
        blob = json_text(submission).encode()
    return blob.decode(), hashlib.sha1(blob).hexdigest()


def check_page(submissions: Sequence[Any], *, dirty: bool, raw: Sequence[Any] | None = None) -> CheckedPage:
    """Split a page into submissions to store and submissions to set aside (see the module doc). `raw`: what the
    server sent for each submission when `submissions` were reshaped from it; its JSON is what is kept."""
    by_id: dict[int, Incoming] = {}
    set_aside: list[SetAside] = []
    superseded: list[Incoming] = []
    originals = raw if raw is not None and len(raw) == len(submissions) else None
    for index, s in enumerate(submissions):
        if not isinstance(s, Mapping):
            raw = json_text(s)
            set_aside.append(SetAside(None, f"not a submission object but {type(s).__name__}", raw,
                                       hashlib.sha1(raw.encode()).hexdigest()))
            continue
        raw_json, digest = _encode(originals[index] if originals is not None else s)
        sid = submission_id(s.get("_id"))
        if isinstance(sid, str):
            shown = s.get("_id")
            set_aside.append(SetAside(None if shown is None else str(shown)[:40], sid, raw_json, digest))
            continue
        issues: list[str] = []
        data: Mapping[str, Any] = s
        if dirty:
            problems: list[str] = []
            data = scrub(s, "", problems)
            issues += [f"{p or '(a key)'}: held a NUL character or a lone surrogate, replaced by U+FFFD "
                       "(the raw JSON keeps the original)" for p in dict.fromkeys(problems)]
        item = Incoming(sid=sid, data=data, raw=raw_json, digest=digest, issues=issues)
        if sid in by_id:
            superseded.append(by_id.pop(sid))
        by_id[sid] = item
    return CheckedPage(incoming=list(by_id.values()), set_aside=set_aside, superseded=superseded, dirty=dirty)


def page_is_dirty(submissions: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any text of the page holds NUL or a lone surrogate (for callers without the client's flag)."""
    def walk(value: Any) -> bool:
        if isinstance(value, str):
            return has_unstorable(value)
        if isinstance(value, Mapping):
            return any(has_unstorable(str(k)) or walk(v) for k, v in value.items())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return False
    return any(walk(s) for s in submissions)


class DataRefused(Exception):
    """The database refused a value of a page (not the connection): which table, which column, why."""

    def __init__(self, table: str, column: str | None, reason: str):
        super().__init__(f"table {table}{f', column {column}' if column else ''}: {reason}")
        self.table, self.column, self.reason = table, column, reason


def one_by_one(items: list[Incoming], store_one: Callable[[Incoming], None],
               quarantine: Callable[[Incoming, str], None]) -> int:
    """Store each submission on its own (the caller wraps each call in a savepoint); quarantine those the
    database refuses. Returns how many were quarantined."""
    refused = 0
    for item in items:
        try:
            store_one(item)
        except DataRefused as exc:
            quarantine(item, f"the database refused it: {exc}")
            refused += 1
    return refused
