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
from rich.table import Table

from amina.show import err, out, print_counts, print_reports, progress_bar, track
from common.errors import AminaError, ConfigError
from warehouse.protect import pseudonymizer_from_env

app = typer.Typer(help="amina-sync: KoBoToolbox → a normalized SQL warehouse.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
forms_app = typer.Typer(help="Check any XLSForm; build and publish the programme's.", no_args_is_help=True)
app.add_typer(forms_app, name="forms")

_state = {"debug": False}


config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")
CONFIG_HELP = "Config file (default: $AMINA_CONFIG or ./amina.toml)."


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each step."),
          log_format: str = typer.Option("text", "--log-format", help="text, or json for log shippers.")) -> None:
    from common.logs import configure

    if log_format not in ("text", "json"):
        raise ConfigError(f"--log-format: '{log_format}' must be text or json")
    _state["debug"] = debug
    # on a terminal the progress bar tells; elsewhere (cron, CI, a pipe) plain log lines do
    level = logging.DEBUG if debug else logging.INFO if verbose or not err.is_terminal else logging.WARNING
    configure(level, log_format)


# -- forms --------------------------------------------------------------------------------------

@forms_app.command("build")
def forms_build(
    names: list[str] = typer.Argument(None, help="Form names (e.g. vot_screening) or .md paths; default all."),
    out_dir: Path = typer.Option(Path("build/forms"), "--out", help="Where to write .xlsx and .xml."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check with ODK Validate (Java)."),
    lint: bool = typer.Option(True, "--lint/--no-lint", help="Check our conventions (three languages, names…)."),
    engine: bool = typer.Option(None, "--engine/--no-engine", show_default="when installed",
                                help="Load the forms in ODK Web Forms' engine (@getodk/xforms-engine, Node)."),
) -> None:
    """Compile XLSForm sources to the .xlsx to upload to KoBo and the XForm XML, with a stamped version."""
    from forms.build import build_forms, resolve_sources

    built, skipped = build_forms(resolve_sources(names), out_dir, validate=validate, lint=lint, engine=engine)
    for form in built:
        out.print(f"[green]built[/] {form.name} version {form.version}: {form.xlsx} {form.xform}")
        for w in form.warnings:
            out.print(f"  [yellow]warning[/] {w}")
    if skipped:
        out.print(f"[yellow]note[/] {skipped}")


@forms_app.command("lint")
def forms_lint(
    paths: list[Path] = typer.Argument(..., help="Forms to check: XLSForms (.xlsx, or .md in pyxform's markdown "
                                                 "layout) or KoBo assets saved as .json."),
    validate: bool = typer.Option(False, "--validate/--no-validate", help="Also run ODK Validate (Java)."),
) -> None:
    """Check any XLSForm as KoBo would deploy it (its importer, then pyxform) and as a sync would store it."""
    from common.errors import FormBuildError
    from forms.check import check_form

    refused: list[str] = []
    for path in paths:
        try:
            report = check_form(path, validate=validate)
        except FormBuildError as exc:
            if len(paths) == 1:
                raise
            err.print(f"[red]refused[/] {exc}", highlight=False)
            refused.append(path.name)
            continue
        verdict = "[yellow]pyxform accepts it, KoBo's importer does not[/]" if report.kobo_refuses else "[green]ok[/]"
        out.print(f"{verdict} {path}: {report.summary}")
        for line in report.kobo:
            out.print(f"  [cyan]KoBo[/] {line}", highlight=False)
        for line in report.warnings:
            out.print(f"  [yellow]warning[/] {line}", highlight=False)
    if refused:
        raise FormBuildError(f"{len(refused)} of {len(paths)} forms refused: {', '.join(refused)}")


@forms_app.command("publish")
def forms_publish(
    name: str = typer.Argument(..., help="Form name (e.g. vot_screening) or a .md source path."),
    server: str = typer.Option(..., "--server", help="KoBo server, e.g. https://kf.kobotoolbox.org"),
    asset: str = typer.Option(None, "--asset", help="Existing asset to redeploy with a new version."),
    token_env: str = typer.Option("KOBO_TOKEN", "--token-env", help="Environment variable holding the token."),
    db: str = typer.Option("amina.db", "--db", help="Warehouse where the asset uid and version are recorded."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check with ODK Validate first."),
    engine: bool = typer.Option(None, "--engine/--no-engine", show_default="when installed",
                                help="Load the form in ODK Web Forms' engine first."),
) -> None:
    """Upload a form to KoBo (imports API), deploy or redeploy it, and record it in the warehouse."""
    from amina.config import ServerConfig
    from forms.build import compile_source, engine_check, resolve_sources
    from forms.schema import FormSchema
    from sync.client import KoboClient
    from sync.engine import deployed_content
    from sync.publish import publish_xlsform
    from warehouse.store import Warehouse

    [path] = resolve_sources([name])
    form = compile_source(path, validate=validate)  # never upload what the linter, pyxform or an engine rejects
    skipped = engine_check([form], engine=engine)
    if skipped:
        out.print(f"[yellow]note[/] {skipped}")
    token = ServerConfig("cli", server, token_env).token()
    client = KoboClient(server, token, token_source=f"the token in {token_env}")
    published = publish_xlsform(client, form.xlsx, f"{path.stem}.xlsx", asset_uid=asset)
    detail = client.asset(published.asset_uid)
    version, content = deployed_content(client, detail)
    Warehouse(db).register_form(asset_uid=published.asset_uid, server_url=client.server_url,
                                name=str(detail.get("name") or path.stem), schema=FormSchema.from_content(content),
                                version_uid=version, content=content, loading=False)
    verb = "redeployed" if published.redeployed else "deployed"
    out.print(f"[green]{verb}[/] {path.stem} as asset {published.asset_uid}, version {version} on {client.server_url}; "
              f"recorded in {db}")


# -- sync ---------------------------------------------------------------------------------------





@app.command()
def sync(
    server: str = typer.Option(None, "--server", help="KoBo server, e.g. https://kf.kobotoolbox.org"),
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
    attachments_dir: Path = typer.Option(None, "--attachments-dir",
                                         help="Also download attachment files into this directory."),
    config: str = typer.Option(None, "--config", help="Sync every asset of this config file instead of flags."),
) -> None:
    """Pull new submissions from KoBo into the warehouse (the first run loads everything).

    Either name a server and assets with flags, or give a config file (--config, $AMINA_CONFIG, or
    ./amina.toml when no --server is given)."""
    from amina.config import AssetConfig, AttachmentPolicy, Config, Schedule, ServerConfig, SyncOptions, load_config

    if server is None:
        cfg = load_config(config)
    else:
        if not assets and not all_deployed:
            raise ConfigError("say which forms to sync: --asset UID (repeatable) or --all")
        uids = ["all"] if all_deployed else list(dict.fromkeys(assets))
        cfg = Config(
            path=None, warehouse_url=db, servers={"cli": ServerConfig("cli", server.rstrip("/"), token_env)},
            assets=tuple(AssetConfig(server="cli", uid=uid, schedule=Schedule(every_seconds=3600)) for uid in uids),
            sync=SyncOptions(page_size=page_size, overlap_minutes=overlap_minutes, sweep_every=sweep_every,
                             max_delete_fraction=max_delete_fraction),
            attachments=AttachmentPolicy("download", attachments_dir) if attachments_dir else AttachmentPolicy())
    if run_config(cfg):
        raise typer.Exit(code=4)


def run_config(cfg) -> int:  # type: ignore[no-untyped-def]
    """Sync every asset of the config in turn; one failing asset does not stop the others.
    Returns how many failed."""
    from amina.jobs import run_asset_config
    from warehouse.store import Warehouse

    warehouse = Warehouse(cfg.warehouse_url, pseudonymizer=pseudonymizer_from_env())
    reports, failures = [], 0
    with progress_bar() as bar:
        def progress(uid: str):  # type: ignore[no-untyped-def]
            return track(bar, f"sync {uid}")

        for asset in cfg.assets:
            for outcome in run_asset_config(cfg, asset, warehouse, progress=progress):
                if isinstance(outcome, AminaError):
                    failures += 1
                    err.print(f"[red]error[/] {outcome}", highlight=False)
                else:
                    reports.append(outcome)
    if reports:
        print_reports(reports)
    warehouse.dispose()
    return failures




@app.command()
def tables(db: str = typer.Option("amina.db", "--db", help="Warehouse: a SQLite file or a SQLAlchemy URL.")
           ) -> None:
    """Rows per table of every form in the warehouse."""
    from warehouse.store import Warehouse

    print_counts(Warehouse(db).row_counts())




@app.command("dictionary")
def dictionary_cmd(
    form: str = typer.Option(None, "--form", help="One form (table, form_id or asset uid); default all."),
    db: str = typer.Option("amina.db", "--db", help="Warehouse: a SQLite file or a SQLAlchemy URL."),
    fmt: str = typer.Option("table", "--format", help="table (on screen), csv or json."),
    out_file: Path = typer.Option(None, "--out", help="Write to this file instead of the screen."),
) -> None:
    """Every table and column: question, labels in each language, type, choice list, form versions."""
    import csv
    import io
    import json

    from warehouse.dictionary import dictionary
    from warehouse.store import Warehouse

    entries = dictionary(Warehouse(db), form)
    if fmt == "table" and out_file is None:
        table = Table(title="data dictionary", title_justify="left")
        langs = sorted({k for e in entries for k in e if k.startswith("label_")})
        for col in ("table", "column", "question", "type", "choices", *langs, "sensitive", "note"):
            table.add_column(col)
        for e in entries:
            table.add_row(e["table_name"], e["column_name"], e["name"], e["xlsform_type"], e["choice_list"] or "",
                          *[e.get(lang) or "" for lang in langs], "yes" if e["sensitive"] else "", e["note"] or "")
        out.print(table)
        return
    if fmt == "json":
        text = json.dumps(entries, ensure_ascii=False, indent=1)
    elif fmt in ("csv", "table"):
        buf = io.StringIO()
        keys = list(dict.fromkeys(k for e in entries for k in e))
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(entries)
        text = buf.getvalue()
    else:
        raise ConfigError(f"--format: '{fmt}' must be table, csv or json")
    if out_file:
        out_file.write_text(text, encoding="utf-8-sig" if fmt != "json" else "utf-8")
        out.print(f"wrote {len(entries)} columns to {out_file}")
    else:
        sys.stdout.write(text)


@app.command("export")
def export_cmd(
    form: str = typer.Argument(..., help="The form: its table name, form_id or asset uid."),
    fmt: str = typer.Option("csv", "--format", help="csv, xlsx or parquet."),
    lang: str = typer.Option(None, "--lang", help="Labels in this language (en, ar, ckb); default codes."),
    since: str = typer.Option(None, "--since", help="Only submissions from this day (YYYY-MM-DD, UTC)."),
    db: str = typer.Option("amina.db", "--db", help="Warehouse: a SQLite file or a SQLAlchemy URL."),
    out_dir: Path = typer.Option(Path("export"), "--out", help="Directory to write into."),
) -> None:
    """Export a form's current submissions, one file (or sheet) per table; personal data as pseudonyms."""
    from warehouse.export import export_form

    try:
        day = dt.date.fromisoformat(since) if since else None
    except ValueError:
        raise ConfigError(f"--since: '{since}' is not a date like 2026-03-01") from None
    for path in export_form(db, form, fmt, out_dir, lang=lang, since=day):
        out.print(f"wrote {path}")


@app.command()
def grants(
    config: str = typer.Option(None, "--config", help=CONFIG_HELP),
    db: str = typer.Option(None, "--db", help="PostgreSQL warehouse URL (default: the config's)."),
) -> None:
    """PostgreSQL: create the amina_analyst role, which can read the analyst schema and nothing else."""
    from amina.config import load_config
    from warehouse.store import Warehouse

    url = db or load_config(config).warehouse_url
    role = Warehouse(url).grant_analyst()
    out.print(f"[green]ok[/] role {role} can read schema analyst (labelled views, dictionary) and nothing else; "
              f"give it a password: ALTER ROLE {role} PASSWORD '…'")


@config_app.command("check")
def config_check(config: str = typer.Option(None, "--config", help=CONFIG_HELP)) -> None:
    """Validate the config file and say exactly which key is wrong."""
    from amina.config import load_config

    cfg = load_config(config)
    out.print(f"[green]ok[/] {cfg.path}: warehouse {cfg.warehouse_url}, {len(cfg.servers)} server(s), "
              f"{len(cfg.assets)} asset entr{'y' if len(cfg.assets) == 1 else 'ies'}")
    for a in cfg.assets:
        s = cfg.servers[a.server]
        token = "set" if os.environ.get(s.token_env, "").strip() else "[yellow]NOT SET[/]"
        out.print(f"  {a.uid} on {s.url} ({a.schedule.describe()}); token in {s.token_env}: {token}")


@app.command()
def schedule(config: str = typer.Option(None, "--config", help=CONFIG_HELP)) -> None:
    """Run the syncs of the config file on their schedules, in the foreground, until Ctrl-C/SIGTERM."""
    import scheduler
    from amina.config import load_config

    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger().setLevel(logging.INFO)
    raise typer.Exit(code=scheduler.serve(load_config(config)))


@app.command()
def status(
    config: str = typer.Option(None, "--config", help=CONFIG_HELP),
    db: str = typer.Option(None, "--db", help="Warehouse to report on (default: the config's)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document, for machines."),
    offline: bool = typer.Option(False, "--offline", help="Do not ask KoBo how many submissions it has."),
    stale_hours: float = typer.Option(24.0, "--stale-after", help="Hours without a successful sync that make an "
                                      "asset stale, when the config gives it no schedule."),
) -> None:
    """Per asset: last successful sync, newest submission, rows, server vs warehouse, last error.

    Exit status 7 when an asset is failing or stale, so cron or monitoring can alert."""
    import json

    from amina.config import load_config
    from warehouse.status import asset_statuses, judge_staleness
    from warehouse.store import Warehouse

    cfg = load_config(config) if (config or db is None) else None
    warehouse = Warehouse(db or cfg.warehouse_url)  # type: ignore[union-attr]
    statuses = asset_statuses(warehouse)
    max_age: dict[str, float] = {}
    if cfg:
        for a in cfg.assets:
            for st in statuses:
                if a.uid in (st.asset_uid, "all") and cfg.servers[a.server].url == st.server_url:
                    max_age[st.asset_uid] = 2 * a.schedule.expected_gap_seconds() + cfg.misfire_grace_seconds
    judge_staleness(statuses, max_age, stale_hours * 3600)
    if not offline:
        _server_counts(statuses, cfg)
    if as_json:
        out.print_json(json.dumps([s.as_json() for s in statuses]))
    else:
        _print_status(statuses)
    if any(s.failing or s.stale for s in statuses):
        raise typer.Exit(code=7)


def _server_counts(statuses, cfg) -> None:  # type: ignore[no-untyped-def]
    from amina.config import ServerConfig
    from sync.client import KoboClient, RetryPolicy

    for st in statuses:
        server = next((s for s in cfg.servers.values() if s.url == st.server_url), None) if cfg else None
        try:
            token = (server or ServerConfig("cli", st.server_url, "KOBO_TOKEN")).token()
        except ConfigError:  # no token at hand: the server's count stays unknown
            continue
        try:
            client = KoboClient(st.server_url, token, retry=RetryPolicy(attempts=2), timeout=(5, 20))
            st.server_submissions = client.asset(st.asset_uid).get("deployment__submission_count")
            client.close()
        except AminaError as exc:
            logging.getLogger(__name__).warning("could not ask %s about %s: %s", st.server_url, st.asset_uid, exc)


def _print_status(statuses) -> None:  # type: ignore[no-untyped-def]
    from warehouse.store import utcnow

    def ago(t: dt.datetime | None) -> str:
        if t is None:
            return "never"
        minutes = (utcnow() - t).total_seconds() / 60
        return f"{minutes:.0f} min ago" if minutes < 120 else f"{minutes / 60:.1f} h ago"

    table = Table(title="assets", title_justify="left")
    for col in ("form", "asset", "last success", "newest submission", "stored", "on server", "deleted", "state",
                "last error"):
        table.add_column(col)
    for s in statuses:
        state = "[red]failing[/]" if s.failing else "[yellow]stale[/]" if s.stale else "[green]ok[/]"
        error = f"run {s.last_error_run_id}: {s.last_error}" if s.last_error else ""
        table.add_row(s.name, s.asset_uid, ago(s.last_success_at), ago(s.newest_submission_at),
                      f"{s.submissions:,}", "?" if s.server_submissions is None else f"{s.server_submissions:,}",
                      f"{s.deleted:,}", state, error[:80])
    out.print(table)


# -- the demo and the rehearsal server -------------------------------------------------------------

@app.command()
def demo(
    submissions: int = typer.Option(5000, "--submissions", "-n", min=1, help="How many to generate."),
    db: Path = typer.Option(Path("amina.db"), "--db", help="SQLite file to (re)create."),
    seed: int = typer.Option(2026, "--seed", help="Seed of the generated data."),
) -> None:
    """The whole path offline: fake KoBo → publish the four forms → submissions → sync → SQLite."""
    from amina.demo import run_demo

    run_demo(submissions=submissions, db=db, seed=seed, console=out, progress=progress_bar)


@app.command("fake-server")
def fake_server(
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (0 = any free port)."),
    submissions: int = typer.Option(1000, "--submissions", "-n", min=0, help="Submissions to generate."),
    seed: int = typer.Option(2026, "--seed"),
) -> None:
    """Serve a fake KoBo server with the four forms and generated submissions, until Ctrl-C."""
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
