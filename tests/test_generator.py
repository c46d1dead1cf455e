"""fakes.generator: deterministic submissions shaped like KoBo's, that respect each form's logic."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.generator import GeneratedSubmission, generate
from forms.content import to_content
from forms.schema import FormSchema, Kind
from forms.source import read_markdown

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "forms" / "sources"
START = dt.date(2026, 3, 1)
META = {"start", "end", "today", "deviceid", "username"}
COLLECT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+03:00$")
ARABIC_SCRIPT = re.compile(r"[\u0600-\u06FF]")
KURDISH_LETTERS = re.compile(r"[ێۆڕڵەڤ]")


@pytest.fixture(scope="module")
def screening() -> FormSchema:
    return FormSchema.from_source(SOURCES / "vot_screening.md")


@pytest.fixture(scope="module")
def training() -> FormSchema:
    return FormSchema.from_source(SOURCES / "training_attendance.md")


@pytest.fixture(scope="module")
def screenings(screening) -> list[GeneratedSubmission]:
    return list(generate(screening, 800, seed=7, start_date=START))


@pytest.fixture(scope="module")
def trainings(training) -> list[GeneratedSubmission]:
    return list(generate(training, 60, seed=7, start_date=START))


def instances(answers: dict[str, Any], repeat: str) -> list[dict[str, Any]]:
    """Every instance of `repeat` (a full path) in a submission, however deeply nested."""
    found: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, list):
                if key == repeat:
                    found.extend(value)
                for item in value:
                    walk(item)

    walk(answers)
    return found


def answered(answers: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(path, value) of every answer, inside repeats too."""
    for key, value in answers.items():
        if isinstance(value, list):
            for item in value:
                yield from answered(item)
        else:
            yield key, value


def check_shape(schema: FormSchema, node: dict[str, Any], repeat: str | None = None) -> None:
    """Keys are the full paths of questions at this level or of its child repeats; values are
    non-empty strings, or non-empty lists of dicts shaped the same way."""
    fields = {f.path for f in schema.fields_in(repeat)}
    children = {r.path for r in schema.child_repeats(repeat)}
    for key, value in node.items():
        if key in children:
            assert isinstance(value, list) and value, key
            for item in value:
                assert isinstance(item, dict) and item, key
                assert all(k.startswith(key + "/") for k in item), key
                check_shape(schema, item, key)
        else:
            assert key in fields, f"{key} is not a question of {repeat or 'the top level'}"
            assert isinstance(value, str) and value, (key, value)


# -- the KoBo shape --------------------------------------------------------------------------------------

def test_same_seed_gives_the_same_submissions_and_another_seed_others(screening, training):
    for schema in (screening, training):
        a = list(generate(schema, 30, seed=11, start_date=START))
        b = list(generate(schema, 30, seed=11, start_date=START))
        c = list(generate(schema, 30, seed=12, start_date=START))
        assert a == b
        assert [s.answers for s in a] != [s.answers for s in c]


def test_answers_are_strings_or_lists_of_full_path_dicts(screening, training, household_schema,
                                                         screenings, trainings):
    for schema, subs in ((screening, screenings), (training, trainings),
                         (household_schema, list(generate(household_schema, 100, seed=1, start_date=START)))):
        for sub in subs:
            check_shape(schema, sub.answers)


def test_select_answers_are_codes_of_their_own_choice_list(screening, training, screenings, trainings):
    for schema, subs in ((screening, screenings), (training, trainings)):
        selects = {f.path: f for f in schema.fields if f.kind in (Kind.SELECT_ONE, Kind.SELECT_MULTIPLE)}
        for sub in subs:
            for path, value in answered(sub.answers):
                if path in selects:
                    f = selects[path]
                    codes = value.split()
                    allowed = {c.code for c in schema.choice_lists[f.choice_list].choices}
                    assert set(codes) <= allowed, (path, value)
                    assert len(codes) == len(set(codes)), (path, value)
                    assert f.kind is Kind.SELECT_MULTIPLE or len(codes) == 1, (path, value)


