"""FormSchema.from_xform (forms/xform.py): an XForm, as ODK Central serves it, read into the same schema the KoBo
path builds from KoBo's `content`.

For every programme form (forms/sources/) and every form of the spec-coverage corpus (tests/corpus/), the schema
read from pyxform's XForm is held against `from_content` of the same source, field by field. Where KoBo and
Central really differ, the difference is asserted as such (and explained), never ignored:

- **metadata KoBo moves** (`forms.content.KOBO_META_TYPES`): KoBo's importer puts `start`, `end`, `today`,
  `deviceid`… at the top of the survey, so a `start` written inside a group is keyed `start` on KoBo; pyxform, and
  so Central, compiles the XLSForm as written: `device/start`. `audit` is `meta/audit` on both, but the XForm
  has it last (under `meta`), KoBo's content first; `xml-external`/`csv-external` rows are secondary instances in
  the XForm, not data nodes, so their place among the questions is not in it (the schema lists them last).
- **choice lists no question uses** are in KoBo's content, not in the XForm (pyxform writes an instance only for
  a list a select reads).
- **the title**: an XLSForm without `form_title` gets the form id as `<h:title>` from pyxform; KoBo's content has
  no title at all (KoBo shows the asset's name), and `from_content` falls back to "form".
- **`required` spelled as a cell**: KoBo's content keeps `required: "true"` as written; the XForm has `true()`,
  which the schema reads as "yes" (both are "required").
- forms pyxform does not take as written (KoBo's rank/score/matrix rows, a question without a name) cannot be
  uploaded to Central at all; they are compared in the XForm KoBo itself deploys (`compile_deployed`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import FormBuildError
from forms.build import compile_source
from forms.content import KOBO_META_TYPES, to_content
from forms.schema import FormSchema, Kind
from forms.source import read_source, source_paths
from forms.xform import parse_xform, xlsform_expression
from tests.xform_oracle import compile_deployed

CORPUS = Path(__file__).parent / "corpus"
XLSFORMS = sorted((CORPUS / "xlsform").glob("*.md")) + sorted((CORPUS / "xlsform" / "versions").glob("v*.md"))
CONTENT = sorted((CORPUS / "content").glob("*.json"))
HOUSEHOLD = Path(__file__).parent / "forms" / "household.md"
FIELD_ATTRS = ("name", "type", "kind", "repeat", "choice_list", "labels", "hints", "required", "relevant", "constraint",
               "constraint_message", "calculation", "choice_filter", "appearance", "default", "sensitive", "generated")


def _required(value: str | None) -> str | None:
    return "yes" if value in ("yes", "true", "True", "TRUE", "true()") else value


def differences(kobo: FormSchema, central: FormSchema, *, moved: dict[str, str] | None = None) -> list[str]:
    """Every way the two schemas of one form disagree, as readable lines. `moved`: KoBo path → Central path for
    the metadata KoBo's importer moves to the top."""
    moved = moved or {}
    out: list[str] = []
    for attr in ("form_id", "version", "languages", "language_names"):
        if getattr(kobo, attr) != getattr(central, attr):
            out.append(f"{attr}: {getattr(kobo, attr)!r} vs {getattr(central, attr)!r}")
    theirs = {f.path: f for f in central.fields}
    # in document order, but for the nodes the XForm places elsewhere: the audit (under meta, last) and external
    # instances (secondary instances, not data nodes: after the questions)
    elsewhere = ("audit", "xml-external", "csv-external")
    # (the rows KoBo moves are out of place by definition: where they went is `moved`)
    order_k = [f.path for f in kobo.fields if f.type not in elsewhere and f.path not in moved]
    order_c = [f.path for f in central.fields if f.type not in elsewhere and f.path not in moved.values()]
    if order_k != order_c:
        out.append(f"paths: {order_k} vs {order_c}")
    if {f.path for f in kobo.fields if f.type in elsewhere} != {f.path for f in central.fields if f.type in elsewhere}:
        out.append("audit or external instances differ")
    for f in kobo.fields:
        g = theirs.get(moved.get(f.path, f.path))
        if g is None:
            continue
        for attr in FIELD_ATTRS:
            mine, other = getattr(f, attr), getattr(g, attr)
            if attr == "required":
                mine, other = _required(mine), _required(other)
            if mine != other:
                out.append(f"{f.path}.{attr}: {mine!r} vs {other!r}")
    repeats_k = [(moved.get(r.path, r.path), r.name, r.parent, dict(r.labels), r.count, r.sensitive)
                 for r in kobo.repeats]
    repeats_c = [(r.path, r.name, r.parent, dict(r.labels), r.count, r.sensitive) for r in central.repeats]
    if repeats_k != repeats_c:
        out.append(f"repeats: {repeats_k} vs {repeats_c}")
    if kobo.groups != central.groups:
        out.append(f"groups: {kobo.groups} vs {central.groups}")
    for name, cl in central.choice_lists.items():
        if kobo.choice_lists.get(name) != cl:
            out.append(f"choice list {name}: {kobo.choice_lists.get(name)} vs {cl}")
    used = {f.choice_list for f in kobo.fields if f.choice_list}
    for name in kobo.choice_lists.keys() - central.choice_lists.keys():
        if name in used:
            out.append(f"choice list {name} (used by a question) missing from the XForm")
    return out


