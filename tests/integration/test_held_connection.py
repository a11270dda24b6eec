"""store.held.HeldConnection on PostgreSQL: one connection across transactions, relaxed while held and
restored when given back, and a lost connection replaced (once more in `run`, by the next transaction
otherwise)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from store.db import make_engine
from store.held import HeldConnection
from tests.conftest import pg_admin_url


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)  # one pooled connection: what it is given back is seen
    yield engine
    engine.dispose()


def backend(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def kill(pid: int) -> None:
    admin = create_engine(make_url(pg_admin_url()), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


def test_transactions_share_one_relaxed_connection_given_back_as_it_was(pg_engine: Engine) -> None:
    held = HeldConnection(pg_engine, relaxed=True)
    with held.transaction() as conn:
        first = backend(conn)
        assert conn.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
    with held.transaction() as conn:
        assert backend(conn) == first
        assert conn.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
    held.release()
    with pg_engine.connect() as conn:  # the pool's only connection: the one that was held
        assert backend(conn) == first
        assert conn.execute(text("SHOW synchronous_commit")).scalar_one() == "on"


def test_a_rolled_back_transaction_keeps_the_connection(pg_engine: Engine) -> None:
    held = HeldConnection(pg_engine)
    with pytest.raises(DBAPIError), held.transaction() as conn:
        first = backend(conn)
        conn.execute(text("SELECT 1/0"))
    with held.transaction() as conn:
        assert backend(conn) == first
    held.release()


def held_then_lost(engine: Engine) -> tuple[HeldConnection, int]:
    """A HeldConnection whose connection's backend was then terminated, and that backend's pid."""
    held = HeldConnection(engine)
    with held.transaction() as conn:
        lost = backend(conn)
    kill(lost)
    return held, lost


def test_run_goes_once_more_on_a_new_connection_when_the_held_one_was_lost(pg_engine: Engine) -> None:
    held, lost = held_then_lost(pg_engine)
    seen: list[int] = []
    assert held.run(lambda c: seen.append(backend(c)) or "done") == "done"
    assert len(seen) == 1 and seen[0] != lost  # the lost connection failed before the work ran
    held.release()


def test_transaction_fails_on_a_lost_connection_and_the_next_one_takes_a_new_one(pg_engine: Engine) -> None:
    held, lost = held_then_lost(pg_engine)
    with pytest.raises(DBAPIError) as failed, held.transaction() as conn:
        backend(conn)
    assert failed.value.connection_invalidated
    with held.transaction() as conn:
        assert backend(conn) != lost
    held.release()
