"""Per-form warehouse tables, derived from a FormSchema and from nothing else.

- `<form>`: one row per submission, keyed by KoBo's `_id`; system columns, then one typed column per
  question outside repeats (a geopoint becomes four columns).
- `<form>__<repeat>`: one row per repeat instance, keyed by (`_submission_id`, `_row_id`), where
  `_row_id` is the instance's 1-based position path ("2", or "2.3" for the 3rd instance of a nested
  repeat inside the 2nd instance of its parent) and `_parent_row_id` points at the parent repeat row.
- `<form>__<question>`: one row per code chosen in a select_multiple.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from forms.schema import Field, FormSchema, Kind, Repeat
from warehouse.naming import NameAllocator, identifier, view_names

GEO_PARTS = ("latitude", "longitude", "altitude", "precision")

_SQL_TYPES: dict[Kind, type[sa.types.TypeEngine] | sa.types.TypeEngine] = {
    Kind.INTEGER: sa.BigInteger(),
    Kind.DECIMAL: sa.Double(),
    Kind.DATE: sa.Date(),
    Kind.DATETIME: sa.DateTime(),
    Kind.TIME: sa.Text(),
    Kind.TEXT: sa.Text(),
    Kind.SELECT_ONE: sa.Text(),
    Kind.SELECT_MULTIPLE: sa.Text(),
}


def sql_type_of(f: Field) -> sa.types.TypeEngine:
    """The SQL type a question's column gets (a geopoint's four columns are each a double; a sensitive
    question's column holds a pseudonym, so it is text whatever the answer's type)."""
    if f.kind is Kind.GEOPOINT:
        return sa.Double()
    if f.sensitive:
        return sa.Text()
    return _SQL_TYPES[f.kind]


def root_system_columns() -> list[sa.Column]:
    """Columns every form table starts with; KoBo's system keys, renamed to say what they are."""
    return [
        sa.Column("_id", sa.BigInteger, primary_key=True, autoincrement=False,
                  comment="KoBo submission id (_id): stable across edits"),
        sa.Column("_uuid", sa.Text, nullable=False, comment="KoBo _uuid: changes on every edit"),
        sa.Column("_root_uuid", sa.Text, comment="meta/rootUuid: stable for the submission's lifetime"),
        sa.Column("_instance_id", sa.Text, comment="meta/instanceID as sent by the tablet (changes on edit)"),
        sa.Column("_duplicate_of", sa.BigInteger,
                  comment="_id of an earlier submission with the same meta/instanceID (a double upload)"),
        sa.Column("_submission_time", sa.DateTime, comment="_submission_time, UTC"),
        sa.Column("_submitted_by", sa.Text),
        sa.Column("_version", sa.Text, comment="__version__: the form version it was collected with"),
        sa.Column("_status", sa.Text),
        sa.Column("_validation_status", sa.Text, comment="validation_status_approved / _not_approved / _on_hold"),
        sa.Column("_validation_by", sa.Text),
        sa.Column("_validation_at", sa.DateTime),
        sa.Column("_deleted_at", sa.DateTime, comment="when amina noticed it was deleted on KoBo", index=True),
        sa.Column("_synced_at", sa.DateTime, nullable=False),
        sa.Column("_issues", sa.Text, comment="values that could not be stored in their typed column"),
    ]


ROOT_SYSTEM = tuple(c.name for c in root_system_columns())
REPEAT_SYSTEM = ("_submission_id", "_row_id", "_parent_row_id", "_position")
BRIDGE_SYSTEM = ("_submission_id", "_parent_row_id", "_position", "code")


@dataclass(frozen=True, slots=True)
class PreviousNames:
    """The names a form's tables and columns already have in the warehouse, so that a question keeps its
    column whatever later versions do (a question moved into a group is a new path: it must not take the
    name, and the data, of the one it replaced). Sources as the planner claims them: `repeat:<path>`,
    `bridge:<path>`; per table, `<path>` or `<path>#<geopoint part>`."""

    tables: Mapping[str, str] = field(default_factory=dict)  # source → table name
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # table → source → column


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """Where one question's answer goes: one column, or four for a geopoint."""

    field: Field
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BridgePlan:
    field: Field
    table: str


@dataclass(frozen=True, slots=True)
class TablePlan:
    name: str
    repeat: Repeat | None  # None for the submission table
    columns: tuple[ColumnPlan, ...]
    bridges: tuple[BridgePlan, ...]
    children: tuple[str, ...]  # paths of the repeats directly inside this table's level


