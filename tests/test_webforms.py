"""The forms in ODK Web Forms' engine (@getodk/xforms-engine under Node): they load, behave in the field as
designed (consent, constraints with messages in three languages, repeats), and every submission the fake
server generates is one the form could have produced."""

from __future__ import annotations

import datetime as dt
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from common.errors import FormBuildError
from fakes.generator import generate
from forms import webforms
from forms.build import CompiledForm, build_forms, compile_source
from forms.content import to_content
from forms.schema import FormSchema
from forms.source import source_paths
from forms.webforms import add_repeats, answer

LANGUAGES = ("English (en)", "Arabic (ar)", "Sorani Kurdish (ckb)")

if webforms.unavailable_reason() and not os.environ.get("CI"):
    pytest.skip(f"@getodk/xforms-engine: {webforms.unavailable_reason()}", allow_module_level=True)


@pytest.fixture(scope="module")
def compiled() -> dict[str, CompiledForm]:
    return {p.stem: compile_source(p, validate=False) for p in source_paths()}  # ODK Validate: test_forms_build


def _elements(submission: str) -> dict[str, str]:
    """path → text of every leaf of an OpenRosa submission (repeats' paths repeat)."""
    out: dict[str, str] = {}

    def walk(el: ET.Element, path: str) -> None:
        children = list(el)
        if not children:
            out[path] = el.text or ""
        for c in children:
            walk(c, f"{path}/{c.tag}" if path else c.tag)

    walk(ET.fromstring(submission), "")
    return out


def test_every_shipped_form_loads_and_opens_in_three_languages(tmp_path):
    built, skipped = build_forms(source_paths(), tmp_path, validate=False, engine=True)
    assert skipped is None and len(built) == 4
    runs = webforms.run_jobs({b.name: b.xform.read_text(encoding="utf-8") for b in built},
                             [{"kind": "load", "form": b.name} for b in built])
    for b, run in zip(built, runs, strict=True):
        assert run.status == "success", (b.name, run.error)
        assert run.languages == LANGUAGES, b.name
        assert b.version and run.node("/data/meta/instanceID")


def test_screening_without_consent_carries_no_further_answers(compiled):
    xform = compiled["vot_screening"].xform
    # the enumerator starts the interview, then the person withdraws consent: what was typed must not leave
    run = webforms.fill(xform, [
        answer("/data/screener", "iom_erbil"),
        answer("/data/consent", "yes"),
        answer("/data/location/governorate", "erbil"),
        answer("/data/profile/full_name", "نور أحمد"),
        answer("/data/profile/sex", "female"),
        answer("/data/profile/age", "24"),
        answer("/data/indicators/exploitation", ["labour", "sexual"]),
        answer("/data/consent", "no"),
    ])
    assert run.payload_status == "ready"
    sent = _elements(run.submission or "")
    answered = {k for k, v in sent.items() if v and not k.startswith("meta/")}
    assert answered <= {"start", "end", "today", "screener", "consent"}, answered
    assert sent["consent"] == "no" and "نور" not in (run.submission or "")
    assert not any(k.startswith(("location", "profile", "indicators", "outcome", "family_members")) for k in sent)
    assert run.node("/data/no_consent_note").relevant
    assert not run.node("/data/profile").relevant


def test_screening_with_consent_asks_for_everything(compiled):
    run = webforms.fill(compiled["vot_screening"].xform, [answer("/data/screener", "iom_erbil"),
                                                         answer("/data/consent", "yes")], serialize=False)
    required = {n.path for n in run.violations if n.violation and n.violation.condition == "required"}
    assert {"location/governorate", "profile/sex", "indicators/exploitation", "outcome/presumed_victim"} <= required


@pytest.mark.parametrize(("women", "men", "valid"), [(3, 5, False), (3, 7, True), (10, 0, True), (0, 11, False)])
def test_attendees_by_sex_must_add_up_to_the_total_with_a_message_in_three_languages(compiled, women, men, valid):
    run = webforms.fill(compiled["awareness_session"].xform, [
        answer("/data/attendees/total", "10"),
        answer("/data/attendees/women", str(women)),
        answer("/data/attendees/men", str(men)),
    ], serialize=False)
    violation = run.node("/data/attendees/men").violation
    if valid:
        assert violation is None
        return
    assert violation is not None and violation.condition == "constraint"
    assert violation.messages == {
        "English (en)": "Women and men must add up to the total number of attendees.",
        "Arabic (ar)": "يجب أن يساوي مجموع النساء والرجال العدد الكلي للحضور.",
        "Sorani Kurdish (ckb)": "کۆی ژنان و پیاوان دەبێت یەکسان بێت بە ژمارەی گشتی ئامادەبووان.",
    }


def test_age_bands_must_add_up_to_the_total(compiled):
    steps = [answer("/data/attendees/total", "10"), answer("/data/attendees/under_18", "2"),
             answer("/data/attendees/age_18_59", "5"), answer("/data/attendees/age_60_plus", "2")]
    run = webforms.fill(compiled["awareness_session"].xform, steps, serialize=False)
    violation = run.node("/data/attendees/age_60_plus").violation
    assert violation and violation.messages["English (en)"] == \
        "The age bands must add up to the total number of attendees."
    fixed = webforms.fill(compiled["awareness_session"].xform, [*steps[:3], answer("/data/attendees/age_60_plus", "3")],
                          serialize=False)
    assert fixed.node("/data/attendees/age_60_plus").violation is None


