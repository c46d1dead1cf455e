"""What the report tests share: warehouses to report on, and reading a written report back (tables, chart data)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from amina.demo import publish_and_fill, publish_source
from fakes.kobo import FakeKobo
from forms.source import source_paths
from sync.client import KoboClient
from sync.engine import sync_asset
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse

KEY = "report-test-pseudonym-key-0123456789"
_names = itertools.count()

AR_DIGITS = "٠١٢٣٤٥٦٧٨٩"


def demo_warehouse(url: str, *, submissions: int = 400, seed: int = 5) -> Warehouse:
    """The demo's four forms with generated submissions, synced over HTTP; some screenings reviewed on KoBo."""
    warehouse = Warehouse(url, pseudonymizer=Pseudonymizer(KEY))
    with FakeKobo(seed=seed) as server:
        forms = publish_and_fill(server, submissions, seed)
        screening = next(f for f in forms if f.name == "vot_screening")
        ids = sorted(server.store.assets[screening.asset_uid].submissions)
        server.store.set_validation_status(screening.asset_uid, ids[:7], "validation_status_not_approved",
                                           by_whom="supervisor")
        server.store.set_validation_status(screening.asset_uid, ids[7:10], "validation_status_on_hold",
                                           by_whom="supervisor")
        server.store.set_validation_status(screening.asset_uid, ids[10:40], "validation_status_approved",
                                           by_whom="supervisor")
        client = KoboClient(server.base_url, server.token, token_source="the test token")
        for f in forms:
            sync_asset(client, warehouse, f.asset_uid)
        client.close()
    return warehouse


def screening_answers(i: int, *, sex: str, age: int, nationality: str = "iraqi", victim: str = "yes",
                      exploitation: str = "labour", referral: str = "iom_assistance", day: str = "2026-03-10") -> dict:
    return {"today": day, "screener": "iom_erbil", "consent": "yes", "location/governorate": "erbil",
            "profile/full_name": f"Person {i}", "profile/sex": sex, "profile/age": str(age),
            "profile/nationality": nationality, "profile/displacement_status": "idp",
            "indicators/recruitment": "deception", "indicators/movement": "internal",
            "indicators/exploitation": exploitation, "indicators/control": "threats",
            "outcome/presumed_victim": victim, "outcome/urgent_needs": "shelter", "outcome/referral": referral}


def assistance_answers(i: int, items: list[tuple[str, str]], *, opened: str = "2026-03-01",
                       partner: str = "iom", status: str = "pending") -> dict:
    return {"today": opened, "case_code": f"ERB-{i:04d}", "governorate": "erbil", "date_opened": opened,
            "assistance_items": [{"assistance_items/assistance_type": kind, "assistance_items/delivery_date": day,
                                  "assistance_items/provider": "iom_direct"} for kind, day in items],
            "referral_partner": partner, "follow_up_status": status}


def small_counts_warehouse(url: str) -> Warehouse:
    """Only screenings and assistance, made so that one cell is exactly 3: 18 presumed victims, 3 of them men;
    3 legal-aid deliveries beside 12 of shelter; plus 4 screenings of people who were not presumed victims."""
    warehouse = Warehouse(url, pseudonymizer=Pseudonymizer(KEY))
    paths = {p.stem: p for p in source_paths()}
    with FakeKobo(seed=3) as server:
        client = KoboClient(server.base_url, server.token, token_source="the test token")
        screening, _ = publish_source(client, paths["vot_screening"])
        assistance, _ = publish_source(client, paths["assistance_referral"])
        people = [screening_answers(i, sex="male", age=30) for i in range(3)]
        people += [screening_answers(i, sex="female", age=25 + i, day="2026-04-02") for i in range(3, 18)]
        people += [screening_answers(i, sex="female", age=40, victim="no") for i in range(18, 40)]
        for answers in people:
            server.store.add_submission(screening, answers)
        cases = [assistance_answers(i, [("legal", "2026-03-05")]) for i in range(3)]
        cases += [assistance_answers(i, [("shelter", "2026-03-20")], status="completed") for i in range(3, 15)]
        for answers in cases:
            server.store.add_submission(assistance, answers)
        for uid in (screening, assistance):
            sync_asset(client, warehouse, uid)
        client.close()
    return warehouse


@dataclass
class Table:
    columns: list[str] = field(default_factory=list)
    rows: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # key → (label, cell texts)
    total: list[str] | None = None


