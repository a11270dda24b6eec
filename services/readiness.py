"""Is this deployment ready for work? The database answers, its schema is at the Alembic head, and a
worker heartbeats. GET /readyz (bot/observability.py) serves the answer. The `backlog` check is advisory: it
says the workers are behind but never makes the deployment unready (services/backlog.py).

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

from services import backlog
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
        return {"database": database, "schema": dict(skipped), "workers": dict(skipped),
                "backlog": {**skipped, "advisory": True}}
    return {"database": database, "schema": _schema(ctx, heads), "workers": _workers(ctx), "backlog": _backlog(ctx)}


def ready(checks: dict[str, dict[str, Any]]) -> bool:
    """Ready when every check but the advisory ones passes: a backlog says the workers are behind, and taking the
    API out of rotation for it would stop intake, the one thing that absorbs the burst (docs/deploy.md)."""
    return all(c["ok"] for c in checks.values() if not c.get("advisory"))


def _backlog(ctx: Context) -> dict[str, Any]:
    try:
        with ctx.engine.connect() as conn:
            b = backlog.measure(conn, ctx)
    except Exception as exc:
        log.warning("readiness: cannot measure the backlog", exc_info=True)
        return {"ok": False, "advisory": True, "error": f"cannot count the queues ({type(exc).__name__})"}
    out: dict[str, Any] = {"ok": not b.behind, "advisory": True, "behind": b.behind, "inbox_pending": b.inbox,
                           "inbox_warn_depth": b.inbox_limit, "outbox_due": b.outbox,
                           "outbox_warn_depth": b.outbox_limit}
    if b.behind:
        # Counted only to one past the depth (services/backlog.py): "more than" is all that is known.
        over = [f"more than {limit} {what}" for over, what, limit in (
            (b.inbox_over, "events waiting to be applied", b.inbox_limit),
            (b.outbox_over, "messages due to be sent", b.outbox_limit)) if over]
        out["error"] = "workers behind: " + "; ".join(over) + " (intake still stores every event)"
    return out


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
