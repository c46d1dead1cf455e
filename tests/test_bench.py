"""Smoke test of the benchmark harness (bench/): the whole run at a tiny N, without PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMED = ("amina-sqlite", "baseline", "floor", "noop")


def _medians(markdown: str) -> dict[str, float]:
    """contender -> median seconds, from the report's table of medians."""
    out: dict[str, float] = {}
    header: list[str] | None = None
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == ["contender", "N"]:
            header = cells
        elif header and len(cells) == len(header) and cells[0] in TIMED:
            out[cells[0]] = float(cells[header.index("median s")])
        elif header and not line.startswith("|"):
            header = None
    return out


def test_bench_smoke(tmp_path: Path) -> None:
    results_md = ROOT / "bench" / "results.md"
    before = results_md.stat().st_mtime_ns if results_md.exists() else None
    out = tmp_path / "results.md"
    proc = subprocess.run([sys.executable, "-m", "bench", "--n", "200", "--repeat", "1", "--no-postgres",
                           "--out", str(out), "--workdir", str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]

    medians = _medians(out.read_text())
    assert set(medians) == set(TIMED)
    assert all(seconds > 0 for seconds in medians.values()), medians

    figures = json.loads(out.with_suffix(".json").read_text())
    by_name = {r["contender"]: r for r in figures["results"] if r["n"] == 200}
    assert by_name["amina-postgres"]["skipped"]
    for name in TIMED:
        assert by_name[name]["median_s"] > 0 and by_name[name]["peak_rss_mib"] > 0, name

    noop = by_name["noop"]["samples"][0]
    assert noop["data_requests_per_asset"] == {"vot_screening": 1, "training_attendance": 1}

    amina, baseline = by_name["amina-sqlite"]["samples"][0], by_name["baseline"]["samples"][0]
    assert amina["root_rows"] == baseline["root_rows"] == 200 + 20
    assert amina["repeat_rows"] == baseline["repeat_rows"] > 0
    assert by_name["floor"]["samples"][0]["root_rows"] == 220

    after = results_md.stat().st_mtime_ns if results_md.exists() else None
    assert after == before, "the smoke test must not touch bench/results.md"


def test_sweep_bench_smoke(tmp_path: Path) -> None:
    results_md = ROOT / "bench" / "results.md"
    before = results_md.stat().st_mtime_ns if results_md.exists() else None
    proc = subprocess.run([sys.executable, "-m", "bench.sweep", "--n", "6000", "--delay", "0",
                           "--workdir", str(tmp_path / "work")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # every run left the warehouse equal to the server
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in proc.stdout.splitlines()
            if line.startswith("| 6,000 |")]
    requests = {(r[1], r[2]): int(r[3]) for r in rows}
    assert len(rows) == 6 and all(r[-1] == "yes" for r in rows)
    assert requests[("unchanged", "full (before)")] == 6  # a page of 1,000 each
    assert requests[("unchanged", "incremental")] == 5 and requests[("unchanged", "incremental, no history")] == 5
    assert all(r[6] == "10 deleted, 10 edited, 10 validation" for r in rows if r[1] != "unchanged")
    after = results_md.stat().st_mtime_ns if results_md.exists() else None
    assert after == before, "the smoke test must not touch bench/results.md"
