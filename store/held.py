"""One connection kept for a loop of short transactions, instead of a pool checkout for each.

A checkout costs a round trip (the pool's pre-ping) and a relaxed commit another (`SET LOCAL`); for the
dispatcher's claim and record, one statement each, those were two of every five round trips. The held
connection is pinged once when taken, set up once, and given back when the loop goes idle.
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

    relaxed: commits do not wait for the WAL flush (PostgreSQL `synchronous_commit = off`, for this
    connection while it is held). Only a crash of the database server itself can lose such a commit.
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
        """Give the connection back to the pool as it was taken (a later transaction takes one again)."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            try:
                if self.relaxed and not conn.invalidated:
                    with conn.begin():
                        conn.exec_driver_sql("RESET synchronous_commit")
            except DBAPIError:
                conn.invalidate()  # never back to the pool still relaxed
            finally:
                self._drop()

    def _take(self) -> Connection:
        conn = self.engine.connect()
        try:
            if self.relaxed:
                with conn.begin():
                    conn.exec_driver_sql("SET synchronous_commit = off")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
