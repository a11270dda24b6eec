"""Row ids in paths: bounded, so an id no row can have is a 422 naming the parameter, not a database error."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_PK = 2**63 - 1  # a BIGINT: SQLite cannot bind a larger int (OverflowError), PostgreSQL refuses the parameter
RowId = Annotated[int, Path(ge=1, le=MAX_PK, description="the row's id")]
