"""amina.toml: which KoBo servers and assets to sync, when, and into which warehouse.

The file names the environment variable that holds each server's token, never the token itself.
`load_config` checks every key and says exactly which one is wrong and how to fix it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.logs import register_secret
from sync.client import DEFAULT_MAX_RESPONSE_BYTES, is_asset_uid
from sync.origin import normalize_server_url

DEFAULT_PATH = Path("amina.toml")
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_env_name(value: str, where: str) -> str:
    """The name of an environment variable. Something that looks like a secret pasted in its place (long,
    mixed case and digits, or hex) is refused without being repeated."""
    text = str(value).strip()
    looks_secret = (len(text) >= 20 and (re.fullmatch(r"[0-9a-fA-F]+", text) is not None or
                                         (any(c.isdigit() for c in text) and any(c.islower() for c in text)
                                          and "_" not in text)))
    if looks_secret or (len(text) > 16 and not _ENV_NAME.match(text)):
        raise ConfigError(f"{where} looks like a token, not the name of an environment variable; it is not shown "
                          "here. Put the token in a variable (export KOBO_TOKEN=…) and write the variable's name "
                          "(KOBO_TOKEN) here instead")
    if not _ENV_NAME.match(text):
        raise ConfigError(f"{where}: '{text}' is not an environment variable name (letters, digits and _)")
    return text


@dataclass(frozen=True, slots=True)
class Schedule:
    """Either every N seconds, or a crontab expression (minute hour day month weekday, UTC)."""

    every_seconds: float | None = None
    cron: str | None = None

    def describe(self) -> str:
        return f"cron '{self.cron}'" if self.cron else f"every {self.every_seconds:g} s"

    def expected_gap_seconds(self) -> float:
        """How long between two runs at most, to judge staleness (cron: a day, to stay conservative)."""
        return self.every_seconds if self.every_seconds else 86400.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One server. KoBo: an API token (`token_env`). ODK Central (`kind = "central"`): a project and a web user's
    email and password (`email_env`, `password_env`; the session is renewed as it expires) or a session token
    (`token_env`). Every secret is named by its environment variable, never written in the file."""

    name: str
    url: str
    token_env: str | None = "KOBO_TOKEN"
    kind: str = "kobo"
    project: int | None = None
    email_env: str | None = None
    password_env: str | None = None

    def token(self) -> str:
        """The token, from the environment variable the config names (registered so logs never show it)."""
        if self.token_env is None:
            raise ConfigError(f"server '{self.name}': no token_env is set")
        return self._secret(self.token_env, f"the API token of your account on {self.url}")

    def _secret(self, env: str, what: str) -> str:
        value = register_secret(os.environ.get(env, "").strip())
        if not value:
            raise ConfigError(f"server '{self.name}': the environment variable {env} is empty or not set: "
                              f"export {env}=<{what}>")
        return value

    def credentials(self) -> dict[str, str]:
        """What the server's client logs in with: a KoBo token; a Central email and password, or token."""
        if self.kind == "central" and self.email_env and self.password_env:
            email = os.environ.get(self.email_env, "").strip()
            if not email:
                raise ConfigError(f"server '{self.name}': the environment variable {self.email_env} is empty or not "
                                  f"set: export {self.email_env}=<the email of a web user of {self.url}>")
            return {"email": email, "password": self._secret(self.password_env, f"that user's password on {self.url}")}
        return {"token": self.token()}

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.email_env, self.password_env, self.token_env) if n)


@dataclass(frozen=True, slots=True)
class AssetConfig:
    server: str
    uid: str  # "all" = every deployed survey the token can see
    schedule: Schedule
    sensitive: tuple[str, ...] = ()

    @property
    def job_id(self) -> str:
        return f"sync:{self.server}:{self.uid}"


@dataclass(frozen=True, slots=True)
class SyncOptions:
    page_size: int = 1000
    overlap_minutes: float = 5.0
    sweep_every: int = 1
    max_delete_fraction: float = 0.5
    max_response_mb: float = DEFAULT_MAX_RESPONSE_BYTES / 2**20
    full_sweep_every_seconds: float | None = 86400.0  # the safety net: compare every submission; None: never

    @property
    def max_response_bytes(self) -> int:
        return int(self.max_response_mb * 2**20)

    @property
    def full_sweep_every(self) -> dt.timedelta | None:
        seconds = self.full_sweep_every_seconds
        return None if seconds is None else dt.timedelta(seconds=seconds)


