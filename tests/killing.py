"""A command run to its end, or killed with SIGKILL after a given time (the kill -9 trials)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_or_kill(command: Sequence[str], env: Mapping[str, str], kill_after: float | None, *,
                cwd: Path | None = None) -> bool:
    """Run `command`; with `kill_after`, SIGKILL it if it is still running then. True if it finished (with
    `kill_after` None: finished with status 0)."""
    proc = subprocess.Popen(list(command), env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=cwd)
    if kill_after is None:
        return proc.wait(timeout=120) == 0
    try:
        proc.wait(timeout=kill_after)
        return True  # finished before the kill
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return False
