"""The conversion boundary on whole columns: answers as Arrow text → typed Arrow columns, and which rows failed.

Each converter gives exactly what `warehouse.convert` gives for one value — the same integers, the same
doubles, the same dates and UTC times — because it either *is* that converter, applied once per distinct
value of the column (a dictionary encoding: ages, scores and dates repeat, so a page of a thousand answers
is a few dozen calls), or, for date-times (nearly every value distinct), Arrow's ISO 8601 parser on the
strict subset of texts where it and Python agree (four-digit years 1900-2199, times 00:00:00-23:59:59,
1-6 fraction digits, `Z` or ±HH:MM), with every other text going to the Python converter.

A value that cannot be stored is not described here: the converter returns a mask of the rows it failed on,
and the columnar loader hands those submissions to the row flattener, which writes the `_issues` text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from forms.schema import Kind
from warehouse.convert import BadValue, to_date, to_decimal, to_int, to_utc_naive

_BAD = object()  # a cached "this text does not convert"
_CACHE_LIMIT = 200_000
_ISO = (r"^(19|20|21)[0-9]{2}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
        r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$")
_HAS_ZONE = r"(Z|[+-][0-9]{2}:[0-9]{2})$"

TYPES: dict[Kind, pa.DataType] = {
    Kind.INTEGER: pa.int64(), Kind.DECIMAL: pa.float64(), Kind.DATE: pa.date32(), Kind.DATETIME: pa.timestamp("us"),
}
CONVERTERS: dict[Kind, Callable[[str], Any]] = {
    Kind.INTEGER: to_int, Kind.DECIMAL: to_decimal, Kind.DATE: to_date, Kind.DATETIME: to_utc_naive,
}


def answer_texts(values: Sequence[Any]) -> tuple[pa.StringArray, np.ndarray | None]:
    """Answers as the row flattener reads them: text as it is, a JSON number as its text, nothing as NULL.
    Anything else (a list, an object, a boolean) is NULL here and its row is in the returned mask (None when
    every value was fine)."""
    try:
        return pa.array(values, pa.string()), None
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    bad = np.zeros(len(values), dtype=bool)
    fixed: list[str | None] = []
    for i, v in enumerate(values):
        if v is None or type(v) is str:
            fixed.append(v)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            fixed.append(str(v))
        else:
            fixed.append(None)
            bad[i] = True
    return pa.array(fixed, pa.string()), bad


class PerValue:
    """A Python function applied once per distinct text, its results kept between pages (bounded)."""

    def __init__(self, function: Callable[[str], Any]):
        self.function = function
        self.cache: dict[str, Any] = {}

    def __call__(self, text: str) -> Any:
        found = self.cache.get(text, None)
        if found is None:
            if len(self.cache) > _CACHE_LIMIT:
                self.cache.clear()
            try:
                found = self.function(text)
            except BadValue:
                found = _BAD
            self.cache[text] = found
        return found

    def column(self, texts: pa.Array, out_type: pa.DataType | None) -> tuple[pa.Array, np.ndarray]:
        """The function over a text column, by its distinct values: (results, failed rows)."""
        encoded = pc.dictionary_encode(texts)
        results = [self(t) for t in encoded.dictionary.to_pylist()]
        failed = np.fromiter((r is _BAD for r in results), dtype=bool, count=len(results))
        values = pa.array([None if r is _BAD else r for r in results], out_type)
        indices = encoded.indices
        return values.take(indices), rows_of(failed, indices)


def rows_of(failed: np.ndarray, indices: pa.Array) -> np.ndarray:
    """Rows whose distinct value failed, from a dictionary encoding's indices (NULL rows never fail)."""
    if not len(failed) or not failed.any():
        return np.zeros(len(indices), dtype=bool)
    positions = indices.fill_null(0).to_numpy(zero_copy_only=False)
    return failed[positions] & indices.is_valid().to_numpy(zero_copy_only=False)


class Converters:
    """The typed converters of one form, each with its cache of distinct values."""

    def __init__(self) -> None:
        self._per_value = {kind: PerValue(function) for kind, function in CONVERTERS.items()}

    def convert(self, kind: Kind, texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """A question's answers in its column's type, and the rows whose answer does not convert."""
        if kind is Kind.DATETIME:
            return self._datetimes(texts)
        return self._per_value[kind].column(texts, TYPES[kind])

    def _datetimes(self, texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
        fast = pc.fill_null(pc.match_substring_regex(texts, _ISO), False)
        if len(texts) == 0:
            return pa.array([], TYPES[Kind.DATETIME]), np.zeros(0, dtype=bool)
        zoned = pc.if_else(pc.match_substring_regex(texts, _HAS_ZONE), texts,
                           pc.binary_join_element_wise(texts, "+00:00", ""))
        zoned = pc.replace_substring_regex(zoned, "Z$", "+00:00")
        candidates = pc.if_else(fast, zoned, pa.scalar(None, pa.string()))
        try:
            parsed = pc.cast(pc.cast(candidates, pa.timestamp("us", "UTC")), pa.timestamp("us"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a date Arrow refuses (Feb 30): Python decides
            return self._per_value[Kind.DATETIME].column(texts, TYPES[Kind.DATETIME])
        rest = pc.and_(pc.invert(fast), texts.is_valid())
        if not pc.any(rest).as_py():
            return parsed, np.zeros(len(texts), dtype=bool)
        slow = pc.if_else(rest, texts, pa.scalar(None, pa.string()))
        converted, bad = self._per_value[Kind.DATETIME].column(slow, TYPES[Kind.DATETIME])
        return pc.if_else(fast, parsed, converted), bad