def parse_interval(value: Any, where: str, *, allow_never: bool = False, allow_zero: bool = False) -> float | None:
    """"90s", "15m", "6h", "1d" → seconds; "never" → None (when allowed)."""
    text = str(value).strip()
    if allow_never and text.lower() == "never":
        return None
    found = _INTERVAL.match(text)
    if not found or isinstance(value, bool):
        raise ConfigError(f"{where}: '{value}' is not an interval like \"90s\", \"15m\", \"6h\" or \"1d\""
                          + (" (or \"never\")" if allow_never else ""))
    seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds <= 0 and not allow_zero:
        raise ConfigError(f"{where}: must be more than 0")
    return seconds


@dataclass(frozen=True, slots=True)
class AttachmentPolicy:
    mode: str = "metadata"  # "metadata": record attachments; "download": also fetch the files
    directory: Path = Path("attachments")
    allowed_origins: tuple[str, ...] = ()  # other origins files may come from (fetched without the token)


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """[report]: the programme report the scheduler rewrites after each sync."""

    path: Path
    lang: str = "en"
    threshold: int = 5
    stale_after_hours: float = 24.0


@dataclass(frozen=True, slots=True)
class Config:
    path: Path | None
    warehouse_url: str
    servers: dict[str, ServerConfig]
    assets: tuple[AssetConfig, ...]
    sync: SyncOptions = field(default_factory=SyncOptions)
    attachments: AttachmentPolicy = field(default_factory=AttachmentPolicy)
    misfire_grace_seconds: int = 300
    report: ReportConfig | None = None


def parse_schedule(value: Any, where: str) -> Schedule:
    if not isinstance(value, dict) or set(value) - {"every", "cron"} or len(value) != 1:
        raise ConfigError(f"{where}: give exactly one of every = \"15m\" or cron = \"*/30 * * * *\"")
    if "every" in value:
        found = _INTERVAL.match(str(value["every"]))
        if not found:
            raise ConfigError(f"{where}.every: '{value['every']}' is not an interval like \"90s\", \"15m\", \"6h\" "
                              "or \"1d\"")
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
        if seconds <= 0:
            raise ConfigError(f"{where}.every: must be more than 0")
        return Schedule(every_seconds=seconds)
    cron = str(value["cron"]).strip()
    try:
        from apscheduler.triggers.cron import CronTrigger

        CronTrigger.from_crontab(cron, timezone="UTC")
    except ValueError as exc:
        raise ConfigError(f"{where}.cron: '{cron}' is not a crontab expression ({exc})") from exc
    return Schedule(cron=cron)


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def _unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key '{extra[0]}' (known: {', '.join(sorted(allowed))})")


def relative_to(path: Path | None, value: str) -> str:
    """A file path from a config file: relative paths are read from the config file's directory (not the
    directory the command happens to run in: a scheduler started by systemd runs in /)."""
    p = Path(value).expanduser()
    if p.is_absolute() or path is None:
        return str(p)
    return str(path.resolve().parent / p)


def warehouse_target(value: str, path: Path | None) -> str:
    """The config's warehouse URL, with a SQLite file path made relative to the config file."""
    if "://" in value:
        if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
            return "sqlite:///" + relative_to(path, value[len("sqlite:///"):])
        return value
    return relative_to(path, value)


SERVER_KINDS = ("kobo", "central")


def parse_server(name: str, url: str, s: dict[str, Any], where: str) -> ServerConfig:
    """One [servers.NAME] table, its kind's keys checked."""
    kind = str(s.get("kind", "kobo"))
    if kind not in SERVER_KINDS:
        raise ConfigError(f"{where}.kind: '{kind[:20]}' must be \"kobo\" or \"central\"")
    if kind == "kobo":
        for key in ("email_env", "password_env", "project"):
            if key in s:
                raise ConfigError(f"{where}.{key}: only an ODK Central server (kind = \"central\") has one")
        return ServerConfig(name, url, check_env_name(str(s.get("token_env", "KOBO_TOKEN")), f"{where}.token_env"))
    project = s.get("project")
    if isinstance(project, bool) or not isinstance(project, int) or project < 1:
        raise ConfigError(f"{where}.project: an ODK Central server needs the number of its project, like project = 3")
    email_env, password_env = s.get("email_env"), s.get("password_env")
    token_env = s.get("token_env")
    if (email_env is None) != (password_env is None):
        raise ConfigError(f"{where}: give both email_env and password_env (a web user's login), or token_env")
    if email_env is None and token_env is None:
        email_env, password_env = "CENTRAL_EMAIL", "CENTRAL_PASSWORD"
    return ServerConfig(
        name, url, kind="central", project=project,
        token_env=check_env_name(str(token_env), f"{where}.token_env") if token_env is not None else None,
        email_env=check_env_name(str(email_env), f"{where}.email_env") if email_env is not None else None,
        password_env=check_env_name(str(password_env), f"{where}.password_env") if password_env is not None
        else None)