def test_participants_repeat_serializes_one_node_per_participant(compiled):
    names = ["Amina Yousif", "هێڤی جەلال", "علي حسين"]
    steps = [answer("/data/session/start_date", "2026-03-01"), answer("/data/session/end_date", "2026-03-02"),
             add_repeats("/data/participants", len(names) - 1)]
    for i, name in enumerate(names, start=1):
        steps += [answer(f"/data/participants[{i}]/participant_name", name),
                  answer(f"/data/participants[{i}]/days_attended", "2"),
                  answer(f"/data/participants[{i}]/sessions_attended", ["day1", "day2"])]
    run = webforms.fill(compiled["training_attendance"].xform, steps)
    root = ET.fromstring(run.submission or "")
    participants = root.findall("participants")
    assert [p.findtext("participant_name") for p in participants] == names
    assert [p.findtext("sessions_attended") for p in participants] == ["day1 day2"] * 3
    assert root.findtext("participant_count") == "3"
    # the days on offer follow the training's length (choice_filter), in the engine too
    assert run.node("/data/session/training_days").value == "2"


def test_days_attended_cannot_exceed_the_training(compiled):
    run = webforms.fill(compiled["training_attendance"].xform, [
        answer("/data/session/start_date", "2026-03-01"), answer("/data/session/end_date", "2026-03-01"),
        answer("/data/participants[1]/days_attended", "3")], serialize=False)
    violation = run.node("/data/participants[1]/days_attended").violation
    assert violation and set(violation.messages) == set(LANGUAGES) and all(violation.messages.values())


# a sample per form: enough to cross every branch of the generator; trainings hold ~10 participants each
SAMPLE = {"vot_screening": 80, "awareness_session": 60, "assistance_referral": 60, "training_attendance": 12}


@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_generated_submissions_are_ones_the_form_could_have_produced(compiled, name):
    form = compiled[name]
    schema = FormSchema.from_content(to_content(form.source))
    sample = [g.answers for g in generate(schema, SAMPLE[name], seed=20261123, start_date=dt.date(2026, 1, 1))]
    findings = webforms.restore_findings(schema, form.xform, sample)
    assert findings == [], "\n".join(map(str, findings[:20]))


def test_restore_check_finds_what_a_form_could_not_have_produced(compiled):
    """The check above can fail: doctored submissions are caught."""
    def schema_of(name: str) -> FormSchema:
        return FormSchema.from_content(to_content(compiled[name].source))

    screening = compiled["vot_screening"]
    no_consent_with_name = {"screener": "iom_erbil", "consent": "no", "profile/full_name": "Amina"}
    unknown_question = {"screener": "iom_erbil", "consent": "no", "shoe_size": "42"}
    findings = webforms.restore_findings(schema_of("vot_screening"), screening.xform,
                                         [no_consent_with_name, unknown_question])
    problems = {(f.submission, f.ref): f.problem for f in findings}
    assert "not relevant" in problems[(0, "/data/profile/full_name")]
    assert "no such question" in problems[(1, "/data/shoe_size")]

    awareness = compiled["awareness_session"]
    schema = schema_of("awareness_session")
    [good] = [g.answers for g in generate(schema, 1, seed=3, start_date=dt.date(2026, 1, 1))]
    bad = {**good, "attendees/men": str(int(good["attendees/men"]) + 1)}
    findings = webforms.restore_findings(schema, awareness.xform, [good, bad])
    assert [(f.submission, f.ref) for f in findings] == [(1, "/data/attendees/men")]
    assert "constraint violated" in findings[0].problem and "add up to the total" in findings[0].problem

    assistance = compiled["assistance_referral"]
    miscounted = {"case_code": "ERB-0001", "governorate": "erbil", "date_opened": "2026-01-01", "items_count": "5"}
    findings = webforms.restore_findings(schema_of("assistance_referral"), assistance.xform, [miscounted])
    assert any(f.ref == "/data/items_count" and "the form computes '0'" in f.problem for f in findings)


def test_a_form_the_engine_rejects_fails_the_build_with_its_message_and_the_row(tmp_path):
    source = tmp_path / "bad_function.md"
    source.write_text("| survey |\n| | type | name | label | calculation |\n| | integer | a | A | |\n"
                      "| | calculate | c | | frobnicate(${a}) |\n", encoding="utf-8")
    with pytest.raises(FormBuildError) as info:
        build_forms([source], tmp_path / "out", validate=False, lint=False, engine=True)
    message = str(info.value)
    assert "xforms-engine" in message and "frobnicate" in message
    assert "question 'c'" in message and "line 4 (survey row 3)" in message
    assert not (tmp_path / "out").exists()


def test_engine_missing_is_a_clear_error_or_a_visible_skip(compiled, monkeypatch):
    monkeypatch.setattr(webforms, "ENGINE_DIR", Path("/nonexistent"))
    from forms.build import engine_check

    form = compiled["awareness_session"]
    assert "npm ci" in (engine_check([form], engine=None) or "")
    with pytest.raises(webforms.EngineUnavailable, match="npm ci"):
        engine_check([form], engine=True)


def test_a_failing_engine_process_is_a_clear_error_and_the_next_call_starts_afresh(compiled):
    session = webforms.EngineSession()
    with pytest.raises(FormBuildError, match=r"xforms-engine failed: SyntaxError"):
        session.request("{not json", timeout=60)
    session.close()
    run = webforms.fill(compiled["awareness_session"].xform, [answer("/data/attendees/total", "4")], serialize=False)
    assert run.node("/data/attendees/total").value == "4"
