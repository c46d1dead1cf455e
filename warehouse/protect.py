"""Personal data out of analysts' reach: keyed pseudonyms in their tables, the values kept apart.

A question marked sensitive (`amina::sensitive` in the XLSForm, or listed in the config for forms we
did not write) never has its value in a form table. Its column holds a keyed pseudonym instead —
HMAC-SHA256 with a secret key from the environment (AMINA_PSEUDONYM_KEY), over the value normalized
(Unicode NFKC, case-folded, spaces collapsed) — so the same person links across forms and sessions
without being named, and nobody without the key can test a guess. A sensitive geopoint keeps only
coordinates rounded to 0.1° (about 11 km). The values themselves go to `restricted_values` (with the
raw JSON in `submissions_raw`), which on PostgreSQL live in the schema `restricted`.
"""

from __future__ import annotations

import hmac
import os
import unicodedata

from common.errors import ConfigError
from common.logs import register_secret

KEY_ENV = "AMINA_PSEUDONYM_KEY"
MIN_KEY_LENGTH = 16
COARSE_DIGITS = 1  # decimal places kept of a sensitive geopoint's latitude and longitude


def normalize(value: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


class Pseudonymizer:
    def __init__(self, key: str):
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(f"{KEY_ENV} is too short: use at least {MIN_KEY_LENGTH} characters of a random "
                              "secret (e.g. the output of: openssl rand -hex 32)")
        self._key = key.encode("utf-8")
        self._hmac = hmac.new(self._key, digestmod="sha256")  # keyed once; each pseudonym copies it

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymizer(<key hidden>)"

    def pseudonym(self, value: str) -> str:
        mac = self._hmac.copy()  # HMAC-SHA256(key, value): the same pseudonyms as ever, without re-keying
        mac.update(normalize(value).encode("utf-8"))
        return f"p_{mac.hexdigest()[:20]}"


def pseudonymizer_from_env() -> Pseudonymizer | None:
    key = register_secret(os.environ.get(KEY_ENV, ""))
    return Pseudonymizer(key) if key else None


def missing_key_error(form: str, paths: list[str]) -> ConfigError:
    shown = ", ".join(paths[:4]) + (" …" if len(paths) > 4 else "")
    return ConfigError(f"form '{form}' marks {len(paths)} question(s) as personal data ({shown}): set {KEY_ENV} "
                       "to a long random secret (e.g. export AMINA_PSEUDONYM_KEY=$(openssl rand -hex 32)) and keep "
                       "it: the same key must be used for every sync so pseudonyms stay linkable")