def check_form_id(kind: str, uid: str, where: str) -> str:
    """A form named in a config or a flag: a KoBo asset uid, or a Central xmlFormId."""
    if kind == "central":
        from sync.central_client import check_xml_form_id

        try:
            return check_xml_form_id(uid)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc} or \"all\"") from None
    if not is_asset_uid(uid):
        raise ConfigError(f"{where}: '{uid[:60]}' is not a KoBo asset uid (like aX7Yk3mQ9pLrT2vB8cN4dW) or \"all\"")
    return uid


def parse_config(data: dict[str, Any], path: Path | None = None) -> Config:
    name = path.name if path else "config"
    _unknown(data, {"warehouse", "servers", "assets", "sync", "attachments", "scheduler", "report"}, name)
    warehouse = _table(data, "warehouse", name)
    _unknown(warehouse, {"url"}, f"{name}: [warehouse]")
    url = warehouse_target(str(warehouse.get("url", "amina.db")), path)

    servers: dict[str, ServerConfig] = {}
    for server_name, s in _table(data, "servers", name).items():
        where = f"{name}: [servers.{server_name}]"
        if not isinstance(s, dict):
            raise ConfigError(f"{where} must be a table with url and token_env")
        for secret in ("token", "password", "email"):
            if secret in s:
                raise ConfigError(f"{where}: a {secret} must not be written in the config file; put it in an "
                                  f"environment variable and name that variable in {secret}_env")
        _unknown(s, {"url", "kind", "token_env", "email_env", "password_env", "project"}, where)
        try:
            server_url = normalize_server_url(str(s.get("url", "")))
        except ConfigError as exc:
            raise ConfigError(f"{where}.url: {exc}") from None
        servers[server_name] = parse_server(server_name, server_url, s, where)
    if not servers:
        raise ConfigError(f"{name}: no [servers.NAME] table: name at least one KoBo or ODK Central server")

    raw_assets = data.get("assets", [])
    if not isinstance(raw_assets, list) or not raw_assets:
        raise ConfigError(f"{name}: no [[assets]]: list the forms to sync (uid = \"a…\" or uid = \"all\")")
    assets = []
    for index, a in enumerate(raw_assets):
        where = f"{name}: assets[{index}]"
        if not isinstance(a, dict):
            raise ConfigError(f"{where} must be a table")
        _unknown(a, {"server", "uid", "schedule", "sensitive"}, where)
        server = str(a.get("server", next(iter(servers)) if len(servers) == 1 else ""))
        if server not in servers:
            raise ConfigError(f"{where}.server: '{server}' is not one of the servers ({', '.join(servers)})")
        uid = str(a.get("uid", ""))
        if uid != "all":
            check_form_id(servers[server].kind, uid, f"{where}.uid")
        schedule = parse_schedule(a.get("schedule", {"every": "1h"}), f"{where}.schedule")
        sensitive = a.get("sensitive", [])
        if not isinstance(sensitive, list) or not all(isinstance(x, str) for x in sensitive):
            raise ConfigError(f"{where}.sensitive: must be a list of question paths, e.g. [\"profile/name\"]")
        assets.append(AssetConfig(server=server, uid=uid, schedule=schedule, sensitive=tuple(sensitive)))
    ids = [a.job_id for a in assets]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate:
        raise ConfigError(f"{name}: asset {duplicate.split(':', 2)[2]} of server {duplicate.split(':')[1]} "
                          "is listed twice")

    sync = dict(_table(data, "sync", name))
    _unknown(sync, {"page_size", "overlap_minutes", "sweep_every", "max_delete_fraction", "max_response_mb",
                    "full_sweep_every"}, f"{name}: [sync]")
    full_every = parse_interval(sync.pop("full_sweep_every", "1d"), f"{name}: [sync].full_sweep_every",
                                allow_never=True, allow_zero=True)
    for key, value in sync.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: [sync].{key}: '{value}' must be a number")
    options = SyncOptions(**sync, full_sweep_every_seconds=full_every)
    if not (1 <= options.page_size <= 30000) or not isinstance(options.page_size, int):
        raise ConfigError(f"{name}: [sync].page_size must be a whole number between 1 and 30000 (KoBo serves at "
                          "most 1000)")
    if not (0 <= options.max_delete_fraction <= 1):
        raise ConfigError(f"{name}: [sync].max_delete_fraction must be between 0 and 1")
    if not (0 <= options.overlap_minutes <= 7 * 24 * 60):
        raise ConfigError(f"{name}: [sync].overlap_minutes must be between 0 and 10080 (a week)")
    if not isinstance(options.sweep_every, int) or options.sweep_every < 0:
        raise ConfigError(f"{name}: [sync].sweep_every must be a whole number, 0 or more")
    if not (1 <= options.max_response_mb <= 4096):
        raise ConfigError(f"{name}: [sync].max_response_mb must be between 1 and 4096")

    att = _table(data, "attachments", name)
    _unknown(att, {"mode", "directory", "allowed_origins"}, f"{name}: [attachments]")
    mode = str(att.get("mode", "metadata"))
    if mode not in ("metadata", "download"):
        raise ConfigError(f"{name}: [attachments].mode: '{mode}' must be \"metadata\" or \"download\"")
    origins = att.get("allowed_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError(f"{name}: [attachments].allowed_origins must be a list of URLs like "
                          "[\"https://files.example.org\"]")
    try:
        allowed = tuple(normalize_server_url(o, what="attachment origin") for o in origins)
    except ConfigError as exc:
        raise ConfigError(f"{name}: [attachments].allowed_origins: {exc}") from None
    policy = AttachmentPolicy(mode=mode, directory=Path(relative_to(path, str(att.get("directory", "attachments")))),
                              allowed_origins=allowed)

    sched = _table(data, "scheduler", name)
    _unknown(sched, {"misfire_grace_seconds"}, f"{name}: [scheduler]")
    grace = sched.get("misfire_grace_seconds", 300)
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 1:
        raise ConfigError(f"{name}: [scheduler].misfire_grace_seconds: '{grace}' must be a whole number of seconds")
    return Config(path=path, warehouse_url=url, servers=servers, assets=tuple(assets), sync=options,
                  attachments=policy, misfire_grace_seconds=grace, report=parse_report(data, path, name))


