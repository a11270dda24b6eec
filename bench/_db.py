"""Scratch databases for the benchmarks: the admin connection and dropping what a run made."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN = os.environ.get("BACKORDER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def pg_admin(sql: str) -> None:
    """Run one statement on the admin database outside a transaction (CREATE/DROP DATABASE)."""
    eng = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(sql))
    eng.dispose()


def drop_database(url: str) -> None:
    """Drop a PostgreSQL database (closing its sessions), or delete a SQLite file with its WAL."""
    if url.startswith("postgresql"):
        pg_admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
        return
    path = Path(make_url(url).database or "")
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)


def new_database(kind: str, workdir: Path, prefix: str = "bench") -> str:
    """A fresh, migrated database: a new PostgreSQL database beside PG_ADMIN, or a SQLite file in `workdir`."""
    from store.db import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if kind == "postgresql":
        pg_admin(f'CREATE DATABASE "{name}"')
        url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{workdir / f'{name}.db'}"
    upgrade(url)
    return url