def test_metadata_and_times_look_like_collect(screenings, trainings):
    for sub in screenings + trainings:
        a = sub.answers
        assert COLLECT_TIME.match(a["start"]) and COLLECT_TIME.match(a["end"]), (a["start"], a["end"])
        start, end = dt.datetime.fromisoformat(a["start"]), dt.datetime.fromisoformat(a["end"])
        assert start <= end and a["today"] == a["start"][:10]
        assert a["deviceid"].startswith(("collect:", "ee.kobotoolbox.org:"))
        assert a["username"] == (sub.submitted_by or "username not found")  # Enketo's word for anonymous
        assert sub.submission_time.tzinfo is None  # UTC, naive like the fake store's clock
        assert sub.submission_time > end.astimezone(dt.UTC).replace(tzinfo=None)
        assert START <= start.date() < START + dt.timedelta(days=200)
    days = {s.answers["today"] for s in screenings}
    assert len(days) > 100  # spread over months, not bunched on a few days


def test_without_a_start_date_nothing_is_received_in_the_future(screening, training):
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for schema in (screening, training):
        subs = list(generate(schema, 200, seed=3))
        assert all(s.submission_time <= now for s in subs)
        assert max(s.submission_time for s in subs) > now - dt.timedelta(days=60)
        assert min(s.submission_time for s in subs) < now - dt.timedelta(days=120)


# -- the screening's logic --------------------------------------------------------------------------------

def test_no_consent_means_nothing_but_consent_screener_and_metadata(screenings):
    refused = [s for s in screenings if s.answers["consent"] == "no"]
    assert 20 <= len(refused) <= 150
    for sub in refused:
        assert set(sub.answers) == META | {"consent", "screener"} and not sub.attachments


def test_consented_screenings_hold_the_forms_constraints_and_calculation(screenings):
    consented = [s.answers for s in screenings if s.answers["consent"] == "yes"]
    assert len(consented) > 600
    for a in consented:
        for group in ("location/governorate", "profile/sex", "profile/age", "indicators/recruitment",
                      "outcome/presumed_victim", "outcome/referral"):
            assert group in a  # required and relevant: always answered
        assert 0 <= int(a["profile/age"]) <= 100
        for q in ("indicators/recruitment", "indicators/exploitation", "indicators/control", "outcome/urgent_needs"):
            codes = a[q].split()
            assert "none" not in codes or codes == ["none"], (q, a[q])
        expected = sum(len([c for c in a[f"indicators/{q}"].split() if c != "none"])
                       for q in ("recruitment", "exploitation", "control"))
        expected += a["indicators/movement"] != "none"
        assert a["indicators/indicator_score"] == str(expected)
        if "profile/phone" in a:
            assert re.fullmatch(r"[+]?[0-9]{7,15}", a["profile/phone"])
        if "location/gps" in a:
            lat, lon, _alt, acc = map(float, a["location/gps"].split())
            assert 29 < lat < 38 and 38 < lon < 49 and 0 < acc < 20
        family = a.get("family_members", [])
        assert len(family) <= 4
        for member in family:
            assert 0 <= int(member["family_members/member_age"]) <= 100
            assert set(member) == {"family_members/relationship", "family_members/member_sex",
                                   "family_members/member_age"}
    assert any("family_members" in a for a in consented) and any("family_members" not in a for a in consented)
    assert any("profile/full_name" not in a for a in consented)  # optional questions are sometimes skipped


def test_screenings_read_like_the_programme(screenings):
    consented = [s.answers for s in screenings if s.answers["consent"] == "yes"]
    names = [a["profile/full_name"] for a in consented if "profile/full_name" in a]
    assert any(KURDISH_LETTERS.search(n) for n in names)
    assert any(ARABIC_SCRIPT.search(n) and not KURDISH_LETTERS.search(n) for n in names)
    assert any(n.isascii() for n in names)  # foreign nationals' names in Latin script
    narratives = [a["outcome/narrative"] for a in consented if "outcome/narrative" in a]
    assert any(KURDISH_LETTERS.search(t) for t in narratives) and any(ARABIC_SCRIPT.search(t) for t in narratives)
    nationalities = {a["profile/nationality"] for a in consented}
    assert {"iraqi", "bangladeshi", "filipino", "ethiopian"} <= nationalities
    women = sum(a["profile/sex"] == "female" for a in consented)
    assert women > 0.7 * len(consented)


# -- the attendance form's logic ----------------------------------------------------------------------------

