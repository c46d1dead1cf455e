"""The `amina` command. Thin: parses flags, calls the packages, prints through amina.show.

Every failure a data manager can hit ends in one line on stderr, printed once (by `main`) and
verbatim (text from servers, configs and exceptions is never read as markup), with the exit status
the README's table documents; `--debug` shows the traceback as well.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from amina.show import Table, err, note, ok, out, plain, print_counts, print_reports, progress_bar, styled, track
from common.errors import AminaError, ConfigError, StopNow, SyncInterrupted

app = typer.Typer(help="amina-sync: KoBoToolbox → a normalized SQL warehouse.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
forms_app = typer.Typer(help="Check any XLSForm; build and publish the programme's.", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(forms_app, name="forms")
config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")

_state = {"debug": False}
CONFIG_HELP = "Config file (default: $AMINA_CONFIG, else ./amina.toml)."
DB_HELP = "Warehouse: a SQLite file or a SQLAlchemy URL (default: the config's, else amina.db)."
INTERRUPTED = 130


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("amina-sync")
        except PackageNotFoundError:
            found = "unknown (not installed)"
        out.print(plain(f"amina-sync {found}"))
        raise typer.Exit()


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each step."),
          log_format: str = typer.Option("text", "--log-format", metavar="text|json",
                                         help="Log lines as text, or one JSON object a line for log shippers."),
          _show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                             help="Print the version and exit.")) -> None:
    from common.logs import configure

    if log_format not in ("text", "json"):
        raise ConfigError(f"--log-format: '{log_format}' must be text or json")
    _state["debug"] = debug
    # on a terminal the progress bar tells; elsewhere (cron, CI, a pipe) plain log lines do
    level = logging.DEBUG if debug else logging.INFO if verbose or not err.is_terminal else logging.WARNING
    configure(level, log_format)


# -- where the warehouse is ---------------------------------------------------------------------

def _config_if_any(config: str | None) -> Any:
    """The config file named (flag or $AMINA_CONFIG), or ./amina.toml when it exists; else None."""
    from amina.config import config_path, load_config

    if config or os.environ.get("AMINA_CONFIG") or config_path().exists():
        return load_config(config)
    return None


def _warehouse_target(db: str | None, config: str | None) -> tuple[str, Any]:
    """(warehouse, config or None) for a command that reads a warehouse: --db, else the config's, else amina.db."""
    cfg = _config_if_any(config) if db is None or config else None
    if db:
        return db, cfg
    return (cfg.warehouse_url if cfg else "amina.db"), cfg


KIND_HELP = "The server's kind: kobo (KoBoToolbox) or central (ODK Central)."
PROJECT_HELP = "ODK Central: the project's number."
EMAIL_HELP = "ODK Central: environment variable holding a web user's email (with --password-env)."
PASSWORD_HELP = "ODK Central: environment variable holding that user's password."


def _server_from_flags(server: str, kind: str, token_env: str | None, project: int | None, email_env: str | None,
                       password_env: str | None) -> Any:
    """The ServerConfig the flags describe, checked as a config's [servers.NAME] table is."""
    from amina.config import parse_server
    from sync.origin import normalize_server_url

    table: dict[str, Any] = {"kind": kind}
    if kind == "central":
        if project is not None:
            table["project"] = project
        if email_env or password_env:
            table["email_env"], table["password_env"] = email_env or "CENTRAL_EMAIL", password_env or "CENTRAL_PASSWORD"
        elif token_env:
            table["token_env"] = token_env
    else:
        table["token_env"] = token_env or "KOBO_TOKEN"
    return parse_server("cli", normalize_server_url(server), table, "flags")


