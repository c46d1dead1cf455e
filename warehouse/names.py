"""Which names a form's tables and views may take: never one that another object of the warehouse has or
may have — the database's own (`sqlite_…`, `pg_…`), the bookkeeping tables, Alembic's version table,
the scheduler's job store, and every table and view of every other form (recorded or derivable)."""

from __future__ import annotations

import sqlalchemy as sa

from forms.schema import FormSchema
from warehouse import bookkeeping as bk
from warehouse.naming import identifier, short_hash
from warehouse.tables import FormTables
from warehouse.views import view_names

RESERVED = frozenset({*(t.name for t in bk.metadata.sorted_tables), "amina_schema_version", "apscheduler_jobs"})
RESERVED_PREFIXES = ("sqlite_", "pg_")


def is_reserved(name: str) -> bool:
    return name in RESERVED or name.startswith(RESERVED_PREFIXES)


def names_in_use(conn: sa.Connection, *, exclude_key: str) -> set[str]:
    """Every name a new table or view of the form `exclude_key` must not take."""
    taken: set[str] = set(RESERVED)
    inspector = sa.inspect(conn)
    mine = set(conn.execute(sa.select(bk.form_tables.c.table_name)
                            .where(bk.form_tables.c.asset_key == exclude_key)).scalars())
    for schema in ([None, bk.ANALYST_SCHEMA, bk.RESTRICTED_SCHEMA] if conn.dialect.name == "postgresql" else [None]):
        taken |= set(inspector.get_table_names(schema=schema)) | set(inspector.get_view_names(schema=schema))
    forms = conn.execute(sa.select(bk.forms.c.asset_key, bk.forms.c.table_name, bk.forms.c.languages)).all()
    tables = conn.execute(sa.select(bk.form_tables.c.asset_key, bk.form_tables.c.table_name)).all()
    languages = {key: (langs or "").split() for key, _t, langs in forms}
    for key, table in tables:
        if key != exclude_key:
            taken.add(table)
            taken |= set(view_names(table, languages.get(key, [])))
    for key, table, _langs in forms:
        if key != exclude_key:
            taken.add(table)
    mine_views = {v for t in mine for v in view_names(t, languages.get(exclude_key, []))}
    return taken - mine - mine_views


def planned_names(tables: FormTables) -> set[str]:
    """Every table and view name a form's tables would bring."""
    names = {t.name for t in tables.all_tables()}
    for table in list(names):
        names |= set(view_names(table, tables.schema.languages))
    return names


def choose_base_name(wanted: str, key: str, schema: FormSchema, taken: set[str]) -> str:
    """The form's table name: `wanted` in snake case, unless it (or a table or view it brings) would take a
    name in use; then with a short hash of the asset key."""
    base = identifier(wanted)
    if base.startswith(RESERVED_PREFIXES):  # the database's own namespace: keep the name readable behind a prefix
        base = identifier(f"form_{base}")
    for attempt in range(4):
        candidate = base if attempt == 0 else identifier(f"{base}_{short_hash(f'{key}#{attempt}', 6)}")
        if is_reserved(candidate) or candidate in taken:
            continue
        if not planned_names(FormTables(schema, candidate, avoid=taken)) & {n for n in taken if n != candidate}:
            return candidate
    return identifier(f"form_{short_hash(key, 12)}")
