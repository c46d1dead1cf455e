"""`amina demo` and `amina fake-server`: the whole system offline, on the fake KoBo server.

The demo goes through the same doors a real deployment does: the forms are built from source,
uploaded through KoBo's imports API and deployed; submissions come out of the data API over real
HTTP on 127.0.0.1; the sync writes a SQLite warehouse. Only the submissions themselves are put into
the fake server directly (on a real server they arrive from tablets).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from common.errors import ConfigError, StopNow
from fakes.generator import generate
from fakes.kobo import FakeKobo
from forms.build import compile_source
from forms.content import to_content
from forms.schema import FormSchema
from forms.source import source_paths
from sync.client import KoboClient
from sync.publish import publish_xlsform

# Share of the generated submissions per form; attendance submissions are whole training sessions.
DEMO_SHARE = {"vot_screening": 0.6, "training_attendance": 0.2, "awareness_session": 0.1,
              "assistance_referral": 0.1}


@dataclass(frozen=True, slots=True)
class DemoForm:
    name: str
    asset_uid: str
    schema: FormSchema
    submissions: int


def publish_source(client: KoboClient, path: Path, *, validate: bool = False,
                   poll_seconds: float = 0.2) -> tuple[str, FormSchema]:
    """Build a shipped form source (pyxform; ODK Validate too with `validate`) and publish it through the imports
    and deployment API: its asset uid and its schema."""
    form = compile_source(path, validate=validate, lint=False)  # a form pyxform rejects never reaches KoBo
    published = publish_xlsform(client, form.xlsx, f"{path.stem}.xlsx", poll_seconds=poll_seconds)
    return published.asset_uid, FormSchema.from_content(to_content(form.source))


def publish_and_fill(server: FakeKobo, total: int, seed: int, *, validate: bool = False,
                     console: Console | None = None, progress: Callable[[], Progress] | None = None) -> list[DemoForm]:
    """Build every shipped form, publish it to `server` through the API and generate submissions (saying so on
    `console`, with a progress bar from `progress` on a terminal)."""
    client = KoboClient(server.base_url, server.token, token_source="the demo token")
    forms: list[DemoForm] = []
    paths = source_paths()
    with progress() if progress else contextlib.nullcontext() as bar:
        for index, path in enumerate(paths):
            asset_uid, schema = publish_source(client, path, validate=validate)
            n = _share(path, paths, total)
            with _generating(schema, n, seed + index, path.stem, f"as asset {asset_uid}", console, bar) as items:
                server.store.add_submissions(asset_uid, items)
            forms.append(DemoForm(path.stem, asset_uid, schema, n))
    client.close()
    return forms


def _share(path: Path, paths: list[Path], total: int) -> int:
    """How many of the demo's `total` submissions go to this form."""
    return max(1, round(total * DEMO_SHARE.get(path.stem, 1 / len(paths)))) if total else 0


@contextlib.contextmanager
def _generating(schema: FormSchema, n: int, seed: int, stem: str, where: str, console: Console | None,
                bar: Any) -> Iterator[Iterator[Any]]:
    """The form's `n` generated submissions, with the progress bar advanced as they are made and the time the
    `with` block took to take them printed."""
    started = time.monotonic()
    if console is not None:
        console.print(Text(f"  published {stem} {where}; generating {n:,} submissions "
                           "(the form's own skip logic, constraints and calculations)"))
    items = generate(schema, n, seed=seed) if n else iter(())
    if bar is not None and n:
        task = bar.add_task(f"generate {stem}", total=n, rate="")
        items = _counted(items, lambda: bar.advance(task))
    yield items
    if console is not None and n:
        console.print(Text(f"    {n:,} submissions in {time.monotonic() - started:.1f} s"))


def _counted(items: Iterator[Any], tick: Callable[[], None]) -> Iterator[Any]:
    for item in items:
        tick()
        yield item


def _reset_demo_db(db: Path) -> None:
    """Remove a previous demo warehouse; refuse to touch a file that holds anything else."""
    if not db.exists():
        return
    try:
        engine = sa.create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            servers = set(conn.execute(sa.text('SELECT server_url FROM "forms"')).scalars())
        engine.dispose()
    except sa.exc.SQLAlchemyError:
        servers = {"?"}
    if any(not s.startswith("http://127.0.0.1:") for s in servers):
        raise ConfigError(f"{db} exists and holds data from a real server; the demo will not overwrite it "
                          "(pass --db another.db)")
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db}{suffix}").unlink()


def publish_and_fill_central(central: Any, total: int, seed: int, *, console: Console | None = None,
                             progress: Callable[[], Progress] | None = None) -> tuple[Any, list[DemoForm]]:
    """Build every shipped form, publish its XForm to a fake ODK Central through Central's API, and send the
    generated submissions as Collect does (the same generator, shares and seeds as for the fake KoBo)."""
    from sync.central_client import CentralClient
    from sync.publish import publish_central

    project = central.store.create_project("AMINA programme")
    client = CentralClient(central.base_url, email=central.email, password=central.password)
    forms: list[DemoForm] = []
    paths = source_paths()
    with progress() if progress else contextlib.nullcontext() as bar:
        for index, path in enumerate(paths):
            compiled = compile_source(path, validate=False, lint=False)
            form_id = publish_central(client, project.id, compiled.xform).form_id
            schema = FormSchema.from_xform(compiled.xform)
            n = _share(path, paths, total)
            with _generating(schema, n, seed + index, path.stem, f"in project {project.id}", console, bar) as items:
                central.store.load(project.id, form_id, items)
            forms.append(DemoForm(path.stem, form_id, schema, n))
    client.close()
    return project, forms


