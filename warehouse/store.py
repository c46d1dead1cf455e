"""The warehouse: the only place that writes SQL.

`Warehouse.register_form` creates (or extends) a form's tables and writes its data dictionary;
`Warehouse.load_page` upserts one page of submissions together with the watermark that covers
them, in a single transaction, so a crash at any instant loses at most the page in flight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from common.errors import AminaError, AssetBusy, ConfigError, WarehouseError
from common.gcpause import gc_paused
from forms.definition import schema_of_definition
from forms.schema import Field, FormSchema, Kind
from warehouse import bookkeeping as bk
from warehouse.bulk import BulkInserts
from warehouse.convert import json_text, storable
from warehouse.flatten import RESTRICTED, FlatPage, Flattener
from warehouse.load import CheckedPage, DataRefused, Incoming, PageResult, SetAside, check_page, one_by_one
from warehouse.names import choose_base_name, names_in_use
from warehouse.protect import Pseudonymizer, missing_key_error
from warehouse.tables import GEO_PARTS, FormTables, PreviousNames, sql_type_of
from warehouse.views import ANALYST_ROLE, create_views, execute_ddl, grant_analyst, view_names

if TYPE_CHECKING:  # Arrow and NumPy are imported when a page is first stored: commands that only read start faster
    from warehouse.arrowbulk import ArrowInserts
    from warehouse.columnar import ColumnarFlattener
    from warehouse.firstload import FirstLoad

log = logging.getLogger(__name__)
T = TypeVar("T")


_local_locks: dict[str, threading.Lock] = {}
MIGRATIONS = Path(__file__).parent / "migrations"
WAL_CHECKPOINT_PAGES = 16384  # SQLite pages (4 KiB) of WAL between automatic checkpoints
DDL_LOCK = 0x616D696E61  # "amina": serializes schema changes between workers sharing one PostgreSQL


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def database_url(target: str) -> str:
    """A SQLAlchemy URL from a URL or a plain file path (which means SQLite)."""
    if "://" in target:
        return target
    return f"sqlite:///{Path(target).expanduser()}"


def sqlite_path(target: str) -> Path | None:
    """The file of a SQLite warehouse (None for another engine or an in-memory database)."""
    url = sa.engine.make_url(database_url(target))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def asset_key_for(uid: str, server_url: str, taken: set[str]) -> str:
    """The key a new asset gets in this warehouse: its uid, or uid@host when another server's asset has it."""
    if uid not in taken:
        return uid
    netloc = urlsplit(server_url).netloc or "server"
    key = f"{uid}@{netloc}"
    return key if key not in taken else f"{key}~{hashlib.sha1(server_url.encode()).hexdigest()[:6]}"


@dataclass(frozen=True, slots=True)
class Watermark:
    submission_time: str  # KoBo's own text, 'YYYY-MM-DDTHH:MM:SS'
    submission_id: int


@dataclass(frozen=True, slots=True)
class SweepState:
    """What the last sweeps of an asset left for the next one (see sync.sweep)."""

    last_sweep_at: dt.datetime | None = None
    last_full_sweep_at: dt.datetime | None = None
    validation_since: int | None = None  # Unix seconds, the server's clock
    history_since: dt.datetime | None = None
    history_denied_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class SweepMarks:
    """Sweep state to record with a successful run (None: leave as it is)."""

    validation_since: int | None = None
    history_since: dt.datetime | None = None
    history_denied_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RegisteredForm:
    key: str  # the asset in this warehouse (see `forms.asset_key`)
    asset_uid: str  # its uid on its server
    server_url: str
    tables: FormTables
    flattener: Flattener
    warnings: tuple[str, ...] = ()
    columnar: ColumnarFlattener | None = None  # the same tables a page at a time, in Arrow columns


LOAD_PATHS = ("columnar", "rows")


