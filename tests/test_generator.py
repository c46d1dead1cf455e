"""Generated submissions look like KoBo's and are ones our forms could have produced."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from forms.schema import FormSchema, Kind
from forms.source import source_paths
from sync.fake.generator import generate

SCHEMAS = {p.stem: FormSchema.from_source(p) for p in source_paths()}
HERE = Path(__file__).parent


def walk(answers: dict, schema: FormSchema, repeat: str | None = None):
    """(field, value) of every answer, checking KoBo's shape on the way."""
    for key, value in answers.items():
        if isinstance(value, list):
            assert key in schema.repeats_by_path, key
            for item in value:
                assert all(k.startswith(key + "/") for k in item), (key, list(item))
                yield from walk(item, schema, key)
        else:
            assert isinstance(value, str) and value != "", (key, value)
            f = schema.field(key)
            assert f.repeat == repeat, key
            yield f, value


@pytest.mark.parametrize("form", sorted(SCHEMAS))
def test_answers_have_kobo_shape_and_valid_codes(form):
    schema = SCHEMAS[form]
    subs = list(generate(schema, 150, seed=5))
    assert subs == list(generate(schema, 150, seed=5))  # deterministic
    for sub in subs:
        for f, value in walk(sub.answers, schema):
            if f.kind in (Kind.SELECT_ONE, Kind.SELECT_MULTIPLE):
                codes = {c.code for c in schema.choice_lists[f.choice_list].choices}
                assert set(value.split()) <= codes, (f.path, value)
            if f.type == "image":
                assert value in sub.attachments
        assert sub.submission_time > dt.datetime.fromisoformat(sub.answers["end"]).astimezone(dt.UTC).replace(
            tzinfo=None)


def test_screenings_without_consent_carry_no_further_answers():
    subs = list(generate(SCHEMAS["vot_screening"], 400, seed=9))
    refused = [s for s in subs if s.answers["consent"] == "no"]
    assert 10 < len(refused) < 80
    meta = {"start", "end", "today", "deviceid", "username", "consent"}
    assert all(set(s.answers) == meta for s in refused)
    agreed = [s for s in subs if s.answers["consent"] == "yes"]
    for s in agreed:
        a = s.answers
        assert 0 <= int(a["interview/profile/age"]) <= 100
        for q in ("recruitment", "exploitation", "control"):
            codes = a[f"interview/indicators/{q}"].split()
            assert "none" not in codes or codes == ["none"]
        expected = sum(len([c for c in a[f"interview/indicators/{q}"].split() if c != "none"])
                       for q in ("recruitment", "exploitation", "control"))
        expected += a["interview/indicators/movement"] != "none"
        assert a["interview/indicator_score"] == str(expected)


def test_attendance_respects_the_form_logic():
    for s in generate(SCHEMAS["training_attendance"], 60, seed=2):
        a = s.answers
        start, end = dt.date.fromisoformat(a["session/start_date"]), dt.date.fromisoformat(a["session/end_date"])
        days = (end - start).days + 1
        assert end >= start and a["session/training_days"] == str(days)
        assert a["participant_count"] == str(len(a["participants"])) and 5 <= len(a["participants"]) <= 35
        for p in a["participants"]:
            assert 1 <= int(p["participants/days_attended"]) <= days
            assert len(p["participants/days_present"].split()) == int(p["participants/days_attended"])
            assert ("participants/phone" in p) == (p["participants/consent_contact"] == "yes")
            for k in p["participants/knowledge_checks"]:
                pre, post = (int(k[f"participants/knowledge_checks/{x}"]) for x in ("pre_score", "post_score"))
                assert 0 <= pre <= post <= 10 and k["participants/knowledge_checks/gain"] == str(post - pre)


def test_a_form_we_did_not_write_gets_plausible_submissions():
    schema = FormSchema.from_source(HERE / "forms" / "household.md")
    subs = list(generate(schema, 50, seed=1))
    seen = {f.path for s in subs for f, _ in walk(s.answers, schema)}
    assert {"household/hh_size", "household/members/visits/vaccinated", "crops", "photo"} <= seen


def test_arabic_and_kurdish_text_is_there():
    text = " ".join(str(s.answers) for s in generate(SCHEMAS["vot_screening"], 200, seed=3))
    assert any("\u0600" <= ch <= "\u06ff" for ch in text)
    assert any(ch in text for ch in "ێۆڕڵە")  # letters only Sorani Kurdish uses