def _publish_target(server: str, kind: str | None, token_env: str | None, project: int | None,
                    email_env: str | None, password_env: str | None, db: str | None,
                    config: str | None) -> tuple[Any, str]:
    """(ServerConfig, warehouse) for `forms publish`: --server a URL described by the flags, or the name of a
    config's server (its kind, URL and credentials; --project may choose another Central project)."""
    import dataclasses

    if "://" in server:
        return _server_from_flags(server, kind or "kobo", token_env, project, email_env, password_env), db or "amina.db"
    from amina.config import load_config

    cfg = load_config(config)
    if server not in cfg.servers:
        raise ConfigError(f"--server: '{server}' is neither a web address nor a server of {cfg.path} "
                          f"(servers: {', '.join(sorted(cfg.servers))})")
    given = [flag for flag, value in (("--kind", kind), ("--token-env", token_env), ("--email-env", email_env),
                                      ("--password-env", password_env)) if value]
    if given:
        raise ConfigError(f"{', '.join(given)}: server '{server}' is described by {cfg.path}; change it there")
    settings = cfg.servers[server]
    if project is not None:
        if project < 1:
            raise ConfigError(f"--project: '{project}' is not the number of a project (1, 2, …)")
        if settings.kind != "central":
            raise ConfigError(f"--project: server '{server}' is {settings.kind}, which has no projects")
        settings = dataclasses.replace(settings, project=project)
    return settings, db or cfg.warehouse_url


def _open_existing(target: str) -> Any:
    from warehouse.store import Warehouse

    return Warehouse(target, create=False)


def _write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    try:
        path.write_text(text, encoding=encoding)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


# -- forms --------------------------------------------------------------------------------------

