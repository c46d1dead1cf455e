"""A form definition from outside never crashes a sync: KoBo content mangled at random (rows that are not
objects, types and names of every JSON type, unbalanced groups, KoBo's structures without their lists,
translations and choices that are not lists) gives a schema or a FormBuildError, nothing else."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

from common.errors import FormBuildError
from forms.content import to_content
from forms.schema import FormSchema
from forms.source import read_source

CORPUS = Path(__file__).parent / "corpus"
ODD = [None, 1, 2.5, True, [], {}, ["a", None], {"x": 1}, "", " ", "begin_group", "end_repeat", "select_one", "${",
       "a/b", "x" * 300, "العمر", "select_one_x_or_specify_other", "rank__level"]
KEYS = ["type", "name", "label", "select_from_list_name", "_or_other", "repeat_count", "kobo--matrix_list",
        "kobo--rank-items", "kobo--score-choices", "relevant", "required", "$autoname", "file", "hint"]
INSERTED = ["end_group", "begin_repeat", "end_kobomatrix", "begin_kobomatrix", "begin_rank", "rank__level",
            "begin loop over x", "end_score", "score__row"]


def _mangle(rng: random.Random, content: dict) -> None:
    what = rng.random()
    survey = content["survey"]
    if what < 0.5 and survey:
        row = rng.choice(survey)
        if isinstance(row, dict):
            row[rng.choice([*row, *KEYS])] = rng.choice(ODD)
    elif what < 0.6 and survey:
        survey[rng.randrange(len(survey))] = rng.choice(ODD)
    elif what < 0.7:
        row = {"type": rng.choice(INSERTED), "name": rng.choice(["a", None, 3])}
        survey.insert(rng.randrange(len(survey) + 1), row)
    elif what < 0.8:
        content[rng.choice(["translations", "choices", "settings", "translated"])] = rng.choice(ODD)
    elif what < 0.9 and isinstance(content.get("choices"), list) and content["choices"]:
        row = rng.choice(content["choices"])
        if isinstance(row, dict):
            row[rng.choice(["name", "list_name", "label", "$autovalue"])] = rng.choice(ODD)
    else:
        rng.shuffle(survey)


def test_mangled_content_gives_a_schema_or_a_form_build_error():
    bases = [json.loads(p.read_text(encoding="utf-8"))["versions"][0]
             for p in sorted((CORPUS / "content").glob("*.json"))]
    bases += [to_content(read_source(p)) for p in sorted((CORPUS / "xlsform").glob("*.md"))]
    rng = random.Random(2026)
    built = refused = 0
    for _ in range(1500):
        content = copy.deepcopy(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            _mangle(rng, content)
        try:
            FormSchema.from_content(content)
            built += 1
        except FormBuildError as exc:
            assert str(exc)  # a message a person can act on
            refused += 1
    assert built > 100 and refused > 100
