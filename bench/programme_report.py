"""How long `amina report` takes on a demo warehouse of N submissions (the demo's mix of the four forms).

    .venv/bin/python -m bench.programme_report --n 5000 100000 [--repeat 3] [--keep DIR]

For each N: fills a fake KoBo server with the demo's forms and N submissions, syncs them into a fresh SQLite
warehouse (not timed), then times, in this process, for each language: the figures (SQL over the analysts'
views and disclosure control) and the page (charts' specifications and HTML; Vega's script bundle is made
once per process and timed apart). Medians of --repeat runs. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

LANGS = ("en", "ar", "ckb")


def build_warehouse(n: int, directory: Path, seed: int = 2026):  # type: ignore[no-untyped-def]
    from amina.demo import publish_and_fill
    from fakes.kobo import FakeKobo
    from sync.client import KoboClient
    from sync.engine import sync_asset
    from warehouse.protect import Pseudonymizer
    from warehouse.store import Warehouse

    path = directory / f"report-bench-{n}.db"
    if path.exists():
        return Warehouse(str(path))
    warehouse = Warehouse(str(path), pseudonymizer=Pseudonymizer("bench-key-0123456789abcdef"))
    with FakeKobo(seed=seed) as server:
        forms = publish_and_fill(server, n, seed)
        client = KoboClient(server.base_url, server.token, token_source="the bench token")
        for f in forms:
            sync_asset(client, warehouse, f.asset_uid)
        client.close()
    return warehouse


def main(argv: list[str] | None = None) -> int:
    from warehouse.report import ReportOptions, build_report
    from warehouse.report.page import render, vega_bundle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[5000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the warehouses in this directory")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    vega_bundle()
    print(f"Vega bundle (once per process): {time.perf_counter() - t0:.2f} s")
    print("| N | rows read | language | figures s | page s | total s | HTML MB |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        for n in args.n:
            t = time.perf_counter()
            warehouse = build_warehouse(n, directory)
            rows = sum(count for _uid, _table, count in warehouse.row_counts())
            print(f"(warehouse of N = {n:,}: {rows:,} rows, made in {time.perf_counter() - t:.0f} s)")
            for lang in LANGS:
                figures, pages, size = [], [], 0
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    report = build_report(warehouse, ReportOptions(lang=lang))
                    figures.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    html = render(report)
                    pages.append(time.perf_counter() - t)
                    size = len(html.encode())
                f, p = statistics.median(figures), statistics.median(pages)
                print(f"| {n:,} | {rows:,} | {lang} | {f:.2f} | {p:.2f} | {f + p:.2f} | {size / 1e6:.2f} |")
            warehouse.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