class FormTables:
    """The tables of one form, as SQLAlchemy Core objects plus the plan the flattener follows."""

    def __init__(self, schema: FormSchema, base_name: str, metadata: sa.MetaData | None = None,
                 previous: PreviousNames | None = None, *, avoid: set[str] | frozenset[str] = frozenset()):
        """`previous`: the names this form's tables and columns already have (they keep them). `avoid`: names
        other objects of the warehouse have; no new table of this form (nor a view it brings) takes one."""
        self.schema = schema
        self.base = identifier(base_name)
        self.avoid = frozenset(avoid)
        self.metadata = metadata if metadata is not None else sa.MetaData()
        self.previous = previous or PreviousNames()
        table_names = NameAllocator(set(self.avoid) - {self.base}, previous=self.previous.tables,
                                    free=lambda name: not set(view_names(name, schema.languages)) & self.avoid)
        table_names.claim(self.base, "<submissions>")
        self.plans: dict[str | None, TablePlan] = {}
        self.bridge_plans: dict[str, BridgePlan] = {}
        self.tables: dict[str, sa.Table] = {}
        for repeat in (None, *schema.repeats):
            self._plan(repeat, table_names)

    # -- planning -------------------------------------------------------------------------------

    def _plan(self, repeat: Repeat | None, table_names: NameAllocator) -> None:
        path = repeat.path if repeat else None
        if repeat is None:
            name = self.base
            system = ROOT_SYSTEM
        else:
            name = table_names.claim_first(
                [f"{self.base}__{repeat.name}", f"{self.base}__{repeat.path.replace('/', '__')}"],
                f"repeat:{repeat.path}")
            system = REPEAT_SYSTEM
        columns = NameAllocator(reserved=set(system), previous=self.previous.columns.get(name))
        plans: list[ColumnPlan] = []
        bridges: list[BridgePlan] = []
        for f in self.schema.fields_in(path):
            if not f.stores_data:
                continue
            col = columns.claim_first([f.name, f.relative_path().replace("/", "__")], f.path)
            if f.kind is Kind.GEOPOINT:
                cols = tuple(columns.claim(f"{col}_{part}", f"{f.path}#{part}") for part in GEO_PARTS)
            else:
                cols = (col,)
            plans.append(ColumnPlan(f, cols))
            if f.kind is Kind.SELECT_MULTIPLE:
                bridge = table_names.claim_first(
                    [f"{self.base}__{f.name}", f"{self.base}__{f.path.replace('/', '__')}"], f"bridge:{f.path}")
                bridges.append(BridgePlan(f, bridge))
        plan = TablePlan(name=name, repeat=repeat, columns=tuple(plans), bridges=tuple(bridges),
                         children=tuple(r.path for r in self.schema.child_repeats(path)))
        self.plans[path] = plan
        self.tables[name] = self._table(plan)
        for b in bridges:
            self.bridge_plans[b.field.path] = b
            self.tables[b.table] = self._bridge_table(b)

    def _table(self, plan: TablePlan) -> sa.Table:
        if plan.repeat is None:
            system = root_system_columns()
        else:
            system = [
                sa.Column("_submission_id", sa.BigInteger, primary_key=True, autoincrement=False),
                sa.Column("_row_id", sa.Text, primary_key=True,
                          comment="1-based position path of this repeat instance, e.g. '2.3'"),
                sa.Column("_parent_row_id", sa.Text, comment="_row_id of the enclosing repeat instance"),
                sa.Column("_position", sa.Integer, nullable=False, comment="1-based position within its parent"),
            ]
        answer_columns = [
            sa.Column(name, sql_type_of(cp.field), comment=_comment(cp.field, part))
            for cp in plan.columns
            for name, part in zip(cp.columns, GEO_PARTS if cp.field.kind is Kind.GEOPOINT else (None,),
                                  strict=False)
        ]
        table = sa.Table(plan.name, self.metadata, *system, *answer_columns, quote=True)
        if plan.repeat is None:
            sa.Index(f"ix_{plan.name}_instance"[:63], table.c._instance_id)
            live = table.c._deleted_at.is_(None)
            # the sweep's reads, answered from the index alone: live submissions per _id range (counts and
            # the second figure), and the manifest of _uuid and validation status (see sync.sweep)
            sa.Index(live_index_name(plan.name), table.c._id, table.c._uuid, table.c._validation_status,
                     table.c._validation_at, sqlite_where=live, postgresql_where=live)
        # a repeat's rows are found by submission through the primary key (_submission_id leads it)
        return table

    def _bridge_table(self, bridge: BridgePlan) -> sa.Table:
        table = sa.Table(
            bridge.table,
            self.metadata,
            sa.Column("_submission_id", sa.BigInteger, nullable=False),
            sa.Column("_parent_row_id", sa.Text, comment="_row_id of the repeat instance; NULL at the top level"),
            sa.Column("_position", sa.Integer, nullable=False, comment="order in which the code was chosen"),
            sa.Column("code", sa.Text, nullable=False, comment=f"a code of choice list {bridge.field.choice_list}"),
            quote=True,
        )
        sa.Index(f"ix_{bridge.table}"[:63], table.c._submission_id)
        return table

    # -- lookups --------------------------------------------------------------------------------

    @property
    def root(self) -> sa.Table:
        return self.tables[self.base]

    def all_tables(self) -> list[sa.Table]:
        """Every table of the form, parents before children."""
        return list(self.tables.values())


def live_index_name(table: str) -> str:
    """The partial index of a submission table's live rows the sweep reads (warehouse.manifest)."""
    return identifier(f"ix_{table}_live")


def _comment(f: Field, part: str | None) -> str:
    label = f.labels.get("en") or next(iter(f.labels.values()), f.name) if f.labels else f.name
    text = f"{f.path}: {label}"
    if f.sensitive:
        text += " [personal data: pseudonym" + (", rounded to 0.1°]" if f.kind is Kind.GEOPOINT else "]")
    return f"{text} ({part})" if part else text
