"""Where the report reads: the analysts' views and the data dictionary, nothing else.

A form is found by its XLSForm form_id (`Warehouse.find_form`); its questions by their XLSForm names
in `fields`; its rows through the `<table>_current` views (on PostgreSQL in the schema `analyst`),
and the labels of its choices and questions in `choices` and `field_labels`. The asset key column of
the dictionary tables is never named here (it is the first column of their primary key), so the
report keeps working when assets are identified differently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from common.errors import ConfigError, WarehouseError
from warehouse import bookkeeping as bk
from warehouse.store import Warehouse
from warehouse.views import view_name

_analyst = sa.MetaData()  # the dictionary as the analysts read it (on SQLite the schema maps to the main database)
FIELDS = bk.fields.to_metadata(_analyst, schema=bk.ANALYST_SCHEMA)
FIELD_LABELS = bk.field_labels.to_metadata(_analyst, schema=bk.ANALYST_SCHEMA)
CHOICES = bk.choices.to_metadata(_analyst, schema=bk.ANALYST_SCHEMA)


def _asset_column(table: sa.Table) -> sa.Column:
    """The column that names the asset in a dictionary table: the first of its primary key."""
    return next(iter(table.primary_key.columns))


class MissingQuestion(WarehouseError):
    """A form is in the warehouse but not in the version the report knows (a question it needs is not there)."""

    def __init__(self, form_id: str, question: str):
        super().__init__(f"form {form_id} has no question '{question}'")
        self.form_id, self.question = form_id, question


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    path: str
    table: str
    column: str
    choice_list: str | None
    bridge_table: str | None


@dataclass(frozen=True, slots=True)
class Period:
    """The days the report covers (either end open)."""

    start: dt.date | None = None
    end: dt.date | None = None

    def where(self, column: str, params: dict[str, Any]) -> str:
        """SQL conditions keeping `column` (a date) inside the period, binding the dates into `params`."""
        parts = []
        if self.start:
            params["period_start"] = self.start
            parts.append(f"{column} >= :period_start")
        if self.end:
            params["period_end"] = self.end
            parts.append(f"{column} <= :period_end")
        return " AND ".join(parts) or "1 = 1"


@dataclass
class Form:
    """One synced form as the report sees it: its views, its questions and their labels."""

    source: Source
    form_id: str
    key: str
    root: str
    tables: list[str]
    questions: dict[str, Question]
    _labels: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def question(self, name: str) -> Question:
        try:
            return self.questions[name]
        except KeyError:
            raise MissingQuestion(self.form_id, name) from None

    def has(self, *names: str) -> bool:
        return all(n in self.questions for n in names)

    def view(self, table: str) -> str:
        """The quoted name of a table's current-submissions view."""
        return self.source.view(view_name(table))

    def col(self, name: str, alias: str | None = None) -> str:
        q = self.source.quote(self.question(name).column)
        return f"{alias}.{q}" if alias else q

    def choice_labels(self, name: str, lang: str) -> dict[str, str]:
        """{code: label} of a question's choice list in form order; a label missing in `lang` falls back to the
        form's first language that has one, then to the code."""
        question = self.question(name)
        if not question.choice_list:
            return {}
        return self.source.choice_labels(self.key, question.choice_list, lang)

    def label(self, name: str, lang: str) -> str:
        """A question's own label in `lang` (falling back as choice labels do)."""
        return self.source.question_label(self.key, self.question(name).path, lang) or name


