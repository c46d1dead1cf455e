"""A small process that starts the benchmark children and reaps them: `python -m bench.launcher`.

Why not start them from the harness itself: on Linux a child's `ru_maxrss` starts from the high-water
mark of the memory it was forked from (exec records the old address space's peak), and the harness holds
the fake server's submissions — gigabytes at large N — so every child would report at least that much.
This process imports nothing but the standard library and stays at ~10 MiB, so what wait4 reports for
its children is theirs.

Protocol: one JSON object a line on stdin, {"argv": [...], "cwd": ..., "stdout": path, "stderr": path};
for each, one line on stdout, {"returncode": int, "maxrss_kib": int}. Ends at end of input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    for line in sys.stdin:
        job = json.loads(line)
        with open(job["stdout"], "wb") as out, open(job["stderr"], "wb") as err:
            proc = subprocess.Popen(job["argv"], cwd=job["cwd"], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            # wait4, not Popen.wait: it reaps the child *and* returns its rusage (that child's alone)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait for it again
        sys.stdout.write(json.dumps({"returncode": proc.returncode, "maxrss_kib": usage.ru_maxrss}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
