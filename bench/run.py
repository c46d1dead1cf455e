"""`python -m bench`: time amina-sync against a pandas baseline and a download-only floor."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.measure import ROOT, ChildFailed, Launcher, Sample, Summary, run_child
from bench.report import (
    AMINA_ONLY,
    AMINA_PG,
    AMINA_SQLITE,
    BASELINE,
    CONTENDERS,
    INSERT_FLOOR,
    NOOP,
    OPTIONAL,
    Results,
    as_json,
    from_json,
    markdown,
    print_results,
)
from bench.workloads import Workload, serving

RESULTS_MD = ROOT / "bench" / "results.md"
SOURCES = ("amina", "forms", "sync", "warehouse")  # the code under test


def code_fingerprint() -> str:
    """A hash of the code under test as it is on disk now. Each child imports the working tree when it
    starts, so a sample can only be compared with another taken on the same fingerprint."""
    digest = hashlib.sha256()
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def sweep_section(path: Path) -> str:
    """The sweep benchmark's table (bench/sweep.py) already in the file, kept when this benchmark rewrites it."""
    from bench.sweep import BEGIN, END

    text = path.read_text() if path.exists() else ""
    if BEGIN not in text or END not in text:
        return ""
    return "\n" + text[text.index(BEGIN):text.index(END) + len(END)] + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--n", type=int, nargs="+", default=[10_000], metavar="N",
                   help="screening submissions (and N/10 training sessions); several values allowed (default 10000)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions of each contender per N (default 3)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated submissions (default 1)")
    p.add_argument("--no-postgres", action="store_true", help="leave out amina-postgres")
    p.add_argument("--amina-only-n", type=int, nargs="*", default=[], metavar="N",
                   help="also run amina-sqlite once at these (larger) N, for memory flatness")
    p.add_argument("--out", type=Path, help="write the report (markdown) here, and the raw figures beside it (.json)")
    p.add_argument("--write", action="store_true", help="write the report to bench/results.md (and results.json)")
    p.add_argument("--workdir", type=Path, help="where the warehouses are written (default: a temporary directory)")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="run nothing: print (and with --out/--write, write) the report of a previous run's .json")
    args = p.parse_args(argv)
    if args.repeat < 1 or any(n < 10 for n in [*args.n, *args.amina_only_n]):
        p.error("--repeat must be at least 1 and every N at least 10")
    return args


# -- PostgreSQL -----------------------------------------------------------------------------------


class Postgres:
    """A throwaway PostgreSQL server (tests/postgres.py's TempPostgres) and its server version."""

    def __init__(self) -> None:
        from tests.postgres import TempPostgres

        self.server = TempPostgres()  # RuntimeError without the binaries
        try:
            self.server.start()
            self.version = self._query("SHOW server_version")
        except BaseException:
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                self.server.stop()  # removes its directory even when there is no server to stop
            raise

    def _query(self, sql: str) -> str | None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.server.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(sa.text(sql))
                return str(result.scalar()) if result.returns_rows else None
        finally:
            engine.dispose()

    def create(self, name: str) -> str:
        return self.server.create_database(name)

    def drop(self, name: str) -> None:
        self._query(f'DROP DATABASE IF EXISTS "{name}"')

    def stop(self) -> None:
        self.server.stop()


@contextlib.contextmanager
def postgres(wanted: bool, console: Console) -> Iterator[Postgres | str]:
    """The server, or why there is none."""
    if not wanted:
        yield "left out (--no-postgres)"
        return
    try:
        pg = Postgres()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        reason = str(exc) if isinstance(exc, RuntimeError) else f"PostgreSQL did not start: {exc}"
        console.print(f"[yellow]amina-postgres skipped: {reason}[/]", highlight=False)
        yield f"skipped: {reason}"
        return
    try:
        yield pg
    finally:
        pg.stop()


