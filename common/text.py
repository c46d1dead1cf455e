"""Text no database can store, and how it is made storable.

PostgreSQL refuses NUL characters in text; neither engine (nor UTF-8) can hold a lone surrogate, which
a JSON `\\ud800` escape can produce. Such characters are replaced by U+FFFD where text is stored; the
raw JSON of a submission keeps them (escaped).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class RawNumber(str):
    """A JSON number no double can hold (1e400, NaN, Infinity), kept as the text the server sent."""
REPLACEMENT = "\ufffd"


def has_unstorable(text: str) -> bool:
    return _UNSTORABLE.search(text) is not None


def storable(text: str) -> str:
    """Text with NUL characters and lone surrogates replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text) if _UNSTORABLE.search(text) else text


def scrub(value: Any, path: str, problems: list[str]) -> Any:
    """A copy of a parsed JSON value with NUL characters and lone surrogates replaced by U+FFFD, in keys and
    strings at any depth; each key whose value (or name) changed is named in `problems`."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            problems.append(path)
            return _UNSTORABLE.sub(REPLACEMENT, value)
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            name = str(key)
            if _UNSTORABLE.search(name):
                name = _UNSTORABLE.sub(REPLACEMENT, name)
                problems.append(name)
            out[name] = scrub(item, name, problems)
        return out
    if isinstance(value, list):
        return [scrub(item, path, problems) for item in value]
    return value


def storable_json(value: Any) -> Any:
    """`scrub` without the bookkeeping: for definitions and messages, where only the text matters."""
    return scrub(value, "", [])
