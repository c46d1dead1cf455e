"""The warehouse's fixed tables: the forms, their dictionary, raw submissions and sync bookkeeping."""

from __future__ import annotations

import sqlalchemy as sa

# On PostgreSQL these schemas separate what analysts may read from what they may not; on SQLite
# (which has no schemas) the engine maps them to the main database.
RESTRICTED_SCHEMA = "restricted"
ANALYST_SCHEMA = "analyst"

metadata = sa.MetaData()

forms = sa.Table(
    "forms", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True,
              comment="the asset in this warehouse: its uid, or uid@host when another server has the same uid"),
    sa.Column("asset_uid", sa.Text, nullable=False, comment="the asset's uid on its server"),
    sa.Column("server_url", sa.Text, nullable=False, comment="the server, normalised (scheme://host[:port])"),
    sa.Column("name", sa.Text, nullable=False, comment="the asset's name on KoBo"),
    sa.Column("form_id", sa.Text, comment="XLSForm settings form_id"),
    sa.Column("table_name", sa.Text, nullable=False, unique=True, comment="the form's submission table"),
    sa.Column("version_id", sa.Text, comment="the deployed form version the tables were built from"),
    sa.Column("languages", sa.Text, comment="language codes, space separated, default first"),
    sa.Column("first_synced_at", sa.DateTime),
    sa.Column("last_synced_at", sa.DateTime),
    sa.UniqueConstraint("server_url", "asset_uid", name="uq_forms_server_asset"),
    quote=True,
)

form_tables = sa.Table(
    "form_tables", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("table_name", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False, comment="submissions / repeat / select_multiple"),
    sa.Column("path", sa.Text, comment="the repeat's or the question's KoBo key"),
    sa.Column("parent_table", sa.Text, comment="the table whose rows these rows belong to"),
    sa.Column("position", sa.Integer, nullable=False),
    quote=True,
)

form_versions = sa.Table(
    "form_versions", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("version_uid", sa.Text, primary_key=True),
    sa.Column("content", sa.Text, nullable=False, comment="KoBo content JSON of that version, verbatim"),
    sa.Column("first_seen_at", sa.DateTime, nullable=False),
    quote=True,
)

fields = sa.Table(
    "fields", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("path", sa.Text, primary_key=True, comment="the question's KoBo key, group/sub/question"),
    sa.Column("part", sa.Text, primary_key=True, comment="'' or, for a geopoint, latitude/longitude/..."),
    sa.Column("table_name", sa.Text, nullable=False),
    sa.Column("column_name", sa.Text, nullable=False),
    sa.Column("bridge_table", sa.Text, comment="the table of chosen codes, for a select_multiple"),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("xlsform_type", sa.Text, nullable=False),
    sa.Column("sql_type", sa.Text, nullable=False),
    sa.Column("choice_list", sa.Text),
    sa.Column("repeat_path", sa.Text),
    sa.Column("required", sa.Text),
    sa.Column("relevant", sa.Text),
    sa.Column("constraint", sa.Text),
    sa.Column("calculation", sa.Text),
    sa.Column("sensitive", sa.Boolean, nullable=False),
    sa.Column("position", sa.Integer, nullable=False, comment="order in the form"),
    sa.Column("versions", sa.Text, comment="the form versions (space separated, oldest first) that have it"),
    sa.Column("conflict", sa.Text, comment="set when versions disagree on its type; the column keeps the first"),
    quote=True,
)

field_labels = sa.Table(
    "field_labels", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("lang", sa.Text, primary_key=True),
    sa.Column("label", sa.Text),
    sa.Column("hint", sa.Text),
    sa.Column("constraint_message", sa.Text),
    quote=True,
)

choices = sa.Table(
    "choices", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("list_name", sa.Text, primary_key=True),
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("lang", sa.Text, primary_key=True),
    sa.Column("label", sa.Text),
    sa.Column("position", sa.Integer, nullable=False),
    quote=True,
)