def test_training_sessions_hold_the_forms_logic(trainings):
    for sub in trainings:
        a = sub.answers
        first = dt.date.fromisoformat(a["session/start_date"])
        last = dt.date.fromisoformat(a["session/end_date"])
        assert 0 <= (last - first).days <= 13
        days = int(a["session/training_days"])
        assert days == (last - first).days + 1
        assert ("session/topics_other" in a) == ("other" in a["session/topics"].split())
        participants = a["participants"]
        assert 5 <= len(participants) <= 35
        assert a["participant_count"] == str(len(participants))
        for p in participants:
            assert 1 <= int(p["participants/days_attended"]) <= days
            if "participants/sessions_attended" in p:
                ticked = p["participants/sessions_attended"].split()
                assert len(ticked) == int(p["participants/days_attended"])
                assert all(int(code.removeprefix("day")) <= days for code in ticked)
            assert ("participants/phone" in p) == (p["participants/consent_contact"] == "yes")
            if "participants/phone" in p:
                assert re.fullmatch(r"07[0-9]{9}", p["participants/phone"])
            checks = p["participants/knowledge_checks"]
            assert 1 <= len(checks) <= 3
            items = [c["participants/knowledge_checks/item"] for c in checks]
            assert len(items) == len(set(items))
            for c in checks:
                pre = int(c["participants/knowledge_checks/pre_score"])
                post = int(c["participants/knowledge_checks/post_score"])
                assert 0 <= pre <= 10 and 0 <= post <= 10
                assert c["participants/knowledge_checks/gain"] == str(post - pre)
    assert len({len(s.answers["participants"]) for s in trainings}) > 10


def test_attendance_sheet_photos_are_small_jpegs_named_like_collect(trainings):
    photographed = [s for s in trainings if "photo" in s.answers]
    assert 0 < len(photographed) < len(trainings)
    for sub in trainings:
        if "photo" not in sub.answers:
            assert sub.attachments == {}
            continue
        name = sub.answers["photo"]
        assert re.fullmatch(r"\d{13}\.jpg", name) and set(sub.attachments) == {name}
        data = sub.attachments[name]
        assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9" and len(data) < 1000


def test_participants_come_from_ministries_police_courts_and_ngos(trainings):
    people = [p for s in trainings for p in s.answers["participants"]]
    kinds = {p["participants/organisation_type"] for p in people}
    assert {"ministry", "police", "judiciary", "local_ngo"} <= kinds
    names = [p["participants/participant_name"] for p in people]
    assert any(KURDISH_LETTERS.search(n) for n in names) and any(n.isascii() for n in names)
    assert len({p["participants/work_governorate"] for p in people}) > 10


# -- any form ---------------------------------------------------------------------------------------------

OTHER_FORM = """
| survey |
| | type | name | label | required | relevant | constraint | calculation | choice_filter |
| | start | start | | | | | | |
| | end | end | | | | | | |
| | text | respondent | Respondent's name | yes | | | | |
| | integer | age | Age | yes | | . >= 18 and . <= 65 | | |
| | select_one yn | has_children | Any children? | yes | | | | |
| | integer | children | How many? | yes | ${has_children} = 'yes' | . >= 1 and . <= 12 | | |
| | select_one region | region | Region | yes | | | | |
| | select_one city | city | City | yes | | | | starts-with(name, ${region}) |
| | decimal | income | Monthly income | | | . > 0 | | |
| | date | visit | Visit date | | | | | |
| | time | visit_time | Visit time | | | | | |
| | geopoint | where | Where | | | | | |
| | select_multiple need | needs | Needs | yes | | not(selected(., 'none') and count-selected(.) > 1) | | |
| | calculate | n_needs | | | | | count-selected(${needs}) | |
| | calculate | adult | | | | | if(${age} >= 18, 'adult', 'minor') | |
| | calculate | opaque | | | | | pulldata('prices', 'price', 'item', ${respondent}) | |
| | begin_repeat | visits | Visits | | | | | |
| | date | visit_date | Date | yes | | | | |
| | integer | minutes | Minutes | yes | | . <= 120 | | |
| | end_repeat | | | | | | | |
| | calculate | total_minutes | | | | | sum(${minutes}) | |
| | calculate | n_visits | | | | | count(${visits}) | |
| | note | bye | Thank you | | | | | |
| | image | photo | Photo | | | | | |
| choices |
| | list_name | name | label |
| | yn | yes | Yes |
| | yn | no | No |
| | region | north | North |
| | region | south | South |
| | city | north_mosul | Mosul |
| | city | north_duhok | Duhok |
| | city | south_basra | Basra |
| | city | south_nasiriyah | Nasiriyah |
| | need | food | Food |
| | need | water | Water |
| | need | shelter | Shelter |
| | need | none | None |
| settings |
| | form_id | form_title | version |
| | field_survey | Field survey | 1 |
"""


