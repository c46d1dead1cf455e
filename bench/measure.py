"""Running one contender in a fresh child process, and summarising repeated samples.

The child prints one line `BENCH-RESULT {json}` with the figures it measured itself (wall time around
the work only: after the interpreter started and the imports ran). It is started and reaped by a small
launcher process (bench/launcher.py explains why not by the harness) with os.wait4, whose rusage is that
child's alone: `ru_maxrss` is its peak resident set (KiB on Linux).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "BENCH-RESULT "
ROOT = Path(__file__).resolve().parents[1]


class ChildFailed(RuntimeError):
    pass


@dataclass(slots=True)
class Sample:
    """One timed run of one contender."""

    contender: str
    n: int
    repetition: int
    seconds: float
    peak_rss_kib: int
    figures: dict[str, Any] = field(default_factory=dict)  # what the child reported besides its time

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


class Launcher:
    """The small process (bench/launcher.py) that starts each child and reaps it with os.wait4."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "bench.launcher"], cwd=ROOT, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)

    def run(self, argv: list[str], stdout: Path, stderr: Path) -> tuple[int, int]:
        """(exit status, peak RSS in KiB) of `argv`, run to its end with its output in those files."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        job = {"argv": argv, "cwd": str(ROOT), "stdout": str(stdout), "stderr": str(stderr)}
        self._proc.stdin.write(json.dumps(job) + "\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline()
        if not answer:
            raise ChildFailed(f"the launcher ended (status {self._proc.wait()})")
        reply = json.loads(answer)
        return int(reply["returncode"]), int(reply["maxrss_kib"])

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_child(launcher: Launcher, spec: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Run `python -m bench.child` on `spec`; return (its figures, its peak RSS in KiB)."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as tmp:
        spec_path, out_path, err_path = (Path(tmp) / name for name in ("spec.json", "stdout", "stderr"))
        spec_path.write_text(json.dumps(spec))
        returncode, maxrss = launcher.run([sys.executable, "-m", "bench.child", str(spec_path)], out_path, err_path)
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
    what = f"{spec['contender']} (N={spec.get('n')})"
    if returncode != 0:
        raise ChildFailed(f"{what} exited with {returncode}:\n{stderr[-4000:]}")
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):]), maxrss
    raise ChildFailed(f"{what} printed no result line:\n{stdout[-2000:]}\n{stderr[-2000:]}")


@dataclass(slots=True)
class Summary:
    """The repeated samples of one contender at one N."""

    contender: str
    n: int
    submissions: int
    samples: list[Sample]
    skipped: str | None = None  # why there are no samples

    @property
    def ok(self) -> bool:
        return bool(self.samples) and self.skipped is None

    def _times(self) -> list[float]:
        return [s.seconds for s in self.samples]

    @property
    def median(self) -> float:
        return statistics.median(self._times())

    @property
    def min(self) -> float:
        return min(self._times())

    @property
    def max(self) -> float:
        return max(self._times())

    @property
    def peak_rss_mib(self) -> float:
        """The largest peak over the repetitions (the figure a machine has to provide)."""
        return max(s.peak_rss_mib for s in self.samples)

    @property
    def start_rss_mib(self) -> float:
        """Resident set when the timed work began (interpreter and imports), as the child measured it."""
        return max(float(s.figures.get("start_rss_kib", 0)) for s in self.samples) / 1024

    @property
    def per_second(self) -> float:
        return self.submissions / self.median if self.median > 0 else float("inf")

    def figure(self, key: str) -> Any:
        """A figure the children reported (the first repetition's; they are the same every time)."""
        return self.samples[0].figures.get(key) if self.samples else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"contender": self.contender, "n": self.n, "submissions": self.submissions,
                               "skipped": self.skipped}
        if self.ok:
            out.update(median_s=self.median, min_s=self.min, max_s=self.max, per_second=self.per_second,
                       peak_rss_mib=self.peak_rss_mib, start_rss_mib=self.start_rss_mib)
        out["samples"] = [{"repetition": s.repetition, "seconds": s.seconds, "peak_rss_kib": s.peak_rss_kib,
                           **s.figures} for s in self.samples]
        return out
