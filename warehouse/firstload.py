"""A first load: double uploads found set-wise while a form's submission table is filled from empty.

Every page of a sync looks up the `meta/instanceID`s it brings among the stored submissions, to flag double
uploads (`_duplicate_of`). Instance ids are random UUIDs: an index on them takes a random B-tree insert per row,
and the page's lookups cost more the larger the table (at 100,000 submissions, 7.5 times the first pages'). When
a run starts writing a form whose table is empty, the warehouse drops that index for the load and keeps, in
this object, a 64-bit hash of the instance id of every submission it stores — 16 bytes a submission, in sorted
NumPy arrays — and builds the index once when the run ends (`Warehouse.finish_run`), or when anything else is
about to write the form (a new form version, deletions).

A page's instance ids are hashed and looked up in all the arrays at once (`searchsorted`); only the few that
match — double uploads, and in theory a hash collision — are read back from the database by `_id` and compared
by their text, so the answer is exactly the one the index lookup gives. Entries of a page whose transaction
rolled back, or of a submission since rewritten with another instance id, simply no longer match what the
database holds. A crash loses the memory and leaves the table without the index; the next run builds the index
before it writes (`Warehouse.register_form`) and looks duplicates up in the database as always.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def instance_hash(instance: str) -> int:
    """64 bits of BLAKE2b of the instance id's text (surrogates escaped: any text hashes)."""
    digest = hashlib.blake2b(instance.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class FirstLoad:
    """The instance ids (hashed) of every submission stored in the table since it was empty."""

    def __init__(self) -> None:
        # runs of (hash, _id), each sorted by hash; merged so that no run is smaller than the one after it
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(h) for h, _ in self._runs)

    def candidates(self, rows: Sequence[tuple[int, str | None]]) -> dict[int, list[int]]:
        """Record the page's (_id, instance id) rows; return, for each of them, the stored _ids below it whose
        instance id hashes the same (most have none and are left out). The caller checks the texts."""
        wanted = [(sid, instance_hash(instance)) for sid, instance in rows if instance]
        if not wanted:
            return {}
        sids = np.fromiter((s for s, _ in wanted), dtype=np.int64, count=len(wanted))
        hashes = np.fromiter((h for _, h in wanted), dtype=np.uint64, count=len(wanted))
        order = np.argsort(hashes, kind="stable")
        self._add(hashes[order], sids[order])
        found: dict[int, list[int]] = {}
        for run_hashes, run_sids in self._runs:
            left = np.searchsorted(run_hashes, hashes, side="left")
            right = np.searchsorted(run_hashes, hashes, side="right")
            for i in np.flatnonzero(right - left > 0):
                sid = int(sids[i])
                below = [int(s) for s in run_sids[left[i]:right[i]] if s < sid]
                if below:
                    found.setdefault(sid, []).extend(below)
        return {sid: sorted(below) for sid, below in found.items()}

    def _add(self, hashes: np.ndarray, sids: np.ndarray) -> None:
        self._runs.append((hashes, sids))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (h1, s1), (h2, s2) = self._runs.pop(), self._runs.pop()
            merged_h, merged_s = np.concatenate((h2, h1)), np.concatenate((s2, s1))
            order = np.argsort(merged_h, kind="stable")
            self._runs.append((merged_h[order], merged_s[order]))