def test_a_form_we_did_not_write_gets_plausible_submissions_that_follow_its_logic():
    schema = FormSchema.from_content(to_content(read_markdown(OTHER_FORM)))
    subs = list(generate(schema, 300, seed=5, start_date=START))
    for sub in subs:
        a = sub.answers
        check_shape(schema, a)
        assert a["respondent"] and 18 <= int(a["age"]) <= 65
        assert ("children" in a) == (a["has_children"] == "yes")
        if "children" in a:
            assert 1 <= int(a["children"]) <= 12
        assert a["city"].startswith(a["region"] + "_")
        if "income" in a:
            assert float(a["income"]) > 0
        if "visit" in a:
            dt.date.fromisoformat(a["visit"])
        if "visit_time" in a:
            assert re.fullmatch(r"\d{2}:\d{2}:\d{2}\.\d{3}\+03:00", a["visit_time"])
        if "where" in a:
            assert len([float(x) for x in a["where"].split()]) == 4
        needs = a["needs"].split()
        assert "none" not in needs or needs == ["none"]
        assert a["n_needs"] == str(len(needs))
        assert a["adult"] == "adult"
        assert "opaque" not in a and "bye" not in a  # an unreadable calculate is left empty; notes hold nothing
        visits = a.get("visits", [])
        assert a["n_visits"] == str(len(visits))
        assert a["total_minutes"] == str(sum(int(v["visits/minutes"]) for v in visits))
        assert all(int(v["visits/minutes"]) <= 120 for v in visits)
        if "photo" in a:
            assert a["photo"] in sub.attachments
        assert set(a) >= {"start", "end"}
    assert {s.answers["has_children"] for s in subs} == {"yes", "no"}
    assert any("visits" in s.answers for s in subs) and any("visits" not in s.answers for s in subs)


def test_every_kind_of_the_household_test_form_gets_a_well_formed_answer(household_schema):
    seen: set[str] = set()
    for sub in generate(household_schema, 200, seed=2, start_date=START):
        for path, value in answered(sub.answers):
            f = household_schema.field(path)
            seen.add(path)
            match f.kind:
                case Kind.INTEGER:
                    int(value)
                case Kind.DECIMAL:
                    float(value)
                case Kind.DATE:
                    dt.date.fromisoformat(value)
                case Kind.DATETIME:
                    assert COLLECT_TIME.match(value), value
                case Kind.GEOPOINT:
                    assert len(value.split()) == 4
            if f.type == "image":
                assert value in sub.attachments
        assert int(sub.answers["household/hh_size"]) > 0  # its constraint: . > 0
    assert len(seen) == len([f for f in household_schema.fields if f.stores_data])


def test_one_hundred_thousand_screenings_take_seconds_not_minutes(screening):
    began = time.process_time()
    for _ in generate(screening, 5_000, seed=1, start_date=START):
        pass
    per_100k = (time.process_time() - began) * 20
    assert per_100k < 30, f"{per_100k:.1f} s of CPU per 100,000 screenings"


def test_awareness_attendees_add_up_and_assistance_totals_match():
    from forms.schema import FormSchema
    from forms.source import SOURCES_DIR

    awareness = FormSchema.from_source(SOURCES_DIR / "awareness_session.md")
    for sub in generate(awareness, 100, seed=4):
        a = sub.answers
        total = int(a["attendees/total"])
        assert int(a["attendees/women"]) + int(a["attendees/men"]) == total
        assert sum(int(a[f"attendees/{k}"]) for k in ("under_18", "age_18_59", "age_60_plus")) == total
    assistance = FormSchema.from_source(SOURCES_DIR / "assistance_referral.md")
    for sub in generate(assistance, 100, seed=4):
        a = sub.answers
        values = [float(i.get("assistance_items/value_usd", 0)) for i in a.get("assistance_items", [])]
        assert abs(float(a["total_value_usd"]) - sum(values)) < 1e-6
        assert a["items_count"] == str(len(a.get("assistance_items", [])))
        assert a["case_code"][3] == "-" and a["case_code"][:3].isupper()
