"""What a server must answer for the sweep (sync.sweep) to find edits, reviews and deletions cheaply.

The sweep is written against this interface, not against KoBo: `sync.sweep_kobo` implements it with KoBo's
data and history endpoints; a second source (ODK Central) implements the same questions its own way.
Every answer is hostile until checked: a count that is not a non-negative integer is None, a listing whose
pages do not move forward raises, and a history entry that is not what it should be is left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from warehouse.manifest import State


@dataclass(frozen=True, slots=True)
class Listed:
    """One page of a manifest listing, in `_id` order: each submission's id and state. `through` is the id up
    to which (inclusive) the listing is complete after this page (None: to the end of what was asked);
    `unusable` counts items without a usable `_id` (or outside what was asked)."""

    entries: list[tuple[int, State]]
    through: int | None
    unusable: int = 0


@dataclass(frozen=True, slots=True)
class Fetched:
    """Whole submissions, as a page of the data endpoint gives them, with the state of each one that has a
    usable `_id` (to tell what changed)."""

    results: list[Any]
    dirty: bool = False
    states: list[tuple[int, State]] = field(default_factory=list)
    raw: list[Any] | None = None  # what the server sent, when the results were reshaped from it


@dataclass(slots=True)
class History:
    """What the server's history says changed since a moment: submissions modified (edits, reviews) and deleted,
    by their root uuid (without 'uuid:'). `complete`: every page was read."""

    modified: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    complete: bool = True
    skipped: int = 0  # entries that were not what they should be


class Denied(Exception):
    """The server refuses this question to this token (e.g. KoBo's history without `manage_asset`)."""


class SweepSource(Protocol):
    """The questions the sweep asks a server about one form. Ranges are half-open: lo <= _id < hi."""

    page_size: int
    has_check_figure: bool  # can it count the check figure (warehouse.manifest) of a range?
    name: str  # the form, as messages name it
    server_url: str

    def requests_made(self) -> int: ...

    def bytes_received(self) -> int: ...

    def count(self, lo: int, hi: int) -> int | None:
        """How many submissions the server has in the range; None when its answer is not a usable count."""
        ...

    def count_check(self, lo: int, hi: int, position: int) -> int | None:
        """How many submissions in the range have their check bit set (warehouse.manifest.check_bit)."""
        ...

    def listing(self, lo: int | None, hi: int | None) -> Iterator[Listed]:
        """Every submission's id and state in the range, page by page (the manifest of the range)."""
        ...

    def edited(self) -> Iterator[Listed]:
        """The manifest of every submission ever edited."""
        ...

    def reviewed_since(self, since: int) -> Iterator[Listed]:
        """The manifest of the submissions whose validation status was set at or after `since` (Unix seconds,
        the server's clock)."""
        ...

    def history_since(self, since: dt.datetime) -> History:
        """What the server's own history says changed since `since` (UTC); Denied when the token may not read
        it, KoboError when it cannot be read."""
        ...

    def present(self, ids: Sequence[int]) -> set[int]:
        """Which of these ids the server still has (a listing, never a count)."""
        ...

    def fetch(self, ids: Sequence[int]) -> Iterator[Fetched]:
        """The whole submissions with these ids, in pages."""
        ...

    def total_on_server(self) -> int | None:
        """The server's own submission counter for the form, when it has one (a last check before reading an
        empty answer as 'all deleted')."""
        ...
