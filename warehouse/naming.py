"""SQL identifiers from form names: deterministic, lower snake case, at most 63 characters.

PostgreSQL truncates identifiers at 63 bytes; two long group paths that share a prefix would then
collide. Long names keep a readable head and end in a short stable hash of the whole name.
Identifiers are always quoted when used, so SQL keywords (`group`, `order`) are safe.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping

MAX_IDENTIFIER = 63
_HASH_LEN = 8


def short_hash(text: str, length: int = _HASH_LEN) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def snake(text: str) -> str:
    """'Training Attendance-2026' → 'training_attendance_2026'; non-Latin text → its hash."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    out = re.sub(r"[^a-z0-9_]+", "_", ascii_text.lower()).strip("_")
    out = re.sub(r"_{3,}", "__", out)
    if not out:
        out = "x_" + short_hash(text)
    if out[0].isdigit():
        out = "_" + out
    return out


def identifier(text: str, *, limit: int = MAX_IDENTIFIER) -> str:
    """A safe identifier for `text`; over `limit` characters it becomes `head_<hash of text>`."""
    name = snake(text)
    if len(name.encode("utf-8")) <= limit:
        return name
    head = name[: limit - _HASH_LEN - 1].rstrip("_")
    return f"{head}_{short_hash(text)}"


class NameAllocator:
    """Hands out unique identifiers within one namespace (the columns of a table, the tables of a form).

    The first claimant of a name gets it; a later different claimant of the same name gets the name
    with a hash of its own source text, so the result depends only on the order of claims.
    """

    def __init__(self, reserved: set[str] | None = None, previous: Mapping[str, str] | None = None, *,
                 free: Callable[[str], bool] | None = None):
        """`previous`: source → the name it already has (in the database): it keeps it, and nobody else gets it,
        whatever order the sources are claimed in. `free`: a further test a new name must pass (e.g. that the
        views it brings are free too)."""
        self._taken: dict[str, str] = {name: f"<reserved {name}>" for name in reserved or set()}
        self._previous = dict(previous or {})
        for source, name in self._previous.items():
            self._taken[name] = source
        self._free = free

    def _ok(self, name: str, source: str) -> bool:
        owner = self._taken.get(name)
        if owner == source:
            return True
        return owner is None and (self._free is None or self._free(name))

    def claim_first(self, candidates: list[str], source: str) -> str:
        """The first candidate still free (short name, then path-based), else the last one hashed."""
        if source in self._previous:
            return self._previous[source]
        for wanted in candidates:
            name = identifier(wanted)
            if self._ok(name, source):
                self._taken[name] = source
                return name
        return self.claim(candidates[-1], source)

    def claim(self, wanted: str, source: str) -> str:
        if source in self._previous:
            return self._previous[source]
        name = identifier(wanted)
        if self._ok(name, source):
            self._taken[name] = source
            return name
        for attempt in range(100):
            suffix = short_hash(source if attempt == 0 else f"{source}#{attempt}", 6)
            candidate = identifier(f"{wanted}_{suffix}")
            if len(candidate) > MAX_IDENTIFIER or candidate in self._taken:
                candidate = f"{name[: MAX_IDENTIFIER - 7]}_{suffix}"
            if self._ok(candidate, source):
                break
        self._taken[candidate] = source
        return candidate


def view_name(table: str, suffix: str = "current") -> str:
    """The name of one analyst view of a table: `<table>_current`, `<table>_<lang>`."""
    return identifier(f"{table}_{suffix}")


def view_names(table: str, languages: tuple[str, ...] | list[str]) -> list[str]:
    """Every analyst view a table may have: current rows, and labelled in each language."""
    return [view_name(table), *(view_name(table, lang) for lang in languages)]
