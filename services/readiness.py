"""Is this deployment ready for work? The database answers, its schema is at the Alembic head, and a
worker heartbeats. GET /readyz (bot/observability.py) serves the answer.

Each check says why it failed in a few words that are safe to show a load balancer (an error's
class, revision ids, ages), never a driver's message, which can name hosts and users: that goes to
the log.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import text

from services.context import Context
from services.heartbeats import last_beat, live_workers
from store.db import alembic_config

log = logging.getLogger(__name__)


def script_heads() -> set[str]:
    """The head revision(s) of the migrations shipped with this code (read from the scripts, no database)."""
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def check(ctx: Context, heads: set[str]) -> dict[str, dict[str, Any]]:
    """Run every check; each is {"ok": bool, ...} with "error" saying why when not ok."""
    database = _database(ctx)
    if not database["ok"]:
        skipped = {"ok": False, "error": "not checked: the database does not answer"}
        return {"database": database, "schema": dict(skipped), "workers": dict(skipped)}
    return {"database": database, "schema": _schema(ctx, heads), "workers": _workers(ctx)}


def _database(ctx: Context) -> dict[str, Any]:
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to answer: down, refused, bad credentials, no such file
        log.warning("readiness: the database does not answer", exc_info=True)
        return {"ok": False, "error": f"unreachable ({type(exc).__name__})"}
    return {"ok": True}


def _schema(ctx: Context, heads: set[str]) -> dict[str, Any]:
    try:
        with ctx.engine.connect() as conn:
            # The table Alembic keeps, read directly: MigrationContext would log two INFO lines per probe.
            current = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except Exception as exc:
        log.warning("readiness: cannot read the schema revision", exc_info=True)
        return {"ok": False, "error": f"cannot read alembic_version ({type(exc).__name__})"}
    out: dict[str, Any] = {"ok": current == heads, "revision": _one(current), "head": _one(heads)}
    if not out["ok"]:
        out["error"] = (f"schema at {_one(current) or 'nothing (empty database)'}, code expects {_one(heads)}: "
                        "run `backorder db upgrade`")
    return out


def _workers(ctx: Context) -> dict[str, Any]:
    stale = ctx.settings.health.stale_seconds
    now = ctx.now()
    try:
        with ctx.engine.connect() as conn:
            live = live_workers(conn, now, timedelta(seconds=stale))
            newest = None if live else last_beat(conn)
    except Exception as exc:  # e.g. the table is missing because the schema is behind
        log.warning("readiness: cannot read worker heartbeats", exc_info=True)
        return {"ok": False, "error": f"cannot read worker_heartbeats ({type(exc).__name__})"}
    out: dict[str, Any] = {"ok": bool(live), "live": len(live), "stale_after_seconds": stale}
    if not live:
        since = f"the last beat was {(now - newest).total_seconds():.0f} s ago" if newest else "none has ever beaten"
        out["error"] = f"no worker heartbeat in the last {stale:g} s ({since})"
    return out


def _one(revisions: set[str]) -> str | None:
    return ",".join(sorted(revisions)) or None
