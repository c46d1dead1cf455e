"""The one exception hierarchy of amina-sync.

Every message is written for a data manager: where it happened, what went wrong, how to fix it.
No message ever carries a secret (token, key) or a whole response body.
"""

from __future__ import annotations


class AminaError(Exception):
    """Base of every error amina-sync raises on purpose. The CLI prints it as one line."""

    exit_code = 1


class ConfigError(AminaError):
    """A setting, flag or environment variable is missing or wrong."""

    exit_code = 2


class FormBuildError(AminaError):
    """An XLSForm could not be read, compiled or checked."""

    exit_code = 3


class KoboError(AminaError):
    """Talking to a KoBo server failed."""

    exit_code = 4


class KoboRefused(KoboError):
    """KoBo answered with a status that retrying will not fix (401, 403, 404, 400)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class KoboUnavailable(KoboError):
    """KoBo could not be reached or kept failing after every retry (timeouts, 5xx, 429)."""


class WarehouseError(AminaError):
    """The warehouse database refused an operation."""

    exit_code = 5


class SyncInterrupted(AminaError):
    """A stop was asked for (SIGTERM/SIGINT); the page in flight was stored first."""

    exit_code = 130


class AssetBusy(WarehouseError):
    """Another worker is syncing this asset into the same warehouse right now."""

    exit_code = 6


class StopNow(BaseException):
    """Ctrl-C or SIGTERM asked to stop at once (a second time, during a sync): the page in flight is rolled
    back. A BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""
