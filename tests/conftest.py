"""Fixtures shared by the integration and end-to-end tests.

Every store-backed test runs twice: on SQLite and on PostgreSQL. PostgreSQL is the server at
BACKORDER_TEST_DATABASE_URL, or the local one (127.0.0.1:5432, trust auth) the machine runs;
when it cannot be reached the PostgreSQL runs fail, they do not skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from backorder.config import load_settings
from services.context import Context
from store.db import make_engine, upgrade
from store.models import Base
from tests.fakes.openai_server import FakeOpenAI

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# The fake services' fixtures, for every test that asks for one: `fake` (Twilio), `slack`, `bc` (Teams' Bot
# Connector), each beside the constants and helpers of the tests that drive the app through that channel;
# `llm` (an OpenAI-compatible server) is below.
pytest_plugins = ["tests.twilio_bot", "tests.slack_bot", "tests.teams_bot", "tests.browser", "tests.config_env"]


def pg_admin_url() -> str:
    url = os.environ.get("BACKORDER_TEST_DATABASE_URL", DEFAULT_PG)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _fresh_pg_database() -> str:
    """Create a new, empty database beside the configured one; tests never touch the original."""
    admin = make_url(pg_admin_url())
    name = f"backorder_test_{uuid.uuid4().hex[:10]}"
    eng = create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(url: str) -> None:
    parsed = make_url(url)
    eng = create_engine(make_url(pg_admin_url()), isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    eng.dispose()


@contextmanager
def migrated_pg_database() -> Iterator[str]:
    url = _fresh_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        _drop_pg_database(url)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "backorder.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    with migrated_pg_database() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of the test's own (for tests that start processes on it), dropped
    after; fails, not skips, when PostgreSQL cannot be reached."""
    with migrated_pg_database() as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    _wipe(eng)
    yield eng
    eng.dispose()


def _wipe(eng: Engine) -> None:
    tables = list(reversed(Base.metadata.sorted_tables))
    with eng.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(t.name for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


class Clock:
    """A settable clock, so ETAs and ages do not depend on the day the suite runs."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock:
    """2026-03-02 09:00 UTC; under @pytest.mark.wall_clock the wall clock's time, to the second (still settable)."""
    if request.node.get_closest_marker("wall_clock") is not None:
        return Clock(datetime.now(UTC).replace(microsecond=0))
    return Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on 127.0.0.1 (tests/fakes/openai_server.py)."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def ctx(engine: Engine, database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> Context:
    monkeypatch.chdir(tmp_path)  # no stray backorder.toml from the developer's directory
    for key in [k for k in os.environ if k.startswith("BACKORDER_") and k != "BACKORDER_TEST_DATABASE_URL"]:
        monkeypatch.delenv(key)
    settings = load_settings(database_url=database_url)
    return Context(engine=engine, settings=settings, clock=clock)