@forms_app.command("build")
def forms_build(
    names: list[str] = typer.Argument(None, metavar="[FORM]...",
                                      help="Form names (e.g. vot_screening) or .md paths; default all."),
    out_dir: Path = typer.Option(Path("build/forms"), "--out", metavar="DIR", help="Where to write .xlsx and .xml."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check with ODK Validate (Java)."),
    lint: bool = typer.Option(True, "--lint/--no-lint", help="Check our conventions (three languages, names…)."),
    engine: bool = typer.Option(None, "--engine/--no-engine", show_default="when installed",
                                help="Load the forms in ODK Web Forms' engine (@getodk/xforms-engine, Node)."),
) -> None:
    """Compile XLSForm sources to the .xlsx to upload to KoBo and the XForm XML, with a stamped version."""
    from forms.build import build_forms, resolve_sources

    built, skipped = build_forms(resolve_sources(names), out_dir, validate=validate, lint=lint, engine=engine)
    for form in built:
        out.print(ok("built", f"{form.name} version {form.version}: {form.xlsx} {form.xform}"))
        for w in form.warnings:
            out.print(note("  warning", w))
    if skipped:
        out.print(note("note", skipped))


@forms_app.command("lint")
def forms_lint(
    paths: list[Path] = typer.Argument(..., metavar="FILE...", help="Forms to check: XLSForms (.xlsx, or .md in "
                                       "pyxform's markdown layout) or KoBo assets saved as .json."),
    validate: bool = typer.Option(False, "--validate/--no-validate", help="Also run ODK Validate (Java)."),
) -> None:
    """Check any XLSForm as KoBo would deploy it (its importer, then pyxform) and as a sync would store it."""
    from rich.text import Text

    from common.errors import FormBuildError
    from forms.check import check_form

    refused: list[str] = []
    for path in paths:
        try:
            report = check_form(path, validate=validate)
        except FormBuildError as exc:
            if len(paths) == 1:
                raise
            err.print(styled("refused", exc, "red"))
            refused.append(path.name)
            continue
        verdict = (("pyxform accepts it, KoBo's importer does not", "yellow") if report.kobo_refuses
                   else ("ok", "green"))
        out.print(Text.assemble(verdict, f" {path}: {report.summary}"))
        for line in report.kobo:
            out.print(Text.assemble("  ", ("KoBo", "cyan"), f" {line}"))
        for line in report.warnings:
            out.print(note("  warning", line))
    if refused:
        raise FormBuildError(f"{len(refused)} of {len(paths)} forms refused: {', '.join(refused)}")


@forms_app.command("publish")
def forms_publish(
    name: str = typer.Argument(..., metavar="FORM", help="Form name (e.g. vot_screening) or a .md source path."),
    server: str = typer.Option(..., "--server", metavar="URL|NAME",
                               help="KoBo or ODK Central server, e.g. https://kf.kobotoolbox.org, or the NAME of "
                                    "a [servers.NAME] table of the config file."),
    kind: str = typer.Option(None, "--kind", metavar="kobo|central", show_default="kobo", help=KIND_HELP),
    asset: str = typer.Option(None, "--asset", metavar="UID", help="KoBo: an existing asset to redeploy."),
    project: int = typer.Option(None, "--project", metavar="N", help=PROJECT_HELP),
    token_env: str = typer.Option(None, "--token-env", metavar="NAME",
                                  help="Environment variable holding the token (KoBo: default KOBO_TOKEN)."),
    email_env: str = typer.Option(None, "--email-env", metavar="NAME", help=EMAIL_HELP),
    password_env: str = typer.Option(None, "--password-env", metavar="NAME", help=PASSWORD_HELP),
    db: str = typer.Option(None, "--db", metavar="PATH|URL", show_default="the config's, else amina.db",
                           help="Warehouse where the form and its version are recorded."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check with ODK Validate first."),
    engine: bool = typer.Option(None, "--engine/--no-engine", show_default="when installed",
                                help="Load the form in ODK Web Forms' engine first."),
    config: str = typer.Option(None, "--config", metavar="FILE",
                               help="Config file whose [servers.NAME] --server names (default: $AMINA_CONFIG, "
                                    "else ./amina.toml)."),
) -> None:
    """Upload a form and deploy it (or a new version of it), then record it in the warehouse.

    KoBo: through its imports API, deploying a new asset or redeploying --asset. ODK Central: the built XForm,
    created and published in --project, or as a new version (draft, then published with the stamped version)."""
    from amina.jobs import source_for
    from forms.build import compile_source, engine_check, resolve_sources
    from sync.client import check_asset_uid
    from sync.publish import publish_form
    from warehouse.store import Warehouse

    settings, db = _publish_target(server, kind, token_env, project, email_env, password_env, db, config)
    if asset:
        if settings.kind != "kobo":
            raise ConfigError("--asset names a KoBo asset; an ODK Central form is found by its form id")
        check_asset_uid(asset)
    [path] = resolve_sources([name])
    form = compile_source(path, validate=validate)  # never upload what the linter, pyxform or an engine rejects
    skipped = engine_check([form], engine=engine)
    if skipped:
        out.print(note("note", skipped))
    source = source_for(settings)
    try:
        published = publish_form(source, form, asset_uid=asset)
        opened = source.open_form(published.form_id)
        Warehouse(db).register_form(asset_uid=opened.uid, server_url=source.server_url, name=opened.name,
                                    schema=opened.deployed.schema, version_uid=opened.deployed.version,
                                    content=opened.deployed.definition, loading=False)
    finally:
        source.close()
    if published.unchanged:
        out.print(ok("unchanged", f"{path.stem}: version {opened.deployed.version} is already the one published "
                                  f"as {source.label} form {opened.uid} on {source.server_url}; nothing sent; "
                                  f"recorded in {db}"))
        return
    verb = "redeployed" if published.redeployed else "deployed"
    out.print(ok(verb, f"{path.stem} as {source.label} form {opened.uid}, version {opened.deployed.version} on "
                       f"{source.server_url}; recorded in {db}"))


# -- sync ---------------------------------------------------------------------------------------

@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Ctrl-C or SIGTERM once: finish (store) the page in flight, then stop. Twice: stop at once (the page in
    flight is rolled back). Either way the run is recorded as interrupted and the command exits 130."""
    from amina.jobs import STOP

    STOP.clear()

    def handler(signum: int, _frame: object) -> None:
        if STOP.is_set():
            raise StopNow
        STOP.set()
        err.print(plain(f"{signal.Signals(signum).name}: stopping after the page in flight is stored "
                        "(again to stop at once)"))

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@app.command()
def sync(
    server: str = typer.Option(None, "--server", metavar="URL",
                               help="KoBo or ODK Central server, e.g. https://kf.kobotoolbox.org"),
    kind: str = typer.Option("kobo", "--kind", metavar="kobo|central", help=KIND_HELP),
    assets: list[str] = typer.Option(None, "--asset", metavar="UID",
                                     help="Form to sync (repeatable): a KoBo asset uid, a Central form id."),
    all_deployed: bool = typer.Option(False, "--all", help="Sync every deployed form the credentials can see."),
    project: int = typer.Option(None, "--project", metavar="N", help=PROJECT_HELP),
    token_env: str = typer.Option(None, "--token-env", metavar="NAME",
                                  help="Environment variable holding the token (KoBo: default KOBO_TOKEN)."),
    email_env: str = typer.Option(None, "--email-env", metavar="NAME", help=EMAIL_HELP),
    password_env: str = typer.Option(None, "--password-env", metavar="NAME", help=PASSWORD_HELP),
    db: str = typer.Option("amina.db", "--db", metavar="PATH|URL",
                           help="Warehouse: a SQLite file or a SQLAlchemy URL."),
    page_size: int = typer.Option(1000, "--page-size", metavar="N", min=1, max=30000, help="Submissions per request."),
    overlap_minutes: float = typer.Option(5.0, "--overlap-minutes", metavar="MINUTES", min=0,
                                          help="Re-read this much submission time before the watermark."),
    sweep_every: int = typer.Option(1, "--sweep-every", metavar="N", min=0,
                                    help="Look for edits, reviews and deletions every N syncs (0: never)."),
    full_sweep_every: str = typer.Option("1d", "--full-sweep-every", metavar="INTERVAL",
                                         help="Compare every submission with the server this often (the safety "
                                              "net): 12h, 1d, 7d; 0s at every sweep; never."),
    max_delete_fraction: float = typer.Option(0.5, "--max-delete-fraction", metavar="SHARE", min=0, max=1,
                                              help="Stop if a sweep would mark more than this share deleted."),
    attachments_dir: Path = typer.Option(None, "--attachments-dir", metavar="DIR",
                                         help="Also download attachment files into this directory."),
    config: str = typer.Option(None, "--config", metavar="FILE",
                               help="Sync every asset of this config file instead of flags."),
) -> None:
    """Pull new submissions from KoBo or ODK Central into the warehouse (the first run loads everything).

    Either name a server and assets with flags, or give a config file (--config, $AMINA_CONFIG, or
    ./amina.toml when no --server is given)."""
    from amina.config import (
        AssetConfig,
        AttachmentPolicy,
        Config,
        Schedule,
        SyncOptions,
        check_form_id,
        load_config,
        parse_interval,
    )

    if server is None:
        cfg = load_config(config)
    else:
        if not assets and not all_deployed:
            raise ConfigError("say which forms to sync: --asset UID (repeatable) or --all")
        settings = _server_from_flags(server, kind, token_env, project, email_env, password_env)
        uids = ["all"] if all_deployed else [check_form_id(settings.kind, a, "--asset")
                                             for a in dict.fromkeys(assets)]
        cfg = Config(
            path=None, warehouse_url=db,
            servers={"cli": settings},
            assets=tuple(AssetConfig(server="cli", uid=uid, schedule=Schedule(every_seconds=3600)) for uid in uids),
            sync=SyncOptions(page_size=page_size, overlap_minutes=overlap_minutes, sweep_every=sweep_every,
                             max_delete_fraction=max_delete_fraction,
                             full_sweep_every_seconds=parse_interval(full_sweep_every, "--full-sweep-every",
                                                                     allow_never=True, allow_zero=True)),
            attachments=AttachmentPolicy("download", attachments_dir) if attachments_dir else AttachmentPolicy())
    code = run_config(cfg)
    if code:
        raise typer.Exit(code=code)


def run_config(cfg: Any) -> int:
    """Sync every asset of the config in turn; one failing asset does not stop the others; then write the config's
    [report], if any. Prints each outcome once; returns the exit status: 0, 130 when stopped on request, else that
    of the first failure."""
    from amina.jobs import STOP, Skipped, run_asset_config, write_configured_report
    from warehouse.protect import pseudonymizer_from_env
    from warehouse.store import Warehouse, remove_sqlite_files, sqlite_path

    for asset in cfg.assets:  # every secret is needed: say so before anything is made
        cfg.servers[asset.server].credentials()
    pseudonymizer = pseudonymizer_from_env()
    file = sqlite_path(cfg.warehouse_url)
    fresh = file is not None and not file.exists()
    warehouse = Warehouse(cfg.warehouse_url, pseudonymizer=pseudonymizer)
    reports, code, done = [], 0, set()
    try:
        with stop_on_signals(), progress_bar() as bar:
            for asset in cfg.assets:
                outcomes = run_asset_config(cfg, asset, warehouse, should_stop=STOP.is_set, done=done,
                                            progress=lambda uid: track(bar, f"sync {uid}"))
                for outcome in outcomes:
                    if isinstance(outcome, SyncInterrupted):
                        err.print(styled("interrupted", outcome, "yellow"))
                        code = INTERRUPTED
                    elif isinstance(outcome, AminaError):
                        err.print(styled("error", outcome, "red"))
                        code = code or outcome.exit_code
                    elif isinstance(outcome, Skipped):
                        err.print(styled("skipped", f"{outcome.asset}: {outcome.reason}", "yellow"))
                        code = code or outcome.exit_code
                    else:
                        reports.append(outcome)
                        for line in outcome.notes:
                            err.print(note("note", f"{outcome.key}: {line}"))
                if code == INTERRUPTED:
                    break
        if reports and code != INTERRUPTED:
            write_configured_report(cfg, warehouse)
            if cfg.report is not None and cfg.report.path.exists():
                out.print(plain(f"report: {cfg.report.path}"))
    finally:
        empty = fresh and file is not None and not warehouse.holds_submissions()
        warehouse.dispose()
        if empty and file is not None:
            remove_sqlite_files(file)  # a first sync that stored nothing leaves nothing behind
    if reports:
        print_reports(reports)
    return code


@app.command()
def tables(db: str = typer.Option(None, "--db", metavar="PATH|URL", help=DB_HELP),
           config: str = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP)) -> None:
    """Rows per table of every form in the warehouse."""
    target, _cfg = _warehouse_target(db, config)
    print_counts(_open_existing(target).row_counts())


@app.command("dictionary")
def dictionary_cmd(
    form: str = typer.Option(None, "--form", metavar="FORM",
                             help="One form (table, form_id or asset uid); default all."),
    db: str = typer.Option(None, "--db", metavar="PATH|URL", help=DB_HELP),
    config: str = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP),
    fmt: str = typer.Option("table", "--format", metavar="table|csv|json", help="On screen, or csv or json."),
    out_file: Path = typer.Option(None, "--out", metavar="FILE", help="Write to this file instead of the screen."),
) -> None:
    """Every table and column: question, labels in each language, type, choice list, form versions."""
    import csv
    import io
    import json

    from warehouse.dictionary import dictionary

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"--format: '{fmt}' must be table, csv or json")
    target, _cfg = _warehouse_target(db, config)
    entries = dictionary(_open_existing(target), form)
    if fmt == "table" and out_file is None:
        table = Table(title="data dictionary", title_justify="left")
        langs = sorted({k for e in entries for k in e if k.startswith("label_")})
        for col in ("table", "column", "question", "type", "choices", *langs, "sensitive", "note"):
            table.add_column(col)
        for e in entries:
            table.add_row(*map(plain, (e["table_name"], e["column_name"], e["name"], e["xlsform_type"],
                                       e["choice_list"] or "", *[e.get(lang) or "" for lang in langs],
                                       "yes" if e["sensitive"] else "", e["note"] or "")))
        out.print(table)
        return
    if fmt == "json":
        text = json.dumps(entries, ensure_ascii=False, indent=1)
    else:
        from warehouse.export import neutralise

        buf = io.StringIO()
        keys = list(dict.fromkeys(k for e in entries for k in e))
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows({k: neutralise(v) for k, v in e.items()} for e in entries)
        text = buf.getvalue()
    if out_file:
        _write_text(out_file, text, "utf-8-sig" if fmt != "json" else "utf-8")
        out.print(plain(f"wrote {len(entries)} columns to {out_file}"))
    else:
        sys.stdout.write(text)


@app.command("export")
def export_cmd(
    form: str = typer.Argument(..., metavar="FORM", help="The form: its table name, form_id or asset uid."),
    fmt: str = typer.Option("csv", "--format", metavar="csv|xlsx|parquet", help="File format."),
    lang: str = typer.Option(None, "--lang", metavar="LANG",
                             help="Labels in this language (en, ar, ckb); default codes."),
    since: str = typer.Option(None, "--since", metavar="DATE",
                              help="Only submissions from this day (YYYY-MM-DD, UTC)."),
    db: str = typer.Option(None, "--db", metavar="PATH|URL", help=DB_HELP),
    config: str = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP),
    out_dir: Path = typer.Option(Path("export"), "--out", metavar="DIR", help="Directory to write into."),
) -> None:
    """Export a form's current submissions, one file (or sheet) per table; personal data as pseudonyms."""
    from warehouse.export import export_form

    try:
        day = dt.date.fromisoformat(since) if since else None
    except ValueError:
        raise ConfigError(f"--since: '{since}' is not a date like 2026-03-01") from None
    target, _cfg = _warehouse_target(db, config)
    for path in export_form(_open_existing(target), form, fmt, out_dir, lang=lang, since=day):
        out.print(plain(f"wrote {path}"))


def _day(flag: str, value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise ConfigError(f"{flag}: '{value}' is not a date like 2026-03-01") from None


@app.command("report")
def report_cmd(
    db: str = typer.Option(None, "--db", metavar="PATH|URL", help=DB_HELP),
    config: str = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP),
    start: str = typer.Option(None, "--from", metavar="DATE", help="First day covered (YYYY-MM-DD); default: from "
                              "the start."),
    end: str = typer.Option(None, "--to", metavar="DATE", help="Last day covered (YYYY-MM-DD); default: up to now."),
    lang: str = typer.Option("en", "--lang", metavar="en|ar|ckb", help="Language (Arabic and Kurdish right to left)."),
    out_file: Path = typer.Option(Path("report.html"), "--out", metavar="FILE", help="The HTML file to write."),
    threshold: int = typer.Option(5, "--threshold", metavar="N",
                                  help="Screening and assistance counts below this are hidden."),
    stale_hours: float = typer.Option(24.0, "--stale-after", metavar="HOURS",
                                      help="Hours without a successful sync that make a form's data stale."),
) -> None:
    """The programme report: one self-contained HTML file (charts inside, opens offline) from the analysts' views."""
    from warehouse.report import ReportOptions, write_report

    options = ReportOptions(lang=lang, start=_day("--from", start), end=_day("--to", end), threshold=threshold,
                            stale_after_hours=stale_hours)
    options.check()
    target, _cfg = _warehouse_target(db, config)
    path = write_report(_open_existing(target), out_file, options)
    out.print(plain(f"wrote the report ({lang}) to {path}"))


@app.command()
def grants(
    config: str = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP),
    db: str = typer.Option(None, "--db", metavar="URL", help="PostgreSQL warehouse URL (default: the config's)."),
) -> None:
    """PostgreSQL: create the amina_analyst role, which can read the analyst schema and nothing else."""
    target, _cfg = _warehouse_target(db, config)
    role = _open_existing(target).grant_analyst()
    out.print(ok("ok", f"role {role} can read schema analyst (labelled views, dictionary) and nothing else; "
                       f"give it a password: ALTER ROLE {role} PASSWORD '…'"))


@config_app.command("check")
def config_check(config: str = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP)) -> None:
    """Validate the config file and say exactly which key is wrong."""
    from amina.config import load_config

    cfg = load_config(config)
    out.print(ok("ok", f"{cfg.path}: warehouse {cfg.warehouse_url}, {len(cfg.servers)} server(s), "
                       f"{len(cfg.assets)} asset entr{'y' if len(cfg.assets) == 1 else 'ies'}"))
    for a in cfg.assets:
        s = cfg.servers[a.server]
        secrets = ", ".join(f"{n}: {'set' if os.environ.get(n, '').strip() else 'NOT SET'}" for n in s.secret_names)
        where = f"project {s.project} of {s.url}" if s.kind == "central" else s.url
        out.print(plain(f"  {a.uid} on {where} ({a.schedule.describe()}); {secrets}"))