def kobo_moves(content: dict, central: FormSchema) -> dict[str, str]:
    """KoBo path → XForm path of the metadata rows KoBo's importer moved to the top."""
    names = {r.get("name") for r in content["survey"] if r.get("type") in KOBO_META_TYPES and r.get("type") != "audit"}
    return {f.name: f.path for f in central.fields if f.name in names and f.path != f.name}


# -- the programme's forms: pyxform's XForm of our source, as Central would store it ------------------------------


@pytest.mark.parametrize("path", source_paths(), ids=lambda p: p.stem)
def test_programme_forms_agree_with_from_content(path: Path) -> None:
    compiled = compile_source(path, validate=False, lint=False)
    kobo = FormSchema.from_content(to_content(compiled.source))
    central = FormSchema.from_xform(compiled.xform, sensitive=kobo.sensitive_paths)
    assert differences(kobo, central) == []
    assert kobo.title == central.title
    assert central.languages == ("en", "ar", "ckb")
    assert dict(kobo.choice_lists) == dict(central.choice_lists)  # every list is used: the labels of each, all three
    assert {f.kind for f in central.fields} >= {Kind.SELECT_ONE, Kind.TEXT, Kind.DATETIME}


def test_sensitive_marks_travel_in_the_xform_and_from_the_caller_spread_through_groups() -> None:
    compiled = compile_source(Path("forms/sources/vot_screening.md").resolve(), validate=False, lint=False)
    kobo = FormSchema.from_content(to_content(compiled.source))
    from_binds = FormSchema.from_xform(compiled.xform)  # our build writes amina:sensitive on each marked bind
    assert 'amina:sensitive="yes"' in compiled.xform and set(from_binds.sensitive_paths) == set(kobo.sensitive_paths)
    plain = compiled.xform.replace('amina:sensitive="yes"', "")  # an XForm not built by us has no such marks
    unmarked = FormSchema.from_xform(plain)
    assert unmarked.sensitive_paths == ()
    marked = FormSchema.from_xform(plain, sensitive={"profile", "gps"})
    assert set(marked.sensitive_paths) == {f.path for f in unmarked.fields if f.path.startswith("profile/")} | {
        "location/gps"}


# -- the corpus: every type, structure and setting --------------------------------------------------------------


@pytest.mark.parametrize("path", [*XLSFORMS, HOUSEHOLD], ids=lambda p: p.stem)
def test_corpus_xlsforms_in_the_xform_kobo_deploys(path: Path) -> None:
    content = to_content(read_source(path))
    kobo = FormSchema.from_content(content)
    central = FormSchema.from_xform(compile_deployed(content), sensitive=kobo.sensitive_paths)
    assert differences(kobo, central) == []


@pytest.mark.parametrize("path", CONTENT, ids=lambda p: p.stem)
def test_corpus_kobo_content_in_the_xform_kobo_deploys(path: Path) -> None:
    for content in json.loads(path.read_text(encoding="utf-8"))["versions"]:
        kobo = FormSchema.from_content(content)
        central = FormSchema.from_xform(compile_deployed(content), sensitive=kobo.sensitive_paths)
        assert differences(kobo, central) == []


AS_WRITTEN = [p for p in XLSFORMS if p.stem not in ("kobo_structures", "spellings")]  # pyxform refuses those two


