"""The fake Central filled like the demo fills the fake KoBo: a project with the programme's four forms, compiled
from forms/sources with pyxform, and submissions from fakes.generator (each sent as the XML Collect would send, by
an app user named after its enumerator)."""

from __future__ import annotations

import datetime as dt

from fakes.central_records import Project
from fakes.central_store import CentralStore
from fakes.generator import generate
from forms.build import compile_source
from forms.schema import FormSchema
from forms.source import source_paths

START = dt.date(2026, 1, 5)


def fill(store: CentralStore, *, n: int = 0, seed: int = 1, name: str = "AMINA programme") -> Project:
    project = store.create_project(name)
    for path in source_paths():
        compiled = compile_source(path, validate=False, lint=False)
        form = store.create_form(project.id, compiled.xform)
        if n:
            schema = FormSchema.from_xform(compiled.xform)
            store.load(project.id, form.xml_form_id, generate(schema, n, seed=seed, start_date=START))
    return project