class Warehouse:
    """One warehouse database. `create=False` (every command that only reads) refuses a warehouse that does
    not exist yet instead of making an empty one."""

    def __init__(self, target: str, *, echo: bool = False, pseudonymizer: Pseudonymizer | None = None,
                 create: bool = True, load_path: str = "columnar"):
        """`load_path`: how pages are stored — "columnar" (the default: whole columns, warehouse.columnar) or
        "rows" (a dict per row, warehouse.flatten); both store exactly the same values."""
        if load_path not in LOAD_PATHS:
            raise ValueError(f"load_path must be one of {', '.join(LOAD_PATHS)}, not {load_path!r}")
        self.load_path = load_path
        self.url = database_url(target)
        self.pseudonymizer = pseudonymizer
        path = sqlite_path(target)
        if not create and path is not None and not path.exists():
            raise ConfigError(f"no warehouse at {path}: check --db (or the config's [warehouse] url); a warehouse "
                              "is made by 'amina sync' or 'amina demo'")
        try:
            engine = sa.create_engine(self.url, echo=echo)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise WarehouseError(f"cannot open the warehouse {self.safe_url}: {exc}") from exc
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_connect)
            sa.event.listen(engine, "begin", _sqlite_begin)
            engine = engine.execution_options(
                schema_translate_map={bk.RESTRICTED_SCHEMA: None, bk.ANALYST_SCHEMA: None})
        self.engine = engine
        self._bulk = BulkInserts(engine.dialect, schemas=self.has_schemas)
        self._arrow_inserts: ArrowInserts | None = None
        # forms being filled from empty in this process: their instance-id index waits for the end of the load
        self._first_loads: dict[str, tuple[FirstLoad, sa.Index]] = {}
        self._not_empty: set[str] = set()  # forms whose submission table held rows when first written here
        if not create and path is None:
            self._guard(self._require_bookkeeping, "open the warehouse")
        try:
            self._guard(self._create_bookkeeping, "create the bookkeeping tables")
        except WarehouseError as exc:
            if create or not _permission_denied(exc.__cause__):
                raise
            # a role that may only read (amina_analyst reading the analyst schema): the warehouse is read as it is
            log.debug("%s: this role may not migrate the warehouse; reading it as it is", self.safe_url)

    def _arrow(self, conn: sa.Connection, table: sa.Table, rows: Any) -> None:
        if self._arrow_inserts is None:
            from warehouse.arrowbulk import ArrowInserts

            self._arrow_inserts = ArrowInserts(self.engine.dialect, schemas=self.has_schemas)
        self._arrow_inserts(conn, table, rows)

    def _require_bookkeeping(self) -> None:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("forms"):
                raise ConfigError(f"{self.safe_url} holds no amina warehouse yet: check --db (or the config's "
                                  "[warehouse] url); a warehouse is made by 'amina sync'")

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

    def guarded(self, action: Callable[[], T], what: str) -> T:
        """Run a database action; any database failure becomes a WarehouseError saying what could not be done."""
        return self._guard(action, what)

    @property
    def safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def _guard(self, action, what: str):  # type: ignore[no-untyped-def]
        try:
            return action()
        except SQLAlchemyError as exc:
            reason = storable(str(getattr(exc, "orig", exc)).splitlines()[0][:200])
            raise WarehouseError(f"warehouse {self.safe_url}: could not {what}: {reason}") from exc
        except DataRefused as exc:
            raise WarehouseError(f"warehouse {self.safe_url}: could not {what}: {exc}") from exc
        except (sqlite3.Error, psycopg.Error, OSError) as exc:  # the driver's own errors past SQLAlchemy
            raise WarehouseError(f"warehouse {self.safe_url}: could not {what}: {exc}") from exc

    def dispose(self) -> None:
        self.engine.dispose()

    def ensure_table(self, table: sa.Table) -> None:
        """Create a table another library keeps in the warehouse (the scheduler's job store) if it is missing,
        one worker at a time."""
        def go() -> None:
            with self.engine.begin() as conn:
                if self.has_schemas:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK})
                table.create(conn, checkfirst=True)
        self._guard(go, f"create the table {table.name}")

    # -- forms ----------------------------------------------------------------------------------

    def asset_key(self, server_url: str, asset_uid: str) -> str:
        """The asset's key in this warehouse: the one it has, else the one it will get when registered (its uid,
        or uid@host when an asset of another server already has that uid)."""
        def go() -> str:
            f = bk.forms
            with self.engine.connect() as conn:
                found = conn.execute(sa.select(f.c.asset_key).where(f.c.server_url == server_url,
                                                                    f.c.asset_uid == asset_uid)).scalar()
                if found is not None:
                    return str(found)
                taken = set(conn.execute(sa.select(f.c.asset_key)).scalars())
            return asset_key_for(asset_uid, server_url, taken)
        return self._guard(go, "look up the asset")

    def register_form(self, *, asset_uid: str, server_url: str, name: str, schema: FormSchema,
                      version_uid: str | None, content: Mapping[str, Any], deployed: bool = True,
                      loading: bool = True) -> RegisteredForm:
        """Create or extend the form's tables and rewrite its dictionary; idempotent.

        The asset is (`server_url`, `asset_uid`). `schema` may merge several versions; `version_uid`/`content` is
        the version being recorded, the deployed one unless `deployed` is False (an older version met in the
        data). `loading`: the form is about to receive submissions, so personal data in it needs the pseudonym
        key (a form only being published does not)."""
        return self._guard(
            lambda: self._register(asset_uid, server_url, name, schema, version_uid, content, deployed, loading),
            f"set up the tables of form {asset_uid}")

    def stored_versions(self, key: str) -> dict[str, Mapping[str, Any]]:
        """Every form version recorded for the asset: version uid → its content, oldest first (a version whose
        recorded content cannot be read is left out)."""
        fv = bk.form_versions
        out: dict[str, Mapping[str, Any]] = {}
        with self.engine.connect() as conn:
            for v, c in conn.execute(sa.select(fv.c.version_uid, fv.c.content).where(fv.c.asset_key == key)
                                     .order_by(fv.c.first_seen_at)):
                with contextlib.suppress(orjson.JSONDecodeError):
                    out[v] = orjson.loads(c)
        return out

    def _register(self, asset_uid: str, server_url: str, name: str, schema: FormSchema,
                  version_uid: str | None, content: Mapping[str, Any], deployed: bool,
                  loading: bool) -> RegisteredForm:
        now = utcnow()
        name = storable(name)
        key = self.asset_key(server_url, asset_uid)
        with self.engine.begin() as conn:
            if self.has_schemas:  # names are chosen and tables made one worker at a time
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK})
            existing = conn.execute(sa.select(bk.forms.c.table_name).where(bk.forms.c.asset_key == key)
                                    ).scalar_one_or_none()
            others = names_in_use(conn, exclude_key=key)
            if existing is None:
                wanted = schema.form_id if schema.form_id not in ("", "form") else name
                table_name = choose_base_name(wanted, key, schema, others)
            else:
                table_name = existing
            schema, warnings = self._sticky_sensitive(conn, key, name, schema)
        tables = self._keep_column_types(FormTables(schema, table_name, previous=self._previous_names(key),
                                                    avoid=others))
        schema = tables.schema
        if loading and schema.sensitive_paths and self.pseudonymizer is None:
            raise missing_key_error(name, list(schema.sensitive_paths))
        self._create_or_extend(tables, key)
        with self.engine.begin() as conn:
            if self.has_schemas:  # the views are re-created: one worker at a time
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK})
            values = {"name": name, "form_id": storable(schema.form_id), "languages": " ".join(schema.languages)}
            if deployed or existing is None:
                values["version_id"] = version_uid
            if existing is None:
                conn.execute(bk.forms.insert().values(asset_key=key, asset_uid=asset_uid, server_url=server_url,
                                                      table_name=table_name, first_synced_at=None, **values))
            else:
                conn.execute(bk.forms.update().where(bk.forms.c.asset_key == key).values(**values))
            if version_uid:
                seen = conn.execute(sa.select(bk.form_versions.c.version_uid).where(
                    bk.form_versions.c.asset_key == key, bk.form_versions.c.version_uid == version_uid)
                ).first()
                if seen is None:
                    conn.execute(bk.form_versions.insert().values(
                        asset_key=key, version_uid=version_uid, content=json_text(content), first_seen_at=now))
            self._write_dictionary(conn, key, tables, self._versions_by_path(conn, key))
            create_views(conn, tables)
        for w in warnings:
            log.warning("%s", w)
        from warehouse.columnar import ColumnarFlattener

        flattener = Flattener(tables, self.pseudonymizer)
        return RegisteredForm(key=key, asset_uid=asset_uid, server_url=server_url, tables=tables,
                              flattener=flattener, warnings=tuple(warnings),
                              columnar=ColumnarFlattener(tables, self.pseudonymizer, flattener))

    def _sticky_sensitive(self, conn: sa.Connection, key: str, name: str, schema: FormSchema
                          ) -> tuple[FormSchema, list[str]]:
        """Personal data stays personal data: a question any earlier version (or an earlier config) marked
        sensitive keeps the mark, whatever the version at hand says."""
        marked = set(conn.execute(sa.select(bk.fields.c.path).where(
            bk.fields.c.asset_key == key, bk.fields.c.sensitive.is_(True))).scalars())
        dropped = [f for f in schema.fields if f.path in marked and not f.sensitive]
        if not dropped:
            return schema, []
        paths = {f.path for f in dropped}
        kept = dataclasses.replace(schema, fields=tuple(
            dataclasses.replace(f, sensitive=True) if f.path in paths else f for f in schema.fields))
        shown = ", ".join(sorted(paths)[:5]) + (" …" if len(paths) > 5 else "")
        return kept, [f"form '{name}': this version no longer marks {shown} as personal data; "
                      "it stays personal data in the warehouse (pseudonymized, kept out of analysts' reach)"]

    def _previous_names(self, key: str) -> PreviousNames:
        """The names the form's tables and columns have already (from the dictionary): they are kept."""
        tables: dict[str, str] = {}
        columns: dict[str, dict[str, str]] = {}
        with self.engine.connect() as conn:
            ft, f = bk.form_tables, bk.fields
            for r in conn.execute(sa.select(ft.c.table_name, ft.c.kind, ft.c.path).where(ft.c.asset_key == key)):
                if r.kind in ("repeat", "select_multiple") and r.path:
                    tables[f"{'repeat' if r.kind == 'repeat' else 'bridge'}:{r.path}"] = r.table_name
            for r in conn.execute(sa.select(f.c.table_name, f.c.path, f.c.part, f.c.column_name)
                                  .where(f.c.asset_key == key)):
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
        return FormTables(kept, planned.base, previous=planned.previous, avoid=planned.avoid)

    def _create_or_extend(self, tables: FormTables, key: str) -> None:
        """Create missing tables; add columns a newer form version brought. Never drops anything. A question
        that has become personal data has the values already stored moved out of analysts' reach."""
        with self.engine.begin() as conn:
            if self.has_schemas:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK})
            inspector = sa.inspect(conn)
            was_clear = set(conn.execute(sa.select(bk.fields.c.path).where(
                bk.fields.c.asset_key == key, bk.fields.c.sensitive.is_(False))).scalars())
            for table in tables.all_tables():
                if not inspector.has_table(table.name):
                    table.create(conn)
                    continue
                present = {c["name"] for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in present:
                        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                        conn.exec_driver_sql(f"ALTER TABLE {_q(conn, table.name)} ADD COLUMN {ddl}")
                        if self.has_schemas and column.comment:  # CREATE TABLE carries comments; ALTER does not
                            conn.execute(sa.schema.SetColumnComment(column))
                for index in table.indexes:  # one a first load left unbuilt (a run that ended without finishing)
                    conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
            self._first_loads.pop(key, None)
            newly = {p for p in tables.schema.sensitive_paths if p in was_clear}
            if newly:
                if self.pseudonymizer is None:
                    raise missing_key_error(tables.base, sorted(newly))
                self._protect_stored(conn, key, tables, newly)

    def _protect_stored(self, conn: sa.Connection, key: str, tables: FormTables, paths: set[str]) -> None:
        """Values stored in clear before their question was marked personal data: each goes to
        restricted_values and its column gets the pseudonym (a geopoint: coordinates rounded to 0.1°)."""
        assert self.pseudonymizer is not None
        if self.has_schemas:  # PostgreSQL will not retype a column a view reads: the views are made again after
            for table in tables.all_tables():
                for view in view_names(table.name, tables.schema.languages):
                    execute_ddl(conn, f'DROP VIEW IF EXISTS "{bk.ANALYST_SCHEMA}".{_q(conn, view)}')
        for plan in tables.plans.values():
            for cp in plan.columns:
                f = cp.field
                if f.path not in paths:
                    continue
                table = tables.tables[plan.name]
                ids = [table.c._id] if plan.repeat is None else [table.c._submission_id, table.c._row_id]
                cols = [table.c[c] for c in cp.columns]
                found = conn.execute(sa.select(*ids, *cols).where(cols[0].is_not(None))).all()
                if f.kind is not Kind.GEOPOINT and self.has_schemas:
                    conn.exec_driver_sql(f"ALTER TABLE {_q(conn, plan.name)} ALTER COLUMN {_q(conn, cp.columns[0])} "
                                         f"TYPE text USING {_q(conn, cp.columns[0])}::text")
                restricted = []
                for row in found:
                    sid, row_id = int(row[0]), ("" if plan.repeat is None else str(row[1]))
                    values = row[len(ids):]
                    text = " ".join("" if v is None else str(v) for v in values).strip()
                    restricted.append({"asset_key": key, "table_name": plan.name, "submission_id": sid,
                                       "row_id": row_id, "path": f.path, "value": text})
                    where = [table.c._id == sid] if plan.repeat is None else [
                        table.c._submission_id == sid, table.c._row_id == row_id]
                    if f.kind is Kind.GEOPOINT:
                        coarse = [None if v is None else round(float(v), 1) for v in values[:2]] + [None, None]
                        update = dict(zip(cp.columns, coarse, strict=False))
                    else:
                        update = {cp.columns[0]: self.pseudonymizer.pseudonym(text)}
                    conn.execute(table.update().where(*where).values(**update))
                if restricted:
                    self._bulk(conn, bk.restricted_values, restricted)
                bridge = tables.bridge_plans.get(f.path)
                if bridge is not None:  # chosen codes of a personal select_multiple: the pseudonym is enough
                    conn.execute(tables.tables[bridge.table].delete())
                log.warning("form %s: %d stored value(s) of %s moved out of analysts' reach (now personal data)",
                            tables.base, len(restricted), f.path)

    @staticmethod
    def _versions_by_path(conn: sa.Connection, key: str) -> dict[str, list[str]]:
        """Question path → the recorded form versions (oldest first) that have it."""
        out: dict[str, list[str]] = {}
        fv = bk.form_versions
        for version, content in conn.execute(sa.select(fv.c.version_uid, fv.c.content)
                                             .where(fv.c.asset_key == key).order_by(fv.c.first_seen_at)):
            try:
                paths = schema_of_definition(orjson.loads(content)).by_path
            except (AminaError, ValueError, TypeError):  # one unreadable version must not hide the others
                continue
            for path in paths:
                out.setdefault(path, []).append(version)
        return out

    def _write_dictionary(self, conn: sa.Connection, key: str, tables: FormTables,
                          versions: dict[str, list[str]]) -> None:
        schema = tables.schema
        for t in (bk.fields, bk.field_labels, bk.choices):
            conn.execute(t.delete().where(t.c.asset_key == key))
        known = set(conn.execute(sa.select(bk.form_tables.c.table_name).where(bk.form_tables.c.asset_key == key))
                    .scalars())
        table_rows = []
        for plan in tables.plans.values():
            parent = None if plan.repeat is None else tables.plans[plan.repeat.parent].name
            table_rows.append({"table_name": plan.name, "kind": "submissions" if plan.repeat is None else "repeat",
                               "path": plan.repeat.path if plan.repeat else None, "parent_table": parent})
            table_rows += [{"table_name": b.table, "kind": "select_multiple", "path": b.field.path,
                            "parent_table": plan.name} for b in plan.bridges]
        new_tables = [{**r, "asset_key": key, "position": len(known) + i}
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
                        "asset_key": key, "path": f.path, "part": part, "table_name": plan.name,
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
                    label_rows.append({"asset_key": key, "path": item.path, "lang": lang,
                                       "label": item.labels.get(lang), "hint": hints.get(lang),
                                       "constraint_message": messages.get(lang)})
        if label_rows:
            conn.execute(bk.field_labels.insert(), label_rows)
        choice_rows = [
            {"asset_key": key, "list_name": cl.name, "code": c.code, "lang": lang,
             "label": c.labels.get(lang), "position": position}
            for cl in schema.choice_lists.values()
            for position, c in enumerate(cl.choices, start=1)
            for lang in schema.languages
        ]
        if choice_rows:
            conn.execute(bk.choices.insert(), _unique(choice_rows, ("list_name", "code", "lang")))

    # -- loading --------------------------------------------------------------------------------

    def source_state(self, key: str) -> dict[str, Any]:
        """What the source kept from the asset's last successful run (sync.source.Source.state_to_keep)."""
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(bk.sync_state.c.source_state)
                                .where(bk.sync_state.c.asset_key == key)).scalar()
        try:
            found = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            return {}
        return found if isinstance(found, dict) else {}

    def watermark(self, key: str) -> Watermark | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(bk.sync_state.c.watermark_time, bk.sync_state.c.watermark_id)
                               .where(bk.sync_state.c.asset_key == key)).first()
        if row is None or row.watermark_time is None:
            return None
        return Watermark(row.watermark_time, int(row.watermark_id))

    def load_page(self, form: RegisteredForm, submissions: Sequence[Any], watermark: Watermark | None, *,
                  run_id: int | None = None, dirty: bool = False, found_by: str | None = None,
                  raw: Sequence[Any] | None = None) -> PageResult:
        """Upsert one page of submissions (and move the watermark, if given), in one transaction.

        `dirty`: the client found NUL characters or lone surrogates in the page's JSON (they are replaced in
        what is stored in the form's tables; the raw JSON keeps them). Submissions without a usable `_id`, or
        that the database refuses, are quarantined, never lost and never blocking (warehouse.load).
        `found_by`: the mechanism that brought the page (recorded with each change in submission_history).
        `raw`: what the server sent for each submission, when `submissions` were reshaped from it (ODK Central's
        rows): kept as the raw JSON, and what tells an unchanged submission."""
        checked = check_page(submissions, dirty=dirty, raw=raw)
        with gc_paused():  # a page makes ~100k rows and values that are not garbage; see common.gcpause
            return self._guard(lambda: self._load(form, checked, watermark, run_id, found_by),
                               f"store a page of submissions of form {form.key}")

    def _load(self, form: RegisteredForm, checked: CheckedPage, watermark: Watermark | None,
              run_id: int | None, found_by: str | None = None) -> PageResult:
        now = utcnow()
        result = PageResult()
        began = False
        try:
            with self.engine.begin() as conn:
                if self.load_path == "columnar":
                    began = self._first_load(conn, form)
                self._load_in(conn, form, checked, watermark, run_id, now, result, found_by)
        except BaseException:
            if began:  # the index drop rolled back with the page
                self._first_loads.pop(form.key, None)
            raise
        return result

    def _first_load(self, conn: sa.Connection, form: RegisteredForm) -> bool:
        """Whether this page begins a first load of the form (see warehouse.firstload): it does when the submission
        table is empty, and then the instance-id index is dropped, in the page's transaction."""
        if form.key in self._first_loads or form.key in self._not_empty:
            return False
        root = form.tables.root
        if conn.execute(sa.select(sa.literal(1)).select_from(root).limit(1)).first() is not None:
            self._not_empty.add(form.key)
            return False
        from warehouse.firstload import FirstLoad

        index = next(ix for ix in root.indexes if [c.name for c in ix.columns] == ["_instance_id"])
        conn.execute(sa.schema.DropIndex(index, if_exists=True))
        self._first_loads[form.key] = (FirstLoad(), index)
        return True

    def _end_first_load(self, key: str) -> None:
        """Build the instance-id index a first load left out, and look duplicates up in the database again."""
        found = self._first_loads.pop(key, None)
        if found is None:
            return
        self._not_empty.add(key)
        with self.engine.begin() as conn:
            conn.execute(sa.schema.CreateIndex(found[1], if_not_exists=True))

    def _load_in(self, conn: sa.Connection, form: RegisteredForm, checked: CheckedPage, watermark: Watermark | None,
                 run_id: int | None, now: dt.datetime, result: PageResult, found_by: str | None = None) -> None:
        for item in checked.set_aside:
            result.quarantined += self._quarantine(conn, form.key, item, run_id, now)
        for item in checked.superseded:
            result.quarantined += self._quarantine(conn, form.key, SetAside(
                str(item.sid), "the same _id came again later in the same page; the later one was stored",
                item.raw, item.digest), run_id, now)
        if checked.superseded:
            self._bulk(conn, bk.submission_history, [
                {"asset_key": form.key, "submission_id": i.sid, "seen_at": now, "run_id": run_id,
                 "change": "superseded", "uuid": _text_or_none(i.data.get("_uuid")), "validation_status": None,
                 "validation_by": None, "found_by": found_by} for i in checked.superseded])
        known = self._known(conn, form, [i.sid for i in checked.incoming])
        write = self._write_columnar if self.load_path == "columnar" and form.columnar else self._write
        try:
            with conn.begin_nested():
                write(conn, form, checked.incoming, known, now, run_id, result, dirty=checked.dirty,
                      found_by=found_by)
        except DataRefused:  # a value the boundary let through: store one by one, set the refused aside
            def store_one(item: Incoming) -> None:
                with conn.begin_nested():
                    write(conn, form, [item], known, now, run_id, result, dirty=checked.dirty, found_by=found_by)

            def set_aside(item: Incoming, reason: str) -> None:
                result.quarantined += self._quarantine(
                    conn, form.key, SetAside(str(item.sid), reason, item.raw, item.digest), run_id, now)

            refused = one_by_one(checked.incoming, store_one, set_aside)
            log.warning("form %s: %d submission(s) of a page refused by the database, quarantined", form.key,
                        refused)
        if watermark is not None:
            self._set_watermark(conn, form.key, watermark, now)
        if run_id is not None:
            self._heartbeat(conn, run_id, now)

    def _known(self, conn: sa.Connection, form: RegisteredForm, ids: list[int]) -> dict[int, tuple[str, str, Any]]:
        """_id → (digest, uuid, validation uid) of what is stored for these ids."""
        raw, root = bk.submissions_raw, form.tables.root
        known: dict[int, tuple[str, str, Any]] = {}
        for chunk in _chunks(ids, 900):
            found = conn.execute(
                sa.select(raw.c.submission_id, raw.c.digest, raw.c.uuid, root.c._validation_status,
                          root.c._deleted_at)
                .select_from(raw.outerjoin(root, root.c._id == raw.c.submission_id))
                .where(raw.c.asset_key == form.key, raw.c.submission_id.in_(chunk)))
            for sid, digest, uuid, status, deleted_at in found:
                # a submission we had marked deleted is rewritten whatever its digest
                known[int(sid)] = (digest if deleted_at is None else "", uuid, status)
        return known

    def _changes(self, form: RegisteredForm, items: list[Incoming], known: dict[int, tuple[str, str, Any]],
                 now: dt.datetime, run_id: int | None, counts: PageResult, found_by: str | None = None
                 ) -> tuple[list[Incoming], list[int], list[dict[str, Any]]]:
        """Which submissions to write (new or changed), which stored ones they replace, and their history rows."""
        changed: list[Incoming] = []
        replaced: list[int] = []
        history: list[dict[str, Any]] = []
        for item in items:
            old = known.get(item.sid)
            if old is not None and old[0] == item.digest:
                counts.unchanged += 1
                continue
            s = item.data
            status = s.get("_validation_status") if isinstance(s.get("_validation_status"), Mapping) else {}
            uuid = _text_or_none(s.get("_uuid")) or ""
            if old is None:
                counts.inserted += 1
                change = "new"
            else:
                counts.updated += 1
                replaced.append(item.sid)
                change = ("edited" if old[1] != uuid else
                          "validation" if old[2] != _text_or_none(status.get("uid")) else "changed")
            changed.append(item)
            history.append({"asset_key": form.key, "submission_id": item.sid, "seen_at": now, "run_id": run_id,
                            "change": change, "uuid": uuid, "validation_status": _text_or_none(status.get("uid")),
                            "validation_by": _text_or_none(status.get("by_whom")), "found_by": found_by})
        return changed, replaced, history

    def _write(self, conn: sa.Connection, form: RegisteredForm, items: list[Incoming],
               known: dict[int, tuple[str, str, Any]], now: dt.datetime, run_id: int | None,
               result: PageResult, *, dirty: bool = False, found_by: str | None = None) -> None:
        """The row path: a dict per row (warehouse.flatten), inserted a table at a time."""
        counts = PageResult()
        changed, replaced, history = self._changes(form, items, known, now, run_id, counts, found_by)
        page = FlatPage()
        for item in changed:
            form.flattener.flatten_into(page, item.data, item.sid, now, list(item.issues))
        counts.bad_values = page.issues
        if replaced:
            self._delete_submissions(conn, form, replaced)
        for table in form.tables.all_tables():
            rows = page.rows.get(table.name)
            if rows:
                self._bulk(conn, table, rows)
        secret_rows = page.rows.get(RESTRICTED)
        if secret_rows:
            for r in secret_rows:
                r["asset_key"] = form.key
            self._bulk(conn, bk.restricted_values, secret_rows)
        if changed:
            self._bulk(conn, bk.submissions_raw, [
                {"asset_key": form.key, "submission_id": i.sid, "uuid": _text_or_none(i.data.get("_uuid")) or "",
                 "digest": i.digest, "json": i.raw, "fetched_at": now} for i in changed])
            self._bulk(conn, bk.submission_history, history)
            attachment_rows = _attachment_rows(form.key, changed)
            if attachment_rows:
                self._bulk(conn, bk.attachments, _unique(attachment_rows, ("uid",)))
            self._flag_duplicates(conn, form.tables.root, changed)
        _add_counts(result, counts)

    def _write_columnar(self, conn: sa.Connection, form: RegisteredForm, items: list[Incoming],
                        known: dict[int, tuple[str, str, Any]], now: dt.datetime, run_id: int | None,
                        result: PageResult, *, dirty: bool = False, found_by: str | None = None) -> None:
        """The columnar path: every table of the page as Arrow columns (warehouse.columnar), each handed to the
        database whole (warehouse.arrowbulk). Stores exactly what `_write` stores."""
        from warehouse.columnar import history_rows, raw_rows, with_asset_key

        assert form.columnar is not None
        counts = PageResult()
        changed, replaced, history = self._changes(form, items, known, now, run_id, counts, found_by)
        if not changed:
            _add_counts(result, counts)
            return
        page = form.columnar.flatten(changed, now, dirty=dirty)
        counts.bad_values = page.issues
        if replaced:
            self._delete_submissions(conn, form, replaced)
        for table in form.tables.all_tables():
            rows = page.tables.get(table.name)
            if rows is not None:
                self._arrow(conn, table, rows)
        if page.restricted is not None:
            self._arrow(conn, bk.restricted_values, with_asset_key(page.restricted, form.key))
        self._arrow(conn, bk.submissions_raw, raw_rows(form.key, changed, [h["uuid"] for h in history], now))
        self._arrow(conn, bk.submission_history, history_rows(history))
        attachment_rows = _attachment_rows(form.key, changed)
        if attachment_rows:
            self._bulk(conn, bk.attachments, _unique(attachment_rows, ("uid",)))
        first = self._first_loads.get(form.key)
        if first is None:
            self._flag_duplicates(conn, form.tables.root, changed)
        else:
            self._flag_duplicates_in_memory(conn, form.tables.root, changed, first[0])
        _add_counts(result, counts)

    def _quarantine(self, conn: sa.Connection, key: str, item: SetAside, run_id: int | None, now: dt.datetime) -> int:
        """Keep a submission that cannot be stored whole, once (by digest); 1 if it is new in quarantine."""
        q = bk.quarantine
        seen = conn.execute(sa.select(q.c.digest).where(q.c.asset_key == key, q.c.digest == item.digest)).first()
        if seen is None:
            conn.execute(q.insert().values(asset_key=key, digest=item.digest, submission_id=item.submission_id,
                                           reason=storable(item.reason)[:500], json=item.raw, first_seen_at=now,
                                           run_id=run_id))
        log.warning("form %s: a submission was quarantined: %s", key, storable(item.reason))
        return 1

    def holds_submissions(self) -> bool:
        """Whether any submission was ever stored (or quarantined) here."""
        try:
            with self.engine.connect() as conn:
                for table in (bk.submissions_raw, bk.quarantine):
                    if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None:
                        return True
        except SQLAlchemyError:
            return True  # when in doubt, keep the file
        return False

    def quarantined(self, key: str) -> int:
        q = bk.quarantine
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(q).where(q.c.asset_key == key)).scalar_one())

    def _flag_duplicates(self, conn: sa.Connection, root: sa.Table, changed: Sequence[Incoming]) -> None:
        """A submission whose meta/instanceID an earlier one (lower _id, not deleted) already has is a double
        upload: its `_duplicate_of` is that earlier _id. One indexed lookup of the page's instance ids; only
        the duplicates found are updated."""
        instance = {i.sid: _text_or_none(i.data.get("meta/instanceID")) for i in changed}
        wanted = sorted({v for v in instance.values() if v})
        stored: dict[str, list[int]] = {}
        for chunk in _chunks(wanted, 900):
            for instance_id, sid in conn.execute(sa.select(root.c._instance_id, root.c._id).where(
                    root.c._instance_id.in_(chunk), root.c._deleted_at.is_(None))):
                stored.setdefault(instance_id, []).append(int(sid))
        updates = []
        for sid, instance_id in instance.items():
            first = min((i for i in stored.get(instance_id or "", ()) if i < sid), default=None)
            if first is not None:
                updates.append({"sid": sid, "first": first})
        if updates:
            conn.execute(root.update().where(root.c._id == sa.bindparam("sid"))
                         .values(_duplicate_of=sa.bindparam("first")), updates)

    def _flag_duplicates_in_memory(self, conn: sa.Connection, root: sa.Table, changed: Sequence[Incoming],
                                   first: FirstLoad) -> None:
        """`_flag_duplicates` during a first load: the load's hashes name the candidates, the database's rows
        (looked up by `_id`) decide, so the answer is the same."""
        rows = [(i.sid, _text_or_none(i.data.get("meta/instanceID"))) for i in changed]
        found = first.candidates(rows)
        if not found:
            return
        stored: dict[int, str | None] = {}
        for chunk in _chunks(sorted({c for cs in found.values() for c in cs}), 900):
            for sid, instance_id in conn.execute(sa.select(root.c._id, root.c._instance_id).where(
                    root.c._id.in_(chunk), root.c._deleted_at.is_(None))):
                stored[int(sid)] = instance_id
        instance = dict(rows)
        updates = []
        for sid, candidates in found.items():
            earliest = min((c for c in candidates if c in stored and stored[c] == instance[sid]), default=None)
            if earliest is not None:
                updates.append({"sid": sid, "first": earliest})
        if updates:
            conn.execute(root.update().where(root.c._id == sa.bindparam("sid"))
                         .values(_duplicate_of=sa.bindparam("first")), updates)

    def mark_deleted(self, form: RegisteredForm, ids: Sequence[int], *, run_id: int | None = None,
                     found_by: str | None = None) -> int:
        """Mark submissions that the server no longer has; their rows stay, with `_deleted_at` set. Only those
        not marked already get a history row."""
        self._guard(lambda: self._end_first_load(form.key), f"index the submissions of form {form.key}")

        def go() -> int:
            now = utcnow()
            root = form.tables.root
            with self.engine.begin() as conn:
                live: list[int] = []
                for chunk in _chunks(sorted({int(i) for i in ids}), 900):
                    live += [int(i) for i in conn.execute(sa.select(root.c._id).where(
                        root.c._id.in_(chunk), root.c._deleted_at.is_(None))).scalars()]
                    conn.execute(root.update().where(root.c._id.in_(chunk), root.c._deleted_at.is_(None))
                                 .values(_deleted_at=now))
                if live:
                    conn.execute(bk.submission_history.insert(), [
                        {"asset_key": form.key, "submission_id": i, "seen_at": now, "run_id": run_id,
                         "change": "deleted", "uuid": None, "validation_status": None, "validation_by": None,
                         "found_by": found_by} for i in live])
            return len(live)
        return self._guard(go, f"mark deleted submissions of form {form.key}")


    def sweep_due(self, key: str, every: int) -> bool:
        """True when `every` syncs have run since the last sweep (every=1: each sync sweeps)."""
        if every <= 0:
            return False
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(bk.sync_state.c.syncs_since_sweep, bk.sync_state.c.last_sweep_at)
                               .where(bk.sync_state.c.asset_key == key)).first()
        if row is None or row.last_sweep_at is None:
            return True
        return (row.syncs_since_sweep or 0) + 1 >= every

    def full_sweep_due(self, key: str, every: dt.timedelta | None) -> bool:
        """Is the safety net due: every submission compared with the server, `every` after the last time (None:
        never; zero: at every sweep)? Due when it never ran."""
        if every is None:
            return False
        last = self.sweep_state(key).last_full_sweep_at
        return last is None or utcnow() - last >= every

    def sweep_state(self, key: str) -> SweepState:
        def go() -> SweepState:
            st = bk.sync_state
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(st.c.last_sweep_at, st.c.last_full_sweep_at, st.c.validation_since,
                                             st.c.history_since, st.c.history_denied_at)
                                   .where(st.c.asset_key == key)).first()
            if row is None:
                return SweepState()
            return SweepState(last_sweep_at=_as_datetime(row.last_sweep_at),
                              last_full_sweep_at=_as_datetime(row.last_full_sweep_at),
                              validation_since=None if row.validation_since is None else int(row.validation_since),
                              history_since=_as_datetime(row.history_since),
                              history_denied_at=_as_datetime(row.history_denied_at))
        return self._guard(go, "read the sweep's state")

    def record_sync(self, key: str, *, swept: bool, full: bool = False, marks: SweepMarks | None = None,
                    source_state: Mapping[str, Any] | None = None) -> None:
        """Count a sync towards the next sweep, or record a sweep (`full`: every submission was compared) with
        what it leaves for the next one (`marks`), and what the source keeps between runs (`source_state`, e.g.
        an ETag); written only when the run succeeded."""
        def go() -> None:
            now = utcnow()
            with self.engine.begin() as conn:
                st = bk.sync_state
                values: dict[str, Any] = ({"last_sweep_at": now, "syncs_since_sweep": 0} if swept
                                          else {"syncs_since_sweep": sa.func.coalesce(st.c.syncs_since_sweep, 0) + 1})
                if source_state is not None:
                    values["source_state"] = orjson.dumps(dict(source_state)).decode() if source_state else None
                if swept and full:
                    values["last_full_sweep_at"] = now
                if marks is not None:
                    values.update({k: v for k, v in dataclasses.asdict(marks).items() if v is not None})
                if conn.execute(st.update().where(st.c.asset_key == key).values(**values)).rowcount == 0:
                    row = {**values, "last_sweep_at": now if swept else None, "syncs_since_sweep": 0 if swept else 1}
                    conn.execute(st.insert().values(asset_key=key, updated_at=now, **row))
        self._guard(go, "record the sync")

    def _delete_submissions(self, conn: sa.Connection, form: RegisteredForm, ids: list[int]) -> None:
        for chunk in _chunks(ids, 900):
            for table in reversed(form.tables.all_tables()):
                key = table.c._id if table is form.tables.root else table.c._submission_id
                conn.execute(table.delete().where(key.in_(chunk)))
            for t, col in ((bk.submissions_raw, bk.submissions_raw.c.submission_id),
                           (bk.attachments, bk.attachments.c.submission_id),
                           (bk.restricted_values, bk.restricted_values.c.submission_id)):
                conn.execute(t.delete().where(t.c.asset_key == form.key, col.in_(chunk)))

    def _set_watermark(self, conn: sa.Connection, key: str, wm: Watermark, now: dt.datetime) -> None:
        """Move the watermark forward to `wm`; never back (a run re-reading its overlap window must not
        make the next run re-read more)."""
        st = bk.sync_state
        current = conn.execute(sa.select(st.c.watermark_time, st.c.watermark_id)
                               .where(st.c.asset_key == key)).first()
        values = {"watermark_time": wm.submission_time, "watermark_id": wm.submission_id, "updated_at": now}
        if current is None:
            conn.execute(st.insert().values(asset_key=key, **values))
        elif current.watermark_time is None or (wm.submission_time, wm.submission_id) > \
                (current.watermark_time, int(current.watermark_id)):
            conn.execute(st.update().where(st.c.asset_key == key).values(**values))

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
    def asset_lock(self, key: str) -> Iterator[None]:
        """Hold the asset for one sync. On PostgreSQL a session advisory lock keyed by the asset, so
        workers on several machines never sync one asset at once (released even if a worker dies);
        on SQLite, a lock within this process (SQLite warehouses are single-worker)."""
        if self.engine.dialect.name != "postgresql":
            lock = _local_locks.setdefault(f"{self.url}|{key}", threading.Lock())
            if not lock.acquire(blocking=False):
                raise AssetBusy(f"asset {key} is already being synced by this process")
            try:
                yield
            finally:
                lock.release()
            return
        lock_id = int.from_bytes(hashlib.sha1(f"amina-sync:{key}".encode()).digest()[:8], "big", signed=True)
        conn = self._guard(self.engine.connect, "connect")
        try:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_id}).scalar_one()
            conn.commit()
            if not got:
                raise AssetBusy(f"asset {key} is being synced by another worker into {self.safe_url}; "
                                "this run skips it")
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": lock_id})
                conn.commit()
        finally:
            conn.close()

    # -- runs -----------------------------------------------------------------------------------

    def start_run(self, key: str, server_url: str) -> int:
        """Record a run as running (with this process's id and host), after marking runs of the asset left
        'running' by a process that has ended as 'abandoned'. Call it while holding `asset_lock`."""
        def go() -> int:
            now = utcnow()
            runs = bk.sync_runs
            me = socket.gethostname()
            with self.engine.begin() as conn:
                for run_id, pid, host, beat, started in conn.execute(
                        sa.select(runs.c.run_id, runs.c.pid, runs.c.host, runs.c.heartbeat_at, runs.c.started_at)
                        .where(runs.c.asset_key == key, runs.c.status == "running")).all():
                    last = _as_datetime(beat) or _as_datetime(started)
                    if self.has_schemas or (host == me and not _alive(pid)) or host is None or \
                            (last is not None and (now - last).total_seconds() > 86400):
                        conn.execute(runs.update().where(runs.c.run_id == run_id).values(
                            status="abandoned", finished_at=last,
                            error=f"its process ({host or '?'} pid {pid or '?'}) ended without finishing the run; "
                                  f"it last wrote at {last:%Y-%m-%d %H:%M:%S} UTC" if last else
                                  "its process ended without finishing the run"))
                result = conn.execute(runs.insert().values(
                    asset_key=key, server_url=server_url, started_at=now, status="running", requests=0,
                    pages=0, fetched=0, inserted=0, updated=0, unchanged=0, bad_values=0, deleted=0, swept=False,
                    sweep_requests=0, sweep_seconds=0.0, sweep_bytes=0, quarantined=0, pid=os.getpid(), host=me,
                    heartbeat_at=now))
                return int(result.inserted_primary_key[0])
        return self._guard(go, "record the start of a sync run")

    @staticmethod
    def _heartbeat(conn: sa.Connection, run_id: int, now: dt.datetime) -> None:
        conn.execute(bk.sync_runs.update().where(bk.sync_runs.c.run_id == run_id).values(heartbeat_at=now))

    def finish_run(self, run_id: int, *, status: str, error: str | None = None, **counts: Any) -> None:
        def go() -> None:
            with self.engine.connect() as conn:
                key = conn.execute(sa.select(bk.sync_runs.c.asset_key)
                                   .where(bk.sync_runs.c.run_id == run_id)).scalar_one()
            self._end_first_load(key)  # the index a first load left out, built once, before the run counts as done
            now = utcnow()
            with self.engine.begin() as conn:
                started = conn.execute(sa.select(bk.sync_runs.c.started_at)
                                       .where(bk.sync_runs.c.run_id == run_id)).scalar_one()
                conn.execute(bk.sync_runs.update().where(bk.sync_runs.c.run_id == run_id).values(
                    status=status, error=None if error is None else storable(error), finished_at=now,
                    heartbeat_at=now, seconds=(now - _as_datetime(started)).total_seconds(), **counts))
                if status == "ok":
                    conn.execute(bk.forms.update().where(bk.forms.c.asset_key == key).values(
                        last_synced_at=now,
                        first_synced_at=sa.func.coalesce(bk.forms.c.first_synced_at, now)))
        self._guard(go, "record the end of a sync run")

    # -- reading --------------------------------------------------------------------------------

    def row_counts(self, key: str | None = None) -> list[tuple[str, str, int]]:
        """(asset key, table, rows) for every table of every form, in the order the tables were made."""
        def go() -> list[tuple[str, str, int]]:
            out: list[tuple[str, str, int]] = []
            ft = bk.form_tables
            with self.engine.connect() as conn:
                q = (sa.select(ft.c.asset_key, ft.c.table_name).join(bk.forms, bk.forms.c.asset_key == ft.c.asset_key)
                     .order_by(bk.forms.c.table_name, ft.c.position))
                if key:
                    q = q.where(ft.c.asset_key == key)
                present = set(sa.inspect(conn).get_table_names())
                for asset, name in conn.execute(q).all():
                    if name not in present:
                        continue
                    count = conn.exec_driver_sql(f"SELECT count(*) FROM {_q(conn, name)}").scalar_one()
                    out.append((asset, name, int(count)))
            return out
        return self._guard(go, "count rows")

    def find_form(self, name: str) -> tuple[str, str]:
        """(asset key, table) of a form named by its table, asset key, asset uid, form_id or name."""
        f = bk.forms
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(f.c.asset_key, f.c.asset_uid, f.c.table_name, f.c.form_id, f.c.name)).all()
        for field in ("table_name", "asset_key", "asset_uid", "form_id", "name"):
            hits = [r for r in rows if getattr(r, field) == name]
            if len(hits) == 1:
                return hits[0].asset_key, hits[0].table_name
            if len(hits) > 1:
                raise ConfigError(f"'{name}' names {len(hits)} forms in {self.safe_url}; name one by its table: "
                                  f"{', '.join(sorted(h.table_name for h in hits))}")
        known = ", ".join(sorted(r.table_name for r in rows)) or "none synced yet"
        raise ConfigError(f"no form '{name}' in {self.safe_url} (forms: {known})")

    def tables_of(self, key: str) -> list[tuple[str, str, str | None]]:
        """(table, kind, parent table) of a form, parents first."""
        ft = bk.form_tables
        with self.engine.connect() as conn:
            return [(r.table_name, r.kind, r.parent_table) for r in conn.execute(
                sa.select(ft).where(ft.c.asset_key == key).order_by(ft.c.position))]


