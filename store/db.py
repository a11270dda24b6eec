"""Engines, the unit of work, and schema upgrades."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000


TXN_STATE = "backorder.txn"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for a store URL: SQLite in WAL mode with a busy timeout, or PostgreSQL via psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        _sqlite_pragmas(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
    for name in ("commit", "rollback", "rollback_savepoint"):
        event.listen(engine, name, _forget_txn_state)
    return engine


def txn_state(conn: Connection) -> dict[str, Any]:
    """Scratch space that lives as long as the current transaction (e.g. the row locks it holds)."""
    state: dict[str, Any] = conn.info.setdefault(TXN_STATE, {})
    return state


def _forget_txn_state(conn: Connection, *_args: Any) -> None:
    # A rolled-back savepoint releases the locks taken inside it, so forget everything then too.
    if conn.invalidated:
        # Its connection was lost (the server restarted, the backend was killed): reading `info` would try
        # to reconnect inside the rollback and raise PendingRollbackError over the real error. The pool
        # clears the record's info when it reconnects, so there is nothing to forget.
        return
    conn.info.pop(TXN_STATE, None)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling begins lazily (DEFERRED), so two writers can both
        # read and then deadlock on the upgrade to a write lock; we begin transactions ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: one writer at a time, waiting (busy_timeout)
        # instead of failing halfway through a unit of work.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Connection]:
    """One transaction: everything inside commits together, or nothing does."""
    with engine.begin() as conn:
        yield conn


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "store:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision` with Alembic."""
    command.upgrade(alembic_config(url), revision)
