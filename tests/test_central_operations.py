"""ODK Central in a data manager's hands: the config, `amina sync` and `status`, the scheduler, faults on the wire,
and kill -9 at random instants — what the KoBo path has, on Central too."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes.central import FakeCentral
from sync.central_client import CentralClient
from sync.central_source import CentralSource
from sync.engine import sync_asset
from sync.http import RetryPolicy
from tests.killing import run_or_kill
from tests.test_central_sync import HOUSEHOLD, KEY, published, warehouse
from tests.test_crash import snapshot

ROOT = Path(__file__).resolve().parents[1]
TRIALS = int(os.environ.get("AMINA_KILL_TRIALS", "12"))


@pytest.fixture()
def central():
    with FakeCentral(seed=8) as server:
        yield server


def config_for(path: Path, central: FakeCentral, project: int, form_id: str, db: str = "w.db",
               extra: str = "") -> Path:
    path.write_text(f'[warehouse]\nurl = "{db}"\n[servers.odk]\nkind = "central"\nurl = "{central.base_url}"\n'
                    f'project = {project}\nemail_env = "CENTRAL_EMAIL"\npassword_env = "CENTRAL_PASSWORD"\n'
                    f'[[assets]]\nuid = "{form_id}"\nschedule = {{ every = "1s" }}\n{extra}')
    return path


def env_for(central: FakeCentral) -> dict[str, str]:
    return {**os.environ, "CENTRAL_EMAIL": central.email, "CENTRAL_PASSWORD": central.password,
            "AMINA_PSEUDONYM_KEY": KEY}  # the key of `warehouse()`: pseudonyms of both must match


def test_a_central_project_from_the_config_syncs_and_reports_its_status(central, tmp_path, amina):
    project, form_id, _schema, _items = published(central, HOUSEHOLD, 9)
    config = config_for(tmp_path / "amina.toml", central, project, form_id)
    env = {"CENTRAL_EMAIL": central.email, "CENTRAL_PASSWORD": central.password}
    check = amina("config", "check", "--config", str(config), env=env)
    assert check.returncode == 0 and f"project {project} of {central.base_url}" in check.stdout
    assert central.password not in check.stdout + check.stderr
    synced = amina("sync", "--config", str(config), env=env)
    assert synced.returncode == 0, synced
    status = amina("status", "--config", str(config), "--json", env=env)
    [entry] = json.loads(status.stdout)
    assert entry["asset_uid"] == f"{project}/{form_id}" and entry["submissions"] == 9
    assert entry["server_submissions"] == 9 and not entry["failing"]
    flags = amina("sync", "--server", central.base_url, "--kind", "central", "--project", str(project), "--asset",
                  form_id, "--email-env", "CENTRAL_EMAIL", "--password-env", "CENTRAL_PASSWORD", "--db",
                  str(tmp_path / "flags.db"), env=env)
    assert flags.returncode == 0, flags
    wrong = amina("sync", "--config", str(config), env={**env, "CENTRAL_PASSWORD": "not it"})
    assert wrong.returncode == 4 and "Central answered 401" in wrong.stderr and "not it" not in wrong.stderr


def test_a_form_is_published_to_a_server_the_config_names_then_synced(central, tmp_path, amina):
    """`forms publish --server NAME` takes the kind, URL, project and credentials from the config, records
    the form in the config's warehouse, and the config's sync then finds it."""
    project = central.store.create_project("amina").id
    config = config_for(tmp_path / "amina.toml", central, project, "vot_screening")
    env = {"CENTRAL_EMAIL": central.email, "CENTRAL_PASSWORD": central.password}
    done = amina("forms", "publish", "vot_screening", "--server", "odk", "--config", str(config), "--no-validate",
                 "--no-engine", env=env)
    assert done.returncode == 0, done
    assert f"Central form {project}/vot_screening" in done.stdout and "w.db" in done.stdout
    assert (tmp_path / "w.db").exists() and central.store.form(project, "vot_screening").published
    assert amina("sync", "--config", str(config), env=env).returncode == 0
    again = amina("forms", "publish", "vot_screening", "--server", "odk", "--config", str(config), "--no-validate",
                  "--no-engine", env=env)  # the same version: Central would refuse it (409.6); nothing is sent
    assert again.returncode == 0 and "is already the one published" in again.stdout, again
    form = central.store.form(project, "vot_screening")
    assert form.draft is None and len(form.published) == 1
    for args, message in (
            (("--server", "elsewhere"), "'elsewhere' is neither a web address nor a server of"),
            (("--server", "odk", "--kind", "kobo"), "--kind: server 'odk' is described by"),
            (("--server", "odk", "--project", "0"), "--project: '0' is not the number of a project"),
    ):
        refused = amina("forms", "publish", "vot_screening", *args, "--config", str(config), "--no-validate",
                        "--no-engine", env=env)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)


def test_a_version_central_refuses_leaves_no_draft_behind(central, tmp_path):
    """Publishing again a version that is not the current one but was published before: Central refuses it
    (409.6); the draft made for it is deleted, so the form is as it was."""
    from common.errors import KoboRefused
    from forms.build import compile_source
    from forms.xform import parse_xform
    from sync.publish import publish_central

    project = central.store.create_project("amina").id
    first = compile_source(HOUSEHOLD, validate=False, lint=False)
    changed = tmp_path / "household.md"
    changed.write_text(HOUSEHOLD.read_text(encoding="utf-8").replace("| Household survey | 3 |",
                                                                     "| Household survey | 4 |"), encoding="utf-8")
    second = compile_source(changed, validate=False, lint=False)
    versions = [parse_xform(c.xform).version for c in (first, second)]
    assert versions[0] != versions[1]
    client = CentralClient(central.base_url, email=central.email, password=central.password)
    assert not publish_central(client, project, first.xform).redeployed
    assert publish_central(client, project, second.xform).redeployed
    assert publish_central(client, project, second.xform).unchanged
    with pytest.raises(KoboRefused, match="409"):
        publish_central(client, project, first.xform)
    form = central.store.form(project, "household")
    assert form.draft is None and [d.version for d in form.published] == versions
    client.close()


def test_a_config_names_central_secrets_by_their_variables_only(tmp_path, amina):
    config = tmp_path / "amina.toml"
    config.write_text('[servers.odk]\nkind = "central"\nurl = "https://central.example.org"\nproject = 2\n'
                      'password = "hunter2"\n[[assets]]\nuid = "vot_screening"\n')
    result = amina("config", "check", "--config", str(config))
    assert result.returncode == 2 and "a password must not be written in the config file" in result.stderr
    config.write_text('[servers.odk]\nkind = "central"\nurl = "https://central.example.org"\n'
                      '[[assets]]\nuid = "vot_screening"\n')
    result = amina("config", "check", "--config", str(config))
    assert result.returncode == 2 and "needs the number of its project" in result.stderr


@pytest.mark.parametrize("kind", ["429", "500", "503", "reset", "truncated", "hang"])
def test_each_fault_is_retried_and_the_warehouse_is_the_same(central, kind, tmp_path):
    project, form_id, _schema, _items = published(central, HOUSEHOLD, 25)
    clean = warehouse(str(tmp_path / "clean.db"))
    sync_asset(CentralSource(CentralClient(central.base_url, email=central.email, password=central.password),
                             project), clean, form_id, page_size=10)
    clean.dispose()
    sleeps: list[float] = []
    client = CentralClient(central.base_url, email=central.email, password=central.password, timeout=(2.0, 0.5),
                           retry=RetryPolicy(attempts=4), sleep=sleeps.append)
    central.inject(kind, times=2, retry_after=7, hang_seconds=1.0)
    wh = warehouse(str(tmp_path / f"{kind}.db"))
    report = sync_asset(CentralSource(client, project), wh, form_id, page_size=10)
    assert report.status == "ok" and report.inserted == 25 and len(sleeps) == 2
    wh.dispose()
    assert snapshot(tmp_path / f"{kind}.db")["household"] == snapshot(tmp_path / "clean.db")["household"]


def test_kill_9_at_random_instants_then_rerun_equals_an_uninterrupted_sync(central, tmp_path):
    project, form_id, schema, _items = published(central, HOUSEHOLD, 60)
    source = CentralSource(CentralClient(central.base_url, email=central.email, password=central.password), project)
    baseline = tmp_path / "baseline.db"
    wh = warehouse(str(baseline))
    sync_asset(source, wh, form_id, page_size=10)
    wh.dispose()
    store = central.store
    roots = sorted(s.root_id for s in store.form(project, form_id).submissions.values())
    central.store.clock.advance(dt.timedelta(minutes=10))
    for root in roots[5:20:3]:
        store.edit(project, form_id, root, {"household/hh_size": "7"})
    for root in roots[20:30]:
        store.review(project, form_id, root, "approved")
    for root in roots[30:36]:
        store.delete(project, form_id, root)
    from fakes.generator import generate

    store.load(project, form_id, generate(schema, 30, seed=77))
    reference = tmp_path / "reference.db"
    shutil.copy(baseline, reference)
    wh = warehouse(str(reference))
    assert sync_asset(source, wh, form_id, page_size=10, overlap=dt.timedelta(0)).status == "ok"
    wh.dispose()
    expected = snapshot(reference)
    slow = central.inject("hang", times=0, hang_seconds=0.02)
    command = [sys.executable, "-m", "amina.cli", "sync", "--server", central.base_url, "--kind", "central",
               "--project", str(project), "--asset", form_id, "--email-env", "CENTRAL_EMAIL", "--password-env",
               "CENTRAL_PASSWORD", "--page-size", "10", "--overlap-minutes", "0"]

    def run(db: Path, kill_after: float | None) -> bool:
        slow.times = 10**9
        return run_or_kill([*command, "--db", str(db)], env_for(central), kill_after, cwd=ROOT)

    timing = tmp_path / "timing.db"
    shutil.copy(baseline, timing)
    started = time.monotonic()
    assert run(timing, None)
    full = time.monotonic() - started
    rng = random.Random(2026)
    differences, killed = [], 0
    for trial in range(TRIALS):
        db = tmp_path / f"trial{trial}.db"
        shutil.copy(baseline, db)
        killed += not run(db, rng.uniform(0.1, full))
        slow.times = 0
        again = warehouse(str(db))
        assert sync_asset(source, again, form_id, page_size=10, overlap=dt.timedelta(0)).status == "ok"
        again.dispose()
        got = snapshot(db)
        if got != expected:
            differences.append((trial, sorted(t for t in expected if got.get(t) != expected[t])))
    assert differences == [], differences
    assert killed >= TRIALS // 2, f"only {killed} of {TRIALS} runs were killed before they finished"


def test_the_scheduler_syncs_a_central_project_and_stops_on_sigterm(central, tmp_path):
    project, form_id, _schema, _items = published(central, HOUSEHOLD, 6)
    config = config_for(tmp_path / "amina.toml", central, project, form_id)
    proc = subprocess.Popen([sys.executable, str(ROOT / "scheduler.py"), "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env_for(central))
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"synced {project}/{form_id}" in err and central.password not in err
