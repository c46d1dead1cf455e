"""The analysts' views: current submissions only, with labels instead of codes, in every language.

For every table `T` of a form:
- `T_current`: the table's rows for submissions KoBo still has that are not a second upload of the
  same `meta/instanceID`; codes as stored.
- `T_<lang>` for each of the form's languages (`T_en`, `T_ar`, `T_ckb`): the same rows, with each
  select_one code replaced by its label in that language and each select_multiple by its labels
  joined with ", " in the order chosen (a code with no label stays as it is).
On PostgreSQL the views live in the schema `analyst` (the only one the `amina_analyst` role can
read, see `grant_analyst`), with the dictionary tables mirrored there; on SQLite, beside the tables.
Personal data never appears: the form tables hold pseudonyms only (warehouse.protect).
"""

from __future__ import annotations

import sqlalchemy as sa

from forms.schema import Field, Kind
from warehouse import bookkeeping as bk
from warehouse.convert import storable
from warehouse.naming import MAX_IDENTIFIER, view_name, view_names
from warehouse.tables import GEO_PARTS, FormTables, TablePlan

ANALYST_ROLE = "amina_analyst"
DICTIONARY = ("forms", "fields", "field_labels", "choices", "sync_runs")


__all__ = ["ANALYST_ROLE", "create_views", "grant_analyst", "view_name", "view_names"]


def execute_ddl(conn: sa.Connection, sql: str) -> None:
    """Run a statement with no parameters on the driver itself, inside the connection's transaction: neither
    SQLAlchemy (':name') nor psycopg ('%s', '%') looks for placeholders in it."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def _literal(text: str) -> str:
    """A SQL string literal: quotes doubled; NUL (no engine can hold it) replaced. Both engines read
    backslashes literally (PostgreSQL with standard_conforming_strings, its default since 9.1)."""
    return "'" + storable(text).replace("'", "''") + "'"


class _Sql:
    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.quote = conn.dialect.identifier_preparer.quote_identifier

    def view(self, name: str) -> str:
        return f'"{bk.ANALYST_SCHEMA}".{self.quote(name)}' if self.pg else self.quote(name)

    def table(self, name: str) -> str:
        return self.quote(name)

    def replace_view(self, name: str, body: str) -> None:
        """Straight to the driver: labels are quoted literals in `body`, and nothing in it may be read as a bind
        parameter (a label like 'نوع :العمل' would be, through sqlalchemy.text)."""
        execute_ddl(self.conn, f"DROP VIEW IF EXISTS {self.view(name)}")
        execute_ddl(self.conn, f"CREATE VIEW {self.view(name)} AS {body}")

    def joined_labels(self, bridge: str, labels: dict[str, str], in_repeat: bool) -> str:
        """A readable list of a select_multiple's labels, in the order they were chosen."""
        case = " ".join(f"WHEN {_literal(code)} THEN {_literal(label)}" for code, label in labels.items())
        label = f"CASE b.code {case} ELSE b.code END" if case else "b.code"
        where = f"b._submission_id = t.{'_submission_id' if in_repeat else '_id'}"
        where += " AND b._parent_row_id = t._row_id" if in_repeat else " AND b._parent_row_id IS NULL"
        if self.pg:
            return (f"(SELECT string_agg({label}, ', ' ORDER BY b._position) FROM {self.table(bridge)} b "
                    f"WHERE {where})")
        return (f"(SELECT group_concat(l, ', ') FROM (SELECT {label} AS l FROM {self.table(bridge)} b "
                f"WHERE {where} ORDER BY b._position))")


