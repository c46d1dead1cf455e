"""Class 2: the token goes only to the configured scheme, host and port.

`elsewhere` is another origin that records every request it gets and the Authorization header it carried."""

from __future__ import annotations

import datetime as dt

import pytest

from common.errors import ConfigError, KoboRefused
from fakes.kobo import Reply
from sync.attachments import AttachmentRules
from sync.client import KoboClient
from sync.engine import sync_asset
from tests.hostile.conftest import T0, Recorder, ids, on_data, one_line_error, rows, warehouse
from tests.test_e2e import JPEG, answers


def test_an_asset_list_next_link_to_another_host_is_refused_without_the_token(kobo, client, uid, elsewhere):
    kobo.tamper("/api/v2/assets/", lambda b: {**b, "next": f"{elsewhere.url}/api/v2/assets/?start=1"}
                if isinstance(b, dict) and "results" in b else b)
    with pytest.raises(KoboRefused, match=r"a link to http://127\.0\.0\.1:[0-9]+/api/v2/assets/, another origin"):
        list(client.iter_assets())
    assert elsewhere.seen == []


def test_a_next_link_that_downgrades_to_http_is_refused():
    client = KoboClient("https://kobo.example.org", "0" * 40)
    with pytest.raises(KoboRefused, match="another origin"):
        client._url("http://kobo.example.org/api/v2/assets/?start=100")
    with pytest.raises(KoboRefused, match="another origin"):
        client._url("https://kobo.example.org:8443/api/v2/assets/")
    with pytest.raises(KoboRefused, match="another origin"):
        client._url("//evil.example.org/api/v2/assets/")
    assert client._url("https://KOBO.example.org:443/api/v2/assets/?start=100").startswith("https://KOBO")


def test_the_sync_never_follows_a_data_next_link_elsewhere(kobo, client, uid, elsewhere, tmp_path):
    kobo.tamper("/data", lambda b: {**b, "next": f"{elsewhere.url}/steal?x=1"} if isinstance(b, dict) else b)
    wh = warehouse(str(tmp_path / "w.db"))
    sync_asset(client, wh, uid, page_size=2)
    assert elsewhere.seen == [] and len(rows(wh, "household")) == 4
    wh.dispose()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_refused_and_the_host_never_sees_the_token(kobo, uid, client, elsewhere,
                                                                                tmp_path, status):
    kobo.tamper("/data", lambda b: Reply(status, {"detail": "moved"}, headers={"Location": f"{elsewhere.url}/x"}))
    with pytest.raises(KoboRefused, match=r"redirected to http://127\.0\.0\.1:[0-9]+/x, another origin"):
        sync_asset(client, warehouse(str(tmp_path / "w.db")), uid)
    assert elsewhere.seen == []


def test_a_redirect_within_the_server_is_followed_with_the_token(kobo, uid, client, tmp_path):
    kobo.tamper("/api/v2/assets/" + uid + "/data/", lambda b: Reply(
        302, {}, headers={"Location": f"{kobo.base_url}/api/v2/assets/{uid}/data.json?limit=1000"}), times=1)
    wh = warehouse(str(tmp_path / "w.db"))
    assert sync_asset(client, wh, uid, sweep_every=0).fetched == 4
    wh.dispose()


def test_an_endless_redirect_is_cut(kobo, uid, client, tmp_path):
    kobo.tamper("/data", lambda b: Reply(302, {}, headers={"Location": f"{kobo.base_url}/api/v2/assets/{uid}/data/"}))
    with pytest.raises(Exception, match="more than 5 redirects"):
        sync_asset(client, warehouse(str(tmp_path / "w.db")), uid)


def attach_from(kobo, uid, url: str) -> None:
    """Every attachment of every submission points at `url` (with its own file name)."""
    def point(doc):
        for item in doc.get("_attachments") or []:
            item["download_url"] = f"{url}/{item.get('uid')}.jpg"
    on_data(kobo, point)


def test_an_attachment_on_another_origin_is_not_fetched_at_all(kobo, client, uid, elsewhere, tmp_path):
    kobo.store.add_submission(uid, answers(9), submission_time=T0 + dt.timedelta(hours=1),
                              attachments={"1741597203456.jpg": JPEG})
    attach_from(kobo, uid, elsewhere.url)
    wh = warehouse(str(tmp_path / "w.db"))
    report = sync_asset(client, wh, uid, attachments=AttachmentRules(tmp_path / "files"))
    assert report.status == "ok" and report.attachments == 0 and elsewhere.seen == []
    assert any("another origin" in n for n in report.notes)
    wh.dispose()