@app.command()
def schedule(config: str = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP)) -> None:
    """Run the syncs of the config file on their schedules, in the foreground, until Ctrl-C/SIGTERM (exit 130)."""
    import scheduler
    from amina.config import load_config

    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger().setLevel(logging.INFO)
    raise typer.Exit(code=scheduler.serve(load_config(config)))


@app.command()
def status(
    config: str = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP),
    db: str = typer.Option(None, "--db", metavar="PATH|URL", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON document, for machines."),
    offline: bool = typer.Option(False, "--offline", help="Do not ask the servers how many submissions they have."),
    stale_hours: float = typer.Option(24.0, "--stale-after", metavar="HOURS",
                                      help="Hours without a successful sync that make an asset stale, when the "
                                           "config gives it no schedule."),
) -> None:
    """Per asset: last successful sync, newest submission, rows, server vs warehouse, quarantined, when every
    submission was last compared with the server (the full sweep), last error.

    Exit status 7 when an asset is failing or stale, so cron or monitoring can alert. Servers are asked for
    their counts only when a config names them (each with its own token variable)."""
    import json

    from warehouse.status import asset_statuses, judge_staleness

    target, cfg = _warehouse_target(db, config)
    statuses = asset_statuses(_open_existing(target))
    max_age: dict[str, float] = {}
    if cfg:
        for a in cfg.assets:
            for st in statuses:
                if a.uid in (st.asset_uid, "all") and cfg.servers[a.server].url == st.server_url:
                    max_age[st.asset_key] = 2 * a.schedule.expected_gap_seconds() + cfg.misfire_grace_seconds
    judge_staleness(statuses, max_age, stale_hours * 3600)
    if not offline and cfg is not None:
        _server_counts(statuses, cfg)
    if as_json:
        sys.stdout.write(json.dumps([s.as_json() for s in statuses], ensure_ascii=False, indent=1) + "\n")
    else:
        _print_status(statuses)
    if any(s.failing or s.stale for s in statuses):
        raise typer.Exit(code=7)


