"""Running the syncs a config file asks for: one asset (or every deployed survey of a server).

Used by `amina sync` and by the scheduler's jobs, so both behave the same. Each asset's outcome is
returned, never printed or logged here: the caller reports it once (the CLI on stderr, the scheduler
in its log).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from amina.config import AssetConfig, Config, ServerConfig
from common.errors import AminaError, AssetBusy, SyncInterrupted
from sync.attachments import AttachmentRules
from sync.central_client import CentralClient
from sync.central_source import CentralSource
from sync.client import KoboClient
from sync.engine import Progress, SyncReport, sync_asset
from sync.http import RetryPolicy
from sync.kobo_source import KoboSource
from sync.source import Source
from warehouse.store import Warehouse

log = logging.getLogger(__name__)

STOP = threading.Event()  # set on SIGTERM/SIGINT; running syncs stop after the page they are storing


@dataclass(frozen=True, slots=True)
class Skipped:
    """An asset not synced this time, and why (another worker holds it; the server listed a bad uid)."""

    asset: str
    reason: str
    exit_code: int = 0  # what `amina sync` exits with for it (6: another worker holds the asset)


Outcome = SyncReport | Skipped | AminaError


def source_for(server: ServerConfig, *, max_response_bytes: int | None = None,
               retry: RetryPolicy | None = None, timeout: tuple[float, float] | None = None) -> Source:
    """The sync.source.Source of a configured server, logged in with the secrets its config names."""
    options: dict[str, object] = {}
    if max_response_bytes is not None:
        options["max_response_bytes"] = max_response_bytes
    if retry is not None:
        options["retry"] = retry
    if timeout is not None:
        options["timeout"] = timeout
    credentials = server.credentials()
    if server.kind == "central":
        names = " and ".join(f"{n}" for n in server.secret_names)
        client = CentralClient(server.url, token_source=f"the login in {names}", **credentials, **options)
        assert server.project is not None
        return CentralSource(client, server.project)
    return KoboSource(KoboClient(server.url, credentials["token"], token_source=f"the token in {server.token_env}",
                                 **options))


def form_ids(source: Source, asset: AssetConfig) -> tuple[list[str], list[Skipped]]:
    """The forms one [[assets]] entry names: itself, or (uid = "all") every form with submissions the server
    lists whose id looks like one of its own (the others are skipped, never used in a URL or a path)."""
    if asset.uid != "all":
        return [asset.uid], []
    listing = source.list_forms()
    if not listing.form_ids:
        log.warning("the account has no deployed form on %s", source.server_url)
    return listing.form_ids, [Skipped(uid, reason) for uid, reason in listing.skipped]


def client_for(config: Config, asset: AssetConfig) -> Source:
    return source_for(config.servers[asset.server], max_response_bytes=config.sync.max_response_bytes)


def run_asset_config(config: Config, asset: AssetConfig, warehouse: Warehouse, *,
                     should_stop: Callable[[], bool] | None = None,
                     progress: Callable[[str], Progress | None] | None = None,
                     done: set[str] | None = None) -> list[Outcome]:
    """Sync what one [[assets]] entry names; one failing asset does not stop the others.

    Returns, per asset, its report, why it was skipped, or the error that ended it. `done`: assets
    (server url|uid) already synced in this round, not synced again (an asset named and also under
    uid = "all"). A SyncInterrupted ends the entry at once: the stop was asked for."""
    source = client_for(config, asset)
    outcomes: list[Outcome] = []
    try:
        uids, skipped = form_ids(source, asset)
        outcomes += skipped
        rules = (AttachmentRules(config.attachments.directory, config.attachments.allowed_origins)
                 if config.attachments.mode == "download" else None)
        for uid in uids:
            if should_stop and should_stop():
                break
            if done is not None:
                if f"{source.server_url}|{uid}" in done:
                    continue
                done.add(f"{source.server_url}|{uid}")
            try:
                outcomes.append(sync_asset(
                    source, warehouse, uid, page_size=config.sync.page_size,
                    overlap=dt.timedelta(minutes=config.sync.overlap_minutes),
                    sweep_every=config.sync.sweep_every, full_sweep_every=config.sync.full_sweep_every,
                    max_delete_fraction=config.sync.max_delete_fraction,
                    sensitive=asset.sensitive, should_stop=should_stop, attachments=rules,
                    progress=progress(uid) if progress else None))
            except AssetBusy as exc:
                outcomes.append(Skipped(uid, str(exc), exit_code=exc.exit_code))
            except SyncInterrupted as exc:
                outcomes.append(exc)
                break
            except AminaError as exc:
                outcomes.append(exc)
    except AminaError as exc:  # listing the assets failed (token refused, server down)
        outcomes.append(exc)
    finally:
        source.close()
    return outcomes


def write_configured_report(config: Config, warehouse: Warehouse) -> None:
    """Rewrite the config's [report], if it has one; a failure is logged, never raised (the sync is done)."""
    if config.report is None:
        return
    from warehouse.report import ReportOptions, write_report

    rep = config.report
    try:
        write_report(warehouse, rep.path, ReportOptions(lang=rep.lang, threshold=rep.threshold,
                                                        stale_after_hours=rep.stale_after_hours))
    except AminaError as exc:
        log.error("the report %s was not written: %s", rep.path, exc)
