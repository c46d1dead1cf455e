"""Assets are identified by (server, uid): `asset_key` everywhere; quarantine; runs say who ran them.

- `forms` gains `asset_key` (its primary key: the uid, or uid@host when a second server has the same uid)
  beside `asset_uid` and a normalised `server_url`, unique together; every other table's `asset_uid`
  column becomes `asset_key`.
- `restricted.quarantine`: submissions set aside whole (no usable `_id`, or refused by the database).
- `sync_runs` gains `quarantined`, and `pid`, `host`, `heartbeat_at` so that a run whose process ended
  without finishing is marked `abandoned` by the next run, with the time it last wrote.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RENAMED = [("form_tables", None), ("form_versions", None), ("fields", None), ("field_labels", None),
           ("choices", None), ("attachments", None), ("sync_state", None), ("sync_runs", None),
           ("submission_history", None), ("submissions_raw", "restricted"), ("restricted_values", "restricted")]
MIRRORED = ("forms", "fields", "field_labels", "choices", "sync_runs")  # the analyst schema's dictionary views


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _name(table: str, schema: str | None) -> str:
    return f'"{schema}"."{table}"' if schema and _pg() else f'"{table}"'


def _normal_server(url: str) -> str:
    url = (url or "").strip().rstrip("/")
    for suffix in ("/api/v2", "/api/v1"):
        if url.lower().endswith(suffix):
            url = url[: -len(suffix)].rstrip("/")
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{host.lower()}{slash}{path}" if sep else url


def upgrade() -> None:
    bind = op.get_bind()
    if _pg():
        for view in MIRRORED:  # `SELECT *` views keep their old column list: made again by the next sync
            op.execute(f'DROP VIEW IF EXISTS "analyst"."{view}"')
    for table, schema in RENAMED:
        op.execute(f"ALTER TABLE {_name(table, schema)} RENAME COLUMN asset_uid TO asset_key")

    op.create_table(
        "forms_new",
        sa.Column("asset_key", sa.Text(), nullable=False),
        sa.Column("asset_uid", sa.Text(), nullable=False),
        sa.Column("server_url", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("form_id", sa.Text(), nullable=True),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("version_id", sa.Text(), nullable=True),
        sa.Column("languages", sa.Text(), nullable=True),
        sa.Column("first_synced_at", sa.DateTime(), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("asset_key", name="pk_forms"),
        sa.UniqueConstraint("table_name", name="uq_forms_table_name"),
        sa.UniqueConstraint("server_url", "asset_uid", name="uq_forms_server_asset"),
    )
    rows = bind.execute(sa.text('SELECT asset_uid, server_url, name, form_id, table_name, version_id, languages, '
                                'first_synced_at, last_synced_at FROM "forms"')).mappings().all()
    if rows:
        bind.execute(sa.text(
            'INSERT INTO "forms_new" (asset_key, asset_uid, server_url, name, form_id, table_name, version_id, '
            'languages, first_synced_at, last_synced_at) VALUES (:asset_uid, :asset_uid, :server_url, :name, '
            ':form_id, :table_name, :version_id, :languages, :first_synced_at, :last_synced_at)'),
            [{**r, "server_url": _normal_server(r["server_url"])} for r in rows])
    op.drop_table("forms")
    op.rename_table("forms_new", "forms")

    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("quarantined", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("host", sa.Text(), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
    for run_id, url in bind.execute(sa.text('SELECT run_id, server_url FROM "sync_runs"')).all():
        normal = _normal_server(url)
        if normal != url:
            bind.execute(sa.text('UPDATE "sync_runs" SET server_url = :u WHERE run_id = :r'),
                         {"u": normal, "r": run_id})

    op.create_table(
        "quarantine",
        sa.Column("asset_key", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("submission_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("json", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("asset_key", "digest"),
        schema="restricted",
    )


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_table("quarantine", schema="restricted")
    with op.batch_alter_table("sync_runs") as batch:
        for column in ("heartbeat_at", "host", "pid", "quarantined"):
            batch.drop_column(column)
    rows = bind.execute(sa.text('SELECT * FROM "forms"')).mappings().all()
    if any(r["asset_key"] != r["asset_uid"] for r in rows):
        raise RuntimeError("the warehouse holds two assets with the same uid from different servers: "
                           "revision 0002 cannot represent it")
    if _pg():
        for view in MIRRORED:
            op.execute(f'DROP VIEW IF EXISTS "analyst"."{view}"')
    op.create_table(
        "forms_old",
        sa.Column("asset_uid", sa.Text(), nullable=False, primary_key=True),
        sa.Column("server_url", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("form_id", sa.Text(), nullable=True),
        sa.Column("table_name", sa.Text(), nullable=False, unique=True),
        sa.Column("version_id", sa.Text(), nullable=True),
        sa.Column("languages", sa.Text(), nullable=True),
        sa.Column("first_synced_at", sa.DateTime(), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(), nullable=True),
    )
    if rows:
        columns = ("asset_uid", "server_url", "name", "form_id", "table_name", "version_id", "languages",
                   "first_synced_at", "last_synced_at")
        bind.execute(sa.text(f'INSERT INTO "forms_old" ({", ".join(columns)}) VALUES '
                             f'({", ".join(":" + c for c in columns)})'), [{c: r[c] for c in columns} for r in rows])
    op.drop_table("forms")
    op.rename_table("forms_old", "forms")
    for table, schema in RENAMED:
        op.execute(f"ALTER TABLE {_name(table, schema)} RENAME COLUMN asset_key TO asset_uid")