def _server_counts(statuses: list[Any], cfg: Any) -> None:
    """Ask each configured server, with its own credentials, how many submissions each of its forms has."""
    from amina.jobs import source_for
    from sync.http import RetryPolicy

    for server in cfg.servers.values():
        mine = [st for st in statuses if st.server_url == server.url]
        if not mine:
            continue  # a server the config does not name is never sent a credential
        try:
            source = source_for(server, retry=RetryPolicy(attempts=2), timeout=(5, 20))
        except ConfigError:
            continue
        try:
            for st in mine:
                form_id = source.form_id_of(st.asset_uid)
                if form_id is None:
                    continue
                try:
                    st.server_submissions = source.server_count(form_id)
                except AminaError as exc:
                    logging.getLogger(__name__).warning("could not ask %s about %s: %s", st.server_url, st.asset_uid,
                                                        exc)
        finally:
            source.close()


def _print_status(statuses: list[Any]) -> None:
    from warehouse.store import utcnow

    def ago(t: dt.datetime | None) -> str:
        if t is None:
            return "never"
        minutes = (utcnow() - t).total_seconds() / 60
        return f"{minutes:.0f} min ago" if minutes < 120 else f"{minutes / 60:.1f} h ago"

    table = Table(title="assets", title_justify="left")
    for col in ("form", "asset", "server", "last success", "newest submission", "stored", "on server", "deleted",
                "quarantined", "last full sweep", "state", "last error"):
        table.add_column(col)
    for s in statuses:
        state = styled("failing", "", "red") if s.failing else styled("stale", "", "yellow") if s.stale else \
            styled("ok", "", "green")
        error = f"run {s.last_error_run_id}: {s.last_error}" if s.last_error else ""
        table.add_row(plain(s.name), plain(s.asset_uid), plain(s.server_url), ago(s.last_success_at),
                      ago(s.newest_submission_at), f"{s.submissions:,}",
                      "?" if s.server_submissions is None else f"{s.server_submissions:,}", f"{s.deleted:,}",
                      f"{s.quarantined:,}", ago(s.last_full_sweep_at), state, plain(error[:100]))
    out.print(table)