@contextlib.contextmanager
def demo_source(kind: str, submissions: int, seed: int, console: Console,
                progress: Callable[[], Progress] | None) -> Iterator[tuple[Any, list[DemoForm]]]:
    """A fake server of the kind, filled with the four forms and generated submissions, and its Source."""
    if kind == "central":
        from fakes.central import FakeCentral
        from sync.central_client import CentralClient
        from sync.central_source import CentralSource

        with FakeCentral(seed=seed) as central:
            console.print(Text(f"fake ODK Central on {central.base_url}"))
            project, forms = publish_and_fill_central(central, submissions, seed, console=console, progress=progress)
            source = CentralSource(CentralClient(central.base_url, email=central.email, password=central.password,
                                                 token_source="the demo login"), project.id)
            try:
                yield source, forms
            finally:
                source.close()
        return
    from sync.kobo_source import KoboSource

    with FakeKobo(seed=seed) as server:
        console.print(Text(f"fake KoBo server on {server.base_url}"))
        forms = publish_and_fill(server, submissions, seed, console=console, progress=progress)
        source = KoboSource(KoboClient(server.base_url, server.token, token_source="the demo token"))
        try:
            yield source, forms
        finally:
            source.close()


def run_demo(*, submissions: int, db: Path, seed: int, console: Console,
             progress: Callable[[], Progress], source_kind: str = "kobo") -> None:
    from amina.show import print_counts, print_reports
    from warehouse.protect import Pseudonymizer
    from warehouse.report import ReportOptions, write_report
    from warehouse.store import Warehouse

    if source_kind not in ("kobo", "central"):
        raise ConfigError(f"--source: '{source_kind[:20]}' must be kobo or central")
    _reset_demo_db(db)
    t0 = time.monotonic()
    with demo_source(source_kind, submissions, seed, console, progress) as (source, forms):
        t_ready = time.monotonic()
        # a throw-away key: the demo warehouse is throw-away too (a real one keeps its key for good)
        warehouse = Warehouse(str(db), pseudonymizer=Pseudonymizer(secrets.token_hex(32)))
        console.print(Text.assemble("\n", ("first sync", "bold"), f" into {db} (everything is new)"))
        reports = _sync_all(source, warehouse, forms, progress)
        t_first = time.monotonic()
        print_reports(reports)
        print_counts(warehouse.row_counts())
        console.print(Text.assemble("\n", ("second sync", "bold"),
                                    " (incremental: asks only for what is new since the watermark)"))
        again = _sync_all(source, warehouse, forms, progress)
        print_reports(again)
        new = sum(r.inserted + r.updated for r in again)
        console.print(Text(f"second sync stored {new} new or changed submissions"))
        t_report = time.monotonic()
        report = write_report(warehouse, db.parent / "report.html", ReportOptions(lang="en"))
        console.print(Text.assemble("\n", ("programme report", "bold"),
                                    f" written to {report} in {time.monotonic() - t_report:.1f} s "
                                    "(open it in a browser; amina report --lang ar|ckb for Arabic or Kurdish)"))
        warehouse.dispose()
    console.print(Text(
        f"\nset-up {t_ready - t0:.1f} s, first sync {t_first - t_ready:.1f} s "
        f"({sum(r.fetched for r in reports) / max(t_first - t_ready, 1e-9):,.0f} submissions/s), "
        f"total {time.monotonic() - t0:.1f} s. Query it: sqlite3 {db} 'SELECT * FROM vot_screening LIMIT 5'"))


def _sync_all(source: Any, warehouse, forms: list[DemoForm], progress):  # type: ignore[no-untyped-def]
    from amina.show import track
    from sync.engine import sync_asset

    with progress() as bar:
        return [sync_asset(source, warehouse, f.asset_uid, progress=track(bar, f"sync {f.name}")) for f in forms]


def serve_fake(*, port: int, submissions: int, seed: int, console: Console) -> None:
    server = FakeKobo(port=port, seed=seed)
    try:
        server.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}): another program uses the "
                          "port; pass --port with another number, or --port 0 for any free one") from None
    started = dt.datetime.now()
    try:
        forms = publish_and_fill(server, submissions, seed, console=console)
        console.print(Text(f"fake KoBo server on {server.base_url}  (Ctrl-C to stop)"))
        for f in forms:
            console.print(Text(f"  {f.name}: asset {f.asset_uid}, {f.submissions:,} submissions"))
        console.print(Text("try, in another terminal (the token is the fake server's; the key any long secret):"))
        console.print(Text(f"  export KOBO_TOKEN={server.token} AMINA_PSEUDONYM_KEY=$(openssl rand -hex 32)"))
        console.print(Text(f"  .venv/bin/amina sync --server {server.base_url} --all --db rehearsal.db"))
        try:
            while True:
                time.sleep(3600)
        except (KeyboardInterrupt, StopNow):
            console.print(Text(f"stopped after {dt.datetime.now() - started}"))
    finally:
        server.stop()
