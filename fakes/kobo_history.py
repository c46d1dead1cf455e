"""A project's history, as KoBo logs submission actions (kobo/apps/audit_log; §3 of the API notes).

- Every submission added, modified (an edit, or a validation status set or cleared: then
  `metadata.submission.status` holds the status label, or 'None' when cleared) or deleted is logged with the
  submission's root uuid (without 'uuid:'), who submitted it, and when it happened (the time of the action,
  not the submission's own `_submission_time`).
- `GET /api/v2/assets/{uid}/history/` lists them newest first, with KoBo's search `q` on `action`,
  `date_created` (with `__gt`, `__gte`, `__lt`, `__lte`), `metadata__…` and `user__username`; any other
  field is refused (400 "Not supported field lookup"). Only entries newer than the plan's look-back
  (midnight today less `lookback_days`) are ever listed, whatever `q` asks.

Entries are kept as small tuples in time order (a form of a million submissions has a million of them);
a search narrows to its `date_created` lower bound by bisection before it tests each entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, NamedTuple

from fakes.kobo_search import Node, SearchRefused, Test, compile_search, conjuncts

ADD, MODIFY, DELETE = "add-submission", "modify-submission", "delete-submission"
LOG_TIME = "%Y-%m-%dT%H:%M:%SZ"  # AuditLogSerializer.get_date_created
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}


class LogEntry(NamedTuple):
    at: float  # Unix seconds, UTC
    action: str
    root_uuid: str
    submitted_by: str | None
    user: str
    status: str | None  # the validation status label ('None' when cleared), for validation changes only


class ProjectHistory:
    """One asset's log, in the order things happened."""

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def record(self, when: dt.datetime, action: str, root_uuid: str, submitted_by: str | None, user: str,
               status: str | None = None) -> None:
        at = when.timestamp() if when.tzinfo else when.replace(tzinfo=dt.UTC).timestamp()
        if self.entries and at < self.entries[-1].at:  # a clock that went back: keep the log in order
            at = self.entries[-1].at
        self.entries.append(LogEntry(at, action, root_uuid.removeprefix("uuid:"), submitted_by, user, status))

    def search(self, tree: Node, *, not_before: dt.datetime, metadata: Callable[[LogEntry], dict[str, Any]]
               ) -> list[LogEntry]:
        """The entries matching the search, newest first, none older than `not_before` (the look-back)."""
        test = compile_search(tree, lambda field, value: _term(field, value, metadata))
        lower = not_before.timestamp()
        for term in conjuncts(tree):
            if term.field in ("date_created__gte", "date_created__gt"):
                lower = max(lower, _when(term.value))
        start = bisect_left(self.entries, lower, key=lambda e: e.at)
        return [e for e in reversed(self.entries[start:]) if test(e)]


def entry_json(entry: LogEntry, *, asset_uid: str, owner: str, base_url: str) -> dict[str, Any]:
    """An entry as ProjectHistoryLogSerializer shows it."""
    return {"user": f"{base_url}/api/v2/users/{entry.user}/", "user_uid": user_uid(entry.user),
            "username": entry.user, "action": entry.action, "metadata": metadata_of(entry, asset_uid, owner),
            "date_created": dt.datetime.fromtimestamp(entry.at, dt.UTC).strftime(LOG_TIME)}


def metadata_of(entry: LogEntry, asset_uid: str, owner: str) -> dict[str, Any]:
    submission: dict[str, Any] = {"submitted_by": entry.submitted_by or "AnonymousUser", "root_uuid": entry.root_uuid}
    if entry.status is not None:
        submission["status"] = entry.status
    return {"asset_uid": asset_uid, "log_subtype": "project", "ip_address": "127.0.0.1", "source": "fake KoBo",
            "project_owner": owner, "submission": submission}


def user_uid(username: str) -> str:
    return "u" + hashlib.sha1(username.encode()).hexdigest()[:21]


def _when(value: str) -> float:
    """A date or datetime in a search (Django reads a naive one in UTC); SearchRefused when it is neither."""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SearchRefused("Enter a valid date/time.") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def _value(text: str) -> Any:
    """KoBo's process_value: 'null' is None, 'true'/'false' are booleans."""
    if text == "null":
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _term(field: str | None, value: str, metadata: Callable[[LogEntry], dict[str, Any]]) -> Test:
    if field is None:  # a bare word: search_default_field_lookups, metadata__icontains among them
        word = value.lower()
        return lambda e: word in json.dumps(metadata(e), ensure_ascii=False).lower()
    name, _, lookup = field.partition("__")
    if name == "action":
        return _lookup(lambda e: e.action, lookup, _value(value))
    if name == "date_created":
        if lookup not in _COMPARE and lookup not in ("", "exact"):
            raise SearchRefused()
        moment = _when(value)
        compare = _COMPARE.get(lookup, lambda a, b: a == b)
        return lambda e: compare(e.at, moment)
    if name == "user" and lookup == "username":
        return lambda e: e.user == value
    if name == "metadata" and lookup:
        path, _, last = lookup.rpartition("__")
        keys, op = (path.split("__"), last) if last in ("icontains", "contains", "exact", "iexact") \
            else (lookup.split("__"), "")
        return _lookup(lambda e: _dig(metadata(e), keys), op, _value(value))
    raise SearchRefused()


def _lookup(get: Callable[[LogEntry], Any], lookup: str, wanted: Any) -> Test:
    if lookup in ("", "exact"):
        return lambda e: get(e) == wanted
    if lookup in ("icontains", "contains", "iexact"):
        text = str(wanted).lower() if lookup != "contains" else str(wanted)
        if lookup == "iexact":
            return lambda e: isinstance(got := get(e), str) and got.lower() == text
        if lookup == "icontains":
            return lambda e: isinstance(got := get(e), str) and text in got.lower()
        return lambda e: isinstance(got := get(e), str) and text in got
    raise SearchRefused()


def _dig(value: Any, keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value
