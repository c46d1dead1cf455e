"""The scheduler: runs the syncs amina.toml asks for, on their schedules, until stopped.

    python scheduler.py [--config amina.toml]      (or: amina schedule)

One APScheduler job per [[assets]] entry, with explicit policies: never two runs of one job at
once (`max_instances=1`), missed runs folded into one (`coalesce`), a run late by more than
`misfire_grace_seconds` skipped. Jobs live in the warehouse database (APScheduler's SQLAlchemy job
store, table `apscheduler_jobs`), so a restart resumes the plan; a job stores only JSON-able
arguments (the config path and the job id), never objects. SIGTERM or SIGINT lets the running syncs
store the page in flight, then exits cleanly. Several scheduler processes may share one PostgreSQL
warehouse: an asset is held with a PostgreSQL advisory lock while it syncs.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from amina.config import AssetConfig, Config, load_config
from amina.jobs import STOP
from common.errors import AminaError, SyncInterrupted

log = logging.getLogger("amina.scheduler")
JOBS_TABLE = "apscheduler_jobs"
INTERRUPTED = 130
_stop = STOP  # shared with the jobs even when this file runs as __main__


def _trigger(asset: AssetConfig) -> CronTrigger | IntervalTrigger:
    if asset.schedule.cron:
        return CronTrigger.from_crontab(asset.schedule.cron, timezone="UTC")
    return IntervalTrigger(seconds=asset.schedule.every_seconds, timezone="UTC")


def run_job(config_path: str, job_id: str) -> str:
    """One scheduled run. Reads the config afresh, so edited sync options apply from the next run."""
    from amina.jobs import Skipped, run_asset_config, write_configured_report
    from warehouse.protect import pseudonymizer_from_env
    from warehouse.store import Warehouse

    log.info("job %s: starting", job_id)
    try:
        config = load_config(config_path)
        asset = next((a for a in config.assets if a.job_id == job_id), None)
        if asset is None:
            log.warning("job %s: no longer in %s; nothing to do", job_id, config_path)
            return "gone"
        warehouse = Warehouse(config.warehouse_url, pseudonymizer=pseudonymizer_from_env())
        try:
            outcomes = run_asset_config(config, asset, warehouse, should_stop=_stop.is_set)
            write_configured_report(config, warehouse)
        finally:
            warehouse.dispose()
    except AminaError as exc:
        log.error("job %s: failed: %s", job_id, exc)
        return "failed"
    failed = 0
    for outcome in outcomes:  # the scheduler's log is the only place a job's outcome is told: once each
        if isinstance(outcome, SyncInterrupted):
            log.info("job %s: %s", job_id, outcome)
        elif isinstance(outcome, AminaError):
            failed += 1
            log.error("job %s: %s", job_id, outcome)
        elif isinstance(outcome, Skipped):
            log.info("job %s: skipped %s: %s", job_id, outcome.asset, outcome.reason)
        else:
            log.info("job %s: synced %s: %d new, %d updated, %d deleted, %d bad values, %d quarantined in %.1f s",
                     job_id, outcome.key, outcome.inserted, outcome.updated, outcome.deleted, outcome.bad_values,
                     outcome.quarantined, outcome.seconds)
            for line in outcome.notes:
                log.warning("job %s: %s: %s", job_id, outcome.key, line)
    stopped = any(isinstance(o, SyncInterrupted) for o in outcomes)
    status = "interrupted" if stopped else "failed" if failed else "ok"
    log.info("job %s: ended %s (%d assets, %d failed)", job_id, status, len(outcomes), failed)
    return status


def build_scheduler(config: Config) -> BackgroundScheduler:
    """A scheduler whose job store holds exactly the config's jobs; jobs already stored with the same
    trigger keep their next run time, so a restart resumes the plan instead of starting it over."""
    from warehouse.store import Warehouse

    store = SQLAlchemyJobStore(url=_store_url(config.warehouse_url), tablename=JOBS_TABLE)
    warehouse = Warehouse(config.warehouse_url)  # creates the warehouse (and says so clearly if it cannot)
    warehouse.ensure_table(store.jobs_t)  # made one worker at a time: schedulers started together do not race
    warehouse.dispose()
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": config.misfire_grace_seconds},
        timezone="UTC",
    )
    scheduler.start(paused=True)
    wanted = {a.job_id: a for a in config.assets}
    config_path = str(Path(config.path).resolve()) if config.path else "amina.toml"
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            log.info("removing job %s: no longer in the config", job.id)
            job.remove()
    for job_id, asset in wanted.items():
        trigger = _trigger(asset)
        existing = scheduler.get_job(job_id)
        if existing is not None and str(existing.trigger) == str(trigger) and \
                list(existing.args) == [config_path, job_id]:
            log.info("job %s: resumed, next run %s", job_id, existing.next_run_time)
            continue
        scheduler.add_job("scheduler:run_job", trigger=trigger, args=[config_path, job_id], id=job_id,
                          name=f"sync {asset.uid} from {asset.server} ({asset.schedule.describe()})",
                          replace_existing=True)
        log.info("job %s: scheduled %s", job_id, asset.schedule.describe())
    return scheduler


def _store_url(url: str) -> str:
    from warehouse.store import database_url

    return database_url(url)


def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT, then let running syncs store their page in flight and return 130. A second
    signal ends the process at once (the interrupted runs are marked abandoned by the next run)."""
    _stop.clear()
    scheduler = build_scheduler(config)
    received: list[str] = []

    def stop(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if received:
            log.warning("received %s again: stopping at once; runs in flight will be marked abandoned by the next "
                        "run", name)
            logging.shutdown()
            os._exit(INTERRUPTED)
        received.append(name)
        log.info("received %s: finishing the pages in flight, then stopping (again to stop at once)", name)
        _stop.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.resume()
        log.info("scheduler running with %d jobs; stop with Ctrl-C or SIGTERM", len(scheduler.get_jobs()))
        while not _stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("scheduler stopped on request (%s); every page in flight was stored", received[0] if received else "?")
    return INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the syncs amina.toml asks for, on schedule.")
    parser.add_argument("--config", help="config file (default: $AMINA_CONFIG or ./amina.toml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return serve(load_config(args.config))
    except AminaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: one line, and the traceback in the log for whoever reports it
        log.exception("the scheduler stopped on an internal error")
        print(f"internal error: {exc.__class__.__name__}: {exc} (a bug in amina-sync; please report it)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
