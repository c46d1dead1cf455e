"""The data every contender reads: two forms published to a fake KoBo server and filled, once per N."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from amina.demo import publish_source
from fakes.generator import generate
from fakes.kobo import FakeKobo
from forms.source import source_paths
from sync.client import KoboClient

SCREENING, ATTENDANCE = "vot_screening", "training_attendance"
FORMS = (SCREENING, ATTENDANCE)
START_DATE = dt.date(2026, 1, 1)  # fixed, so a seed always gives the same submissions


def submissions_per_form(n: int) -> dict[str, int]:
    """N screenings and N/10 training sessions (each with a repeat of participants)."""
    return {SCREENING: n, ATTENDANCE: max(1, n // 10)}


@dataclass(slots=True)
class Workload:
    """What a child needs to reach the data: the server, its token, and the asset of each form."""

    n: int
    base_url: str
    token: str
    assets: dict[str, str]  # form name -> asset uid
    counts: dict[str, int]  # form name -> submissions on the server
    setup_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def submissions(self) -> int:
        return sum(self.counts.values())

    def spec(self) -> dict[str, object]:
        return {"n": self.n, "base_url": self.base_url, "token": self.token, "assets": self.assets}


def publish_and_fill(server: FakeKobo, n: int, seed: int) -> Workload:
    """Publish the two forms through the API the way `amina demo` does (source -> xlsx -> imports API ->
    deployment; pyxform only, no ODK Validate) and put the generated submissions into the server."""
    counts = submissions_per_form(n)
    client = KoboClient(server.base_url, server.token, token_source="the bench token")
    paths = {p.stem: p for p in source_paths()}
    assets: dict[str, str] = {}
    timings: dict[str, float] = {}
    try:
        for index, name in enumerate(FORMS):
            started = time.perf_counter()
            asset_uid, schema = publish_source(client, paths[name], poll_seconds=0.01)
            timings[f"publish {name}"] = time.perf_counter() - started
            started = time.perf_counter()
            server.store.add_submissions(
                asset_uid, generate(schema, counts[name], seed=seed + index, start_date=START_DATE))
            timings[f"generate {name}"] = time.perf_counter() - started
            assets[name] = asset_uid
    finally:
        client.close()
    # The server shares this process with nothing but the harness; its data never changes from here on.
    # Freezing it keeps the collector from rescanning the stored submissions while the server answers
    # (pauses that would land at random in whichever contender happens to be running).
    gc.collect()
    gc.freeze()
    return Workload(n=n, base_url=server.base_url, token=server.token, assets=assets, counts=counts,
                    setup_seconds=timings)


@contextlib.contextmanager
def serving(n: int, seed: int) -> Iterator[Workload]:
    """A fake KoBo server on 127.0.0.1, in this process, holding the workload of size `n`."""
    server = FakeKobo(seed=seed).start()
    try:
        yield publish_and_fill(server, n, seed)
    finally:
        server.stop()
        del server
        gc.unfreeze()  # let this N's submissions go before the next N is generated
        gc.collect()