# -- the runs -------------------------------------------------------------------------------------


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass(slots=True)
class Runner:
    launcher: Launcher
    pg: Postgres | str  # the server, or why there is none
    workdir: Path
    console: Console

    def sample(self, contender: str, workload: Workload, repetition: int, target: str | None,
               label: str | None = None) -> Sample:
        spec: dict[str, Any] = {"contender": contender, **workload.spec(), "target": target}
        if contender == INSERT_FLOOR:
            spec["source"] = str(self.noop_db(workload))
        code = code_fingerprint()
        figures, rss = run_child(self.launcher, spec)
        figures["code"] = code
        sample = Sample(label or contender, workload.n, repetition, float(figures.pop("seconds")), rss, figures)
        self.console.print(f"  N={workload.n:,} run {repetition} {label or contender:<20} {sample.seconds:8.3f} s  "
                           f"peak RSS {sample.peak_rss_mib:7.0f} MiB", highlight=False)
        return sample

    def fresh_target(self, contender: str, workload: Workload, repetition: int
                     ) -> tuple[str | None, Callable[[], None]]:
        """Where the contender writes (a new SQLite file or PostgreSQL database), and how to remove it after."""
        if contender == AMINA_PG:
            assert isinstance(self.pg, Postgres)
            pg, name = self.pg, f"bench_{workload.n}_{repetition}"
            return pg.create(name), lambda: pg.drop(name)
        if contender in (AMINA_SQLITE, BASELINE, INSERT_FLOOR, *OPTIONAL):
            path = self.workdir / f"{contender}-{workload.n}-{repetition}.db"
            _remove_sqlite(path)

            def remove() -> None:
                _remove_sqlite(path)
                Path(f"{path}.wal").unlink(missing_ok=True)  # DuckDB's
                shutil.rmtree(self.workdir / f"{path.stem}-dlt", ignore_errors=True)
            return str(path), remove
        if contender == NOOP:
            return str(self.noop_db(workload)), lambda: None
        return None, lambda: None

    def noop_db(self, workload: Workload) -> Path:
        return self.workdir / f"noop-{workload.n}.db"

    def attempt(self, failed: dict[str, str], contender: str, workload: Workload, repetition: int,
                target: str | None, label: str | None = None) -> Sample | None:
        """A sample, or None after recording why the child failed (the run goes on without that contender)."""
        try:
            return self.sample(contender, workload, repetition, target, label)
        except ChildFailed as exc:
            failed[label or contender] = f"failed: {str(exc).strip().splitlines()[-1][:300]}"
            self.console.print(f"[red]{exc}[/]", highlight=False)
            return None

    def bench_n(self, workload: Workload, repeat: int) -> list[Summary]:
        """Every contender at one N, `repeat` times, interleaved round robin (A B C D A B C D …)."""
        contenders = [c for c in CONTENDERS if c != AMINA_PG or isinstance(self.pg, Postgres)]
        failed: dict[str, str] = {c: f"not installed: {module} (pip install -e '.[bench]')"
                                  for c, module in OPTIONAL.items() if importlib.util.find_spec(module) is None}
        # The no-op contender needs a warehouse that already holds everything: made once, untimed.
        _remove_sqlite(self.noop_db(workload))
        if not self.attempt(failed, "amina-prepare", workload, 0, str(self.noop_db(workload)),
                            label="(no-op's first sync)"):
            failed[NOOP] = failed.pop("(no-op's first sync)")
            failed[INSERT_FLOOR] = "no finished warehouse to copy (the no-op's first sync failed)"
        samples: dict[str, list[Sample]] = {c: [] for c in contenders}
        try:
            for repetition in range(1, repeat + 1):
                for contender in [c for c in contenders if c not in failed]:
                    target, remove = self.fresh_target(contender, workload, repetition)
                    try:
                        sample = self.attempt(failed, contender, workload, repetition, target)
                    finally:
                        remove()
                    if sample:
                        samples[contender].append(sample)
        finally:
            _remove_sqlite(self.noop_db(workload))
        if not isinstance(self.pg, Postgres):
            failed[AMINA_PG] = self.pg
        return [Summary(c, workload.n, workload.submissions, samples.get(c, []), skipped=failed.get(c))
                for c in CONTENDERS]

    def amina_only(self, workload: Workload) -> Summary:
        """amina-sqlite alone, once: for a larger N than the full comparison can afford."""
        failed: dict[str, str] = {}
        target, remove = self.fresh_target(AMINA_SQLITE, workload, 1)
        try:
            sample = self.attempt(failed, AMINA_SQLITE, workload, 1, target, label=AMINA_ONLY)
        finally:
            remove()
        return Summary(AMINA_ONLY, workload.n, workload.submissions, [sample] if sample else [],
                       skipped=failed.get(AMINA_ONLY))


# -- the whole run --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Console(width=None if sys.stdout.isatty() else 200)
    log = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    if args.render:
        data = json.loads(args.render.read_text())
        written = dt.datetime.fromtimestamp(args.render.stat().st_mtime, dt.UTC)
        data.setdefault("finished", f"{written:%Y-%m-%d %H:%M} UTC")  # the file was written when the run ended
        results = from_json(data)
    else:
        command = " ".join(["python -m bench", shlex.join(sys.argv[1:] if argv is None else argv)]).strip()
        results = run(args, command, log)
    print_results(results, out)
    for path in ([args.out] if args.out else []) + ([RESULTS_MD] if args.write else []):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown(results) + (sweep_section(path) if path == RESULTS_MD else ""))
        written = [path]
        raw = path.with_suffix(".json")
        if not (args.render and raw.resolve() == args.render.resolve()):
            raw.write_text(json.dumps(as_json(results), indent=1) + "\n")
            written.append(raw)
        log.print("wrote " + " and ".join(map(str, written)), highlight=False)
    failures = [s for s in results.summaries if s.skipped and s.skipped.startswith("failed")]
    for s in failures:
        log.print(f"[red]{s.contender} at N={s.n:,} {s.skipped}[/]", highlight=False)
    return 1 if failures else 0


def run(args: argparse.Namespace, command: str, log: Console) -> Results:
    """Every N: start a fake server with its data, run the contenders, stop it."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="amina-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ns = sorted(set(args.n))
    summaries: list[Summary] = []
    setup: dict[int, dict[str, float]] = {}
    started = time.monotonic()
    commit = git_commit()
    try:
        # The launcher first, while this process is small (see bench/launcher.py).
        with Launcher() as launcher, postgres(not args.no_postgres, log) as pg:
            runner = Runner(launcher, pg, workdir, log)
            version = pg.version if isinstance(pg, Postgres) else None
            for n in [*ns, *sorted(set(args.amina_only_n) - set(ns))]:
                log.print(f"[bold]N={n:,}[/]: publishing the forms and generating the submissions …")
                with serving(n, args.seed) as workload:
                    setup[n] = workload.setup_seconds
                    log.print(f"  {workload.submissions:,} submissions on {workload.base_url} "
                              f"({sum(workload.setup_seconds.values()):.1f} s)", highlight=False)
                    if n in ns:
                        summaries += runner.bench_n(workload, args.repeat)
                    else:
                        summaries.append(runner.amina_only(workload))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    log.print(f"benchmark done in {time.monotonic() - started:.0f} s")
    return Results(summaries=summaries, ns=ns, repeat=args.repeat, seed=args.seed, command=command, setup=setup,
                   postgres_version=version, commit=commit, code=code_fingerprint())