@pytest.mark.parametrize("path", AS_WRITTEN, ids=lambda p: p.stem)
def test_corpus_xlsforms_as_central_compiles_them(path: Path) -> None:
    """Uploaded to Central as written: the same schema, but for the metadata KoBo moves to the top."""
    compiled = compile_source(path, validate=False, lint=False)
    content = to_content(compiled.source)
    kobo = FormSchema.from_content(content)
    central = FormSchema.from_xform(compiled.xform, sensitive=kobo.sensitive_paths)
    moved = kobo_moves(content, central)
    assert differences(kobo, central, moved=moved) == []
    if path.stem == "all_types":  # written inside the group `device`: KoBo keys them at the top, Central does not
        assert moved == {"start": "device/start", "end": "device/end", "today": "device/today",
                         "deviceid": "device/deviceid", "username": "device/username",
                         "phonenumber": "device/phonenumber", "start_location": "device/start_location"}
    else:
        assert moved == {}


def test_every_xlsform_type_is_recovered_from_the_xform() -> None:
    content = to_content(read_source(CORPUS / "xlsform" / "all_types.md"))
    central = FormSchema.from_xform(compile_deployed(content))
    kobo = FormSchema.from_content(content)
    assert {f.path: f.type for f in central.fields} == {f.path: f.type for f in kobo.fields}
    assert len({f.type for f in central.fields}) >= 40


def test_real_differences_are_the_documented_ones() -> None:
    content = to_content(read_source(CORPUS / "xlsform" / "kobo_structures.md"))
    kobo = FormSchema.from_content(content)
    central = FormSchema.from_xform(compile_deployed(content))
    assert set(kobo.choice_lists) - set(central.choice_lists) == {"crops"}  # no question uses it
    assert not any(f.choice_list == "crops" for f in kobo.fields)
    assert (kobo.title, central.title) == ("form", "kobo_structures")
    legacy = json.loads((CORPUS / "content" / "legacy.json").read_text(encoding="utf-8"))["versions"][0]
    assert (FormSchema.from_content(legacy).field("hh/head").required,
            FormSchema.from_xform(compile_deployed(legacy)).field("hh/head").required) == ("true", "yes")


def test_generated_nodes_are_marked_as_from_content_marks_them() -> None:
    central = FormSchema.from_xform(compile_deployed(to_content(read_source(CORPUS / "xlsform" / "structures.md"))))
    payments = central.repeats_by_path["household/members/work/jobs/payments"]
    assert payments.count == "if(${member_age} > 40, 2, 1)"
    assert central.field("household/members/work/jobs/payments_count").generated == "repeat_count of payments"
    spellings = FormSchema.from_xform(compile_deployed(to_content(read_source(CORPUS / "xlsform" / "spellings.md"))))
    assert spellings.field("colour2_other").generated == "or_other of colour2"
    assert spellings.choice_lists["colours"].choices[-1].code == "other"


def test_meta_instance_id_is_bookkeeping_not_a_question() -> None:
    xform = compile_source(source_paths()[0], validate=False, lint=False).xform
    parsed = parse_xform(xform)
    assert parsed.instance_id_path == "meta/instanceID"
    assert parsed.node("meta/instanceID").bind_type == "string"
    assert not any(f.path.startswith("meta/") for f in FormSchema.from_xform(xform).fields)


def test_expressions_come_back_in_xlsform_notation() -> None:
    names = {"age": "g/age", "n": "g/n"}
    assert xlsform_expression(" /data/g/age  > 3 and  ../n  = '/data/g/age'", "g/x", "data", names) == \
        "${age} > 3 and ${n} = '/data/g/age'"  # a path inside a string literal is text
    assert xlsform_expression("/data/g/age>3", "", "data", names) == "${age}>3"
    assert xlsform_expression(" /data/other/q ", "", "data", names) == "/data/other/q"  # not a node of the form
    assert xlsform_expression(". >= 0", "g/age", "data", names) == ". >= 0"


# -- malformed XForms: a FormBuildError saying where, never a traceback --------------------------------------------

GOOD = compile_deployed(to_content(read_source(HOUSEHOLD)))


@pytest.mark.parametrize(("xml", "says"), [
    ("<h:html xmlns:h='http://www.w3.org/1999/xhtml'><h:head>", "not well-formed XML at line 1"),
    ("<notaform/>", "<notaform>, not <h:html>"),
    ("<h:html xmlns:h='http://www.w3.org/1999/xhtml'><h:head/></h:html>", "no <h:head>/<model>"),
    ("<h:html xmlns:h='http://www.w3.org/1999/xhtml' xmlns='http://www.w3.org/2002/xforms'><h:head><model>"
     "<instance id='x'><r/></instance></model></h:head></h:html>", "no primary <instance>"),
    ("<h:html xmlns:h='http://www.w3.org/1999/xhtml' xmlns='http://www.w3.org/2002/xforms'><h:head><model>"
     "<instance><data><q/></data></instance></model></h:head></h:html>", "<data> has no id attribute"),
    ('<?xml version="1.0"?><!DOCTYPE h [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><h>&b;</h>',
     "refused: the XML declares a DTD or entities"),
    (GOOD.replace("</h:head>", "</h:hed>"), "not well-formed XML"),
    (GOOD.replace("<meta>", "<meta>" + "<g>" * 5000 + "</g>" * 5000), "nested too deeply"),
])
def test_malformed_xforms_are_refused_naming_where(xml: str, says: str) -> None:
    with pytest.raises(FormBuildError) as raised:
        FormSchema.from_xform(xml)
    assert says in str(raised.value)


