"""Server URLs and origins: where a credential may be sent.

A server URL is normalised once, where it enters (flag or config): scheme and host in lower case, the
default port dropped, no trailing slash, no `/api/v2` suffix (the client adds the API paths itself).
A URL that carries credentials (`https://user:pw@host`, `?token=…`) is refused, so they are never
stored, logged or printed; so is one without a scheme (`kf.kobotoolbox.org`), which would otherwise be
read as a relative path.

The client sends its token only to the configured origin (scheme, host and port). A link the server
answers with (a `next` page, an attachment's `download_url`, a redirect) that points anywhere else, or
downgrades https to http, never receives it.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

from common.errors import ConfigError

API_SUFFIXES = ("/api/v2", "/api/v1", "/v1")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SECRET_PARAM = re.compile(r"(^|&)(token|key|api_key|apikey|access_token|password|auth)=", re.IGNORECASE)

Origin = tuple[str, str, int]  # (scheme, host, port)


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"'{_shown(url)}' is not a server URL ({exc}): expected e.g. https://kf.kobotoolbox.org"
                          ) from None
    return parts


def _shown(url: str) -> str:
    """The URL as it may be printed: without user, password or query (which may hold a secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def normalize_server_url(url: str, *, what: str = "server URL") -> str:
    """`https://KF.kobotoolbox.org:443/api/v2/` → `https://kf.kobotoolbox.org`; ConfigError when the URL has no
    http(s) scheme or host, or carries credentials."""
    text = str(url).strip()
    if not text:
        raise ConfigError(f"the {what} is empty: give one like https://kf.kobotoolbox.org")
    if "://" not in text:
        raise ConfigError(f"the {what} '{_shown('//' + text)[2:]}' has no scheme: write https://{text.split('/')[0]}")
    parts = _split(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"the {what} must start with https:// (or http:// for a server on this machine), "
                          f"not {scheme}://")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"the {what} {_shown(text)} carries a user name or password: remove it from the URL; "
                          "amina authenticates with a token read from an environment variable (token_env)")
    if parts.query or parts.fragment:
        secret = bool(_SECRET_PARAM.search(parts.query))
        raise ConfigError(f"the {what} {_shown(text)} has a query{' with a credential' if secret else ''} or "
                          "fragment: give only scheme, host and path; the token comes from an environment variable")
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigError(f"the {what} '{_shown(text)}' has no host: expected e.g. https://kf.kobotoolbox.org")
    port = parts.port
    netloc = f"[{host}]" if ":" in host else host
    if port and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = re.sub(r"/+", "/", parts.path).rstrip("/")
    for suffix in API_SUFFIXES:
        if path.lower().endswith(suffix):
            path = path[: -len(suffix)].rstrip("/")
            break
    return urlunsplit((scheme, netloc, path, "", ""))


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of an absolute URL; None for a relative one or one that cannot be read."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def same_origin(url: str, base: str) -> bool:
    mine = origin_of(base)
    return mine is not None and origin_of(url) == mine


def resolve(base: str, link: str) -> str:
    """A link from an answer (absolute, or relative to the server), as an absolute URL."""
    return urljoin(base + "/", link)


def host_label(url: str) -> str:
    """`https://eu.kobotoolbox.org` → `eu.kobotoolbox.org` (with the port when it is not the default)."""
    found = origin_of(url)
    if found is None:
        return _shown(url)
    scheme, host, port = found
    return host if port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"


def shown(url: str) -> str:
    """A URL safe to print: no user, password, query or fragment."""
    return _shown(url)
