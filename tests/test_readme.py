"""The README's "A data manager's day" runs as written: every `sh` block of the section, in order, in one shell,
against the fake KoBo server (its URL, the asset uid and /srv/amina replaced by this test's own); the systemd
unit's ExecStart starts the scheduler, which stops on SIGTERM with the exit status the unit accepts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import CLI_KEY
from tests.test_e2e import add

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def day_section() -> str:
    return README[README.index("<!-- day:begin"):README.index("<!-- day:end -->")]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", day_section(), re.S)


def localise(text: str, server, uid: str, home: Path) -> str:
    return (text.replace("https://kf.kobotoolbox.org", server.base_url).replace("aX7Yk3mQ9pLrT2vB8cN4dW", uid)
            .replace("/srv/amina", str(home)))


def test_the_day_in_the_life_runs_as_written(server, asset_uid, tmp_path):
    add(server, asset_uid, 1, 6)
    home = tmp_path / "srv"
    script = "\n".join(localise(b, server, asset_uid, home) for b in blocks("sh"))
    # the token is the one line a reader fills in: this test's comes from the environment
    script = script.replace("export KOBO_TOKEN=...", "true")
    env = {**os.environ, "KOBO_TOKEN": server.token, "AMINA_PSEUDONYM_KEY": CLI_KEY,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the sync failed with exit 4" in done.stdout and "status says failing: exit 7" in done.stdout
    assert (home / "amina.db").exists() and (home / "status.json").exists()
    assert "Traceback" not in done.stderr


def test_the_systemd_units_command_stops_cleanly_on_sigterm(server, asset_uid, tmp_path):
    [unit] = blocks("ini")
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))[len("ExecStart="):]
    assert "SuccessExitStatus=130" in unit and "KillSignal=SIGTERM" in unit
    home = tmp_path / "srv"
    home.mkdir()
    (home / "amina.toml").write_text(f'[warehouse]\nurl = "amina.db"\n[servers.kf]\nurl = "{server.base_url}"\n'
                                     f'token_env = "KOBO_TOKEN"\n[[assets]]\nuid = "{asset_uid}"\n'
                                     'schedule = { every = "15m" }\n')
    add(server, asset_uid, 1, 3)
    argv = localise(exec_start, server, asset_uid, home).split()
    argv[0] = str(Path(sys.executable).parent / "amina")  # the unit's /opt/amina-sync/.venv/bin/amina
    proc = subprocess.Popen(argv, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KOBO_TOKEN": server.token, "AMINA_PSEUDONYM_KEY": CLI_KEY})
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (home / "amina.db").exists()
