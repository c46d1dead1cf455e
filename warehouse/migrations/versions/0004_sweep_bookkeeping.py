"""The sweep costs what changed: its bookkeeping.

- `sync_state` gains `last_full_sweep_at` (the safety net's schedule; every sweep before this revision was a
  full one, so it starts as `last_sweep_at`), `validation_since` (the newest validation timestamp seen, in
  the server's clock), `history_since` and `history_denied_at` (the project history endpoint).
- `sync_runs` gains `sweep_mode`, `sweep_bytes` and `sweep_detail` (JSON: per mechanism, its cost and the
  changes it found).
- `submission_history` gains `found_by`: which mechanism found each change.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATE = ("last_full_sweep_at", "validation_since", "history_since", "history_denied_at")
RUNS = ("sweep_mode", "sweep_bytes", "sweep_detail")


def upgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(sa.Column("last_full_sweep_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("validation_since", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("history_since", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("history_denied_at", sa.DateTime(), nullable=True))
    op.execute('UPDATE "sync_state" SET last_full_sweep_at = last_sweep_at')
    # PostgreSQL: the analyst schema's `SELECT *` mirror of sync_runs keeps its column list until the next sync
    # makes it again; adding columns does not disturb it
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("sweep_mode", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sweep_bytes", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("sweep_detail", sa.Text(), nullable=True))
    with op.batch_alter_table("submission_history") as batch:
        batch.add_column(sa.Column("found_by", sa.Text(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('DROP VIEW IF EXISTS "analyst"."sync_runs"')  # it may name the columns dropped here
    with op.batch_alter_table("submission_history") as batch:
        batch.drop_column("found_by")
    with op.batch_alter_table("sync_runs") as batch:
        for column in reversed(RUNS):
            batch.drop_column(column)
    with op.batch_alter_table("sync_state") as batch:
        for column in reversed(STATE):
            batch.drop_column(column)