submissions_raw = sa.Table(
    "submissions_raw", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("submission_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("uuid", sa.Text, nullable=False),
    sa.Column("digest", sa.Text, nullable=False, comment="sha1 of the JSON: tells an unchanged re-fetch"),
    sa.Column("json", sa.Text, nullable=False, comment="the submission exactly as KoBo sent it"),
    sa.Column("fetched_at", sa.DateTime, nullable=False),
    schema=RESTRICTED_SCHEMA,
    quote=True,
)

restricted_values = sa.Table(
    "restricted_values", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("table_name", sa.Text, primary_key=True),
    sa.Column("submission_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("row_id", sa.Text, primary_key=True, comment="'' for the submission, else the repeat's _row_id"),
    sa.Column("path", sa.Text, primary_key=True, comment="the question's KoBo key"),
    sa.Column("value", sa.Text, nullable=False, comment="the answer to a question marked sensitive"),
    schema=RESTRICTED_SCHEMA,
    quote=True,
)

attachments = sa.Table(
    "attachments", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("uid", sa.Text, primary_key=True),
    sa.Column("submission_id", sa.BigInteger, nullable=False),
    sa.Column("question_xpath", sa.Text),
    sa.Column("filename", sa.Text),
    sa.Column("mimetype", sa.Text),
    sa.Column("download_url", sa.Text),
    sa.Index("ix_attachments_submission", "asset_key", "submission_id"),
    quote=True,
)

sync_state = sa.Table(
    "sync_state", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("watermark_time", sa.Text, comment="_submission_time of the last submission loaded"),
    sa.Column("watermark_id", sa.BigInteger, comment="_id of the last submission loaded"),
    sa.Column("last_sweep_at", sa.DateTime, comment="when edits and deletions were last looked for"),
    sa.Column("syncs_since_sweep", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("last_full_sweep_at", sa.DateTime,
              comment="when every submission was last compared with the server (the safety net, or a first load)"),
    sa.Column("validation_since", sa.BigInteger,
              comment="newest validation-status timestamp the sweep has seen (Unix seconds, the server's clock)"),
    sa.Column("history_since", sa.DateTime,
              comment="when the last sweep that read the project history started (UTC)"),
    sa.Column("history_denied_at", sa.DateTime,
              comment="when the server last refused the project history (403: the token lacks manage_asset)"),
    sa.Column("source_state", sa.Text, comment="what the source keeps between runs (JSON), e.g. ODK Central's ETag"),
    quote=True,
)

sync_runs = sa.Table(
    "sync_runs", metadata,
    sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("asset_key", sa.Text, nullable=False),
    sa.Column("server_url", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("seconds", sa.Double),
    sa.Column("status", sa.Text, nullable=False,
              comment="running / ok / failed / interrupted (stopped on request) / abandoned (its process ended)"),
    sa.Column("requests", sa.Integer, nullable=False, default=0),
    sa.Column("pages", sa.Integer, nullable=False, default=0),
    sa.Column("fetched", sa.Integer, nullable=False, default=0),
    sa.Column("inserted", sa.Integer, nullable=False, default=0),
    sa.Column("updated", sa.Integer, nullable=False, default=0),
    sa.Column("unchanged", sa.Integer, nullable=False, default=0),
    sa.Column("deleted", sa.Integer, nullable=False, default=0, comment="submissions found deleted on KoBo"),
    sa.Column("swept", sa.Boolean, nullable=False, default=False, comment="did this run look for edits/deletions"),
    sa.Column("sweep_requests", sa.Integer, nullable=False, default=0),
    sa.Column("sweep_seconds", sa.Double, nullable=False, default=0.0),
    sa.Column("bad_values", sa.Integer, nullable=False, default=0,
              comment="answers kept only in the raw JSON: wrong type, unknown question, bad shape"),
    sa.Column("error", sa.Text),
    sa.Column("quarantined", sa.Integer, nullable=False, default=0,
              comment="submissions set aside whole in quarantine (no usable _id, or the database refused them)"),
    sa.Column("pid", sa.Integer, comment="process id of the worker that ran it"),
    sa.Column("host", sa.Text, comment="host name of the worker that ran it"),
    sa.Column("heartbeat_at", sa.DateTime, comment="when the run last wrote (each stored page); see 'abandoned'"),
    sa.Column("sweep_mode", sa.Text, comment="incremental (counts, edited set, reviews, history) / full / NULL"),
    sa.Column("sweep_bytes", sa.BigInteger, nullable=False, default=0,
              comment="bytes the sweep received (decompressed JSON)"),
    sa.Column("sweep_detail", sa.Text,
              comment="JSON: per mechanism, its requests, bytes, seconds and the changes it found, by kind"),
    quote=True,
)

submission_history = sa.Table(
    "submission_history", metadata,
    sa.Column("asset_key", sa.Text, nullable=False),
    sa.Column("submission_id", sa.BigInteger, nullable=False),
    sa.Column("seen_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.Integer),
    sa.Column("change", sa.Text, nullable=False,
              comment="new / edited (new _uuid) / validation (status changed) / changed (other) / deleted"),
    sa.Column("uuid", sa.Text, comment="the submission's _uuid from then on"),
    sa.Column("validation_status", sa.Text),
    sa.Column("validation_by", sa.Text),
    sa.Column("found_by", sa.Text,
              comment="what found the change: watermark / history / count / edited / validation / full_sweep"),
    sa.Index("ix_submission_history", "asset_key", "submission_id"),
    quote=True,
)

quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("digest", sa.Text, primary_key=True, comment="sha1 of the JSON: the same submission is kept once"),
    sa.Column("submission_id", sa.Text, comment="the _id as the server sent it (may be missing or unusable)"),
    sa.Column("reason", sa.Text, nullable=False, comment="why it could not be stored in the form's tables"),
    sa.Column("json", sa.Text, nullable=False, comment="the submission exactly as the server sent it"),
    sa.Column("first_seen_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.Integer, comment="the run that first set it aside"),
    schema=RESTRICTED_SCHEMA,
    quote=True,
)
