"""The warehouse: the only place that writes SQL.

`Warehouse.register_form` creates (or extends) a form's tables and writes its data dictionary;
`Warehouse.load_page` upserts one page of submissions together with the watermark that covers
them, in a single transaction, so a crash at any instant loses at most the page in flight.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from amina.errors import WarehouseError
from forms.schema import FormSchema, Kind
from warehouse import bookkeeping as bk
from warehouse.flatten import FlatPage, Flattener
from warehouse.naming import identifier, short_hash
from warehouse.tables import GEO_PARTS, FormTables

log = logging.getLogger(__name__)


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
    def __init__(self, target: str, *, echo: bool = False):
        self.url = database_url(target)
        try:
            self.engine = sa.create_engine(self.url, echo=echo)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise WarehouseError(f"cannot open the warehouse {self.safe_url}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._guard(lambda: bk.metadata.create_all(self.engine), "create the bookkeeping tables")

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
                      version_uid: str | None, content: Mapping[str, Any]) -> RegisteredForm:
        """Create or extend the form's tables and rewrite its dictionary; idempotent."""
        return self._guard(lambda: self._register(asset_uid, server_url, name, schema, version_uid, content),
                           f"set up the tables of form {asset_uid}")

    def _register(self, asset_uid: str, server_url: str, name: str, schema: FormSchema,
                  version_uid: str | None, content: Mapping[str, Any]) -> RegisteredForm:
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
        tables = FormTables(schema, table_name)
        self._create_or_extend(tables)
        with self.engine.begin() as conn:
            values = {"server_url": server_url, "name": name, "form_id": schema.form_id,
                      "version_id": version_uid, "languages": " ".join(schema.languages)}
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
            self._write_dictionary(conn, asset_uid, tables)
        return RegisteredForm(asset_uid=asset_uid, tables=tables, flattener=Flattener(tables))

    def _create_or_extend(self, tables: FormTables) -> None:
        """Create missing tables; add columns a newer form version brought. Never drops anything."""
        with self.engine.begin() as conn:
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

    def _write_dictionary(self, conn: sa.Connection, asset_uid: str, tables: FormTables) -> None:
        schema = tables.schema
        for t in (bk.fields, bk.field_labels, bk.choices):
            conn.execute(t.delete().where(t.c.asset_uid == asset_uid))
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
                  watermark: Watermark | None) -> PageResult:
        """Upsert one page of submissions and move the watermark, in one transaction."""
        return self._guard(lambda: self._load(form, submissions, watermark),
                           f"store a page of submissions of form {form.asset_uid}")

    def _load(self, form: RegisteredForm, submissions: Sequence[Mapping[str, Any]],
              watermark: Watermark | None) -> PageResult:
        now = utcnow()
        result = PageResult()
        raw = bk.submissions_raw
        encoded: dict[int, tuple[bytes, str]] = {}
        for s in submissions:
            blob = orjson.dumps(s)
            encoded[int(s["_id"])] = (blob, hashlib.sha1(blob).hexdigest())
        with self.engine.begin() as conn:
            known: dict[int, str] = {}
            ids = list(encoded)
            for chunk in _chunks(ids, 900):
                found = conn.execute(sa.select(raw.c.submission_id, raw.c.digest)
                                     .where(raw.c.asset_uid == form.asset_uid, raw.c.submission_id.in_(chunk)))
                known.update((int(sid), digest) for sid, digest in found)
            page = FlatPage()
            changed: list[Mapping[str, Any]] = []
            replaced: list[int] = []
            for s in submissions:
                sid = int(s["_id"])
                digest = encoded[sid][1]
                if known.get(sid) == digest:
                    result.unchanged += 1
                    continue
                if sid in known:
                    result.updated += 1
                    replaced.append(sid)
                else:
                    result.inserted += 1
                changed.append(s)
                form.flattener.flatten_into(page, s, now)
            result.bad_values = page.issues
            if replaced:
                self._delete_submissions(conn, form, replaced)
            for table in form.tables.all_tables():
                rows = page.rows.get(table.name)
                if rows:
                    conn.execute(table.insert(), rows)
            if changed:
                conn.execute(raw.insert(), [
                    {"asset_uid": form.asset_uid, "submission_id": int(s["_id"]), "uuid": str(s.get("_uuid", "")),
                     "digest": encoded[int(s["_id"])][1], "json": encoded[int(s["_id"])][0].decode(),
                     "fetched_at": now} for s in changed])
                attachment_rows = _attachment_rows(form.asset_uid, changed)
                if attachment_rows:
                    conn.execute(bk.attachments.insert(), _unique(attachment_rows, ("uid",)))
            if watermark is not None:
                self._set_watermark(conn, form.asset_uid, watermark, now)
        return result

    def _delete_submissions(self, conn: sa.Connection, form: RegisteredForm, ids: list[int]) -> None:
        for chunk in _chunks(ids, 900):
            for table in reversed(form.tables.all_tables()):
                key = table.c._id if table is form.tables.root else table.c._submission_id
                conn.execute(table.delete().where(key.in_(chunk)))
            for t, col in ((bk.submissions_raw, bk.submissions_raw.c.submission_id),
                           (bk.attachments, bk.attachments.c.submission_id)):
                conn.execute(t.delete().where(t.c.asset_uid == form.asset_uid, col.in_(chunk)))

    def _set_watermark(self, conn: sa.Connection, asset_uid: str, wm: Watermark, now: dt.datetime) -> None:
        values = {"watermark_time": wm.submission_time, "watermark_id": wm.submission_id, "updated_at": now}
        updated = conn.execute(bk.sync_state.update().where(bk.sync_state.c.asset_uid == asset_uid).values(**values))
        if updated.rowcount == 0:
            conn.execute(bk.sync_state.insert().values(asset_uid=asset_uid, **values))

    # -- runs -----------------------------------------------------------------------------------

    def start_run(self, asset_uid: str, server_url: str) -> int:
        def go() -> int:
            with self.engine.begin() as conn:
                result = conn.execute(bk.sync_runs.insert().values(
                    asset_uid=asset_uid, server_url=server_url, started_at=utcnow(), status="running",
                    requests=0, pages=0, fetched=0, inserted=0, updated=0, unchanged=0, bad_values=0))
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
        """(asset uid, table, rows) for every form table, in the order the tables were planned."""
        def go() -> list[tuple[str, str, int]]:
            out: list[tuple[str, str, int]] = []
            with self.engine.connect() as conn:
                q = sa.select(bk.forms.c.asset_uid, bk.forms.c.table_name).order_by(bk.forms.c.table_name)
                if asset_uid:
                    q = q.where(bk.forms.c.asset_uid == asset_uid)
                inspector = sa.inspect(conn)
                names = inspector.get_table_names()
                for uid, base in conn.execute(q):
                    for name in [base, *sorted(n for n in names if n.startswith(base + "__"))]:
                        count = conn.execute(sa.text(f"SELECT count(*) FROM {_q(conn, name)}")).scalar_one()
                        out.append((uid, name, int(count)))
            return out
        return self._guard(go, "count rows")


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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
