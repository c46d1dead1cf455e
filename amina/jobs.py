"""Running the syncs a config file asks for: one asset (or every deployed survey of a server).

Used by `amina sync --config` and by the scheduler's jobs, so both behave the same: the asset is
held (one worker at a time), and each asset's outcome is logged in one line.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from amina.config import AssetConfig, Config
from common.errors import AminaError, AssetBusy
from sync.client import KoboClient
from sync.engine import Progress, SyncReport, sync_asset
from warehouse.store import Warehouse

log = logging.getLogger(__name__)

STOP = threading.Event()  # set by the scheduler on SIGTERM/SIGINT; running syncs stop after their page
DEPLOYED_SURVEYS = "asset_type:survey AND _deployment_status:deployed"


def asset_uids(client: KoboClient, asset: AssetConfig) -> list[str]:
    if asset.uid != "all":
        return [asset.uid]
    uids = [a["uid"] for a in client.iter_assets(DEPLOYED_SURVEYS)]
    if not uids:
        log.warning("the account behind the token has no deployed survey on %s", client.server_url)
    return uids


def run_asset_config(config: Config, asset: AssetConfig, warehouse: Warehouse, *,
                     should_stop: Callable[[], bool] | None = None,
                     progress: Callable[[str], Progress | None] | None = None) -> list[SyncReport | AminaError]:
    """Sync what one [[assets]] entry names; one failing asset does not stop the others.

    Returns, per asset, its report or the error that ended it (AssetBusy: skipped, another worker
    holds it)."""
    server = config.servers[asset.server]
    client = KoboClient(server.url, server.token(), token_source=f"the token in {server.token_env}")
    outcomes: list[SyncReport | AminaError] = []
    try:
        for uid in asset_uids(client, asset):
            if should_stop and should_stop():
                break
            try:
                with warehouse.asset_lock(uid):
                    report = sync_asset(
                        client, warehouse, uid, page_size=config.sync.page_size,
                        overlap=dt.timedelta(minutes=config.sync.overlap_minutes),
                        sweep_every=config.sync.sweep_every, max_delete_fraction=config.sync.max_delete_fraction,
                        sensitive=asset.sensitive, should_stop=should_stop,
                        attachments_dir=config.attachments.directory if config.attachments.mode == "download"
                        else None,
                        progress=progress(uid) if progress else None)
                outcomes.append(report)
                log.info("synced %s from %s: %d new, %d updated, %d deleted, %d bad values in %.1f s",
                         uid, server.name, report.inserted, report.updated, report.deleted, report.bad_values,
                         report.seconds)
            except AssetBusy as exc:
                outcomes.append(exc)
                log.info("skipped %s: %s", uid, exc)
            except AminaError as exc:
                outcomes.append(exc)
                log.error("sync of %s from %s failed: %s", uid, server.name, exc)
    finally:
        client.close()
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
