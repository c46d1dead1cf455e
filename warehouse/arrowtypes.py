"""The Arrow type of each warehouse column, from its SQL type: one mapping for the columnar path and its writers.

Text is `string`, whole numbers `int64`, doubles `float64`, dates `date32` and date-times naive `timestamp[us]`
(UTC, as the row path stores them). A boolean column (none in a form's tables today) is `bool`.
"""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa


def arrow_type(sql_type: sa.types.TypeEngine) -> pa.DataType:
    if isinstance(sql_type, sa.Boolean):
        return pa.bool_()
    if isinstance(sql_type, sa.Integer):
        return pa.int64()
    if isinstance(sql_type, sa.Float | sa.Numeric):
        return pa.float64()
    if isinstance(sql_type, sa.DateTime):
        return pa.timestamp("us")
    if isinstance(sql_type, sa.Date):
        return pa.date32()
    return pa.string()


def arrow_schema(table: sa.Table) -> pa.Schema:
    """The Arrow schema of a table's rows, its columns in the table's order."""
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in table.columns])