def _permission_denied(exc: BaseException | None) -> bool:
    """Whether a database error is PostgreSQL's 'insufficient privilege' (SQLSTATE 42501)."""
    return getattr(getattr(exc, "orig", exc), "sqlstate", None) == "42501"


def _q(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)




def _add_counts(result: PageResult, counts: PageResult) -> None:
    for name in ("inserted", "updated", "unchanged", "bad_values"):
        setattr(result, name, getattr(result, name) + getattr(counts, name))


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


def _attachment_rows(key: str, items: Iterable[Incoming]) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        listed = item.data.get("_attachments")
        for a in listed if isinstance(listed, list) else []:
            if isinstance(a, Mapping) and _text_or_none(a.get("uid")):
                rows.append({"asset_key": key, "uid": _text_or_none(a.get("uid")), "submission_id": item.sid,
                             "question_xpath": _text_or_none(a.get("question_xpath")),
                             "filename": _text_or_none(a.get("filename")),
                             "mimetype": _text_or_none(a.get("mimetype")),
                             "download_url": _text_or_none(a.get("download_url"))})
    return rows


def _text_or_none(value: Any) -> str | None:
    """A system value as text: strings as they are, numbers spelled out, anything else (a list, an object)
    is not a usable value."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _as_datetime(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value)


def _alive(pid: int | None) -> bool:
    """Is a process with this id running on this host? (False for None.)"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    """WAL, and transactions under SQLAlchemy's control: pysqlite's own transaction handling would
    commit DDL on its own and break SAVEPOINTs (SQLAlchemy's documented recipe)."""
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    # a checkpoint (copy the WAL into the file, two fsyncs) every ~64 MiB of pages instead of every ~4 MiB: a
    # page of a thousand submissions writes several MiB, so the default checkpointed at nearly every commit
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN")
