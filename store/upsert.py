"""INSERT ... ON CONFLICT for both dialects we run on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def dialect_insert(conn: Connection, table: Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def upsert_newer(conn: Connection, table: Table, row: dict[str, Any], keys: Sequence[str],
                 stamp: str = "updated_at") -> bool:
    """Upsert one row unless the stored one is newer by `stamp`; returns whether it was written.

    Out-of-order delivery must not move state backwards: an older upsert loses to a newer one.
    """
    stmt = dialect_insert(conn, table)
    cols = [c for c in row if c not in keys]
    current = table.c[stamp]
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols},
        where=current.is_(None) | (current <= stmt.excluded[stamp]),
    )
    # RETURNING, not rowcount: psycopg reports -1 for an upsert through SQLAlchemy.
    return conn.execute(stmt.returning(table.c[keys[0]]), row).first() is not None


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows whose keys are new; leave existing ones alone."""
    if rows:
        conn.execute(dialect_insert(conn, table).on_conflict_do_nothing(index_elements=list(keys)), list(rows))