# -- the demo and the rehearsal server -------------------------------------------------------------

@app.command()
def demo(
    submissions: int = typer.Option(5000, "--submissions", "-n", metavar="N", min=1, help="How many to generate."),
    db: Path = typer.Option(Path("amina.db"), "--db", metavar="PATH", help="SQLite file to (re)create."),
    seed: int = typer.Option(2026, "--seed", metavar="N", help="Seed of the generated data."),
    source: str = typer.Option("kobo", "--source", metavar="kobo|central",
                               help="The fake server: KoBoToolbox, or ODK Central."),
) -> None:
    """The whole path offline: a fake KoBo (or ODK Central) → publish the four forms → submissions → sync → SQLite."""
    from amina.demo import run_demo

    run_demo(submissions=submissions, db=db, seed=seed, console=out, progress=progress_bar, source_kind=source)


@app.command("fake-server")
def fake_server(
    port: int = typer.Option(8765, "--port", metavar="PORT", help="Port on 127.0.0.1 (0 = any free port)."),
    submissions: int = typer.Option(1000, "--submissions", "-n", metavar="N", min=0, help="Submissions to generate."),
    seed: int = typer.Option(2026, "--seed", metavar="N", help="Seed of the generated data."),
) -> None:
    """Serve a fake KoBo server with the four forms and generated submissions, until Ctrl-C."""
    from amina.demo import serve_fake

    serve_fake(port=port, submissions=submissions, seed=seed, console=out)


