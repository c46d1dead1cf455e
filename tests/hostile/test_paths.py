"""Class 3: identifiers are checked where they enter, and no file is written outside its directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sync.attachments import AttachmentRules, attachment_path, safe_name
from sync.engine import sync_asset
from tests.hostile.conftest import T0, on_data, warehouse
from tests.test_e2e import JPEG, answers


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("uid", ["../../../../../../tmp/{mark}", "aX7Yk3mQ9pLr/../../{mark}", "a" + "b" * 200, "",
                                 "all", "aé1234567890", None, 42])
def test_a_bad_uid_in_an_asset_list_is_skipped_never_used(kobo, uid, tmp_path, amina, monkeypatch):
    mark = f"amina-hostile-{tmp_path.name}"
    listed = uid.format(mark=mark) if isinstance(uid, str) else uid
    kobo.tamper("/api/v2/assets/", lambda b: {**b, "results": [{"uid": listed, "asset_type": "survey"}]}
                if isinstance(b, dict) and "results" in b else b)
    monkeypatch.chdir(tmp_path)
    result = amina("sync", "--server", kobo.base_url, "--all", "--db", "w.db", "--attachments-dir", "files",
                   env={"KOBO_TOKEN": kobo.token})
    assert "skipped" in result.stderr and "not a KoBo asset uid" in result.stderr, result
    assert "Traceback" not in result.stderr
    assert not Path("/tmp", mark).exists() and not (tmp_path / "files").exists()


@pytest.mark.parametrize("flag_uid", ["../../etc", "aX7Y/../k", "nope"])
def test_a_bad_uid_given_as_a_flag_is_a_configuration_error(amina, tmp_path, flag_uid):
    result = amina("sync", "--server", "https://kf.kobotoolbox.org", "--asset", flag_uid, "--db",
                   str(tmp_path / "w.db"), env={"KOBO_TOKEN": "0" * 40})
    assert result.returncode == 2 and "is not a KoBo asset uid" in result.stderr


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/shadow", "..", ".", "a\x00b.jpg", "x/../../y.jpg",
                                  "C:\\\\Windows\\\\evil.exe", "ن" * 300 + ".jpg", "\u202egpj.exe", ".hidden"])
def test_an_attachment_name_never_leaves_its_directory(kobo, client, uid, tmp_path, name):
    kobo.store.add_submission(uid, answers(9), submission_time=T0 + dt.timedelta(hours=1),
                              attachments={"1741597203456.jpg": JPEG})

    def rename(doc):
        for item in doc.get("_attachments") or []:
            item["filename"] = name
            item["media_file_basename"] = name
    on_data(kobo, rename)
    root = tmp_path / "files"
    wh = warehouse(str(tmp_path / "w.db"))
    report = sync_asset(client, wh, uid, attachments=AttachmentRules(root))
    assert report.status == "ok"
    written = files_under(tmp_path)
    assert all(p.resolve().is_relative_to(root.resolve()) for p in written if p.suffix not in (".db", ".db-wal",
                                                                                             ".db-shm"))
    assert all(len(p.name.encode()) <= 200 and "\x00" not in p.name for p in files_under(root))
    wh.dispose()


def test_the_asset_key_of_a_second_server_is_a_safe_directory(tmp_path):
    path = attachment_path(tmp_path, "aX7Yk3mQ9pLrT2vB8cN4dW@evil.example:8443", 5, {"filename": "a.jpg"})
    assert path.parent.parent.parent == tmp_path.resolve() and ":" not in path.parent.parent.name
    assert safe_name("..") == "file" and safe_name("../x") == "x"
