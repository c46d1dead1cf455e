"""common.gcpause: the collector stays off while any thread is in a paused section, and comes back after."""

from __future__ import annotations

import gc
import threading

from common.gcpause import gc_paused


def test_overlapping_sections_in_two_threads_leave_the_collector_as_it_was():
    assert gc.isenabled()
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            leave.wait(5)

    with gc_paused():
        thread = threading.Thread(target=other)
        thread.start()
        inside.wait(5)
    assert not gc.isenabled()  # the other thread is still in its section
    leave.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_collector_turned_off_before_stays_off():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
