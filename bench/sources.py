"""`python -m bench.sources`: the same submissions read from the fake KoBo and from the fake ODK Central.

For each N, the screening form is published on both fakes and the same N generated screenings are put in
both (KoBo's store directly; Central's as the XML Collect sends, through its store's submission path). Then,
interleaved and each into a new SQLite warehouse, a first sync at pages of 1,000 (KoBo's cap; Central has no
cap, 1,000 is asked with `$top`), and a no-change sync afterwards. Figures: seconds (median of `--repeat`),
requests, and bytes received. What differs is only what each server answers with: KoBo a page of
flat-keyed JSON, Central an OData page with groups nested and repeats inline (`$expand=*`), reshaped by
sync.central_shape before the same load path.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import requests

from fakes.central import FakeCentral
from fakes.generator import generate
from fakes.kobo import FakeKobo
from forms.build import compile_source
from forms.schema import FormSchema
from sync.central_client import CentralClient
from sync.central_source import CentralSource
from sync.client import KoboClient
from sync.engine import sync_asset
from sync.kobo_source import KoboSource
from sync.publish import publish_central, publish_xlsform
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse

FORM = Path(__file__).resolve().parents[1] / "forms" / "sources" / "vot_screening.md"
KEY = "bench-pseudonym-key-0123456789"


class RecordingSession(requests.Session):
    """A requests session that notes every GET it sends (URL, parameters, headers) while `recording` is on,
    so the first sync's data requests can be replayed as a floor: download and parse, store nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = False
        self.seen: list[tuple[str, Any, dict[str, str]]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.recording and method == "GET":
            self.seen.append((url, kwargs.get("params"), dict(kwargs.get("headers") or {})))
        return super().request(method, url, *args, **kwargs)


def floor(session: RecordingSession) -> float:
    """Seconds to send again the GETs the first sync sent, read each body and parse it with orjson."""
    with requests.Session() as plain:
        plain.headers.update({"Accept": "application/json"})
        started = time.perf_counter()
        for url, params, headers in session.seen:
            resp = plain.get(url, params=params, headers=headers, timeout=120)
            resp.raise_for_status()
            if resp.headers.get("Content-Type", "").startswith("application/json"):
                orjson.loads(resp.content)
        return time.perf_counter() - started


def measure(source: Any, form_id: str, workdir: Path, name: str, session: RecordingSession) -> dict[str, Any]:
    db = workdir / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    wh = Warehouse(str(db), pseudonymizer=Pseudonymizer(KEY))
    requests, received = source.requests_made, source.bytes_received
    session.seen.clear()
    session.recording = True
    started = time.perf_counter()
    first = sync_asset(source, wh, form_id)
    seconds = time.perf_counter() - started
    session.recording = False
    floor_seconds = floor(session)
    first_requests, first_bytes = source.requests_made - requests, source.bytes_received - received
    requests, received = source.requests_made, source.bytes_received
    started = time.perf_counter()
    sync_asset(source, wh, form_id, sweep_every=0)
    again_seconds = time.perf_counter() - started
    again_requests = source.requests_made - requests
    wh.dispose()
    assert first.bad_values == 0 and first.quarantined == 0
    return {"fetched": first.fetched, "seconds": seconds, "requests": first_requests, "bytes": first_bytes,
            "again_seconds": again_seconds, "again_requests": again_requests, "floor_seconds": floor_seconds}


def run(n: int, repeat: int, workdir: Path) -> dict[str, dict[str, Any]]:
    compiled = compile_source(FORM, validate=False, lint=False)
    schema = FormSchema.from_xform(compiled.xform)
    items = list(generate(schema, n, seed=11))
    with FakeKobo(seed=11) as kobo, FakeCentral(seed=11) as central:
        sessions = {"kobo": RecordingSession(), "central": RecordingSession()}
        kobo_client = KoboClient(kobo.base_url, kobo.token, session=sessions["kobo"])
        uid = publish_xlsform(kobo_client, compiled.xlsx, "vot_screening.xlsx", poll_seconds=0.01).asset_uid
        kobo.store.add_submissions(uid, items)
        project = central.store.create_project("bench")
        central_client = CentralClient(central.base_url, email=central.email, password=central.password,
                                       session=sessions["central"])
        form_id = publish_central(central_client, project.id, compiled.xform).form_id
        central.store.load(project.id, form_id, items)
        sources = {"kobo": (KoboSource(kobo_client), uid), "central": (CentralSource(central_client, project.id),
                                                                       form_id)}
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in sources}
        for _ in range(repeat):
            for name, (source, form) in sources.items():  # interleaved: A B A B …
                rounds[name].append(measure(source, form, workdir, name, sessions[name]))
    out = {}
    for name, runs in rounds.items():
        out[name] = {**runs[0], "seconds": statistics.median(r["seconds"] for r in runs),
                     "again_seconds": statistics.median(r["again_seconds"] for r in runs),
                     "floor_seconds": statistics.median(r["floor_seconds"] for r in runs)}
    return out


def table(results: dict[int, dict[str, dict[str, Any]]]) -> str:
    lines = ["| N screenings | source | first sync | download floor | sync − floor | requests | bytes received | "
             "per submission | no-change sync |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n, by_source in results.items():
        for name, r in by_source.items():
            lines.append(f"| {n:,} | {name} | {r['seconds']:.2f} s | {r['floor_seconds']:.2f} s | "
                         f"{r['seconds'] - r['floor_seconds']:.2f} s | {r['requests']} | "
                         f"{r['bytes'] / 2**20:.1f} MiB | "
                         f"{r['bytes'] / max(r['fetched'], 1) / 1024:.1f} KiB | {r['again_seconds']:.2f} s, "
                         f"{r['again_requests']} requests |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sources", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="amina-bench-sources-") as tmp:
        results = {n: run(n, args.repeat, Path(tmp)) for n in args.n}
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