def _stop_now(_signum: int, _frame: object) -> None:
    raise StopNow


def main(argv: list[str] | None = None) -> None:
    """The entry point: runs the command; every failure ends in one line on stderr and its exit status.
    Ctrl-C or SIGTERM stops any command with one line and exit 130 (`sync` and `schedule` first finish the
    page in flight)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_now)
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit:
        raise
    except AminaError as exc:
        _fail(exc, exc.exit_code)
    except (StopNow, KeyboardInterrupt):
        _fail(SyncInterrupted("stopped at once; a sync's page in flight was rolled back, everything stored before "
                              "it is kept, and the next run resumes from there"), INTERRUPTED, label="interrupted")
    except OSError as exc:  # a path the user gave that cannot be read or written
        where = f" {exc.filename}" if exc.filename else ""
        _fail(ConfigError(f"cannot use{where}: {exc.strerror or exc}"), 2)
    except Exception as exc:  # a bug: one line anyway (the traceback with --debug)
        _fail(exc, 1, label="internal error",
              suffix=" (this is a bug in amina-sync; run again with --debug for the traceback and report it)")


def _fail(exc: BaseException, code: int, *, label: str = "error", suffix: str = "") -> None:
    if _state["debug"]:
        err.print_exception()
    text = str(exc) if label != "internal error" else f"{exc.__class__.__name__}: {exc}"
    err.print(styled(label, text + suffix, "red" if label != "interrupted" else "yellow"))
    sys.exit(code)


if __name__ == "__main__":
    main()