class Source:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self.engine = warehouse.engine
        self.dialect = self.engine.dialect.name
        self.quote = self.engine.dialect.identifier_preparer.quote_identifier
        self._choices: dict[str, dict[str, list[tuple[str, str, str | None]]]] = {}
        self._question_labels: dict[str, dict[str, dict[str, str | None]]] = {}
        self._views: set[str] | None = None

    # -- naming ----------------------------------------------------------------------------------

    def view(self, name: str) -> str:
        quoted = self.quote(name)
        return f"{self.quote(bk.ANALYST_SCHEMA)}.{quoted}" if self.warehouse.has_schemas else quoted

    def month(self, column: str) -> str:
        """SQL for the 'YYYY-MM' of a date column."""
        return f"to_char({column}, 'YYYY-MM')" if self.dialect == "postgresql" else f"substr({column}, 1, 7)"

    def has_view(self, name: str) -> bool:
        if self._views is None:
            schema = bk.ANALYST_SCHEMA if self.warehouse.has_schemas else None
            with self.engine.connect() as conn:
                self._views = set(sa.inspect(conn).get_view_names(schema=schema))
        return name in self._views

    # -- reading ---------------------------------------------------------------------------------

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> Sequence[sa.Row]:
        statement = sa.text(sql)
        params = dict(params or {})
        for name, value in params.items():
            if isinstance(value, dt.date):
                statement = statement.bindparams(sa.bindparam(name, type_=sa.Date))
        try:
            with self.engine.connect() as conn:
                return conn.execute(statement, params).all()
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
            raise WarehouseError(f"warehouse {self.warehouse.safe_url}: the report could not read the analysts' "
                                 f"views: {reason}") from exc

    def form(self, form_id: str) -> Form | None:
        """The form with this XLSForm form_id, or None when the warehouse has none."""
        try:
            key, root = self.warehouse.find_form(form_id)
            tables = [t for t, _kind, _parent in self.warehouse.tables_of(key)]
        except (WarehouseError, ConfigError):  # no such form in this warehouse
            return None
        f = FIELDS
        try:
            with self.engine.connect() as conn:
                found = conn.execute(
                    sa.select(f.c.name, f.c.path, f.c.table_name, f.c.column_name, f.c.choice_list,
                              f.c.bridge_table, f.c.sensitive, f.c.part)
                    .where(f.c.table_name.in_(tables)).order_by(f.c.position)).all()
        except SQLAlchemyError as exc:
            raise WarehouseError(f"warehouse {self.warehouse.safe_url}: cannot read the data dictionary: "
                                 f"{str(getattr(exc, 'orig', exc)).splitlines()[0][:200]}") from exc
        questions: dict[str, Question] = {}
        for r in found:
            if r.sensitive or r.part or r.name in questions:  # personal data never; geopoints and repeats of a name
                continue
            questions[r.name] = Question(r.name, r.path, r.table_name, r.column_name, r.choice_list, r.bridge_table)
        return Form(self, form_id, key, root, tables, questions)

    def choice_labels(self, key: str, list_name: str, lang: str) -> dict[str, str]:
        lists = self._choices.get(key)
        if lists is None:
            c = CHOICES
            with self.engine.connect() as conn:
                found = conn.execute(sa.select(c.c.list_name, c.c.code, c.c.lang, c.c.label)
                                     .where(_asset_column(c) == key).order_by(c.c.position, c.c.lang)).all()
            lists = {}
            for r in found:
                lists.setdefault(r.list_name, []).append((r.code, r.lang, r.label))
            self._choices[key] = lists
        labels: dict[str, str] = {}
        fallback: dict[str, str] = {}
        for code, code_lang, label in lists.get(list_name, []):
            labels.setdefault(code, "")
            if label and code_lang == lang:
                labels[code] = label
            elif label:
                fallback.setdefault(code, label)
        return {code: label or fallback.get(code) or code for code, label in labels.items()}

    def question_label(self, key: str, path: str, lang: str) -> str | None:
        labels = self._question_labels.get(key)
        if labels is None:
            fl = FIELD_LABELS
            with self.engine.connect() as conn:
                found = conn.execute(sa.select(fl.c.path, fl.c.lang, fl.c.label)
                                     .where(_asset_column(fl) == key)).all()
            labels = {}
            for r in found:
                labels.setdefault(r.path, {})[r.lang] = r.label
            self._question_labels[key] = labels
        by_lang = labels.get(path, {})
        return by_lang.get(lang) or next((v for v in by_lang.values() if v), None)
