"""A first load: double uploads found in memory while a form's submission table is filled from empty.

Every page of a sync looks up the `meta/instanceID`s it brings among the stored submissions, to flag double
uploads (`_duplicate_of`). Instance ids are random UUIDs: an index on them takes a random B-tree insert per row,
and the page's lookups cost more the larger the table (at 100,000 submissions, 7.5 times the first pages'). When
a run starts writing a form whose table is empty, the warehouse drops that index for the load, keeps the
instance id of every submission it has stored in memory (this object), answers the lookups from it set-wise,
and builds the index once when the run ends (`Warehouse.finish_run`), or when anything else is about to write
the form (a new form version, deletions). The memory moves with the transactions: what a page recorded is
undone if the page's transaction rolls back. A crash loses the memory and leaves the table without the index;
the next run builds the index before it writes (`Warehouse.register_form`) and looks duplicates up in the
database as always.
"""

from __future__ import annotations

from collections.abc import Iterable

_ABSENT = object()


class FirstLoad:
    """The instance id of every submission stored in the table since it was empty."""

    def __init__(self) -> None:
        self._instance_of: dict[int, str | None] = {}
        # instance id → the _id that has it, or the set of them for a double upload (few: a set each would be
        # a million objects for the garbage collector to walk at a million submissions)
        self._by_instance: dict[str, int | set[int]] = {}
        self._undo: list[tuple[int, object]] = []

    def store(self, rows: Iterable[tuple[int, str | None]]) -> None:
        """The page's (re)written submissions, (_id, instance id); undone by `rollback`."""
        for sid, instance in rows:
            self._undo.append((sid, self._instance_of.get(sid, _ABSENT)))
            self._set(sid, instance)

    def first_of(self, sid: int, instance: str | None) -> int | None:
        """The smallest stored _id below `sid` with the same instance id (what the database lookup finds)."""
        if not instance:
            return None
        found = self._by_instance.get(instance)
        if found is None:
            return None
        if isinstance(found, int):
            return found if found < sid else None
        return min((i for i in found if i < sid), default=None)

    def commit(self) -> None:
        self._undo.clear()

    def rollback(self) -> None:
        for sid, old in reversed(self._undo):
            self._set(sid, old)
        self._undo.clear()

    def _set(self, sid: int, instance: object) -> None:
        old = self._instance_of.pop(sid, _ABSENT)
        if isinstance(old, str) and old:
            self._forget(old, sid)
        if instance is _ABSENT:
            return
        assert instance is None or isinstance(instance, str)
        self._instance_of[sid] = instance
        if instance:
            found = self._by_instance.get(instance)
            if found is None:
                self._by_instance[instance] = sid
            elif isinstance(found, int):
                self._by_instance[instance] = {found, sid}
            else:
                found.add(sid)

    def _forget(self, instance: str, sid: int) -> None:
        found = self._by_instance.get(instance)
        if found == sid:
            del self._by_instance[instance]
        elif isinstance(found, set):
            found.discard(sid)
            if len(found) == 1:
                self._by_instance[instance] = next(iter(found))