@dataclass
class Page:
    """A written report read back: its tables by figure id, chart specifications by figure id, and the <html>
    attributes."""

    html: dict[str, str] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    headlines: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    freshness: dict[str, dict[str, str]] = field(default_factory=dict)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.table: Table | None = None
        self.in_head = self.in_foot = False
        self.row_key: str | None = None
        self.cells: list[str] = []
        self.label = ""
        self.text: list[str] | None = None
        self.chart: str | None = None
        self.spec_text: list[str] | None = None
        self.headline: list[str] = []
        self.headline_part: str | None = None
        self.missing: list[str] | None = None
        self.fresh_key: str | None = None
        self.fresh_cells: list[str] = []
        self.fresh_state: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.page.html = {k: v or "" for k, v in a.items()}
        elif tag == "table" and "figure" in (a.get("class") or "").split():
            self.table = self.page.tables.setdefault(a["data-figure"] or "", Table())
        elif tag == "thead":
            self.in_head = True
        elif tag == "tfoot":
            self.in_foot = True
        elif tag == "tr" and self.table is not None and not self.in_head:
            self.row_key, self.cells, self.label = a.get("data-key"), [], ""
        elif tag == "tr" and "data-key" in a and (a.get("class") or "").startswith("state-"):
            self.fresh_key, self.fresh_cells = a["data-key"], []
        elif tag == "th" and self.table is not None and self.in_head and "data-key" in a:
            self.table.columns.append(a["data-key"] or "")
        elif tag in ("th", "td"):
            self.text = []
            if tag == "td" and self.fresh_key and "data-state" in a:
                self.fresh_state = a["data-state"]
        elif tag == "div" and "data-chart" in a:
            self.chart = a["data-chart"]
        elif tag == "script" and "chart-spec" in (a.get("class") or ""):
            self.spec_text = []
        elif tag == "span" and (a.get("class") or "").split()[:1] in (["value"], ["label"]):
            self.headline_part = (a.get("class") or "").split()[0]
            self.text = []
        elif tag == "p" and "data-missing" in a:
            self.missing = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.table = None
        elif tag == "thead":
            self.in_head = False
        elif tag == "tfoot":
            self.in_foot = False
        elif tag == "th" and self.text is not None:
            if self.table is not None and not self.in_head:
                self.label = "".join(self.text).strip()
            elif self.fresh_key:
                self.fresh_cells.append("".join(self.text).strip())
            self.text = None
        elif tag == "td" and self.text is not None:
            (self.cells if self.table is not None else self.fresh_cells).append("".join(self.text).strip())
            self.text = None
        elif tag == "tr" and self.table is not None and self.row_key is not None:
            if self.in_foot:
                self.table.total = self.cells
            else:
                self.table.rows[self.row_key] = (self.label, self.cells)
            self.row_key = None
        elif tag == "tr" and self.fresh_key:
            names = ("form", "last_success", "stored", "awaiting", "rejected", "state", "error")
            row = dict(zip(names, self.fresh_cells, strict=False))
            row["state_key"] = self.fresh_state or ""
            self.page.freshness[self.fresh_key] = row
            self.fresh_key = None
        elif tag == "script" and self.spec_text is not None and self.chart:
            self.page.specs[self.chart] = json.loads("".join(self.spec_text))
            self.spec_text, self.chart = None, None
        elif tag == "span" and self.headline_part:
            self.headline.append("".join(self.text or []).strip())
            if self.headline_part == "label":
                self.page.headlines.append((self.headline[1], self.headline[0]))
                self.headline = []
            self.headline_part, self.text = None, None
        elif tag == "p" and self.missing is not None:
            self.page.missing.append("".join(self.missing).strip())
            self.missing = None

    def handle_data(self, data: str) -> None:
        for buffer in (self.text, self.spec_text, self.missing):
            if buffer is not None:
                buffer.append(data)


def read_page(path: Path) -> Page:
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8"))
    return reader.page


def chart_records(spec: Any) -> list[dict[str, Any]]:
    """Every inline data record of a Vega-Lite specification (layers and concatenations included)."""
    found: list[dict[str, Any]] = []
    if isinstance(spec, dict):
        data = spec.get("data")
        if isinstance(data, dict) and isinstance(data.get("values"), list):
            found.extend(data["values"])
        for key, value in spec.items():
            if key != "data":
                found.extend(chart_records(value))
    elif isinstance(spec, list):
        for item in spec:
            found.extend(chart_records(item))
    return found


def number(text: str) -> float:
    """A number as the report writes it, in any of its languages, back to a float."""
    plain = text.translate(str.maketrans(AR_DIGITS, "0123456789"))
    for junk in ("٬", ",", "\u061c", "\u200f", "\u200e", "+"):
        plain = plain.replace(junk, "")
    return float(plain.replace("٫", "."))
