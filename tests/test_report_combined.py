"""The programme report when one form is synced from several assets: a programme moving from KoBo to ODK
Central holds the same four forms twice. Half the submissions through the fake KoBo and half through the fake
Central must give the report all of them through KoBo alone gives, figure for figure (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fakes.central import FakeCentral
from fakes.generator import generate
from fakes.kobo import FakeKobo
from forms.build import compile_source
from forms.schema import FormSchema
from forms.source import source_paths
from sync.central_client import CentralClient
from sync.central_source import CentralSource
from sync.client import KoboClient
from sync.engine import sync_asset
from sync.kobo_source import KoboSource
from sync.publish import publish_central, publish_xlsform
from warehouse import bookkeeping as bk
from warehouse.protect import Pseudonymizer
from warehouse.report import ReportOptions, build_report
from warehouse.report.model import Report
from warehouse.report.source import Source
from warehouse.store import Warehouse

KEY = "combined-report-pseudonym-key-0123456789"
SIZES = {"vot_screening": 160, "assistance_referral": 90, "training_attendance": 16, "awareness_session": 60}
_dbs = itertools.count()


def _url(request, tmp_path: Path, backend: str, name: str) -> str:
    if backend == "sqlite":
        return str(tmp_path / f"{name}.db")
    return request.getfixturevalue("postgres_server").create_database(f"combined{next(_dbs)}")


def _forms() -> list[tuple[str, Any, list[dict]]]:
    out = []
    for path in source_paths():
        compiled = compile_source(path, validate=False, lint=False)
        items = list(generate(FormSchema.from_xform(compiled.xform), SIZES[path.stem], seed=21))
        out.append((path.stem, compiled, items))
    return out


def _fill(url: str, forms: list[tuple[str, Any, list[dict]]], *, split: bool,
          on_kobo: dict[str, Any] | None = None) -> Warehouse:
    """A warehouse of the four forms: every submission through KoBo, or the first half of each form through
    KoBo and the rest through Central (each form then twice in the warehouse); `on_kobo` gives another
    compiled version of a form for KoBo."""
    wh = Warehouse(url, pseudonymizer=Pseudonymizer(KEY))
    with FakeKobo(seed=2) as kobo, FakeCentral(seed=2) as central:
        kobo_client = KoboClient(kobo.base_url, kobo.token)
        central_client = CentralClient(central.base_url, email=central.email, password=central.password)
        project = central.store.create_project("amina")
        for name, compiled, items in forms:
            half = len(items) // 2 if split else len(items)
            xlsx = (on_kobo or {}).get(name, compiled).xlsx if split else compiled.xlsx
            uid = publish_xlsform(kobo_client, xlsx, f"{name}.xlsx", poll_seconds=0.01).asset_uid
            kobo.store.add_submissions(uid, items[:half])
            sync_asset(KoboSource(kobo_client), wh, uid)
            if split:
                form_id = publish_central(central_client, project.id, compiled.xform).form_id
                central.store.load(project.id, form_id, items[half:])
                sync_asset(CentralSource(central_client, project.id), wh, form_id)
        kobo_client.close()
        central_client.close()
    return wh


def figures(report: Report) -> dict[str, Any]:
    """Every figure and headline as plain values: row and column keys with labels, cells as shown."""
    out: dict[str, Any] = {}
    for section in report.sections:
        out[f"{section.id}.headlines"] = [(h.label, h.cell.value, h.cell.shown) for h in section.headlines]
        for f in section.figures:
            rows = [(r.key, r.label) for r in f.rows]
            cells = [[(c.value, c.shown) for c in row] for row in f.cells]
            if f.id == "training.sessions":  # keyed by submission id, which differs between servers
                out[f.id] = sorted((label, cell) for (_key, label), cell in zip(rows, cells, strict=True))
                continue
            out[f.id] = {"rows": rows, "columns": [(c.key, c.label) for c in f.columns], "cells": cells,
                         "totals": [(c.value, c.shown) for c in f.totals or []], "note": f.note}
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_form_synced_from_kobo_and_central_is_counted_once_whole(request, tmp_path, backend):
    forms = _forms()
    whole = _fill(_url(request, tmp_path, backend, "whole"), forms, split=False)
    split = _fill(_url(request, tmp_path, backend, "split"), forms, split=True)
    try:
        with split.engine.connect() as conn:
            tables = conn.execute(sa.select(bk.forms.c.form_id, bk.forms.c.table_name)).all()
        twins = {form_id: sorted(t for f, t in tables if f == form_id) for form_id in SIZES}
        assert all(len(t) == 2 for t in twins.values()), twins  # each form twice, in tables of its own
        for lang in ("en", "ar"):
            expected = build_report(whole, ReportOptions(lang=lang))
            found = build_report(split, ReportOptions(lang=lang))
            want, got = figures(expected), figures(found)
            assert sorted(got) == sorted(want)
            for fid in want:
                assert got[fid] == want[fid], fid
            assert any(f["cells"] for fid, f in want.items() if isinstance(f, dict))  # figures with content
            notes = [n for s in found.sections for n in s.notes]
            for first, second in twins.values():
                assert any(first in n and second in n for n in notes), (first, second, notes)
            assert not [n for s in expected.sections for n in s.notes if "_" in n]
            assert all(h.cell.value for s in found.sections for h in s.headlines)
    finally:
        whole.dispose()
        split.dispose()


def test_a_version_without_a_question_reads_as_empty_there(request, tmp_path):
    """KoBo has an older screening form without a select_multiple (nor its bridge table); Central, synced last
    and so the reference, has it: KoBo's rows read it as NULL, the bridge comes from Central alone, and every
    figure is still that of the whole (PostgreSQL, where a UNION of a NULL and a typed column must type)."""
    forms = _forms()
    source = next(p for p in source_paths() if p.stem == "vot_screening")
    older = tmp_path / "vot_screening.md"
    older.write_text("\n".join(line for line in source.read_text(encoding="utf-8").splitlines()
                               if "| urgent_needs |" not in line) + "\n", encoding="utf-8")
    without = compile_source(older, validate=False, lint=False)
    assert "urgent_needs" not in str(without.xform)
    whole = _fill(_url(request, tmp_path, "postgresql", "whole"), forms, split=False)
    split = _fill(_url(request, tmp_path, "postgresql", "split"), forms, split=True,
                  on_kobo={"vot_screening": without})
    try:
        want, got = figures(build_report(whole, ReportOptions())), figures(build_report(split, ReportOptions()))
        for fid in want:
            assert got[fid] == want[fid], fid
        form = Source(split).form("vot_screening")
        assert form is not None and len(form.combined) == 2
        urgent = form.question("urgent_needs")
        assert f'NULL AS "{urgent.column}"' in form.unions[form.root]
        assert urgent.bridge_table and " UNION ALL " not in form.unions[urgent.bridge_table]
        assert " UNION ALL " in form.unions[form.question("exploitation").bridge_table]
    finally:
        whole.dispose()
        split.dispose()
