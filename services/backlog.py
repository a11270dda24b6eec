"""Backpressure: how far the workers are behind intake, measured against the configured depths.

Intake never refuses an event because the workers are behind: storing is cheap and the inbox and
the outbox are where a burst is meant to wait. Past `[intake] backlog_warn_depth` stored-but-unapplied
events (or `[intake] outbox_warn_depth` messages due to be sent), the deployment says so instead: in
/readyz (an advisory check that does not turn it 503), in /metrics (`backorder_backpressure`) and in
the 202 answer of POST /events?wait=false. docs/deploy.md explains why it is advisory.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from services.context import Context
from store import tables as t

log = logging.getLogger(__name__)
DUE_STATUSES = ("pending", "failed", "sending")  # as the outbox claim sees them (services/store_metrics.py)


@dataclass(frozen=True)
class Backlog:
    inbox: int  # events stored and not yet applied, counted up to inbox_limit + 1
    inbox_limit: int
    outbox: int  # messages due now, counted up to outbox_limit + 1
    outbox_limit: int

    @property
    def inbox_over(self) -> bool:
        return self.inbox > self.inbox_limit

    @property
    def outbox_over(self) -> bool:
        return self.outbox > self.outbox_limit

    @property
    def behind(self) -> bool:
        return self.inbox_over or self.outbox_over

    def hint(self) -> dict[str, Any]:
        """What POST /events?wait=false adds to its answer when the workers are behind."""
        return {"behind": self.behind, "inbox_pending": self.inbox, "inbox_warn_depth": self.inbox_limit,
                "outbox_due": self.outbox, "outbox_warn_depth": self.outbox_limit,
                "note": "stored; the workers are behind, so applying these events may take a while"}


def measure(conn: Connection, ctx: Context, now: datetime | None = None) -> Backlog:
    """Count each queue only up to one past its depth: past it the exact figure does not change the answer,
    and a bounded count stays cheap (an index range scan) however deep a burst has made the queue."""
    cfg = ctx.settings.intake
    now = now or ctx.now()
    i, o = t.inbox, t.outbox
    pending = select(i.c.id).where(i.c.status == "pending").limit(cfg.backlog_warn_depth + 1).subquery()
    due = (select(o.c.id).where(o.c.status.in_(DUE_STATUSES), o.c.due_at <= now)
           .limit(cfg.outbox_warn_depth + 1).subquery())
    inbox = conn.execute(select(func.count()).select_from(pending)).scalar_one()
    outbox = conn.execute(select(func.count()).select_from(due)).scalar_one()
    return Backlog(inbox, cfg.backlog_warn_depth, outbox, cfg.outbox_warn_depth)


class BacklogProbe:
    """The backlog as POST /events?wait=false sees it: measured at most once a second per process, so a
    bulk sender's hundreds of requests a second do not each add two count queries."""

    def __init__(self, ctx: Context, max_age_s: float = 1.0) -> None:
        self._ctx = ctx
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._last: tuple[float, Backlog] | None = None

    def fresh(self) -> Backlog | None:
        """The last count while it is young enough, else None; never touches the database (so the event loop
        can ask it without a trip to the thread pool)."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self._max_age_s:
                return self._last[1]
        return None

    def get(self) -> Backlog | None:
        """The backlog, or None when it cannot be counted now: the events are stored by then, so a failed count
        must not turn their 202 into an error (the log says why)."""
        young = self.fresh()
        if young is not None:
            return young
        try:
            with self._ctx.engine.connect() as conn:
                backlog = measure(conn, self._ctx)
        except Exception:
            log.warning("backlog: cannot count the queues", exc_info=True)
            return None
        with self._lock:
            self._last = (time.monotonic(), backlog)
        return backlog
