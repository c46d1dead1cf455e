"""amina.toml: a valid file loads; each mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from amina.config import load_config, parse_config
from common.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "amina.example.toml"


def test_the_shipped_example_is_valid():
    cfg = load_config(EXAMPLE)
    assert cfg.servers["kf"].token_env == "KOBO_TOKEN"
    assert cfg.assets[0].schedule.every_seconds == 900
    assert cfg.assets[1].uid == "all" and cfg.assets[1].schedule.cron == "0 */6 * * *"
    assert cfg.assets[1].sensitive == ("profile/full_name", "profile/phone")


def test_full_sweep_every_is_an_interval_or_never():
    import datetime as dt

    assert parse_config(base()).sync.full_sweep_every == dt.timedelta(days=1)
    assert parse_config(base(sync={"full_sweep_every": "12h"})).sync.full_sweep_every == dt.timedelta(hours=12)
    assert parse_config(base(sync={"full_sweep_every": "0s"})).sync.full_sweep_every == dt.timedelta(0)
    assert parse_config(base(sync={"full_sweep_every": "never"})).sync.full_sweep_every is None
    assert load_config(EXAMPLE).sync.full_sweep_every == dt.timedelta(days=1)
    for wrong in ("daily", 3, True):
        with pytest.raises(ConfigError, match=r"\[sync\].full_sweep_every: .* is not an interval"):
            parse_config(base(sync={"full_sweep_every": wrong}))


def base(**changes):
    data = {"servers": {"kf": {"url": "https://kf.kobotoolbox.org", "token_env": "KOBO_TOKEN"}},
            "assets": [{"uid": "aX7Yk3mQ9pLrT2vB8cN4dW", "schedule": {"every": "15m"}}]}
    data.update(changes)
    return data


@pytest.mark.parametrize("data, message", [
    (base(servers={"kf": {"url": "https://kf.kobotoolbox.org", "token": "abc"}}),
     r"\[servers.kf\]: a token must not be written in the config file"),
    (base(servers={"kf": {"url": "kf.kobotoolbox.org"}}), r"\[servers.kf\].url: the server URL 'kf.kobotoolbox.org' "
                                                          "has no scheme"),
    (base(assets=[{"uid": "nope"}]), r"assets\[0\].uid: 'nope' is not a KoBo asset uid"),
    (base(assets=[{"uid": "aX7Yk3mQ9pLrT2vB8cN4dW", "schedule": {"every": "5 minutes"}}]),
     r"assets\[0\].schedule.every: '5 minutes' is not an interval"),
    (base(assets=[{"uid": "aX7Yk3mQ9pLrT2vB8cN4dW", "schedule": {"cron": "61 * * * *"}}]),
     r"assets\[0\].schedule.cron: '61 \* \* \* \*' is not a crontab"),
    (base(assets=[{"uid": "aX7Yk3mQ9pLrT2vB8cN4dW", "server": "eu"}]), r"assets\[0\].server: 'eu'"),
    (base(sync={"page_size": "big"}), r"\[sync\].page_size: 'big' must be a number"),
    (base(sync={"pagesize": 10}), r"\[sync\]: unknown key 'pagesize'"),
    (base(attachments={"mode": "all"}), r"\[attachments\].mode: 'all'"),
    (base(assets=[]), r"no \[\[assets\]\]"),
    (base(assets=[{"uid": "all"}, {"uid": "all"}]), "listed twice"),
    (base(extra=1), "unknown key 'extra'"),
])
def test_each_mistake_names_its_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data, Path("amina.toml"))


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match=r"copy amina\.example\.toml"):
        load_config(tmp_path / "amina.toml")


def test_bad_toml(tmp_path):
    p = tmp_path / "amina.toml"
    p.write_text("[servers\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)


def test_environment_variable_names_the_file(tmp_path, monkeypatch):
    p = tmp_path / "x.toml"
    p.write_text(EXAMPLE.read_text())
    monkeypatch.setenv("AMINA_CONFIG", str(p))
    assert load_config().path == p


def test_token_comes_from_the_environment(monkeypatch):
    cfg = parse_config(base())
    monkeypatch.delenv("KOBO_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="KOBO_TOKEN is empty or not set"):
        cfg.servers["kf"].token()
    monkeypatch.setenv("KOBO_TOKEN", "secret-token")
    assert cfg.servers["kf"].token() == "secret-token"


def test_a_token_once_read_never_reaches_a_log_line(monkeypatch):
    import logging

    from common.logs import RedactSecrets

    monkeypatch.setenv("MY_KOBO_TOKEN", "not-hex-but-secret-123")
    server = parse_config(base(servers={"kf": {"url": "https://kf.kobotoolbox.org", "token_env": "MY_KOBO_TOKEN"}}))
    token = server.servers["kf"].token()
    other = "0123456789abcdef0123456789abcdef01234567"  # any KoBo token's shape, never read by amina
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "sent %s and Token %s", (token, other), None)
    RedactSecrets().filter(record)
    assert record.getMessage() == "sent [redacted] and Token [redacted]"
    words = logging.LogRecord("t", logging.INFO, __file__, 1, "the token in KOBO_TOKEN was refused by %s",
                              ("https://kf.kobotoolbox.org",), None)
    RedactSecrets().filter(words)  # ordinary words stay as they are
    assert words.getMessage() == "the token in KOBO_TOKEN was refused by https://kf.kobotoolbox.org"
