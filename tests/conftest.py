from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from forms.content import to_content
from forms.schema import FormSchema
from forms.source import read_source, to_xlsx

HERE = Path(__file__).parent
SHARED = HERE.resolve().parents[1] / "shared"


@pytest.fixture(scope="session")
def household_content() -> dict:
    """KoBo content JSON of tests/forms/household.md: a group, nested repeats, select_multiples."""
    return to_content(read_source(HERE / "forms" / "household.md"))


@pytest.fixture(scope="session")
def household_schema(household_content) -> FormSchema:
    return FormSchema.from_content(household_content)


def household_submission(_id: int, **overrides) -> dict:
    """A submission of the household form exactly as KoBo's data API returns it."""
    sub = {
        "formhub/uuid": "5f2a4d0e8c3b4e1f9a7d6c5b4a392817",
        "start": "2026-03-10T09:12:45.123+03:00",
        "end": "2026-03-10T09:20:03.456+03:00",
        "household/hh_head_name": "أمينة يوسف",
        "household/hh_size": "2",
        "household/income": "350.5",
        "household/location": "36.19 44.01 410.0 5.0",
        "household/visit_date": "2026-03-10",
        "household/members": [
            {"household/members/member_name": "Amina", "household/members/member_age": "34",
             "household/members/member_needs": "food water",
             "household/members/visits": [
                 {"household/members/visits/visit_at": "2026-03-01T10:00:00.000+03:00",
                  "household/members/visits/vaccinated": "yes"},
                 {"household/members/visits/visit_at": "2026-03-05T11:00:00.000+03:00"},
             ]},
            {"household/members/member_name": "Omar", "household/members/member_age": "6"},
        ],
        "crops": "food shelter",
        "photo": "1741597203456.jpg",
        "__version__": "vQm3uVz9kR2LtbX8pJc4Wn",
        "meta/instanceID": f"uuid:00000000-0000-4000-8000-{_id:012d}",
        "_xform_id_string": "aX7Yk3mQ9pLrT2vB8cN4dW",
        "_uuid": f"00000000-0000-4000-8000-{_id:012d}",
        "meta/rootUuid": f"uuid:00000000-0000-4000-8000-{_id:012d}",
        "_id": _id,
        "_attachments": [{"uid": f"att{_id:021d}", "filename": "x/1741597203456.jpg", "mimetype": "image/jpeg",
                          "question_xpath": "photo", "download_url": "http://x/att"}],
        "_status": "submitted_via_web",
        "_geolocation": [36.19, 44.01],
        "_submission_time": "2026-03-10T06:20:11",
        "_validation_status": {},
        "_submitted_by": "enumerator1",
    }
    sub.update(overrides)
    return sub


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (skipped only where PostgreSQL is not installed;
    scripts/setup installs it, so CI always runs these tests)."""
    from tests.postgres import TempPostgres

    try:
        pg = TempPostgres()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    pg.start()
    yield pg
    pg.stop()


_db_counter = iter(range(10**6))


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request, tmp_path):
    """The same warehouse test on the embedded default and on the production engine."""
    if request.param == "sqlite":
        return str(tmp_path / "warehouse.db")
    pg = request.getfixturevalue("postgres_server")
    return pg.create_database(f"t{next(_db_counter)}")


@pytest.fixture()
def server():
    """A fake KoBo server on an ephemeral port."""
    from fakes.kobo import FakeKobo

    with FakeKobo(seed=7) as s:
        yield s


@pytest.fixture()
def client(server):
    from sync.client import KoboClient

    c = KoboClient(server.base_url, server.token, token_source="the test token")
    yield c
    c.close()


@pytest.fixture()
def asset_uid(server, client):
    """The household test form, published through the imports API and deployed."""
    from sync.publish import publish_xlsform

    xlsx = to_xlsx(read_source(HERE / "forms" / "household.md"))
    return publish_xlsform(client, xlsx, "household.xlsx", poll_seconds=0.01).asset_uid


CLI_KEY = "hostile-pseudonym-key-0123456789"  # AMINA_PSEUDONYM_KEY of the in-process CLI runs

class Result:
    def __init__(self, code: int, out: str, err: str):
        self.returncode, self.stdout, self.stderr = code, out, err

    def __repr__(self) -> str:
        return f"exit {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"


@pytest.fixture()
def amina(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """The real command line (amina.cli.main, the console script's entry point), run in this process."""
    import logging
    import signal

    from amina.cli import main
    from sync.http import ServerClient

    monkeypatch.setattr(ServerClient, "_backoff", lambda _self, _attempt, _retry_after: 0.0)  # retries, no waits

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        monkeypatch.setenv("AMINA_PSEUDONYM_KEY", CLI_KEY)
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:  # main configures logging and signals for a process: give this one back its own
            root.handlers[:] = handlers
            root.setLevel(level)
            for sig, handler in signals.items():
                signal.signal(sig, handler)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)
    return run
