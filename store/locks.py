"""Cluster-wide locks by name: PostgreSQL advisory locks; on SQLite the write lock (BEGIN IMMEDIATE) already
serialises every writer, so these do nothing there.

The key is a 64-bit hash of the name (hashtextextended), so any string names a lock; callers prefix theirs
("digests:", "job:") to keep apart locks that mean different things.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.sql.functions import Function


def _key(name: str) -> Function[Any]:
    return func.hashtextextended(name, 0)


def xact_lock(conn: Connection, name: str) -> None:
    """Wait for the lock `name`, held until the transaction of `conn` ends (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_key(name))))


@contextmanager
def held_for_run(engine: Engine, name: str) -> Iterator[bool]:
    """Try to take the lock `name` for as long as the block runs; yields False when another holder has it.

    A session lock on a connection of its own, outside any transaction, so the block may run many
    transactions (a job's units of work) while it holds; a worker that dies loses its connection and so
    the lock. On SQLite it always yields True: callers re-check their state inside BEGIN IMMEDIATE.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(select(func.pg_try_advisory_lock(_key(name)))).scalar_one())
        conn.commit()  # not "idle in transaction" while the block runs
        try:
            yield got
        finally:
            if got:
                conn.execute(select(func.pg_advisory_unlock(_key(name))))
                conn.commit()