def test_odd_but_well_formed_xforms_are_read_without_a_traceback() -> None:
    odd = GOOD.replace('<bind nodeset="/data/household/hh_size"', '<bind/><bind nodeset="/other/q" type="int"/><bind '
                       'nodeset="/data/household/hh_size"').replace("jr:itext('/data/photo:label')", "jr:itext('x')")
    schema = FormSchema.from_xform(odd)
    assert schema.field("photo").labels == {} and schema.field("household/hh_size").type == "integer"


def test_any_truncation_is_a_form_build_error_never_a_traceback() -> None:
    data = GOOD.encode()
    end = data.rindex(b"</h:html>")
    for cut in [*range(0, end, max(1, end // 97)), end + 3]:
        with pytest.raises(FormBuildError, match="not well-formed XML at line"):
            FormSchema.from_xform(data[:cut])
    assert FormSchema.from_xform(data).form_id == "household"


def test_labels_that_name_other_answers_come_back_as_written(tmp_path: Path) -> None:
    source = tmp_path / "refs.md"
    source.write_text("""| survey |
| | type | name | label::English (en) | label::Arabic (ar) | hint::English (en) |
| | text | name | Name | الاسم | |
| | integer | age | How old is ${name}? | كم عمر ${name}؟ | *Bold*, then ${name} |
| settings |
| | form_id | version |
| | refs | 1 |
""", encoding="utf-8")
    compiled = compile_source(source, validate=False, lint=False)
    central = FormSchema.from_xform(compiled.xform)
    assert "<output" in compiled.xform
    assert central.field("age").labels == {"en": "How old is ${name}?", "ar": "كم عمر ${name}؟"}
    assert central.field("age").hints == {"en": "*Bold*, then ${name}"}
    assert differences(FormSchema.from_content(to_content(compiled.source)), central) == []


def test_hand_written_xforms_with_inline_items_and_other_bind_types() -> None:
    """Older pyxform and hand-written XForms put choices inline; the list is then named after its question."""
    xml = """<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
      xmlns:jr="http://openrosa.org/javarosa"><h:head><h:title>Hand</h:title><model><itext>
      <translation lang="Arabic (ar)"><text id="y"><value>نعم</value></text></translation>
      <translation lang="English (en)" default="true()"><text id="y"><value>Yes</value></text></translation>
      </itext><instance><data id="hand"><ok/><flag/><many/><meta><instanceID/></meta></data></instance>
      <bind nodeset="/data/ok" type="string" required="true()"/><bind nodeset="/data/flag" type="boolean"/>
      <bind nodeset="/data/many" type="xsd:string"/></model></h:head><h:body>
      <select1 ref="/data/ok"><label>OK?</label><item><label ref="jr:itext('y')"/><value>y</value></item>
      <item><label>No</label><value>n</value></item></select1><input ref="/data/flag"><label>Flag</label></input>
      <select ref="/data/many"><label>Many</label><item><label>A</label><value>a</value></item></select>
      </h:body></h:html>"""
    schema = FormSchema.from_xform(xml)
    assert schema.languages == ("en", "ar")  # the default translation first
    assert [(f.path, f.type, f.kind) for f in schema.fields] == [
        ("ok", "select_one", Kind.SELECT_ONE), ("flag", "boolean", Kind.TEXT), ("many", "select_multiple",
                                                                                 Kind.SELECT_MULTIPLE)]
    ok = schema.choice_lists[schema.field("ok").choice_list or ""]
    assert [(c.code, dict(c.labels)) for c in ok.choices] == [("y", {"en": "Yes", "ar": "نعم"}),
                                                               ("n", {"en": "No", "ar": "No"})]
    assert schema.field("ok").required == "yes" and schema.field("ok").labels == {"en": "OK?", "ar": "OK?"}
