"""Alembic environment for the warehouse's fixed tables. Per-form tables are not migrated by Alembic:
they are derived from each form's schema and extended in place (warehouse.store)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table="amina_schema_version", render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
