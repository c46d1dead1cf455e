"""The warehouse: the only place that writes SQL.

`Warehouse.register_form` creates (or extends) a form's tables and writes its data dictionary;
`Warehouse.load_page` upserts one page of submissions together with the watermark that covers
them, in a single transaction, so a crash at any instant loses at most the page in flight.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from common.errors import AminaError, AssetBusy, WarehouseError
from common.gcpause import gc_paused
from forms.schema import Field, FormSchema, Kind
from warehouse import bookkeeping as bk
from warehouse.bulk import BulkInserts
from warehouse.flatten import RESTRICTED, FlatPage, Flattener
from warehouse.naming import identifier, short_hash
from warehouse.protect import Pseudonymizer, missing_key_error
from warehouse.tables import GEO_PARTS, FormTables, PreviousNames, sql_type_of
from warehouse.views import ANALYST_ROLE, create_views, grant_analyst

log = logging.getLogger(__name__)


_local_locks: dict[str, threading.Lock] = {}
MIGRATIONS = Path(__file__).parent / "migrations"
DDL_LOCK = 0x616D696E61  # "amina": serializes schema changes between workers sharing one PostgreSQL


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def database_url(target: str) -> str:
    """A SQLAlchemy URL from a URL or a plain file path (which means SQLite)."""
    if "://" in target:
        return target
    return f"sqlite:///{Path(target).expanduser()}"


@dataclass(frozen=True, slots=True)
class Watermark:
    submission_time: str  # KoBo's own text, 'YYYY-MM-DDTHH:MM:SS'
    submission_id: int


@dataclass(slots=True)
class PageResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_values: int = 0


@dataclass(frozen=True, slots=True)
class RegisteredForm:
    asset_uid: str
    tables: FormTables
    flattener: Flattener


class Warehouse:
    def __init__(self, target: str, *, echo: bool = False, pseudonymizer: Pseudonymizer | None = None):
        self.url = database_url(target)
        self.pseudonymizer = pseudonymizer
        try:
            engine = sa.create_engine(self.url, echo=echo)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise WarehouseError(f"cannot open the warehouse {self.safe_url}: {exc}") from exc
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            engine = engine.execution_options(
                schema_translate_map={bk.RESTRICTED_SCHEMA: None, bk.ANALYST_SCHEMA: None})
        self.engine = engine
        self._bulk = BulkInserts(engine.dialect, schemas=self.has_schemas)
        self._guard(self._create_bookkeeping, "create the bookkeeping tables")

    @property
    def has_schemas(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def _create_bookkeeping(self) -> None:
        """Create or migrate the fixed tables with Alembic (warehouse/migrations)."""
        from alembic import command
        from alembic.config import Config

        with self.engine.begin() as conn:
            if self.has_schemas:
                # several workers may start at once; PostgreSQL's IF NOT EXISTS does not make DDL race-free
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK})
                for schema in (bk.RESTRICTED_SCHEMA, bk.ANALYST_SCHEMA):
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            inspector = sa.inspect(conn)
            if inspector.has_table("forms") and not inspector.has_table("amina_schema_version"):
                command.stamp(cfg, "0001")  # made before the warehouse had migrations: the first revision's shape
            command.upgrade(cfg, "head")

    @property
    def safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def _guard(self, action, what: str):  # type: ignore[no-untyped-def]
        try:
            return action()
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
            raise WarehouseError(f"warehouse {self.safe_url}: could not {what}: {reason}") from exc

    def dispose(self) -> None:
        self.engine.dispose()

    # -- forms ----------------------------------------------------------------------------------

    def register_form(self, *, asset_uid: str, server_url: str, name: str, schema: FormSchema,
                      version_uid: str | None, content: Mapping[str, Any], deployed: bool = True,
                      loading: bool = True) -> RegisteredForm:
        """Create or extend the form's tables and rewrite its dictionary; idempotent.

        `schema` may merge several versions; `version_uid`/`content` is the version being recorded, the
        deployed one unless `deployed` is False (an older version met in the data). `loading`: the form
        is about to receive submissions, so personal data in it needs the pseudonym key (a form only
        being published does not)."""
        return self._guard(
            lambda: self._register(asset_uid, server_url, name, schema, version_uid, content, deployed, loading),
            f"set up the tables of form {asset_uid}")

    def stored_versions(self, asset_uid: str) -> dict[str, Mapping[str, Any]]:
        """Every form version recorded for the asset: version uid → its KoBo content, oldest first."""
        fv = bk.form_versions
        with self.engine.connect() as conn:
            return {v: orjson.loads(c) for v, c in conn.execute(
                sa.select(fv.c.version_uid, fv.c.content).where(fv.c.asset_uid == asset_uid)
                .order_by(fv.c.first_seen_at))}

    def _register(self, asset_uid: str, server_url: str, name: str, schema: FormSchema,
                  version_uid: str | None, content: Mapping[str, Any], deployed: bool,
                  loading: bool) -> RegisteredForm:
        now = utcnow()
        with self.engine.begin() as conn:
            existing = conn.execute(sa.select(bk.forms.c.table_name).where(bk.forms.c.asset_uid == asset_uid)
                                    ).scalar_one_or_none()
            if existing is None:
                taken = set(conn.execute(sa.select(bk.forms.c.table_name)).scalars())
                reserved = {t.name for t in bk.metadata.sorted_tables}
                wanted = identifier(schema.form_id if schema.form_id not in ("", "form") else name)
                table_name = wanted
                if table_name in taken or table_name in reserved:
                    table_name = identifier(f"{wanted}_{short_hash(asset_uid, 6)}")
            else:
                table_name = existing
        tables = self._keep_column_types(FormTables(schema, table_name, previous=self._previous_names(asset_uid)))
        schema = tables.schema
        if loading and schema.sensitive_paths and self.pseudonymizer is None:
            raise missing_key_error(name, list(schema.sensitive_paths))
        self._create_or_extend(tables)
        with self.engine.begin() as conn:
            if self.has_schemas:  # the views are re-created: one worker at a time
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK})
            values = {"server_url": server_url, "name": name, "form_id": schema.form_id,
                      "languages": " ".join(schema.languages)}
            if deployed or existing is None:
                values["version_id"] = version_uid
            if existing is None:
                conn.execute(bk.forms.insert().values(asset_uid=asset_uid, table_name=table_name,
                                                      first_synced_at=None, **values))
            else:
                conn.execute(bk.forms.update().where(bk.forms.c.asset_uid == asset_uid).values(**values))
            if version_uid:
                seen = conn.execute(sa.select(bk.form_versions.c.version_uid).where(
                    bk.form_versions.c.asset_uid == asset_uid, bk.form_versions.c.version_uid == version_uid)
                ).first()
                if seen is None:
                    conn.execute(bk.form_versions.insert().values(
                        asset_uid=asset_uid, version_uid=version_uid,
                        content=orjson.dumps(content).decode(), first_seen_at=now))
            self._write_dictionary(conn, asset_uid, tables, self._versions_by_path(conn, asset_uid))
            create_views(conn, tables)
        return RegisteredForm(asset_uid=asset_uid, tables=tables, flattener=Flattener(tables, self.pseudonymizer))

    def _previous_names(self, asset_uid: str) -> PreviousNames:
        """The names the form's tables and columns have already (from the dictionary): they are kept."""
        tables: dict[str, str] = {}
        columns: dict[str, dict[str, str]] = {}
        with self.engine.connect() as conn:
            ft, f = bk.form_tables, bk.fields
            for r in conn.execute(sa.select(ft.c.table_name, ft.c.kind, ft.c.path).where(ft.c.asset_uid == asset_uid)):
                if r.kind in ("repeat", "select_multiple") and r.path:
                    tables[f"{'repeat' if r.kind == 'repeat' else 'bridge'}:{r.path}"] = r.table_name
            for r in conn.execute(sa.select(f.c.table_name, f.c.path, f.c.part, f.c.column_name)
                                  .where(f.c.asset_uid == asset_uid)):
                columns.setdefault(r.table_name, {})[f"{r.path}#{r.part}" if r.part else r.path] = r.column_name
        return PreviousNames(tables=tables, columns=columns)

    def _keep_column_types(self, planned: FormTables) -> FormTables:
        """A question whose type changed between versions keeps the type its column already has: the
        schema is adjusted to the column, and the conflict recorded for the dictionary."""
        schema = planned.schema
        changed: dict[str, Field] = {}
        conflicts = dict(schema.conflicts)
        with self.engine.connect() as conn:
            inspector = sa.inspect(conn)
            for plan in planned.plans.values():
                if not inspector.has_table(plan.name):
                    continue
                existing = {c["name"]: c["type"] for c in inspector.get_columns(plan.name)}
                for cp in plan.columns:
                    f = cp.field
                    if f.kind is Kind.GEOPOINT or f.sensitive or cp.columns[0] not in existing:
                        continue
                    kind = _kind_of(existing[cp.columns[0]])
                    if _kind_of(sql_type_of(f)) != kind:
                        changed[f.path] = dataclasses.replace(f, kind=kind)
                        conflicts[f.path] = (f"the form now has it as {f.kind.value}; its column keeps "
                                             f"{kind.value} (values that do not fit are kept raw and reported)")
        if not changed:
            return planned
        log.warning("form %s: %d question(s) changed type; their columns keep the old type", planned.base,
                    len(changed))
        kept = dataclasses.replace(schema, fields=tuple(changed.get(f.path, f) for f in schema.fields),
                                   conflicts=conflicts)
        return FormTables(kept, planned.base, previous=planned.previous)

    def _create_or_extend(self, tables: FormTables) -> None:
        """Create missing tables; add columns a newer form version brought. Never drops anything."""
        with self.engine.begin() as conn:
            if self.has_schemas:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK})
            inspector = sa.inspect(conn)
            for table in tables.all_tables():
                if not inspector.has_table(table.name):
                    table.create(conn)
                    continue
                present = {c["name"] for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in present:
                        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                        conn.execute(sa.text(f"ALTER TABLE {_q(conn, table.name)} ADD COLUMN {ddl}"))
                        if self.has_schemas and column.comment:  # CREATE TABLE carries comments; ALTER does not
                            conn.execute(sa.schema.SetColumnComment(column))

    @staticmethod
    def _versions_by_path(conn: sa.Connection, asset_uid: str) -> dict[str, list[str]]:
        """Question path → the recorded form versions (oldest first) that have it."""
        out: dict[str, list[str]] = {}
        fv = bk.form_versions
        for version, content in conn.execute(sa.select(fv.c.version_uid, fv.c.content)
                                             .where(fv.c.asset_uid == asset_uid).order_by(fv.c.first_seen_at)):
            try:
                paths = FormSchema.from_content(orjson.loads(content)).by_path
            except (AminaError, ValueError, TypeError):  # one unreadable version must not hide the others
                continue
            for path in paths:
                out.setdefault(path, []).append(version)
        return out

    def _write_dictionary(self, conn: sa.Connection, asset_uid: str, tables: FormTables,
                          versions: dict[str, list[str]]) -> None:
        schema = tables.schema
        for t in (bk.fields, bk.field_labels, bk.choices):
            conn.execute(t.delete().where(t.c.asset_uid == asset_uid))
        known = set(conn.execute(sa.select(bk.form_tables.c.table_name).where(bk.form_tables.c.asset_uid == asset_uid))
                    .scalars())
        table_rows = []
        for plan in tables.plans.values():
            parent = None if plan.repeat is None else tables.plans[plan.repeat.parent].name
            table_rows.append({"table_name": plan.name, "kind": "submissions" if plan.repeat is None else "repeat",
                               "path": plan.repeat.path if plan.repeat else None, "parent_table": parent})
            table_rows += [{"table_name": b.table, "kind": "select_multiple", "path": b.field.path,
                            "parent_table": plan.name} for b in plan.bridges]
        new_tables = [{**r, "asset_uid": asset_uid, "position": len(known) + i}
                      for i, r in enumerate(r for r in table_rows if r["table_name"] not in known)]
        if new_tables:  # tables of older versions stay listed: their data stays
            conn.execute(bk.form_tables.insert(), new_tables)
        field_rows: list[dict[str, Any]] = []
        for plan in tables.plans.values():
            bridges = {b.field.path: b.table for b in plan.bridges}
            for cp in plan.columns:
                f = cp.field
                parts = GEO_PARTS if f.kind is Kind.GEOPOINT else ("",)
                for column, part in zip(cp.columns, parts, strict=True):
                    field_rows.append({
                        "asset_uid": asset_uid, "path": f.path, "part": part, "table_name": plan.name,
                        "column_name": column, "bridge_table": bridges.get(f.path), "name": f.name,
                        "xlsform_type": f.type,
                        "sql_type": str(tables.tables[plan.name].c[column].type.compile(conn.dialect)),
                        "choice_list": f.choice_list, "repeat_path": f.repeat, "required": f.required,
                        "relevant": f.relevant, "constraint": f.constraint, "calculation": f.calculation,
                        "sensitive": f.sensitive, "position": f.row or 0,
                        "versions": " ".join(versions.get(f.path, [])) or None,
                        "conflict": schema.conflicts.get(f.path),
                    })
        if field_rows:
            conn.execute(bk.fields.insert(), field_rows)
        label_rows: list[dict[str, Any]] = []
        for item in (*schema.fields, *schema.repeats):  # repeats have labels too, but no hints
            hints: Mapping[str, str] = getattr(item, "hints", {})
            messages: Mapping[str, str] = getattr(item, "constraint_message", {})
            for lang in schema.languages:
                if item.labels.get(lang) or hints.get(lang) or messages.get(lang):
                    label_rows.append({"asset_uid": asset_uid, "path": item.path, "lang": lang,
                                       "label": item.labels.get(lang), "hint": hints.get(lang),
                                       "constraint_message": messages.get(lang)})
        if label_rows:
            conn.execute(bk.field_labels.insert(), label_rows)
        choice_rows = [
            {"asset_uid": asset_uid, "list_name": cl.name, "code": c.code, "lang": lang,
             "label": c.labels.get(lang), "position": position}
            for cl in schema.choice_lists.values()
            for position, c in enumerate(cl.choices, start=1)
            for lang in schema.languages
        ]
        if choice_rows:
            conn.execute(bk.choices.insert(), _unique(choice_rows, ("list_name", "code", "lang")))

    # -- loading --------------------------------------------------------------------------------

    def watermark(self, asset_uid: str) -> Watermark | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(bk.sync_state.c.watermark_time, bk.sync_state.c.watermark_id)
                               .where(bk.sync_state.c.asset_uid == asset_uid)).first()
        if row is None or row.watermark_time is None:
            return None
        return Watermark(row.watermark_time, int(row.watermark_id))

    def load_page(self, form: RegisteredForm, submissions: Sequence[Mapping[str, Any]],
                  watermark: Watermark | None, *, run_id: int | None = None) -> PageResult:
        """Upsert one page of submissions (and move the watermark, if given), in one transaction."""
        with gc_paused():  # a page makes ~100k rows and values that are not garbage; see common.gcpause
            return self._guard(lambda: self._load(form, submissions, watermark, run_id),
                               f"store a page of submissions of form {form.asset_uid}")

    def _load(self, form: RegisteredForm, submissions: Sequence[Mapping[str, Any]],
              watermark: Watermark | None, run_id: int | None) -> PageResult:
        now = utcnow()
        result = PageResult()
        raw = bk.submissions_raw
        root = form.tables.root
        encoded: dict[int, tuple[bytes, str]] = {}
        for s in submissions:
            blob = orjson.dumps(s)
            encoded[int(s["_id"])] = (blob, hashlib.sha1(blob).hexdigest())
        with self.engine.begin() as conn:
            known: dict[int, tuple[str, str, str | None]] = {}  # _id → (digest, uuid, validation uid)
            for chunk in _chunks(list(encoded), 900):
                found = conn.execute(
                    sa.select(raw.c.submission_id, raw.c.digest, raw.c.uuid, root.c._validation_status,
                              root.c._deleted_at)
                    .select_from(raw.outerjoin(root, root.c._id == raw.c.submission_id))
                    .where(raw.c.asset_uid == form.asset_uid, raw.c.submission_id.in_(chunk)))
                for sid, digest, uuid, status, deleted_at in found:
                    # a submission we had marked deleted is rewritten whatever its digest
                    known[int(sid)] = (digest if deleted_at is None else "", uuid, status)
            page = FlatPage()
            changed: list[Mapping[str, Any]] = []
            replaced: list[int] = []
            history: list[dict[str, Any]] = []
            for s in submissions:
                sid = int(s["_id"])
                digest = encoded[sid][1]
                old = known.get(sid)
                if old is not None and old[0] == digest:
                    result.unchanged += 1
                    continue
                uuid = str(s.get("_uuid", ""))
                status = (s.get("_validation_status") or {}) if isinstance(s.get("_validation_status"), dict) else {}
                if old is None:
                    result.inserted += 1
                    change = "new"
                else:
                    result.updated += 1
                    replaced.append(sid)
                    change = ("edited" if old[1] != uuid else
                              "validation" if old[2] != status.get("uid") else "changed")
                changed.append(s)
                history.append({"asset_uid": form.asset_uid, "submission_id": sid, "seen_at": now,
                                "run_id": run_id, "change": change, "uuid": uuid,
                                "validation_status": status.get("uid"), "validation_by": status.get("by_whom")})
                form.flattener.flatten_into(page, s, now)
            result.bad_values = page.issues
            if replaced:
                self._delete_submissions(conn, form, replaced)
            for table in form.tables.all_tables():
                rows = page.rows.get(table.name)
                if rows:
                    self._bulk(conn, table, rows)
            secret_rows = page.rows.get(RESTRICTED)
            if secret_rows:
                for r in secret_rows:
                    r["asset_uid"] = form.asset_uid
                self._bulk(conn, bk.restricted_values, secret_rows)
            if changed:
                self._bulk(conn, raw, [
                    {"asset_uid": form.asset_uid, "submission_id": int(s["_id"]), "uuid": str(s.get("_uuid", "")),
                     "digest": encoded[int(s["_id"])][1], "json": encoded[int(s["_id"])][0].decode(),
                     "fetched_at": now} for s in changed])
                self._bulk(conn, bk.submission_history, history)
                attachment_rows = _attachment_rows(form.asset_uid, changed)
                if attachment_rows:
                    conn.execute(bk.attachments.insert(), _unique(attachment_rows, ("uid",)))
                self._flag_duplicates(conn, root, changed)
            if watermark is not None:
                self._set_watermark(conn, form.asset_uid, watermark, now)
        return result

    def _flag_duplicates(self, conn: sa.Connection, root: sa.Table, changed: Sequence[Mapping[str, Any]]) -> None:
        """A submission whose meta/instanceID an earlier one (lower _id, not deleted) already has is a double
        upload: its `_duplicate_of` is that earlier _id. One indexed lookup of the page's instance ids; only
        the duplicates found are updated."""
        wanted = sorted({str(s["meta/instanceID"]) for s in changed if s.get("meta/instanceID")})
        stored: dict[str, list[int]] = {}
        for chunk in _chunks(wanted, 900):
            for instance_id, sid in conn.execute(sa.select(root.c._instance_id, root.c._id).where(
                    root.c._instance_id.in_(chunk), root.c._deleted_at.is_(None))):
                stored.setdefault(instance_id, []).append(int(sid))
        updates = []
        for s in changed:
            sid = int(s["_id"])
            first = min((i for i in stored.get(str(s.get("meta/instanceID")), ()) if i < sid), default=None)
            if first is not None:
                updates.append({"sid": sid, "first": first})
        if updates:
            conn.execute(root.update().where(root.c._id == sa.bindparam("sid"))
                         .values(_duplicate_of=sa.bindparam("first")), updates)

    def mark_deleted(self, form: RegisteredForm, ids: Sequence[int], *, run_id: int | None = None) -> int:
        """Mark submissions that KoBo no longer has; their rows stay, with `_deleted_at` set."""
        def go() -> int:
            now = utcnow()
            root = form.tables.root
            with self.engine.begin() as conn:
                count = 0
                for chunk in _chunks(list(ids), 900):
                    count += conn.execute(root.update().where(root.c._id.in_(chunk), root.c._deleted_at.is_(None))
                                          .values(_deleted_at=now)).rowcount
                if ids:
                    conn.execute(bk.submission_history.insert(), [
                        {"asset_uid": form.asset_uid, "submission_id": int(i), "seen_at": now, "run_id": run_id,
                         "change": "deleted", "uuid": None, "validation_status": None, "validation_by": None}
                        for i in ids])
            return count
        return self._guard(go, f"mark deleted submissions of form {form.asset_uid}")

    def manifest(self, form: RegisteredForm, after_id: int | None, up_to_id: int | None
                 ) -> dict[int, tuple[str, str | None, int | None]]:
        """_id → (_uuid, validation uid, validation timestamp) of the stored, not deleted submissions
        with after_id < _id <= up_to_id (None: no bound)."""
        def go() -> dict[int, tuple[str, str | None, int | None]]:
            root = form.tables.root
            q = sa.select(root.c._id, root.c._uuid, root.c._validation_status, root.c._validation_at).where(
                root.c._deleted_at.is_(None))
            if after_id is not None:
                q = q.where(root.c._id > after_id)
            if up_to_id is not None:
                q = q.where(root.c._id <= up_to_id)
            with self.engine.connect() as conn:
                return {int(i): (u, v, _epoch(at)) for i, u, v, at in conn.execute(q)}
        return self._guard(go, "read the stored submissions")

    def live_count(self, form: RegisteredForm) -> int:
        root = form.tables.root
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(root)
                                    .where(root.c._deleted_at.is_(None))).scalar_one())

    def sweep_due(self, asset_uid: str, every: int) -> bool:
        """True when `every` syncs have run since the last sweep (every=1: each sync sweeps)."""
        if every <= 0:
            return False
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(bk.sync_state.c.syncs_since_sweep, bk.sync_state.c.last_sweep_at)
                               .where(bk.sync_state.c.asset_uid == asset_uid)).first()
        if row is None or row.last_sweep_at is None:
            return True
        return (row.syncs_since_sweep or 0) + 1 >= every

    def record_sync(self, asset_uid: str, *, swept: bool) -> None:
        def go() -> None:
            now = utcnow()
            with self.engine.begin() as conn:
                st = bk.sync_state
                values = ({"last_sweep_at": now, "syncs_since_sweep": 0} if swept
                          else {"syncs_since_sweep": sa.func.coalesce(st.c.syncs_since_sweep, 0) + 1})
                if conn.execute(st.update().where(st.c.asset_uid == asset_uid).values(**values)).rowcount == 0:
                    conn.execute(st.insert().values(asset_uid=asset_uid, updated_at=now,
                                                    last_sweep_at=now if swept else None,
                                                    syncs_since_sweep=0 if swept else 1))
        self._guard(go, "record the sync")

    def _delete_submissions(self, conn: sa.Connection, form: RegisteredForm, ids: list[int]) -> None:
        for chunk in _chunks(ids, 900):
            for table in reversed(form.tables.all_tables()):
                key = table.c._id if table is form.tables.root else table.c._submission_id
                conn.execute(table.delete().where(key.in_(chunk)))
            for t, col in ((bk.submissions_raw, bk.submissions_raw.c.submission_id),
                           (bk.attachments, bk.attachments.c.submission_id),
                           (bk.restricted_values, bk.restricted_values.c.submission_id)):
                conn.execute(t.delete().where(t.c.asset_uid == form.asset_uid, col.in_(chunk)))

    def _set_watermark(self, conn: sa.Connection, asset_uid: str, wm: Watermark, now: dt.datetime) -> None:
        """Move the watermark forward to `wm`; never back (a run re-reading its overlap window must not
        make the next run re-read more)."""
        st = bk.sync_state
        current = conn.execute(sa.select(st.c.watermark_time, st.c.watermark_id)
                               .where(st.c.asset_uid == asset_uid)).first()
        values = {"watermark_time": wm.submission_time, "watermark_id": wm.submission_id, "updated_at": now}
        if current is None:
            conn.execute(st.insert().values(asset_uid=asset_uid, **values))
        elif current.watermark_time is None or (wm.submission_time, wm.submission_id) > \
                (current.watermark_time, int(current.watermark_id)):
            conn.execute(st.update().where(st.c.asset_uid == asset_uid).values(**values))

    def grant_analyst(self) -> str:
        """Create/refresh the amina_analyst role (PostgreSQL); return its name."""
        if not self.has_schemas:
            raise WarehouseError(f"{self.safe_url} is SQLite, which has no roles: analysts of a SQLite warehouse "
                                 "read the file itself; use PostgreSQL to keep personal data out of their reach")
        self._guard(lambda: self._in_transaction(grant_analyst), "grant the analyst role")
        return ANALYST_ROLE

    def _in_transaction(self, action) -> None:  # type: ignore[no-untyped-def]
        with self.engine.begin() as conn:
            action(conn)

    # -- one worker per asset ---------------------------------------------------------------------

    @contextlib.contextmanager
    def asset_lock(self, asset_uid: str) -> Iterator[None]:
        """Hold the asset for one sync. On PostgreSQL a session advisory lock keyed by the asset, so
        workers on several machines never sync one asset at once (released even if a worker dies);
        on SQLite, a lock within this process (SQLite warehouses are single-worker)."""
        if self.engine.dialect.name != "postgresql":
            lock = _local_locks.setdefault(asset_uid, threading.Lock())
            if not lock.acquire(blocking=False):
                raise AssetBusy(f"asset {asset_uid} is already being synced by this process")
            try:
                yield
            finally:
                lock.release()
            return
        key = int.from_bytes(hashlib.sha1(f"amina-sync:{asset_uid}".encode()).digest()[:8], "big", signed=True)
        conn = self._guard(self.engine.connect, "connect")
        try:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
            conn.commit()
            if not got:
                raise AssetBusy(f"asset {asset_uid} is being synced by another worker into {self.safe_url}; "
                                "this run skips it")
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
        finally:
            conn.close()

    # -- runs -----------------------------------------------------------------------------------

    def start_run(self, asset_uid: str, server_url: str) -> int:
        def go() -> int:
            with self.engine.begin() as conn:
                result = conn.execute(bk.sync_runs.insert().values(
                    asset_uid=asset_uid, server_url=server_url, started_at=utcnow(), status="running",
                    requests=0, pages=0, fetched=0, inserted=0, updated=0, unchanged=0, bad_values=0,
                    deleted=0, swept=False, sweep_requests=0, sweep_seconds=0.0))
                return int(result.inserted_primary_key[0])
        return self._guard(go, "record the start of a sync run")

    def finish_run(self, run_id: int, *, status: str, error: str | None = None, **counts: int) -> None:
        def go() -> None:
            now = utcnow()
            with self.engine.begin() as conn:
                started = conn.execute(sa.select(bk.sync_runs.c.started_at)
                                       .where(bk.sync_runs.c.run_id == run_id)).scalar_one()
                conn.execute(bk.sync_runs.update().where(bk.sync_runs.c.run_id == run_id).values(
                    status=status, error=error, finished_at=now, seconds=(now - started).total_seconds(),
                    **counts))
                if status == "ok":
                    asset = conn.execute(sa.select(bk.sync_runs.c.asset_uid)
                                         .where(bk.sync_runs.c.run_id == run_id)).scalar_one()
                    conn.execute(bk.forms.update().where(bk.forms.c.asset_uid == asset).values(
                        last_synced_at=now,
                        first_synced_at=sa.func.coalesce(bk.forms.c.first_synced_at, now)))
        self._guard(go, "record the end of a sync run")

    # -- reading --------------------------------------------------------------------------------

    def row_counts(self, asset_uid: str | None = None) -> list[tuple[str, str, int]]:
        """(asset uid, table, rows) for every table of every form, in the order the tables were made."""
        def go() -> list[tuple[str, str, int]]:
            out: list[tuple[str, str, int]] = []
            ft = bk.form_tables
            with self.engine.connect() as conn:
                q = (sa.select(ft.c.asset_uid, ft.c.table_name).join(bk.forms, bk.forms.c.asset_uid == ft.c.asset_uid)
                     .order_by(bk.forms.c.table_name, ft.c.position))
                if asset_uid:
                    q = q.where(ft.c.asset_uid == asset_uid)
                for uid, name in conn.execute(q).all():
                    count = conn.execute(sa.text(f"SELECT count(*) FROM {_q(conn, name)}")).scalar_one()
                    out.append((uid, name, int(count)))
            return out
        return self._guard(go, "count rows")

    def find_form(self, name: str) -> tuple[str, str]:
        """(asset uid, table) of a form named by its table, form_id, asset uid or KoBo name."""
        f = bk.forms
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(f.c.asset_uid, f.c.table_name, f.c.form_id, f.c.name)).all()
        for key in ("table_name", "asset_uid", "form_id", "name"):
            hits = [r for r in rows if getattr(r, key) == name]
            if len(hits) == 1:
                return hits[0].asset_uid, hits[0].table_name
        known = ", ".join(sorted(r.table_name for r in rows)) or "none synced yet"
        raise WarehouseError(f"no form '{name}' in {self.safe_url} (forms: {known})")

    def tables_of(self, asset_uid: str) -> list[tuple[str, str, str | None]]:
        """(table, kind, parent table) of a form, parents first."""
        ft = bk.form_tables
        with self.engine.connect() as conn:
            return [(r.table_name, r.kind, r.parent_table) for r in conn.execute(
                sa.select(ft).where(ft.c.asset_uid == asset_uid).order_by(ft.c.position))]


def _q(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _unique(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in rows:
        k = tuple(r[key] for key in keys)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def _attachment_rows(asset_uid: str, submissions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for s in submissions:
        for a in s.get("_attachments") or []:
            if isinstance(a, Mapping) and a.get("uid"):
                rows.append({"asset_uid": asset_uid, "uid": str(a["uid"]), "submission_id": int(s["_id"]),
                             "question_xpath": a.get("question_xpath"), "filename": a.get("filename"),
                             "mimetype": a.get("mimetype"), "download_url": a.get("download_url")})
    return rows


def _kind_of(sql_type: sa.types.TypeEngine) -> Kind:
    """The storage kind a column's SQL type holds (select codes and times are text)."""
    if isinstance(sql_type, sa.Integer):
        return Kind.INTEGER
    if isinstance(sql_type, sa.Float | sa.Numeric):
        return Kind.DECIMAL
    if isinstance(sql_type, sa.DateTime):
        return Kind.DATETIME
    if isinstance(sql_type, sa.Date):
        return Kind.DATE
    return Kind.TEXT


def _epoch(value: dt.datetime | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return calendar.timegm(value.timetuple())


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
