"""The dictionary says in which form versions each field exists, and records type conflicts.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fields") as batch:
        batch.add_column(sa.Column("versions", sa.Text(), nullable=True))
        batch.add_column(sa.Column("conflict", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fields") as batch:
        batch.drop_column("conflict")
        batch.drop_column("versions")