def create_views(conn: sa.Connection, tables: FormTables) -> list[str]:
    """(Re)create every analyst view of the form; return their names."""
    sql = _Sql(conn)
    schema = tables.schema
    root = sql.table(tables.root.name)
    live = "_deleted_at IS NULL AND _duplicate_of IS NULL"
    names: list[str] = []
    for plan in tables.plans.values():
        base = sql.table(plan.name)
        if plan.repeat is None:
            rows = f"FROM {base} t WHERE {live}"
        else:
            rows = f"FROM {base} t WHERE t._submission_id IN (SELECT _id FROM {root} WHERE {live})"
        name = view_name(plan.name)
        sql.replace_view(name, f"SELECT t.* {rows}")
        names.append(name)
        by_column = {cp.columns[0]: cp.field for cp in plan.columns if len(cp.columns) == 1}
        own = own_names(plan, [c.name for c in tables.tables[plan.name].columns])
        for lang in schema.languages:
            columns = [_labelled(sql, tables, by_column.get(c.name), plan.repeat is not None, c.name, lang,
                                 own.get(c.name, c.name))
                       for c in tables.tables[plan.name].columns]
            name = view_name(plan.name, lang)
            sql.replace_view(name, f"SELECT {', '.join(columns)} {rows}")
            names.append(name)
        for bridge in plan.bridges:  # bridge tables: only rows of current submissions
            name = view_name(bridge.table)
            sql.replace_view(name, f"SELECT b.* FROM {sql.table(bridge.table)} b WHERE b._submission_id IN "
                                   f"(SELECT _id FROM {root} WHERE {live})")
            names.append(name)
    if sql.pg:
        for table in DICTIONARY:
            sql.replace_view(table, f"SELECT * FROM {sql.table(table)}")
    return names


def own_names(plan: TablePlan, columns: list[str]) -> dict[str, str]:
    """column → the question's own name, for a question named in another script than Latin: its column has a
    stable hashed name (`x_3f2a…`) an analyst cannot guess, so the labelled views call it by the question's
    name (`العمر`, a geopoint's parts `شوێن_latitude`…), unless that name is too long or already taken."""
    used = set(columns)
    out: dict[str, str] = {}
    for cp in plan.columns:
        if cp.field.name.isascii():
            continue
        parts = GEO_PARTS if cp.field.kind is Kind.GEOPOINT else ("",)
        for column, part in zip(cp.columns, parts, strict=True):
            alias = f"{cp.field.name}_{part}" if part else cp.field.name
            if len(alias.encode("utf-8")) <= MAX_IDENTIFIER and alias not in used:
                used.add(alias)
                out[column] = alias
    return out


def _labelled(sql: _Sql, tables: FormTables, field: Field | None, in_repeat: bool, column: str, lang: str,
              alias: str | None = None) -> str:
    """The view's column: `column`, with labels for a select's codes, named `alias` (default: `column`)."""
    quoted = sql.quote(column)
    named = sql.quote(alias or column)
    if field is None or field.sensitive or field.choice_list not in tables.schema.choice_lists:
        return f"t.{quoted}" if named == quoted else f"t.{quoted} AS {named}"
    choices = tables.schema.choice_lists[field.choice_list].choices
    labels = {c.code: c.labels[lang] for c in choices if c.labels.get(lang)}
    if field.kind is Kind.SELECT_ONE:
        case = " ".join(f"WHEN {_literal(code)} THEN {_literal(label)}" for code, label in labels.items())
        return f"CASE t.{quoted} {case} ELSE t.{quoted} END AS {named}" if case else f"t.{quoted} AS {named}"
    if field.kind is Kind.SELECT_MULTIPLE:
        bridge = tables.bridge_plans[field.path].table
        return f"{sql.joined_labels(bridge, labels, in_repeat)} AS {named}"
    return f"t.{quoted} AS {named}"


def grant_analyst(conn: sa.Connection, role: str = ANALYST_ROLE) -> None:
    """PostgreSQL only: a login role that can read the analyst schema and nothing else (give it a
    password with ALTER ROLE … PASSWORD, or let pg_hba.conf decide how it may connect)."""
    quote = conn.dialect.identifier_preparer.quote_identifier
    exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    if not exists:
        conn.execute(sa.text(f"CREATE ROLE {quote(role)} LOGIN"))
    schema = quote(bk.ANALYST_SCHEMA)
    conn.execute(sa.text(f"REVOKE ALL ON SCHEMA public FROM {quote(role)}"))
    conn.execute(sa.text(f'REVOKE ALL ON SCHEMA "{bk.RESTRICTED_SCHEMA}" FROM {quote(role)}'))
    conn.execute(sa.text(f"GRANT USAGE ON SCHEMA {schema} TO {quote(role)}"))
    conn.execute(sa.text(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {quote(role)}"))
    conn.execute(sa.text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {quote(role)}"))
