"""Logging set-up for the CLI and the scheduler (libraries only ever call logging.getLogger).

Plain lines for people, `--log-format json` (one JSON object a line) for log shippers. A filter
scrubs every secret amina has read, by its value (`register_secret` is called where a token or the
pseudonym key is taken from the environment), and anything shaped like a KoBo token (40 hex digits)
or an ODK Central session token after `Bearer`, from every record, as a last line of defence: amina
never logs them on purpose. Ordinary words are never touched ("the token in KOBO_TOKEN was refused"
reads as written).
"""

from __future__ import annotations

import json
import logging
import re
import sys

_TOKEN_SHAPES = re.compile(r"\b[0-9a-f]{40}\b|(Bearer\s+)[A-Za-z0-9!$._~+/=-]{20,}", re.IGNORECASE)


_secrets: set[str] = set()


def register_secret(value: str) -> str:
    """Remember a secret so no log line can show it; returns it unchanged."""
    if len(value) >= 8:
        _secrets.add(value)
    return value


def redact(text: str) -> str:
    """The text with every registered secret, and anything shaped like a token, replaced by [redacted]."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return _TOKEN_SHAPES.sub(lambda m: f"{m.group(1)}[redacted]" if m.group(1) else "[redacted]", text)


class RedactSecrets(logging.Filter):
    def scrub(self, text: str) -> str:
        return redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class _Redacting(logging.Formatter):
    """Also scrubs what the filter cannot see: the formatted traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(_Redacting):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False))


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record is emitted (not the stream of when it was configured,
    which an in-process caller, a test runner for one, may have closed since)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


def configure(level: int, fmt: str = "text") -> None:
    handler = _Stderr()
    handler.addFilter(RedactSecrets())
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         _Redacting("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "apscheduler.executors", "sqlalchemy.engine", "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
