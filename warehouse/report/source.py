"""Where the report reads: the analyst schema only (its views and its mirror of the dictionary), so that the
`amina_analyst` role, refused everything else, can make it.

A form is found by its XLSForm form_id in `forms` (several assets may share one: see `Source.form`); its
questions by their XLSForm names in `fields`; its rows through the `<table>_current` views (on PostgreSQL
in the schema `analyst`), and the labels of its choices and questions in `choices` and `field_labels`; the
freshness of each form from `forms` and `sync_runs`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from common.errors import WarehouseError
from warehouse import bookkeeping as bk
from warehouse.store import Warehouse
from warehouse.views import view_name

log = logging.getLogger(__name__)
T = TypeVar("T")
ID_COLUMNS = ("_id", "_submission_id", "_duplicate_of")  # numbered per server: prefixed when forms are combined
_analyst = sa.MetaData()  # the dictionary as the analysts read it (on SQLite the schema maps to the main database)
FORMS = bk.forms.to_metadata(_analyst, schema=bk.ANALYST_SCHEMA)
SYNC_RUNS = bk.sync_runs.to_metadata(_analyst, schema=bk.ANALYST_SCHEMA)
FIELDS = bk.fields.to_metadata(_analyst, schema=bk.ANALYST_SCHEMA)
FIELD_LABELS = bk.field_labels.to_metadata(_analyst, schema=bk.ANALYST_SCHEMA)
CHOICES = bk.choices.to_metadata(_analyst, schema=bk.ANALYST_SCHEMA)


def _when(value: dt.datetime | str | None) -> dt.datetime | None:
    """A timestamp as the database gives it (SQLite: text) as a datetime."""
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


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
    # when several synced forms share this form_id (a KoBo asset and its ODK Central twin, or one per server):
    # the tables of each, read together (see Source.form), and the other forms' keys and choice lists
    unions: dict[str, str] = field(default_factory=dict)
    others: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (key, {question: its choice list})
    combined: list[str] = field(default_factory=list)  # the submission tables counted together, this one first

    def question(self, name: str) -> Question:
        try:
            return self.questions[name]
        except KeyError:
            raise MissingQuestion(self.form_id, name) from None

    def has(self, *names: str) -> bool:
        return all(n in self.questions for n in names)

    def view(self, table: str) -> str:
        """The quoted name of a table's current-submissions view; for a form synced from several assets, a
        parenthesised query reading them all (callers always give it an alias)."""
        if table in self.unions:
            return f"({self.unions[table]})"
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
        labels = self.source.choice_labels(self.key, question.choice_list, lang)
        for key, lists in self.others:  # codes only another asset's version has, after this one's
            if name in lists:
                for code, label in self.source.choice_labels(key, lists[name], lang).items():
                    labels.setdefault(code, label)
        return labels

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
        """The form with this XLSForm form_id, or None when the warehouse has none.

        Several synced assets may share a form_id: the same form on KoBo and on ODK Central while a programme
        moves, or one per server. Their submissions are counted together: the most recently synced asset is
        the reference (its questions, labels and table names); each of its tables is read as a UNION ALL of
        the matching table of every asset (matched by question path; a question another version lacks reads
        as NULL there), with submission ids prefixed by the asset's position so that they never meet."""
        parts = self._parts(form_id)
        if not parts:
            return None
        (key, root, tables), *rest = parts
        fields = self._fields(key)
        questions: dict[str, Question] = {}
        for r in fields:
            if r.sensitive or r.part or r.name in questions:  # personal data never; geopoints and repeats of a name
                continue
            questions[r.name] = Question(r.name, r.path, r.table_name, r.column_name, r.choice_list, r.bridge_table)
        form = Form(self, form_id, key, root, tables, questions)
        if rest:
            self._combine(form, fields, parts)
        return form

    def _parts(self, form_id: str) -> list[tuple[str, str, list[str]]]:
        """(asset key, submission table, its tables) of each asset with this form_id (else this table name, else
        this asset name), most recently synced first."""
        f = FORMS
        found = self._read(lambda conn: conn.execute(sa.select(
            f.c.asset_key, f.c.table_name, f.c.form_id, f.c.name, f.c.last_synced_at)).all(),
            "which forms are synced")
        for by in ("form_id", "table_name", "name"):
            hits = [r for r in found if getattr(r, by) == form_id]
            if hits:
                break
        else:
            return []
        oldest = dt.datetime.min
        hits.sort(key=lambda r: (_when(r.last_synced_at) or oldest, r.asset_key), reverse=True)
        return [(r.asset_key, r.table_name, self._tables(r.asset_key, r.table_name)) for r in hits]

    def _tables(self, key: str, root: str) -> list[str]:
        """A form's tables that hold answers, its submission table first (from the dictionary)."""
        out = [root]
        for r in self._fields(key):
            for table in (r.table_name, r.bridge_table):
                if table and table not in out:
                    out.append(table)
        return out

    def _fields(self, key: str) -> Sequence[sa.Row]:
        f = FIELDS
        return self._read(lambda conn: conn.execute(
            sa.select(f.c.name, f.c.path, f.c.table_name, f.c.column_name, f.c.choice_list,
                      f.c.bridge_table, f.c.sensitive, f.c.part)
            .where(_asset_column(f) == key).order_by(f.c.position)).all(), "the data dictionary")

    def _read(self, query: Callable[[sa.Connection], T], what: str) -> T:
        try:
            with self.engine.connect() as conn:
                return query(conn)
        except SQLAlchemyError as exc:
            raise WarehouseError(f"warehouse {self.warehouse.safe_url}: cannot read {what}: "
                                 f"{str(getattr(exc, 'orig', exc)).splitlines()[0][:200]}") from exc

    def synced_forms(self) -> list[tuple[str, str, str]]:
        """(asset key, form name, submission table) of every synced form, by name."""
        f = FORMS
        return [(r.asset_key, r.name, r.table_name) for r in self._read(lambda conn: conn.execute(
            sa.select(f.c.asset_key, f.c.name, f.c.table_name).order_by(f.c.name, f.c.asset_key)).all(),
            "which forms are synced")]

    def runs(self) -> dict[str, tuple[str | None, dt.datetime | None, str | None]]:
        """Per asset key: (status of its last run, when its last successful run finished, the error of its last
        failed or abandoned run), from the sync runs the analysts may read."""
        r = SYNC_RUNS
        found = self._read(lambda conn: conn.execute(
            sa.select(r.c.asset_key, r.c.status, r.c.finished_at, r.c.error).order_by(r.c.run_id)).all(),
            "the sync runs")
        out: dict[str, tuple[str | None, dt.datetime | None, str | None]] = {}
        for key, status, finished, error in found:
            _last, success, failure = out.get(key, (None, None, None))
            if status == "ok":
                success = _when(finished) or success
            if status in ("failed", "abandoned"):
                failure = error
            out[key] = (status, success, failure)
        return out

    def _view_columns(self, table: str) -> dict[str, type]:
        """{column: its Python type, or object when unknown} of a table's current-submissions view."""
        schema = bk.ANALYST_SCHEMA if self.warehouse.has_schemas else None
        with self.engine.connect() as conn:
            columns = sa.inspect(conn).get_columns(view_name(table), schema=schema)
        out: dict[str, type] = {}
        for c in columns:
            try:
                out[c["name"]] = c["type"].python_type
            except NotImplementedError:
                out[c["name"]] = object
        return out

    def _combine(self, form: Form, fields: Sequence[sa.Row], parts: list[tuple[str, str, list[str]]]) -> None:
        """Fill `form.unions`: each reference table read from every asset that has its match."""
        q = self.quote
        # per asset: {reference table: its table}, {(reference table, reference column): its column}
        matches: list[tuple[dict[str, str], dict[tuple[str, str], str]]] = [({t: t for t in form.tables}, {})]
        for key, root, _tables in parts[1:]:
            rows = self._fields(key)
            by_path = {(r.path, r.part): r for r in rows}
            table_of = {form.root: root}
            for ref in fields:
                if (mine := by_path.get((ref.path, ref.part))) is not None:
                    table_of.setdefault(ref.table_name, mine.table_name)
                    if ref.bridge_table and mine.bridge_table:
                        table_of.setdefault(ref.bridge_table, mine.bridge_table)
            matches.append((table_of, {(ref.table_name, ref.column_name): mine.column_name for ref in fields
                                       if (mine := by_path.get((ref.path, ref.part))) is not None
                                       and mine.table_name == table_of.get(ref.table_name)}))
            form.others.append((key, {r.name: r.choice_list for r in rows if r.choice_list}))
        reference_tables = [form.root, *[t for t in form.tables if t != form.root]]
        question_columns = {(r.table_name, r.column_name) for r in fields}
        for table in reference_tables:
            wanted = self._view_columns(table)
            selects = []
            for index, (table_of, column_map) in enumerate(matches):
                theirs = table if index == 0 else table_of.get(table)
                if theirs is None:
                    continue
                have = wanted if index == 0 else self._view_columns(theirs)
                columns = []
                for column, kind in wanted.items():
                    if index == 0 or (table, column) not in question_columns:
                        source_column = column if column in have else None
                    else:
                        source_column = column_map.get((table, column))
                    if source_column is not None and have.get(source_column, kind) is not kind \
                            and kind is not object and have.get(source_column) is not object:
                        log.warning("report: %s.%s is stored as another type in %s; read as empty there",
                                    table, column, theirs)
                        source_column = None
                    if source_column is None:
                        columns.append(f"NULL AS {q(column)}")
                    elif column in ID_COLUMNS:
                        columns.append(f"'{index}:' || CAST({q(source_column)} AS TEXT) AS {q(column)}")
                    else:
                        columns.append(f"{q(source_column)} AS {q(column)}")
                selects.append(f"SELECT {', '.join(columns)} FROM {self.view(view_name(theirs))}")
            form.unions[table] = " UNION ALL ".join(selects)
        form.combined = [root for _key, root, _tables in parts]

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
