"""Pause the garbage collector around bulk work.

Parsing a page of a thousand submissions, flattening it, or loading 100k generated submissions makes
hundreds of thousands of small objects that are not garbage; the collector's generational passes over
them cost a third of the time and free nothing. Reference counting still frees what is dropped.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0  # sections paused now, in every thread (the sync parses in one thread while it stores in another)
_was_enabled = True


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The collector is off while any thread is inside one of these sections, and back as it was after the last."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