def test_an_attachment_on_an_allowed_origin_is_fetched_without_the_token(kobo, client, uid, elsewhere, tmp_path):
    kobo.store.add_submission(uid, answers(9), submission_time=T0 + dt.timedelta(hours=1),
                              attachments={"1741597203456.jpg": JPEG})
    attach_from(kobo, uid, elsewhere.url)
    wh = warehouse(str(tmp_path / "w.db"))
    report = sync_asset(client, wh, uid, attachments=AttachmentRules(tmp_path / "files", (elsewhere.url,)))
    assert report.attachments >= 1 and elsewhere.seen and elsewhere.tokens() == []
    wh.dispose()


@pytest.mark.parametrize("allowed", [False, True])
def test_an_attachment_redirected_elsewhere_goes_only_where_allowed_and_without_the_token(kobo, client, uid, tmp_path,
                                                                                         allowed):
    storage = Recorder(body=JPEG)  # object storage, as behind a KoBo that keeps files in S3
    try:
        kobo.store.add_submission(uid, answers(9), submission_time=T0 + dt.timedelta(hours=1),
                                  attachments={"1741597203456.jpg": JPEG})
        kobo.tamper("/attachments/", lambda b: Reply(302, {}, headers={"Location": f"{storage.url}/file.jpg"}))
        wh = warehouse(str(tmp_path / "w.db"))
        rules = AttachmentRules(tmp_path / "files", (storage.url,) if allowed else ())
        report = sync_asset(client, wh, uid, attachments=rules)
        assert report.status == "ok" and len(rows(wh, "household")) == 5  # the data is all there either way
        assert storage.tokens() == []
        if allowed:
            assert report.attachments >= 1 and storage.seen
        else:
            assert report.attachments == 0 and storage.seen == [] and any("redirected" in n for n in report.notes)
        wh.dispose()
    finally:
        storage.close()


@pytest.mark.parametrize("url, shown_not", [
    ("https://data-manager:s3cret@kf.kobotoolbox.org", "s3cret"),
    ("https://kf.kobotoolbox.org/?token=0123456789abcdef0123456789abcdef01234567", "0123456789abcdef"),
    ("https://kf.kobotoolbox.org/api/v2/#access_token=xyz123secret", "xyz123secret"),
])
def test_credentials_in_a_server_url_are_refused_and_never_printed(amina, tmp_path, url, shown_not):
    result = amina("sync", "--server", url, "--asset", "aX7Yk3mQ9pLrT2vB8cN4dW", "--db", str(tmp_path / "w.db"),
                   env={"KOBO_TOKEN": "0" * 40})
    assert result.returncode == 2, result
    line = one_line_error(result)
    assert shown_not not in result.stderr + result.stdout and "kf.kobotoolbox.org" in line
    config = tmp_path / "amina.toml"
    config.write_text(f'[servers.k]\nurl = "{url}"\n[[assets]]\nuid = "all"\n')
    check = amina("config", "check", "--config", str(config))
    assert check.returncode == 2 and shown_not not in check.stderr + check.stdout
    assert not (tmp_path / "w.db").exists()


def test_status_asks_only_configured_servers_each_with_its_own_token(kobo, uid, tmp_path, amina, elsewhere):
    from warehouse import bookkeeping as bk

    db = tmp_path / "w.db"
    assert amina("sync", "--server", kobo.base_url, "--asset", uid, "--db", str(db),
                 env={"KOBO_TOKEN": kobo.token}).returncode == 0
    wh = warehouse(str(db))
    with wh.engine.begin() as conn:  # a second server recorded in the warehouse, that no config names
        row = dict(conn.execute(bk.forms.select()).mappings().one())
        conn.execute(bk.forms.insert().values(**{**row, "asset_key": f"{uid}@other", "server_url": elsewhere.url,
                                                 "table_name": "household_other"}))
    wh.dispose()
    config = tmp_path / "amina.toml"
    config.write_text(f'[warehouse]\nurl = "w.db"\n[servers.k]\nurl = "{kobo.base_url}"\ntoken_env = "KOBO_TOKEN"\n'
                      f'[[assets]]\nuid = "{uid}"\n')
    result = amina("status", "--config", str(config), "--json", env={"KOBO_TOKEN": kobo.token})
    assert elsewhere.seen == [], "a server no config names was asked"
    assert '"server_submissions": 4' in result.stdout


def test_a_url_without_a_scheme_is_a_configuration_error(amina, tmp_path):
    result = amina("sync", "--server", "kf.kobotoolbox.org", "--all", "--db", str(tmp_path / "w.db"),
                   env={"KOBO_TOKEN": "0" * 40})
    assert result.returncode == 2 and "has no scheme: write https://kf.kobotoolbox.org" in one_line_error(result)


def test_the_api_suffix_of_a_server_url_is_not_doubled(kobo, uid, amina, tmp_path):
    result = amina("sync", "--server", kobo.base_url + "/api/v2/", "--asset", uid, "--db", str(tmp_path / "w.db"),
                   env={"KOBO_TOKEN": kobo.token})
    assert result.returncode == 0, result
    assert ConfigError  # imported for the type of refusals above
    assert ids(kobo, uid)
