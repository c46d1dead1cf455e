"""What a benchmark run found: the machine, the table of medians, the ratios, and the issue's targets."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.measure import Sample, Summary

AMINA_SQLITE, AMINA_PG, BASELINE, FLOOR, NOOP = "amina-sqlite", "amina-postgres", "baseline", "floor", "noop"
AMINA_ONLY = "amina-sqlite (1 run)"
DLT_SQLITE, DLT_DUCKDB, INSERT_FLOOR = "dlt-sqlite", "dlt-duckdb", "insert-floor"
CONTENDERS = (AMINA_SQLITE, AMINA_PG, BASELINE, DLT_SQLITE, DLT_DUCKDB, FLOOR, INSERT_FLOOR, NOOP)
OPTIONAL = {DLT_SQLITE: "dlt", DLT_DUCKDB: "dlt"}  # contenders that need the bench extra: the module they import
PACKAGES = ("sqlalchemy", "pandas", "orjson", "requests", "psycopg", "pyarrow", "numpy", "dlt", "duckdb")
TARGET_N, RSS_SMALL_N = 100_000, 10_000
SPEEDUP_TARGET, FLOOR_TARGET, NOOP_SECONDS_TARGET, RSS_TARGET = 2.0, 3.0, 0.5, 1.5  # issue #15's targets

DESCRIPTIONS = {
    AMINA_SQLITE: "first sync of both assets into a new SQLite warehouse (Warehouse + sync_asset)",
    AMINA_PG: "the same into a new PostgreSQL database",
    BASELINE: "requests + pandas.json_normalize + repeats exploded into child frames + DataFrame.to_sql to SQLite",
    FLOOR: "download every page (requests) and parse it (orjson), storing nothing",
    NOOP: "second sync of a full SQLite warehouse, sweep_every=0 (asks only for new data)",
    DLT_SQLITE: "dlt (a plain resource paging through the same data API) into SQLite (its SQLAlchemy destination)",
    DLT_DUCKDB: "the same dlt pipeline into DuckDB",
    INSERT_FLOOR: "amina's own rows (every table of a finished amina-sqlite warehouse, read before the clock) "
                  "inserted into a new SQLite file: one executemany per table, indexes after, no Python per row",
    AMINA_ONLY: "amina-sqlite once, at a larger N, for memory flatness",
}


# -- the machine ----------------------------------------------------------------------------------


def _first(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip('" ')
    except OSError:
        return None
    return None


def machine(postgres_version: str | None) -> dict[str, str]:
    mem_kib = _first("/proc/meminfo", "MemTotal")
    ram = f"{int(mem_kib.split()[0]) / 1024 ** 2:.1f} GiB" if mem_kib else "?"
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "CPU": _first("/proc/cpuinfo", "model name") or platform.processor() or "?",
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": f"{_first('/etc/os-release', 'PRETTY_NAME=') or platform.system()} (kernel {platform.release()})",
        "Python": sys.version.split()[0],
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "PostgreSQL server": postgres_version or "not used",
    }


def code_line(r: Results) -> str:
    versions = r.code_versions()
    text = f"git HEAD {r.commit or '(not recorded)'} when the run started; fingerprint of the code under test " \
           f"(amina, forms, sync, warehouse as on disk) {', '.join(versions) or '(not recorded)'}"
    if len(versions) > 1:
        text += (" — WARNING: the code changed during the run (samples per fingerprint: "
                 + ", ".join(f"{k}: {v}" for k, v in versions.items()) + "); figures from different versions are "
                 "mixed in the medians")
    return text


# -- ratios and targets ---------------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    summaries: list[Summary]
    ns: list[int]
    repeat: int
    seed: int
    command: str
    setup: dict[int, dict[str, float]]  # N -> seconds to publish and generate
    postgres_version: str | None
    commit: str | None = None  # git HEAD when the run started
    code: str | None = None  # fingerprint of the code under test when the run ended
    machine: dict[str, str] = field(default_factory=dict)
    finished: str = field(default_factory=lambda: f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")

    def __post_init__(self) -> None:
        if not self.machine:
            self.machine = machine(self.postgres_version)

    def code_versions(self) -> dict[str, int]:
        """Fingerprint of the code under test -> samples taken with it (more than one: it changed mid-run)."""
        seen: dict[str, int] = {}
        for summary in self.summaries:
            for sample in summary.samples:
                if sample.figures.get("code"):
                    key = str(sample.figures["code"])
                    seen[key] = seen.get(key, 0) + 1
        if self.code:
            seen.setdefault(self.code, 0)
        return seen

    def get(self, contender: str, n: int) -> Summary | None:
        for s in self.summaries:
            if s.contender == contender and s.n == n and s.ok:
                return s
        return None

    def ratio(self, top: str, bottom: str, n: int) -> float | None:
        a, b = self.get(top, n), self.get(bottom, n)
        return a.median / b.median if a and b and b.median > 0 else None

    def rss_ratio(self, contender: str, large: str | None = None) -> tuple[float, int, int] | None:
        """Peak RSS at the largest N over the smallest N (of `large` for the largest, if given)."""
        small_runs = [s for s in self.summaries if s.contender == contender and s.ok]
        large_runs = [s for s in self.summaries if s.contender == (large or contender) and s.ok]
        if not small_runs or not large_runs:
            return None
        small = min(small_runs, key=lambda s: s.n)
        big = max(large_runs, key=lambda s: s.n)
        if big.n <= small.n:
            return None
        return big.peak_rss_mib / small.peak_rss_mib, big.n, small.n


def _fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def ratio_rows(r: Results) -> list[list[str]]:
    rows = []
    for n in r.ns:
        rows.append([f"{n:,}", _fmt(r.ratio(BASELINE, AMINA_SQLITE, n), suffix="x"),
                     _fmt(r.ratio(AMINA_SQLITE, FLOOR, n), suffix="x"), _fmt(r.ratio(AMINA_PG, FLOOR, n), suffix="x"),
                     _fmt(r.ratio(BASELINE, FLOOR, n), suffix="x"),
                     _fmt(r.ratio(DLT_SQLITE, AMINA_SQLITE, n), suffix="x"),
                     _fmt(r.ratio(DLT_DUCKDB, AMINA_SQLITE, n), suffix="x"),
                     _fmt(r.ratio(AMINA_SQLITE, INSERT_FLOOR, n), suffix="x")])
    return rows


RATIO_HEADER = ["N", "baseline / amina-sqlite (speedup)", "amina-sqlite / floor", "amina-postgres / floor",
                "baseline / floor", "dlt-sqlite / amina-sqlite", "dlt-duckdb / amina-sqlite",
                "amina-sqlite / insert-floor"]


def rss_lines(r: Results) -> list[str]:
    out = []
    for contender in (AMINA_SQLITE, AMINA_PG):
        found = r.rss_ratio(contender)
        if found:
            out.append(f"{contender} peak RSS at N={found[1]:,} / at N={found[2]:,}: {found[0]:.2f}x")
    found = r.rss_ratio(AMINA_SQLITE, AMINA_ONLY)
    if found:
        out.append(f"amina-sqlite peak RSS at N={found[1]:,} (single run) / at N={found[2]:,}: {found[0]:.2f}x")
    return out or ["(one N only: no RSS ratio)"]


def targets(r: Results) -> list[list[str]]:
    """[target, N, value, status] for the issue's targets, which are set at N=100,000. When that N was not
    run, the value at the largest N is shown as an indication and the status says so."""
    at = TARGET_N if TARGET_N in r.ns else max(r.ns, default=TARGET_N)

    def verdict(ok: bool | None) -> str:
        if ok is None:
            return "not measured"
        if at != TARGET_N:
            return f"not measured at N={TARGET_N:,} (the value is at N={at:,})"
        return "met" if ok else "MISSED"

    rows: list[list[str]] = []
    speedup = r.ratio(BASELINE, AMINA_SQLITE, at)
    rows.append([f"amina full sync ≥ {SPEEDUP_TARGET:g}x faster than baseline (SQLite)", f"{at:,}",
                 _fmt(speedup, suffix="x"), verdict(None if speedup is None else speedup >= SPEEDUP_TARGET)])
    vs_floor = r.ratio(AMINA_SQLITE, FLOOR, at)
    rows.append([f"amina full sync within {FLOOR_TARGET:g}x of floor (SQLite)", f"{at:,}",
                 _fmt(vs_floor, suffix="x"), verdict(None if vs_floor is None else vs_floor <= FLOOR_TARGET)])
    noop = r.get(NOOP, at)
    one_each: bool | None = None
    shown = "—"
    if noop:
        per_run = [s.figures.get("data_requests_per_asset") or {} for s in noop.samples]
        one_each = all(d and set(d.values()) == {1} for d in per_run)
        worst = {k: max(d.get(k, 0) for d in per_run) for k in per_run[0]}
        shown = ", ".join(f"{k}: {v}" for k, v in worst.items())
    rows.append(["no-op sync: one data request per asset", f"{at:,}", shown, verdict(one_each)])
    noop_s = noop.median if noop else None
    rows.append([f"no-op sync < {NOOP_SECONDS_TARGET:g} s", f"{at:,}", _fmt(noop_s, 3, " s"),
                 verdict(None if noop_s is None else noop_s < NOOP_SECONDS_TARGET)])
    text = f"amina peak RSS at {TARGET_N:,} within {RSS_TARGET:g}x of {RSS_SMALL_N:,} (SQLite)"
    small, big = r.get(AMINA_SQLITE, RSS_SMALL_N), r.get(AMINA_SQLITE, TARGET_N)
    if small and big:
        ratio = big.peak_rss_mib / small.peak_rss_mib
        rows.append([text, f"{TARGET_N:,} / {RSS_SMALL_N:,}", f"{ratio:.2f}x", "met" if ratio <= RSS_TARGET
                     else "MISSED"])
    else:
        found = r.rss_ratio(AMINA_SQLITE)
        rows.append([text, f"{found[1]:,} / {found[2]:,}" if found else "—", f"{found[0]:.2f}x" if found else "—",
                     f"not measured (needs N={RSS_SMALL_N:,} and N={TARGET_N:,})"])
    return rows


TARGET_HEADER = ["target", "N", "value", "status"]


# -- the table of medians -------------------------------------------------------------------------

MAIN_HEADER = ["contender", "N", "submissions", "repeat rows", "median s", "min s", "max s", "submissions/s",
               "peak RSS MiB", "RSS at start MiB", "requests (data)"]


def _requests(s: Summary) -> str:
    data = s.figure("data_requests")
    total = s.figure("requests")
    if total is None:
        return "—" if data is None else f"({data})"
    return f"{total} ({data})"


def main_rows(r: Results) -> list[list[str]]:
    rows = []
    order = {c: i for i, c in enumerate((*CONTENDERS, AMINA_ONLY))}
    for s in sorted(r.summaries, key=lambda s: (s.n, order.get(s.contender, 99))):
        if not s.ok:
            what = "failed" if (s.skipped or "").startswith("failed") else "skipped"
            rows.append([s.contender, f"{s.n:,}", f"{s.submissions:,}", "—", what, "", "", "", "", "",
                         s.skipped or ""])
            continue
        repeat = s.figure("repeat_rows")
        rate = "—" if s.contender == NOOP else f"{s.per_second:,.0f}"
        rows.append([s.contender, f"{s.n:,}", f"{s.submissions:,}", "—" if repeat is None else f"{repeat:,}",
                     f"{s.median:.3f}", f"{s.min:.3f}", f"{s.max:.3f}", rate, f"{s.peak_rss_mib:,.0f}",
                     f"{s.start_rss_mib:,.0f}", _requests(s)])
    return rows


def consistency(r: Results) -> list[str]:
    """Did every contender see and store the same submissions?"""
    notes = []
    for n in sorted({s.n for s in r.summaries}):
        stored = {s.contender: (s.figure("root_rows"), s.figure("repeat_rows"))
                  for s in r.summaries if s.n == n and s.ok and s.contender != NOOP}
        roots = {v[0] for v in stored.values() if v[0] is not None}
        repeats = {v[1] for v in stored.values() if v[1] is not None}
        verdict = "agree" if len(roots) == 1 and len(repeats) <= 1 else "DISAGREE"
        detail = "; ".join(f"{c}: {v[0]:,} submissions" + (f", {v[1]:,} repeat rows" if v[1] is not None else "")
                           for c, v in stored.items() if v[0] is not None)
        notes.append(f"N={n:,}: {verdict} — {detail}")
        base = r.get(BASELINE, n)
        if base and base.figure("phases"):
            phases = {k: statistics.median([s.figures["phases"][k] for s in base.samples]) for k in
                      base.figure("phases")}
            notes.append(f"N={n:,}: baseline phases (median s): " +
                         ", ".join(f"{k} {v:.3f}" for k, v in phases.items()))
        waits = [f"{c} {statistics.median(w):.3f} s (of {x.median:.3f} s)"
                 for c in (AMINA_SQLITE, AMINA_PG, FLOOR) if (x := r.get(c, n))
                 and (w := [s.figures["http_seconds"] for s in x.samples if "http_seconds" in s.figures])]
        if waits:
            notes.append(f"N={n:,}: time inside HTTP requests — the server's work and the transfer; a client that "
                         "fetches ahead overlaps it with its own work (medians): " + "; ".join(waits))
        amina = r.get(AMINA_SQLITE, n)
        written = {s.contender: s.figure("rows_written") for s in r.summaries
                   if s.n == n and s.ok and s.contender != NOOP and s.figure("rows_written")}
        if written:
            notes.append(f"N={n:,}: rows written (every table, bookkeeping included) — " +
                         "; ".join(f"{c} {v:,}" for c, v in written.items()))
        for s in r.summaries:
            if s.n != n or not s.ok or s.contender == NOOP or not s.figure("page_deciles"):
                continue
            for form in s.figure("page_deciles"):
                runs = [x.figures["page_deciles"][form] for x in s.samples if form in x.figures.get("page_deciles", {})]
                values = [statistics.median(run[i] for run in runs) for i in range(min(len(run) for run in runs))]
                if len(values) >= 2:
                    shown = ", ".join(f"{v:.3f}" for v in values)
                    notes.append(f"N={n:,}: {s.contender} {form}: median s per page by tenth of the pages {shown} "
                                 f"(last / first {values[-1] / values[0]:.2f}x)")
        if amina and amina.figure("bridge_rows") is not None:
            notes.append(f"N={n:,}: amina also stored {amina.figure('bridge_rows'):,} select_multiple bridge rows "
                         "(one per chosen code), which the baseline does not make")
        noop = r.get(NOOP, n)
        if noop:
            notes.append(f"N={n:,}: no-op sync: {noop.figure('requests')} requests, data requests per asset "
                         f"{noop.figure('data_requests_per_asset')}, {noop.figure('fetched')} submissions re-read "
                         f"(the overlap window); median time inside sync_asset "
                         f"{statistics.median(s.figures['sync_seconds'] for s in noop.samples):.3f} s of "
                         f"{noop.median:.3f} s (the rest opens the warehouse)")
    gaps = [abs(s.peak_rss_kib - s.figures["vm_hwm_kib"]) / s.peak_rss_kib for x in r.summaries for s in x.samples
            if s.figures.get("vm_hwm_kib") and s.peak_rss_kib]
    if gaps:
        notes.append(f"peak RSS from wait4 and the children's own VmHWM (/proc/self/status) differ by at most "
                     f"{max(gaps):.1%}")
    return notes


# -- output ---------------------------------------------------------------------------------------


def _rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 or h in ("target", "status") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def print_results(r: Results, console: Console) -> None:
    console.print(code_line(r), highlight=False)
    console.print(_rich_table("Medians", MAIN_HEADER, main_rows(r)))
    console.print(_rich_table("Ratios of medians", RATIO_HEADER, ratio_rows(r)))
    for line in rss_lines(r):
        console.print(line)
    console.print(_rich_table("Targets", TARGET_HEADER, targets(r)))
    for line in consistency(r):
        console.print(line, highlight=False)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(r: Results) -> str:
    info = r.machine
    parts = [
        "# amina-sync benchmark",
        "",
        f"Made by `{r.command}`, finished {r.finished}.",
        "",
        "## Machine",
        "",
        *[f"- **{k}**: {v}" for k, v in info.items()],
        f"- **code**: {code_line(r)}",
        "",
        "## Workload and method",
        "",
        f"- N = {', '.join(f'{n:,}' for n in r.ns)}: N `vot_screening` submissions and N/10 `training_attendance` "
        "sessions (each with a repeat of participants, each participant with a repeat of knowledge checks), "
        f"generated with seed {r.seed} from 2026-01-01, published through the imports API to the fake KoBo server.",
        f"- {r.repeat} repetition(s), contenders interleaved round robin; the median wall time is reported. "
        "Each run is a fresh child process; its clock runs around the work only (after interpreter start and "
        "imports); its peak RSS is `ru_maxrss` from `os.wait4` (the largest over the repetitions). "
        "\"RSS at start\" is the child's RSS when its clock started (interpreter and imports).",
        "- The fake KoBo server (Python, threaded HTTP on 127.0.0.1) runs in the parent process, idle except for "
        "the child's requests; every contender talks to the same server, so its cost is in every figure, the "
        "floor's included.",
        "- Contenders:",
        *[f"  - `{k}`: {v}" for k, v in DESCRIPTIONS.items() if any(s.contender == k for s in r.summaries)],
        "- Set-up (untimed): " + "; ".join(
            f"N={n:,}: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) for n, times in r.setup.items()),
        "",
        "## Medians",
        "",
        _md_table(MAIN_HEADER, main_rows(r)),
        "",
        "\"submissions\" counts both forms' submissions (N + N/10); \"requests (data)\" is every HTTP request "
        "the client made, with those to `/data/` in brackets.",
        "",
        "## Ratios of medians",
        "",
        _md_table(RATIO_HEADER, ratio_rows(r)),
        "",
        *[f"- {line}" for line in rss_lines(r)],
        "",
        "## Targets (from the issue)",
        "",
        _md_table(TARGET_HEADER, targets(r)),
        "",
        "## Checks",
        "",
        *[f"- {line}" for line in consistency(r)],
        "",
    ]
    return "\n".join(parts)


def as_json(r: Results) -> dict[str, Any]:
    return {"command": r.command, "finished": r.finished, "ns": r.ns, "repeat": r.repeat, "seed": r.seed,
            "commit": r.commit, "code": r.code, "code_versions": r.code_versions(), "machine": r.machine,
            "postgres_version": r.postgres_version, "setup": {str(k): v for k, v in r.setup.items()},
            "results": [s.to_json() for s in r.summaries],
            "targets": [dict(zip(TARGET_HEADER, row, strict=True)) for row in targets(r)]}


def from_json(data: dict[str, Any]) -> Results:
    """The Results that as_json wrote (to render a report again without running anything)."""
    summaries = []
    for row in data["results"]:
        samples = []
        for raw in row["samples"]:
            figures = dict(raw)
            samples.append(Sample(row["contender"], row["n"], figures.pop("repetition"), figures.pop("seconds"),
                                  figures.pop("peak_rss_kib"), figures))
        summaries.append(Summary(row["contender"], row["n"], row["submissions"], samples, skipped=row["skipped"]))
    machine_info = data.get("machine") or {}
    return Results(summaries=summaries, ns=data["ns"], repeat=data["repeat"], seed=data["seed"],
                   command=data["command"], setup={int(k): v for k, v in data["setup"].items()},
                   postgres_version=data.get("postgres_version") or machine_info.get("PostgreSQL server"),
                   commit=data.get("commit"), code=data.get("code"), machine=machine_info,
                   finished=data.get("finished", "?"))
