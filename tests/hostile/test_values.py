"""Class 1 and 12: one value no column can hold never blocks a form and never changes silently.

Each case corrupts one answer of the second of four submissions as a server could send it. The sync must
succeed with every submission stored, the value NULL in its typed column and named in the row's
`_issues`, and the raw JSON keeping the original — on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sync.engine import sync_asset
from tests.hostile.conftest import ids, on_data, raw_data, rows, warehouse

Mutate = Callable[[dict[str, Any]], None]


def set_key(key: str, value: Any) -> Mutate:
    def mutate(doc: dict[str, Any]) -> None:
        if "household/hh_size" in doc or key.startswith("_"):  # a whole submission (the sweep asks for three keys)
            doc[key] = value
    return mutate


def set_member(key: str, value: Any) -> Mutate:
    def mutate(doc: dict[str, Any]) -> None:
        if "household/members" in doc:
            doc["household/members"][0][f"household/members/{key}"] = value
    return mutate


def set_visit(key: str, value: Any) -> Mutate:
    def mutate(doc: dict[str, Any]) -> None:
        if "household/members" in doc:
            doc["household/members"][0]["household/members/visits"][0][f"household/members/visits/{key}"] = value
    return mutate


@dataclass(frozen=True)
class Case:
    mutate: Mutate | None  # the submission changed as a dict
    raw: tuple[bytes, bytes] | None = None  # or: its marker text replaced in the page's bytes
    table: str = "household"
    column: str | None = None  # must be NULL
    issue: str = ""  # must be in _issues
    kept: str | None = None  # must be in the raw JSON


MARK = "MARK-ME"
CASES = {
    "integer beyond int64": Case(set_key("household/hh_size", "99999999999999999999"), column="hh_size",
                                 issue="household/hh_size: '99999999999999999999' is beyond the 64-bit",
                                 kept="99999999999999999999"),
    "integer in exponent form beyond int64": Case(set_key("household/hh_size", "1e20"), column="hh_size",
                                                  issue="beyond the 64-bit integer range", kept="1e20"),
    "negative integer beyond int64": Case(set_key("household/hh_size", "-99999999999999999999"), column="hh_size",
                                          issue="beyond the 64-bit integer range"),
    "integer that is not whole": Case(set_key("household/hh_size", "3.7"), column="hh_size",
                                      issue="'3.7' is not a whole number"),
    "integer as a JSON number beyond 64 bits": Case(
        None, raw=(f'"{MARK}"'.encode(), b"123456789012345678901234567890"), column="hh_size",
        issue="beyond the 64-bit integer range", kept="123456789012345678901234567890"),
    "repeat integer beyond int64": Case(set_member("member_age", "1e30"), table="household__members",
                                        column="member_age", issue="household/members/member_age"),
    "decimal nan": Case(set_key("household/income", "nan"), column="income", issue="'nan' is not a finite number",
                        kept='"nan"'),
    "decimal 1e999": Case(set_key("household/income", "1e999"), column="income", issue="is not a finite number"),
    "decimal inf": Case(set_key("household/income", "inf"), column="income", issue="is not a finite number"),
    "decimal -Infinity": Case(set_key("household/income", "-Infinity"), column="income",
                              issue="is not a finite number"),
    "decimal text": Case(set_key("household/income", "twelve"), column="income", issue="'twelve' is not a number"),
    "date year 0": Case(set_key("household/visit_date", "0000-01-01"), column="visit_date", issue="is not a date"),
    "date 30 February": Case(set_key("household/visit_date", "2026-02-30"), column="visit_date",
                             issue="is not a date"),
    "datetime that overflows in UTC": Case(set_key("start", "0001-01-01T00:00:00+01:00"), column="start",
                                           issue="start: '0001-01-01T00:00:00+01:00' is not a date and time"),
    "datetime past year 9999 in UTC": Case(set_key("end", "9999-12-31T23:59:59-01:00"), column="end",
                                           issue="is not a date and time"),
    "repeat datetime garbage": Case(set_visit("visit_at", "yesterday"), table="household__visits",
                                    column="visit_at", issue="household/members/visits/visit_at"),
    "_submission_time that overflows": Case(set_key("_submission_time", "0001-01-01T00:00:00+01:00"),
                                            column="_submission_time", issue="_submission_time"),
    "_submission_time as a number": Case(set_key("_submission_time", 12345), column="_submission_time",
                                         issue="_submission_time"),
    "validation timestamp in milliseconds": Case(
        set_key("_validation_status", {"timestamp": 1767225600000, "uid": "validation_status_approved",
                                       "by_whom": "sup", "label": "Approved"}),
        column="_validation_at", issue="_validation_status.timestamp: '1767225600000' is not a Unix time"),
    "validation timestamp as text": Case(
        set_key("_validation_status", {"timestamp": "soon", "uid": "validation_status_on_hold"}),
        column="_validation_at", issue="_validation_status.timestamp"),
    "validation status as a list": Case(set_key("_validation_status", ["approved"]), column="_validation_status",
                                        issue="_validation_status: expected an object"),
    "NUL in a text answer": Case(set_key("household/hh_head_name", "Am\x00ina"),
                                 issue="household/hh_head_name: held a NUL", kept="\\u0000"),
    "NUL in a select_one code": Case(set_visit("vaccinated", "y\x00es"), issue="held a NUL"),
    "NUL in a key": Case(set_key("bogus\x00key", "x"), issue="held a NUL"),
    "NUL in _uuid": Case(set_key("_uuid", "abc\x00def"), issue="_uuid: held a NUL"),
    "NUL in a repeat's text": Case(set_member("member_name", "Om\x00ar"), issue="held a NUL"),
    "lone surrogate in a text answer": Case(None, raw=(f'"{MARK}"'.encode(), b'"caf\\ud800e"'),
                                            issue="held a NUL character or a lone surrogate", kept="\\ud800"),
    "lone low surrogate": Case(None, raw=(f'"{MARK}"'.encode(), b'"\\udfff"'), issue="lone surrogate"),
    "invalid UTF-8 bytes": Case(None, raw=(f'"{MARK}"'.encode(), b'"\xff\xfe bad"'), issue=""),
    "raw control character in a string": Case(None, raw=(f'"{MARK}"'.encode(), b'"tab\x01here"'), issue=""),
    "answer that is an object": Case(set_key("household/hh_size", {"value": "3"}), column="hh_size",
                                     issue="household/hh_size: expected an answer, got dict"),
    "answer that is a list": Case(set_key("household/income", ["1", "2"]), column="income",
                                  issue="household/income: expected an answer, got list"),
    "answer that is a boolean": Case(set_key("household/hh_size", True), column="hh_size",
                                     issue="expected an answer, got bool"),
    "repeat that is a string": Case(set_key("household/members", "Amina, Omar"),
                                    issue="household/members: expected a list of repeat instances"),
    "repeat item that is not an object": Case(set_key("household/members", ["Amina", None]),
                                              issue="household/members[1]: expected an object"),
    "geopoint out of range": Case(set_key("household/location", "999 999"), issue="household/location"),
    "geopoint of nan": Case(set_key("household/location", "nan nan 0 0"), issue="household/location"),
    "select_multiple of ten thousand codes": Case(set_key("crops", " ".join(["food"] * 10000)), issue=""),
    "text of a megabyte": Case(set_key("household/hh_head_name", "ن" * 500_000), issue=""),
    "_attachments that is not a list": Case(set_key("_attachments", "photo.jpg"), issue=""),
    "attachment with an object for a uid": Case(set_key("_attachments", [{"uid": {"x": 1}, "filename": ["a"]}]),
                                                issue=""),
    "_submitted_by that is an object": Case(set_key("_submitted_by", {"name": "x"}), column="_submitted_by",
                                            issue="_submitted_by: expected text"),
    "__version__ that is a path": Case(set_key("__version__", "../../../etc"), issue=""),
}


@pytest.mark.parametrize("name", list(CASES))
def test_one_unstorable_value_is_null_reported_and_kept_raw(kobo, client, uid, warehouse_url, name):
    case = CASES[name]
    target = ids(kobo, uid)[1]
    if case.mutate is not None:
        on_data(kobo, lambda doc: case.mutate(doc) if doc.get("_id") == target else None)
    else:
        kobo.store.submission(uid, target)["household/hh_size"] = "MARK-ME"
        raw_data(kobo, lambda data: data.replace(case.raw[0], case.raw[1]))
    wh = warehouse(warehouse_url)
    report = sync_asset(client, wh, uid)
    assert report.status == "ok" and report.fetched == 4 and report.quarantined == 0
    stored = {r["_id"]: r for r in rows(wh, "household")}
    assert set(stored) == set(ids(kobo, uid)), "every submission is stored"
    bad = stored[target]
    assert case.issue in (bad["_issues"] or ""), bad["_issues"]
    if case.issue:
        assert report.bad_values >= 1
    assert all(not r["_issues"] for sid, r in stored.items() if sid != target)
    if case.column is not None:
        if case.table == "household":
            assert bad[case.column] is None
        else:
            assert any(r[case.column] is None for r in rows(wh, case.table) if r["_submission_id"] == target)
    raw = next(r["json"] for r in rows(wh, "submissions_raw", schema="restricted") if r["submission_id"] == target)
    json.loads(raw)  # always valid JSON
    if case.kept:
        assert case.kept in raw
    again = sync_asset(client, wh, uid)  # and nothing is stuck: the next run goes through too
    assert again.status == "ok"
    wh.dispose()