REPORT_LANGS = ("en", "ar", "ckb")


def parse_report(data: dict[str, Any], path: Path | None, name: str) -> ReportConfig | None:
    """[report]: written after each sync when present; a relative path is relative to the config file."""
    if "report" not in data:
        return None
    rep = _table(data, "report", name)
    where = f"{name}: [report]"
    _unknown(rep, {"path", "lang", "threshold", "stale_after_hours"}, where)
    target = rep.get("path", "report.html")
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(f"{where}.path: must be a file name like \"report.html\"")
    file = Path(target).expanduser()
    if not file.is_absolute() and path is not None:
        file = path.resolve().parent / file
    lang = rep.get("lang", "en")
    if lang not in REPORT_LANGS:
        raise ConfigError(f"{where}.lang: '{lang}' must be one of {', '.join(REPORT_LANGS)}")
    threshold = rep.get("threshold", 5)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= 1000:
        raise ConfigError(f"{where}.threshold: '{threshold}' must be a whole number from 1 to 1000 (5 is usual)")
    stale = rep.get("stale_after_hours", 24)
    if isinstance(stale, bool) or not isinstance(stale, int | float) or stale <= 0:
        raise ConfigError(f"{where}.stale_after_hours: '{stale}' must be a number of hours above 0")
    return ReportConfig(path=file, lang=lang, threshold=threshold, stale_after_hours=float(stale))


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("AMINA_CONFIG")
    return Path(env) if env else DEFAULT_PATH


def load_config(explicit: str | Path | None = None) -> Config:
    path = config_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}: copy amina.example.toml to {path} and edit it "
                          "(or pass --config / set AMINA_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file in UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: not valid TOML: {exc}") from exc
    return parse_config(data, path)
