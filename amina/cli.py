"""The `amina` command. Thin: parses flags, calls the packages, prints with rich.

Every failure a data manager can hit ends in one line on stderr and a non-zero exit status;
`--debug` shows the traceback as well.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TimeRemainingColumn
from rich.table import Table

from amina.errors import AminaError, ConfigError

app = typer.Typer(help="amina-sync: KoBoToolbox → a normalized SQL warehouse.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
forms_app = typer.Typer(help="Build the programme's XLSForms.", no_args_is_help=True)
app.add_typer(forms_app, name="forms")

out = Console()
err = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each step.")) -> None:
    _state["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


# -- forms --------------------------------------------------------------------------------------

@forms_app.command("build")
def forms_build(
    names: list[str] = typer.Argument(None, help="Form names (e.g. vot_screening) or .md paths; default all."),
    out_dir: Path = typer.Option(Path("build/forms"), "--out", help="Where to write .xlsx and .xml."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check with ODK Validate (Java)."),
) -> None:
    """Compile XLSForm sources to the .xlsx to upload to KoBo and the XForm XML."""
    from forms.build import build_form, resolve_sources

    for path in resolve_sources(names):
        built = build_form(path, out_dir, validate=validate)
        out.print(f"[green]built[/] {built.name}: {built.xlsx} {built.xform}")
        for w in built.warnings:
            out.print(f"  [yellow]warning[/] {w}")


# -- sync ---------------------------------------------------------------------------------------

def _token(env_name: str) -> str:
    token = os.environ.get(env_name, "").strip()
    if not token:
        raise ConfigError(f"the environment variable {env_name} is empty or not set: export {env_name}=<your "
                          "KoBo API token> (KoBo → Account settings → Security → API key)")
    return token


def _progress() -> Progress:
    return Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), TimeRemainingColumn(), console=err, transient=True,
                    disable=not err.is_terminal)


@app.command()
def sync(
    server: str = typer.Option(..., "--server", help="KoBo server, e.g. https://kf.kobotoolbox.org"),
    assets: list[str] = typer.Option(None, "--asset", help="Asset uid to sync (repeatable)."),
    all_deployed: bool = typer.Option(False, "--all", help="Sync every deployed survey the token can see."),
    token_env: str = typer.Option("KOBO_TOKEN", "--token-env", help="Environment variable holding the token."),
    db: str = typer.Option("amina.db", "--db", help="Warehouse: a SQLite file or a SQLAlchemy URL."),
    page_size: int = typer.Option(1000, "--page-size", min=1, max=30000, help="Submissions per request."),
    overlap_minutes: float = typer.Option(5.0, "--overlap-minutes", min=0,
                                          help="Re-read this much submission time before the watermark."),
    sweep_every: int = typer.Option(1, "--sweep-every", min=0,
                                    help="Look for edits, reviews and deletions every N syncs (0: never)."),
    max_delete_fraction: float = typer.Option(0.5, "--max-delete-fraction", min=0, max=1,
                                              help="Stop if a sweep would mark more than this share deleted."),
) -> None:
    """Pull new submissions from KoBo into the warehouse (the first run loads everything)."""
    from sync.client import KoboClient
    from warehouse.store import Warehouse

    if not assets and not all_deployed:
        raise ConfigError("say which forms to sync: --asset UID (repeatable) or --all")
    client = KoboClient(server, _token(token_env), token_source=f"the token in {token_env}")
    warehouse = Warehouse(db)
    uids = list(assets or [])
    if all_deployed:
        uids += [a["uid"] for a in client.iter_assets("asset_type:survey AND _deployment_status:deployed")
                 if a["uid"] not in uids]
        if not uids:
            raise ConfigError(f"the account behind {token_env} has no deployed survey on {server}")
    options = {"page_size": page_size, "overlap": dt.timedelta(minutes=overlap_minutes),
               "sweep_every": sweep_every, "max_delete_fraction": max_delete_fraction}
    failures = run_syncs(client, warehouse, uids, **options)
    if failures:
        raise typer.Exit(code=4)


def run_syncs(client, warehouse, uids: list[str], **options) -> int:  # type: ignore[no-untyped-def]
    """Sync each asset in turn; one failing asset does not stop the others. Returns the failures."""
    from sync.engine import sync_asset

    reports, failures = [], 0
    with _progress() as bar:
        for uid in uids:
            task = bar.add_task(f"sync {uid}", total=None)
            try:
                reports.append(sync_asset(client, warehouse, uid, **options,
                                          progress=lambda done, total, t=task: bar.update(t, completed=done,
                                                                                          total=total)))
            except AminaError as exc:
                failures += 1
                err.print(f"[red]error[/] {uid}: {exc}", highlight=False)
            finally:
                bar.remove_task(task)
    if reports:
        print_reports(reports)
    return failures


def print_reports(reports) -> None:  # type: ignore[no-untyped-def]
    table = Table(title="sync runs", title_justify="left")
    for col in ("form", "table", "fetched", "new", "updated", "unchanged", "deleted", "bad values", "requests",
                "seconds"):
        table.add_column(col, justify="right" if col not in ("form", "table") else "left")
    for r in reports:
        table.add_row(r.name, r.table, str(r.fetched), str(r.inserted), str(r.updated), str(r.unchanged),
                      str(r.deleted), str(r.bad_values), str(r.requests), f"{r.seconds:.2f}")
    out.print(table)


@app.command()
def tables(db: str = typer.Option("amina.db", "--db", help="Warehouse: a SQLite file or a SQLAlchemy URL.")
           ) -> None:
    """Rows per table of every form in the warehouse."""
    from warehouse.store import Warehouse

    print_counts(Warehouse(db).row_counts())


def print_counts(counts: list[tuple[str, str, int]]) -> None:
    table = Table(title="warehouse tables", title_justify="left")
    table.add_column("asset")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for uid, name, rows in counts:
        table.add_row(uid, name, f"{rows:,}")
    out.print(table)


# -- the demo and the rehearsal server -------------------------------------------------------------

@app.command()
def demo(
    submissions: int = typer.Option(5000, "--submissions", "-n", min=1, help="How many to generate."),
    db: Path = typer.Option(Path("amina.db"), "--db", help="SQLite file to (re)create."),
    seed: int = typer.Option(2026, "--seed", help="Seed of the generated data."),
) -> None:
    """The whole path offline: fake KoBo → publish both forms → submissions → sync → SQLite."""
    from amina.demo import run_demo

    run_demo(submissions=submissions, db=db, seed=seed, console=out, progress=_progress)


@app.command("fake-server")
def fake_server(
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (0 = any free port)."),
    submissions: int = typer.Option(1000, "--submissions", "-n", min=0, help="Submissions to generate."),
    seed: int = typer.Option(2026, "--seed"),
) -> None:
    """Serve a fake KoBo server with both forms and generated submissions, until Ctrl-C."""
    from amina.demo import serve_fake

    serve_fake(port=port, submissions=submissions, seed=seed, console=out)


def main() -> None:
    try:
        app()
    except AminaError as exc:
        if _state["debug"]:
            err.print_exception()
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
