"""`python -m bench.sweep`: what a sweep costs, today's full manifest sweep against the incremental one.

For each N: a fake KoBo server holds N submissions of a small form, put into its store directly (the
generator's per-form logic would take hours at 1M and changes nothing a sweep reads: ids, `_uuid`,
validation status); a first sync fills a SQLite warehouse (untimed). Then, each from a copy of that
warehouse, with the server answering every request after `--delay` seconds (a real KoBo server takes
about that for a request, longer for a page of 1,000), one sync runs with:

- `full`: the full manifest sweep (what every sync did before; now the safety net, `full_sweep_every`);
- `incremental`: the new sweep, the token allowed to read the project history;
- `incremental, no history`: the new sweep, the history refused (403; the first sweep pays that one request);

first on the unchanged form, then after 10 edits, 10 deletions and 10 reviews scattered over it (every
change must be found: the warehouse is compared with the server after each run). Figures are the run's
sweep requests, bytes and seconds (the sweep only; the incremental read before it is not counted).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fakes.kobo import FakeKobo
from sync.client import KoboClient
from sync.engine import prepare_form, sync_asset
from sync.sweep_kobo import sweep_state
from warehouse.manifest import StoredForm
from warehouse.store import Warehouse

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "bench" / "results.md"
RESULTS_JSON = ROOT / "bench" / "results-sweep.json"
BEGIN, END = "<!-- sweep benchmark: begin -->", "<!-- sweep benchmark: end -->"
FORM = {"survey": [{"type": "text", "name": "village", "label": ["Village"]},
                   {"type": "integer", "name": "household_size", "label": ["Household size"]},
                   {"type": "select_one yn", "select_from_list_name": "yn", "name": "consent",
                    "label": ["Consent"]}],
        "choices": [{"list_name": "yn", "name": "yes", "label": ["Yes"]},
                    {"list_name": "yn", "name": "no", "label": ["No"]}],
        "settings": {"form_id": "sweep_bench"}}
METHODS = {  # label → (full_sweep_every, history readable)
    "full (before)": (dt.timedelta(0), True),
    "incremental": (None, True),
    "incremental, no history": (None, False),
}
CHANGES = 10  # of each kind


@dataclass(frozen=True, slots=True)
class Item:
    answers: dict[str, str]
    submission_time: dt.datetime


@dataclass(slots=True)
class Row:
    n: int
    scenario: str  # "unchanged" or "10 edits, 10 deletions, 10 reviews"
    method: str
    requests: int
    kib: float
    seconds: float
    found: str  # what the sweep found, by kind
    complete: bool  # the warehouse equals the server afterwards


def fill(server: FakeKobo, n: int, seed: int) -> str:
    """A deployed asset with `n` submissions over a year, put into the fake's store directly."""
    store = server.store
    uid = store.create_asset("Sweep benchmark", FORM)
    store.deploy(uid, active=True)
    rng = random.Random(seed)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    step = 365 * 86400 / n

    def items() -> Iterator[Item]:
        for i in range(n):
            yield Item({"village": f"village {rng.randrange(500)}", "household_size": str(rng.randrange(1, 12)),
                        "consent": rng.choice(("yes", "no"))}, start + dt.timedelta(seconds=i * step))
    store.add_submissions(uid, items())
    return uid


def change(server: FakeKobo, uid: str, seed: int) -> None:
    """10 edits, 10 deletions and 10 reviews, at random places."""
    store = server.store
    ids = [s["_id"] for s in store.submissions(uid)]
    picked = random.Random(seed).sample(ids, 3 * CHANGES)
    for sid in picked[:CHANGES]:
        store.edit_submission(uid, sid, {"household_size": "13"})
    store.set_validation_status(uid, picked[CHANGES:2 * CHANGES], "validation_status_approved", by_whom="supervisor")
    store.delete_submissions(uid, picked[2 * CHANGES:])


def matches(server: FakeKobo, client: KoboClient, wh: Warehouse, uid: str) -> bool:
    stored = StoredForm(wh, prepare_form(client, wh, uid).form).manifest(None, None)
    return stored == {d["_id"]: sweep_state(d) for d in server.store.submissions(uid)}


