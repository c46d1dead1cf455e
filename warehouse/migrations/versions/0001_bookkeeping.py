# ruff: noqa: E501  (rendered by Alembic autogenerate, kept as generated)
"""The warehouse's fixed tables (forms, dictionary, raw submissions, sync bookkeeping).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attachments',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('uid', sa.Text(), nullable=False),
    sa.Column('submission_id', sa.BigInteger(), nullable=False),
    sa.Column('question_xpath', sa.Text(), nullable=True),
    sa.Column('filename', sa.Text(), nullable=True),
    sa.Column('mimetype', sa.Text(), nullable=True),
    sa.Column('download_url', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('asset_uid', 'uid')
    )
    op.create_index('ix_attachments_submission', 'attachments', ['asset_uid', 'submission_id'], unique=False)
    op.create_table('choices',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('list_name', sa.Text(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('lang', sa.Text(), nullable=False),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('asset_uid', 'list_name', 'code', 'lang')
    )
    op.create_table('field_labels',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('lang', sa.Text(), nullable=False),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('hint', sa.Text(), nullable=True),
    sa.Column('constraint_message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('asset_uid', 'path', 'lang')
    )
    op.create_table('fields',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False, comment="the question's KoBo key, group/sub/question"),
    sa.Column('part', sa.Text(), nullable=False, comment="'' or, for a geopoint, latitude/longitude/..."),
    sa.Column('table_name', sa.Text(), nullable=False),
    sa.Column('column_name', sa.Text(), nullable=False),
    sa.Column('bridge_table', sa.Text(), nullable=True, comment='the table of chosen codes, for a select_multiple'),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('xlsform_type', sa.Text(), nullable=False),
    sa.Column('sql_type', sa.Text(), nullable=False),
    sa.Column('choice_list', sa.Text(), nullable=True),
    sa.Column('repeat_path', sa.Text(), nullable=True),
    sa.Column('required', sa.Text(), nullable=True),
    sa.Column('relevant', sa.Text(), nullable=True),
    sa.Column('constraint', sa.Text(), nullable=True),
    sa.Column('calculation', sa.Text(), nullable=True),
    sa.Column('sensitive', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False, comment='order in the form'),
    sa.PrimaryKeyConstraint('asset_uid', 'path', 'part')
    )
    op.create_table('form_tables',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('table_name', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False, comment='submissions / repeat / select_multiple'),
    sa.Column('path', sa.Text(), nullable=True, comment="the repeat's or the question's KoBo key"),
    sa.Column('parent_table', sa.Text(), nullable=True, comment='the table whose rows these rows belong to'),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('asset_uid', 'table_name')
    )
    op.create_table('form_versions',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('version_uid', sa.Text(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False, comment='KoBo content JSON of that version, verbatim'),
    sa.Column('first_seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('asset_uid', 'version_uid')
    )
    op.create_table('forms',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('server_url', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False, comment="the asset's name on KoBo"),
    sa.Column('form_id', sa.Text(), nullable=True, comment='XLSForm settings form_id'),
    sa.Column('table_name', sa.Text(), nullable=False, comment="the form's submission table"),
    sa.Column('version_id', sa.Text(), nullable=True, comment='the deployed form version the tables were built from'),
    sa.Column('languages', sa.Text(), nullable=True, comment='language codes, space separated, default first'),
    sa.Column('first_synced_at', sa.DateTime(), nullable=True),
    sa.Column('last_synced_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('asset_uid'),
    sa.UniqueConstraint('table_name')
    )
    op.create_table('restricted_values',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('table_name', sa.Text(), nullable=False),
    sa.Column('submission_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('row_id', sa.Text(), nullable=False, comment="'' for the submission, else the repeat's _row_id"),
    sa.Column('path', sa.Text(), nullable=False, comment="the question's KoBo key"),
    sa.Column('value', sa.Text(), nullable=False, comment='the answer to a question marked sensitive'),
    sa.PrimaryKeyConstraint('asset_uid', 'table_name', 'submission_id', 'row_id', 'path'),
    schema='restricted'
    )
    op.create_table('submissions_raw',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('submission_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('uuid', sa.Text(), nullable=False),
    sa.Column('digest', sa.Text(), nullable=False, comment='sha1 of the JSON: tells an unchanged re-fetch'),
    sa.Column('json', sa.Text(), nullable=False, comment='the submission exactly as KoBo sent it'),
    sa.Column('fetched_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('asset_uid', 'submission_id'),
    schema='restricted'
    )
    op.create_table('submission_history',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('submission_id', sa.BigInteger(), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('change', sa.Text(), nullable=False, comment='new / edited (new _uuid) / validation (status changed) / changed (other) / deleted'),
    sa.Column('uuid', sa.Text(), nullable=True, comment="the submission's _uuid from then on"),
    sa.Column('validation_status', sa.Text(), nullable=True),
    sa.Column('validation_by', sa.Text(), nullable=True)
    )
    op.create_index('ix_submission_history', 'submission_history', ['asset_uid', 'submission_id'], unique=False)
    op.create_table('sync_runs',
    sa.Column('run_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('server_url', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('seconds', sa.Double(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False, comment='running / ok / failed'),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('fetched', sa.Integer(), nullable=False),
    sa.Column('inserted', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('deleted', sa.Integer(), nullable=False, comment='submissions found deleted on KoBo'),
    sa.Column('swept', sa.Boolean(), nullable=False, comment='did this run look for edits/deletions'),
    sa.Column('sweep_requests', sa.Integer(), nullable=False),
    sa.Column('sweep_seconds', sa.Double(), nullable=False),
    sa.Column('bad_values', sa.Integer(), nullable=False, comment='answers kept only in the raw JSON: wrong type, unknown question, bad shape'),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('run_id')
    )
    op.create_table('sync_state',
    sa.Column('asset_uid', sa.Text(), nullable=False),
    sa.Column('watermark_time', sa.Text(), nullable=True, comment='_submission_time of the last submission loaded'),
    sa.Column('watermark_id', sa.BigInteger(), nullable=True, comment='_id of the last submission loaded'),
    sa.Column('last_sweep_at', sa.DateTime(), nullable=True, comment='when edits and deletions were last looked for'),
    sa.Column('syncs_since_sweep', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('asset_uid')
    )


def downgrade() -> None:
    op.drop_table('sync_state')
    op.drop_table('sync_runs')
    op.drop_index('ix_submission_history', table_name='submission_history')
    op.drop_table('submission_history')
    op.drop_table('submissions_raw', schema='restricted')
    op.drop_table('restricted_values', schema='restricted')
    op.drop_table('forms')
    op.drop_table('form_versions')
    op.drop_table('form_tables')
    op.drop_table('fields')
    op.drop_table('field_labels')
    op.drop_table('choices')
    op.drop_index('ix_attachments_submission', table_name='attachments')
    op.drop_table('attachments')
