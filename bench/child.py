"""One contender, in a process of its own: `python -m bench.child SPEC.json`.

Prints `BENCH-RESULT {json}`: the wall time of the work (the clock starts after the imports), the
resident set at that moment, and what the contender counted (rows stored, requests made).
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import MARKER


def prepare(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Import what the contender needs (and only that: pandas would inflate amina's RSS) and return its work."""
    kind = spec["contender"]
    where = (spec["base_url"], spec["token"], spec["assets"])
    if kind == "baseline":
        from bench import baseline

        return lambda: baseline.run(*where, Path(spec["target"]))
    from bench import contenders

    if kind == "floor":
        return lambda: contenders.floor(*where)
    if kind.startswith("dlt-"):
        from bench import peers

        return lambda: peers.dlt_sync(*where, Path(spec["target"]), kind.removeprefix("dlt-"))
    if kind == "insert-floor":
        from bench import peers

        return peers.prepare_insert_floor(Path(spec["source"]), Path(spec["target"]))
    if kind == "noop":
        return lambda: contenders.amina(spec["target"], *where, sweep_every=0)
    if kind.startswith("amina"):
        return lambda: contenders.amina(spec["target"], *where)
    raise SystemExit(f"unknown contender {kind!r}")


def vm_hwm_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    work = prepare(spec)
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures = work()
    figures["start_rss_kib"] = start_rss
    figures["vm_hwm_kib"] = vm_hwm_kib()  # the kernel's own peak of this process, to cross-check wait4
    print(MARKER + json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
