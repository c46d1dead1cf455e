"""Everything a warehouse holds, as plain values, for comparing two warehouses value by value.

Each table (the form tables and the bookkeeping, on PostgreSQL the `restricted` schema's too) is read through the
driver, past SQLAlchemy's type processing, so a value is compared as the database stores it: on SQLite an
INTEGER 1 and a TEXT '1' differ, as do '2026-01-01 00:00:00' and '2026-01-01 00:00:00.000000'.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from warehouse.store import Warehouse

# durations measured by a clock no test can stop
STOPWATCH = {"sync_runs": {"seconds", "sweep_seconds"}}
# ... and inside the sweep's cost per mechanism (JSON): "seconds":0.022
_SECONDS_IN_JSON = re.compile(r'"seconds":[0-9.eE+-]+')


def _stopped(value: Any) -> Any:
    return _SECONDS_IN_JSON.sub('"seconds":0', value) if isinstance(value, str) else value


def snapshot(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Table → its rows (sorted), with the columns' names as the first row (durations left out)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with wh.engine.connect() as conn:
        inspector = sa.inspect(conn)
        schemas = [None, "restricted"] if wh.has_schemas else [None]
        for schema in schemas:
            for name in inspector.get_table_names(schema=schema):
                quoted = conn.dialect.identifier_preparer.quote(name)
                if schema:
                    quoted = f'"{schema}".{quoted}'
                result = conn.exec_driver_sql(f"SELECT * FROM {quoted}")
                keep = [i for i, c in enumerate(result.keys()) if c not in STOPWATCH.get(name, ())]
                columns = tuple(list(result.keys())[i] for i in keep)
                rows = [tuple(_stopped(r[i]) for i in keep) for r in result.fetchall()]
                rows.sort(key=lambda r: tuple((v is None, type(v).__name__, repr(v)) for v in r))
                out[f"{schema}.{name}" if schema else name] = [columns, *rows]
    return out


def differences(a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]], limit: int = 20
                ) -> list[str]:
    """What differs between two snapshots, table by table (empty: the same, value for value)."""
    out: list[str] = []
    for table in sorted(set(a) | set(b)):
        if table not in a or table not in b:
            out.append(f"{table}: only in {'the first' if table in a else 'the second'}")
            continue
        if a[table][0] != b[table][0]:
            out.append(f"{table}: columns {a[table][0]} != {b[table][0]}")
            continue
        left, right = a[table][1:], b[table][1:]
        if left != right:
            only_a = [r for r in left if r not in right][:3]
            only_b = [r for r in right if r not in left][:3]
            out.append(f"{table}: {len(left)} vs {len(right)} rows; first only in one: {only_a}; only in other: "
                       f"{only_b}")
    return out[:limit]
