"""The conversion boundary: text from a server → values both database engines can store, or a reason.

Every answer and system value of a submission passes through here on its way to a typed column. A
converter either returns a value that fits its column on SQLite and on PostgreSQL (integers within
64 bits, finite doubles, dates and times Python and both engines can hold, text without NUL or lone
surrogates) or raises `BadValue` with a reason a person can read; the flattener then leaves the column
NULL and records the issue, and the raw JSON keeps the original. Nothing here can raise anything else.

`submission_id` decides whether a submission has a usable `_id` at all; one that has not is kept whole
in quarantine instead of blocking its page. `json_text` writes the raw JSON of any parsed answer,
lone surrogates included (escaped), so the original is always kept.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

from common.text import RawNumber, has_unstorable, scrub, storable

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
__all__ = ["BadValue", "has_unstorable", "json_text", "scrub", "storable", "submission_id"]


class BadValue(ValueError):
    """A value that cannot be stored in its typed column; the message says why."""


def to_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)  # "3.0" from some clients is still an integer answer
        except ValueError:
            raise BadValue("is not a whole number") from None
        if not math.isfinite(number) or not number.is_integer():
            raise BadValue("is not a whole number") from None
        if abs(number) > 2**63:
            raise BadValue("is beyond the 64-bit integer range") from None
        value = int(number)
    if not INT64_MIN <= value <= INT64_MAX:
        raise BadValue("is beyond the 64-bit integer range")
    return value


def to_decimal(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue("is not a number") from None
    if not math.isfinite(value):
        raise BadValue("is not a finite number")
    return value


def to_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text[:10]) if len(text) >= 10 and text[4:5] == "-" else dt.date.fromisoformat(text)
    except (ValueError, OverflowError):
        raise BadValue("is not a date (YYYY-MM-DD)") from None


def to_utc_naive(text: str) -> dt.datetime:
    """An ODK/KoBo datetime ('2026-03-10T09:12:45.123+03:00', or UTC without a zone) → naive UTC."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        raise BadValue("is not a date and time that can be stored (ISO 8601, years 1-9999 in UTC)") from None
    return value


def from_unix_seconds(value: Any) -> dt.datetime:
    """KoBo's validation `timestamp` (whole seconds since 1970, UTC) → naive UTC."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadValue("is not a Unix time in seconds")
    try:
        moment = dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        raise BadValue("is not a Unix time in seconds (milliseconds?)") from None
    if moment.year > 2200:
        raise BadValue("is not a Unix time in seconds (milliseconds?)")
    return moment


def to_text(text: str) -> str:
    if has_unstorable(text):
        raise BadValue("holds a NUL character or a lone surrogate, which a database cannot store as text")
    return text


def submission_id(value: Any) -> int | str:
    """The submission's `_id` as a positive 64-bit integer, or the reason it has none usable."""
    if value is None:
        return "it has no _id"
    if isinstance(value, bool):
        return "its _id is a boolean, not an integer"
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return f"its _id {value!r} is not a whole number"
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        number = int(value.strip())
    else:
        return f"its _id {_excerpt(value)} is not an integer"
    if not 1 <= number <= INT64_MAX:
        return f"its _id {_excerpt(value)} is outside 1 … 2^63-1"
    return number


def json_text(value: Any) -> str:
    """JSON text of a parsed answer, as received: orjson, or for what orjson refuses (lone surrogates, integers
    beyond 64 bits, numbers kept as text) a writer that escapes every non-ASCII character of text and writes
    such numbers as they came."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        out: list[str] = []
        _write_json(value, out)
        return "".join(out)


def _write_json(value: Any, out: list[str]) -> None:
    if isinstance(value, RawNumber):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=True))
    elif value is None or isinstance(value, bool | int):
        out.append(json.dumps(value))
    elif isinstance(value, float):
        out.append(repr(value) if math.isfinite(value) else json.dumps(str(value)))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            out.append(("," if i else "") + json.dumps(str(k), ensure_ascii=True) + ":")
            _write_json(v, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _write_json(v, out)
        out.append("]")
    else:
        out.append(json.dumps(str(value), ensure_ascii=True))


def _excerpt(value: Any) -> str:
    return storable(repr(value)[:40])