def one_run(server: FakeKobo, uid: str, base: Path, workdir: Path, n: int, scenario: str, method: str,
            delay: float) -> Row:
    every, readable = METHODS[method]
    db = workdir / "run.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(base, db)
    server.store.set_manage_asset(uid, readable)
    wh = Warehouse(str(db))
    client = KoboClient(server.base_url, server.token, token_source="the bench token")
    try:
        server.latency = delay
        report = sync_asset(client, wh, uid, full_sweep_every=every)
        server.latency = 0.0
        found: dict[str, int] = {}
        for mechanism in report.sweep_detail.get("mechanisms", {}).values():
            for kind, count in mechanism["found"].items():
                found[kind] = found.get(kind, 0) + count
        return Row(n, scenario, method, report.sweep_requests, report.sweep_bytes / 1024, report.sweep_seconds,
                   ", ".join(f"{v} {k}" for k, v in sorted(found.items())) or "nothing",
                   matches(server, client, wh, uid))
    finally:
        server.latency = 0.0
        client.close()
        wh.dispose()


def bench_n(n: int, delay: float, seed: int, workdir: Path, log: Any) -> list[Row]:
    rows: list[Row] = []
    with FakeKobo(seed=seed) as server:
        started = time.monotonic()
        uid = fill(server, n, seed)
        gc.collect()
        gc.freeze()  # a million stored documents: keep the collector from walking them at random moments
        log(f"N={n:,}: {n:,} submissions in the fake's store ({time.monotonic() - started:.0f} s)")
        base = workdir / f"base-{n}.db"
        started = time.monotonic()
        client = KoboClient(server.base_url, server.token, token_source="the bench token")
        wh = Warehouse(str(base))
        sync_asset(client, wh, uid)
        wh.dispose()
        client.close()
        log(f"N={n:,}: first sync into {base.name} ({time.monotonic() - started:.0f} s)")
        for scenario in ("unchanged", f"{CHANGES} edits, {CHANGES} deletions, {CHANGES} reviews"):
            if scenario != "unchanged":
                change(server, uid, seed)
            for method in METHODS:
                row = one_run(server, uid, base, workdir, n, scenario, method, delay)
                log(f"N={n:,} {scenario:<36} {method:<24} {row.requests:6,} requests {row.seconds:9.2f} s "
                    f"{row.kib:10,.0f} KiB  found: {row.found}{'' if row.complete else '  INCOMPLETE'}")
                rows.append(row)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{base}{suffix}").unlink(missing_ok=True)
    gc.unfreeze()
    gc.collect()
    return rows


def git_commit() -> str:
    import subprocess
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def markdown(rows: list[Row], delay: float, command: str) -> str:
    out = [BEGIN, "## Sweep: requests and seconds, before and now", "",
           f"Made by `{command}` on commit `{git_commit()}`, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC "
           "(2 cores, SQLite warehouse). "
           f"Every request the fake KoBo server answers waits {delay * 1000:.0f} ms first, as a real server takes "
           "about that (more for a page of 1,000). A sweep's figures only; the incremental read of new "
           "submissions before it costs 2 more requests in every case. \"complete\": the warehouse equals the "
           "server afterwards (every change found).", "",
           "| N | form | sweep | requests | seconds | KiB received | found | complete |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.n:,} | {r.scenario} | {r.method} | {r.requests:,} | {r.seconds:,.1f} | {r.kib:,.0f} | "
                   f"{r.found} | {'yes' if r.complete else '**no**'} |")
    out += ["", END]
    return "\n".join(out) + "\n"


def write(rows: list[Row], delay: float, command: str) -> None:
    """Put the table into bench/results.md (replacing an earlier one) and the figures into results-sweep.json."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + text[text.index(END) + len(END) + 1:]
    RESULTS_MD.write_text(text.rstrip("\n") + "\n\n" + markdown(rows, delay, command))
    RESULTS_JSON.write_text(json.dumps({"command": command, "delay": delay, "rows": [asdict(r) for r in rows]},
                                       indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], metavar="N")
    p.add_argument("--delay", type=float, default=0.3, help="seconds the server waits before each answer")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--write", action="store_true", help="write the table to bench/results.md (and the JSON)")
    p.add_argument("--workdir", type=Path, help="where the warehouses go (default: a temporary directory)")
    args = p.parse_args(argv)
    command = "python -m bench.sweep " + " ".join(sys.argv[1:] if argv is None else argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="amina-sweep-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows: list[Row] = []
    try:
        for n in args.n:
            rows += bench_n(n, args.delay, args.seed, workdir, log)
    finally:
        if args.workdir is None:
            with contextlib.suppress(OSError):
                shutil.rmtree(workdir)
    print(markdown(rows, args.delay, command))
    if args.write:
        write(rows, args.delay, command)
    return 0 if all(r.complete for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
