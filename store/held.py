"""One connection kept for a loop of short transactions, instead of a pool checkout for each.

A checkout costs a round trip (the pool's pre-ping): for the dispatcher's claim and record, one statement
each, one of every five round trips. The held connection is pinged once when taken and given back when
the loop goes idle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")


class HeldConnection:
    """Transactions on one connection of `engine`, one at a time (threads take turns).

    relaxed: commits do not wait for the WAL flush (PostgreSQL `SET LOCAL synchronous_commit = off` in
    each transaction). Only a crash of the database server itself can lose such a commit. Per transaction,
    not once per session, though that costs a round trip each: behind a pooler in transaction mode
    (PgBouncer) a session setting would stay on the server connection and relax other clients' commits.
    """

    def __init__(self, engine: Engine, *, relaxed: bool = False) -> None:
        self.engine = engine
        self.relaxed = relaxed and engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: everything inside commits together, or nothing does."""
        with self._lock:
            conn = self._conn if self._conn is not None else self._take()
            try:
                with conn.begin():
                    if self.relaxed:
                        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                    yield conn
            except DBAPIError as exc:
                if exc.connection_invalidated or conn.invalidated:
                    # Lost (the server restarted, the backend was killed): the next transaction takes a new one.
                    self._drop()
                raise

    def run(self, work: Callable[[Connection], T]) -> T:
        """`work` in one transaction, and once more on a new connection if the held one was lost.

        That is the check a pool checkout's pre-ping would have made: the connection was taken before the
        database restarted, say. Only for work that may safely run twice (a commit lost on the way back may
        have happened).
        """
        try:
            with self.transaction() as conn:
                return work(conn)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        with self.transaction() as conn:
            return work(conn)

    def release(self) -> None:
        """Give the connection back to the pool (a later transaction takes one again)."""
        with self._lock:
            self._drop()

    def _take(self) -> Connection:
        self._conn = self.engine.connect()
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
