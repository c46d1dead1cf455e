"""The column converters (warehouse/vectorised.py) give, value for value, what the row converters give."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from forms.schema import Kind
from warehouse.convert import BadValue, to_date, to_decimal, to_int, to_utc_naive
from warehouse.vectorised import Converters, answer_texts

ONE = {Kind.INTEGER: to_int, Kind.DECIMAL: to_decimal, Kind.DATE: to_date, Kind.DATETIME: to_utc_naive}

ODD = ["", " ", "3.0", "-0", "+5", "1_000", "١٢", "1e3", "inf", "nan", "-1e999", str(2**63), str(-(2**63)),
       "2026-02-30", "2026-02-28", "0001-01-01", "0000-01-01", "9999-12-31T23:59:59-01:00", "2026-03-10T08:00",
       "2026-03-10T06:12:45Z", "2026-03-10T06:12:45.1", "2026-03-10T06:12:45.1234567+03:00", "20260310T061245",
       "2026-03-10 06:12:45", "2026-03-10T24:00:00", "2026-03-10T23:59:60", "2026-03-10T06:12:45+24:00",
       "2026-03-10T06:12:45.123+03:30", "1969-12-31T23:59:59.999999-00:01", "2026-W10-2", "10/03/2026", None]


def _datetimes(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        y, mo, d = rng.randint(1890, 2210), rng.randint(0, 13), rng.randint(0, 32)
        h, mi, s = rng.randint(0, 24), rng.randint(0, 60), rng.randint(0, 60)
        frac = rng.choice(["", "." + "".join(rng.choices("0123456789", k=rng.randint(1, 7)))])
        zone = rng.choice(["", "Z", "+03:00", "-05:30", "+14:00", "-23:59", "+00:00"])
        out.append(f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{zone}")
    return out


def _numbers(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.4:
            out.append(str(rng.randint(-10**6, 10**6)))
        elif kind < 0.8:
            out.append(repr(rng.uniform(-180, 180)))
        else:
            out.append(f"{rng.randint(-999, 999)}.{rng.randint(0, 10**9)}e{rng.randint(-30, 30)}")
    return out


@pytest.mark.parametrize("kind", [Kind.INTEGER, Kind.DECIMAL, Kind.DATE, Kind.DATETIME])
def test_each_value_as_the_row_converter_has_it(kind):
    rng = random.Random(15)
    texts = ODD + _datetimes(rng, 3000) + _numbers(rng, 3000) + [t[:10] for t in _datetimes(rng, 500)]
    values, failed = Converters().convert(kind, pa.array(texts, pa.string()))
    for text, value, bad in zip(texts, values.to_pylist(), failed, strict=True):
        if text is None:
            assert value is None and not bad
            continue
        try:
            expected = ONE[kind](text)
        except BadValue:
            assert bad and value is None, text
        else:
            assert not bad and value == expected and type(value) is type(expected), (text, value, expected)


def test_answers_read_as_the_row_flattener_reads_them():
    texts, bad = answer_texts(["a", None, 3, 2.5, True, [1], {"x": 1}, "b"])
    assert texts.to_pylist() == ["a", None, "3", "2.5", None, None, None, "b"]
    assert bad.tolist() == [False, False, False, False, True, True, True, False]
    assert answer_texts(["a", None])[1] is None
