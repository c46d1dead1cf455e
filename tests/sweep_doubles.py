"""A server in memory that answers the sweep's questions (sync.sweep_source.SweepSource), honestly or not, and
the warehouse side the sweep writes to. For testing sync.sweep's logic without HTTP (the KoBo source itself is
tested over real HTTP against the fake server, and with `responses`)."""

from __future__ import annotations

import datetime as dt
import random
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sync.sweep_kobo import sweep_state
from sync.sweep_source import Denied, Fetched, History, Listed
from tests.conftest import household_submission
from warehouse.manifest import StoredForm, check_bit
from warehouse.store import RegisteredForm, Warehouse

Count = Callable[[int, int, int], int | None]  # (lo, hi, true count) → what the server answers


def submission(sid: int, rng: random.Random, **overrides: Any) -> dict[str, Any]:
    """A household submission with a random uuid (the check figure reads its characters)."""
    uuid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    return household_submission(sid, _uuid=uuid, **{"meta/instanceID": f"uuid:{uuid}",
                                                     "meta/rootUuid": f"uuid:{uuid}"}, **overrides)


def edited(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    uuid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    return {**doc, "_uuid": uuid, "meta/deprecatedID": doc["meta/instanceID"], "meta/instanceID": f"uuid:{uuid}",
            "household/hh_size": str(int(doc["household/hh_size"]) + 1)}


def reviewed(doc: dict[str, Any], status: str | None, at: int) -> dict[str, Any]:
    return {**doc, "_validation_status": {} if status is None else
            {"timestamp": at, "uid": status, "by_whom": "supervisor", "label": status}}


class MemorySource:
    """sync.sweep_source.SweepSource over a dict of documents. `count_answer` / `check_answer` may lie."""

    has_check_figure = True
    name = "aHouse"
    server_url = "http://kobo.test"

    def __init__(self, docs: dict[int, dict[str, Any]], *, page_size: int = 10):
        self.docs = docs
        self.page_size = page_size
        self.requests = 0
        self.history: History | Exception | None = None  # None: refused (403); an exception: raised
        self.count_answer: Count = lambda lo, hi, n: n
        self.check_answer: Count = lambda lo, hi, n: n
        self.listing_hides: set[int] = set()  # ids a lying listing leaves out
        self.counter: int | None = None  # the asset's own submission counter (None: len(docs))
        self.asked: list[str] = []

    def requests_made(self) -> int:
        return self.requests

    def bytes_received(self) -> int:
        return 0

    def _ask(self, what: str) -> None:
        self.requests += 1
        self.asked.append(what)

    def count(self, lo: int, hi: int) -> int | None:
        self._ask("count")
        return self.count_answer(lo, hi, sum(1 for i in self.docs if lo <= i < hi))

    def count_check(self, lo: int, hi: int, position: int) -> int | None:
        self._ask("check")
        n = sum(check_bit(sweep_state(d), position) for i, d in self.docs.items() if lo <= i < hi)
        return self.check_answer(lo, hi, n)

    def _pages(self, ids: list[int], what: str) -> Iterator[Listed]:
        ids = sorted(ids)
        for start in range(0, max(len(ids), 1), self.page_size):
            self._ask(what)
            chunk = ids[start:start + self.page_size]
            last = start + self.page_size >= len(ids)
            yield Listed([(i, sweep_state(self.docs[i])) for i in chunk], None if last else chunk[-1])

    def listing(self, lo: int | None, hi: int | None) -> Iterator[Listed]:
        ids = [i for i in self.docs if (lo is None or i >= lo) and (hi is None or i < hi)
               and i not in self.listing_hides]
        return self._pages(ids, "listing")

    def edited(self) -> Iterator[Listed]:
        return self._pages([i for i, d in self.docs.items() if "meta/deprecatedID" in d], "edited")

    def reviewed_since(self, since: int) -> Iterator[Listed]:
        return self._pages([i for i, d in self.docs.items()
                            if (d["_validation_status"] or {}).get("timestamp", -1) >= since], "reviewed")

    def history_since(self, since: dt.datetime) -> History:
        self._ask("history")
        if self.history is None:
            raise Denied("403")
        if isinstance(self.history, Exception):
            raise self.history
        return self.history

    def present(self, ids: Sequence[int]) -> set[int]:
        self._ask("present")
        return {i for i in ids if i in self.docs}

    def fetch(self, ids: Sequence[int]) -> Iterator[Fetched]:
        self._ask("fetch")
        docs = [self.docs[i] for i in sorted(ids) if i in self.docs]
        yield Fetched(docs, False, [(d["_id"], sweep_state(d)) for d in docs])

    def total_on_server(self) -> int | None:
        self._ask("asset")
        return len(self.docs) if self.counter is None else self.counter


class WarehouseTarget:
    def __init__(self, warehouse: Warehouse, form: RegisteredForm):
        self.warehouse, self.form = warehouse, form
        self.refused: set[int] = set()  # ids the warehouse sets aside (as it quarantines what it cannot store)

    @property
    def stored(self) -> StoredForm:
        return StoredForm(self.warehouse, self.form)

    def store(self, fetched: Fetched, found_by: str) -> None:
        kept = [d for d in fetched.results if d.get("_id") not in self.refused]
        self.warehouse.load_page(self.form, kept, None, found_by=found_by)

    def mark_deleted(self, ids: list[int], found_by: str) -> int:
        return self.warehouse.mark_deleted(self.form, ids, found_by=found_by)
