"""Views analysts read by default: deleted submissions and double uploads left out.

For every table `T` of a form, `T_current` holds the rows of submissions that KoBo still has and
that are not a second upload of the same `meta/instanceID`. Views are re-created whenever the
form's tables change, so they always carry every column.
"""

from __future__ import annotations

import sqlalchemy as sa

from warehouse.naming import identifier
from warehouse.tables import FormTables


def view_name(table: str) -> str:
    return identifier(f"{table}_current")


def _q(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def create_views(conn: sa.Connection, tables: FormTables) -> list[str]:
    """(Re)create the `_current` view of every table of the form; return their names."""
    root = _q(conn, tables.root.name)
    live = "_deleted_at IS NULL AND _duplicate_of IS NULL"
    names = []
    for table in tables.all_tables():
        name = view_name(table.name)
        conn.execute(sa.text(f"DROP VIEW IF EXISTS {_q(conn, name)}"))
        if table is tables.root:
            body = f"SELECT * FROM {root} WHERE {live}"
        else:
            body = (f"SELECT t.* FROM {_q(conn, table.name)} t WHERE t._submission_id IN "
                    f"(SELECT _id FROM {root} WHERE {live})")
        conn.execute(sa.text(f"CREATE VIEW {_q(conn, name)} AS {body}"))
        names.append(name)
    return names
