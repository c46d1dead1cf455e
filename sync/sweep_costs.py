"""What each of the sweep's mechanisms cost (requests, bytes, seconds) and what it found, by kind of change.

Recorded per run in `sync_runs.sweep_detail` (JSON), and summed in `sweep_requests`, `sweep_bytes`,
`sweep_seconds`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

# what found a change, as recorded in submission_history.found_by
WATERMARK = "watermark"  # the incremental read of new submissions (sync.engine)
HISTORY = "history"  # the server's project history
EDITED = "edited"  # the manifest of the ever-edited submissions
VALIDATION = "validation"  # validation statuses set since the last sweep
COUNT = "count"  # counts per _id range, split where they differ, listed once small
FULL = "full_sweep"  # the manifest of every submission (the safety net)
MECHANISMS = (HISTORY, EDITED, VALIDATION, COUNT, FULL)


class Metered(Protocol):
    def requests_made(self) -> int: ...

    def bytes_received(self) -> int: ...


@dataclass(slots=True)
class Cost:
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0
    found: Counter[str] = field(default_factory=Counter)  # change kind → submissions

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "bytes": self.bytes, "seconds": round(self.seconds, 3),
                "found": dict(sorted(self.found.items()))}


class SweepCosts:
    def __init__(self, source: Metered):
        self.source = source
        self.by_mechanism: dict[str, Cost] = {}

    @contextlib.contextmanager
    def measure(self, mechanism: str) -> Iterator[Cost]:
        """Charge to `mechanism` the requests, bytes and time spent inside the block."""
        cost = self.by_mechanism.setdefault(mechanism, Cost())
        requests, received, started = self.source.requests_made(), self.source.bytes_received(), time.monotonic()
        try:
            yield cost
        finally:
            cost.requests += self.source.requests_made() - requests
            cost.bytes += self.source.bytes_received() - received
            cost.seconds += time.monotonic() - started

    def found(self, mechanism: str, kind: str, n: int = 1) -> None:
        if n:
            self.by_mechanism.setdefault(mechanism, Cost()).found[kind] += n

    def as_json(self) -> dict[str, Any]:
        return {m: self.by_mechanism[m].as_json() for m in MECHANISMS if m in self.by_mechanism}
