"""The hostile-server suite: a KoBo-shaped server (the fake, with `tamper` rewriting its answers) says what an
adversary or a broken proxy could say, and each case checks what a data manager would demand."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fakes.kobo import FakeKobo, Reply
from forms.source import read_source, to_xlsx
from sync.client import KoboClient, RetryPolicy
from sync.publish import publish_xlsform
from tests.conftest import CLI_KEY as KEY
from tests.test_e2e import answers
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

T0 = dt.datetime(2026, 3, 1, 8, 0, 0)
_XLSX: dict[str, bytes] = {}


def household_xlsx() -> bytes:
    if "household" not in _XLSX:
        _XLSX["household"] = to_xlsx(read_source(ROOT / "tests" / "forms" / "household.md"))
    return _XLSX["household"]


@pytest.fixture()
def kobo() -> Iterator[FakeKobo]:
    with FakeKobo(seed=11) as server:
        yield server


@pytest.fixture()
def client(kobo: FakeKobo) -> Iterator[KoboClient]:
    c = KoboClient(kobo.base_url, kobo.token, token_source="the test token", retry=RetryPolicy(attempts=2),
                   sleep=lambda _s: None)
    yield c
    c.close()


@pytest.fixture()
def uid(kobo: FakeKobo, client: KoboClient) -> str:
    """The household form (groups, nested repeats, select_multiples, personal data), with 4 submissions."""
    asset = publish_xlsform(client, household_xlsx(), "household.xlsx", poll_seconds=0.01).asset_uid
    for i in range(1, 5):
        kobo.store.add_submission(asset, answers(i), submission_time=T0 + dt.timedelta(minutes=i))
    return asset


def ids(kobo: FakeKobo, uid: str) -> list[int]:
    return [s["_id"] for s in kobo.store.submissions(uid)]


def on_data(kobo: FakeKobo, change: Callable[[dict[str, Any]], Any], *, times: int | None = None) -> None:
    """Rewrite each data page: `change(doc)` for every submission in it (mutate it, or return a replacement;
    returning the marker DROP leaves it out)."""
    def rewrite(body: Any) -> Any:
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            out = []
            for original in body["results"]:
                doc = copy.deepcopy(original)  # the fake's own documents stay as they are
                new = change(doc)
                out.append(doc if new is None else new)
            body = {**body, "results": out}
        return body
    kobo.tamper("/data", rewrite, times=times)


def raw_data(kobo: FakeKobo, change: Callable[[bytes], bytes], *, times: int | None = None) -> None:
    """Rewrite each data page as bytes (for what JSON objects cannot say: bad escapes, big numbers, bad UTF-8)."""
    def rewrite(body: Any) -> Reply:
        return Reply(200, raw=change(json.dumps(body, ensure_ascii=False).encode()), content_type="application/json")
    kobo.tamper("/data", rewrite, times=times)


def warehouse(url: str) -> Warehouse:
    return Warehouse(url, pseudonymizer=Pseudonymizer(KEY))


def rows(wh: Warehouse, table: str, order: str = "1", schema: str | None = None) -> list[dict[str, Any]]:
    name = f'"{schema}"."{table}"' if schema and wh.has_schemas else f'"{table}"'
    with wh.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY {order}"))]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process."""
    return subprocess.run([sys.executable, "-m", "amina.cli", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**os.environ, "AMINA_PSEUDONYM_KEY": KEY, **(env or {})})


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: exactly one line, never a traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "interrupted:"))]
    assert len(errors) == 1, proc.stderr
    return errors[0]


class Recorder:
    """Another origin: an HTTP server that records every request (and the Authorization header it carried)."""

    def __init__(self, body: bytes = b"file bytes", status: int = 200, headers: dict[str, str] | None = None):
        self.seen: list[tuple[str, str, str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                recorder.seen.append(("GET", self.path, self.headers.get("Authorization")))
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def tokens(self) -> list[str | None]:
        return [auth for _m, _p, auth in self.seen if auth]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def elsewhere() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()

