"""Prometheus figures that live in the database, read at scrape time.

Messages are sent and events applied by whichever process claims them (serve's thread, any number of
`backorder worker`s), so counting them in one process would be wrong: the store is asked instead, a
handful of indexed queries per scrape (the messages-by-channel count reads the outbox, which
the retention job keeps short).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, func, select

from services import backlog
from services.context import Context
from services.heartbeats import live_workers
from store import tables as t

log = logging.getLogger(__name__)

DUE_STATUSES = ("pending", "failed", "sending")  # the claim's statuses: a `sending` row past its lease is due again


class StoreCollector(Collector):
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def describe(self) -> list[Metric]:
        return []  # registering must not query the store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("backorder_store_up", "1 when the store answered this scrape's queries")
        try:
            with self._ctx.engine.connect() as conn:
                families = list(_families(conn, self._ctx.now(), self._ctx.settings.health.stale_seconds))
                families.extend(_backpressure(conn, self._ctx))
        except Exception:  # a scrape must still answer, saying the store did not
            log.warning("metrics: the store did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _families(conn: Connection, now: datetime, stale_s: float) -> Iterator[Metric]:
    o, i = t.outbox, t.inbox
    messages = GaugeMetricFamily("backorder_messages", "Messages in the outbox by channel and status",
                                 labels=["channel", "status"])
    for channel, status, n in conn.execute(select(o.c.channel, o.c.status, func.count())
                                           .group_by(o.c.channel, o.c.status)):
        messages.add_metric([channel, status], n)
    yield messages

    due = (o.c.status.in_(DUE_STATUSES), o.c.due_at <= now)
    depth = conn.execute(select(func.count()).select_from(o).where(*due)).scalar_one()
    oldest = conn.execute(select(o.c.due_at).where(*due).order_by(o.c.due_at).limit(1)).scalar()
    yield GaugeMetricFamily("backorder_outbox_queue_depth", "Messages due to be sent now (pending, failed "
                            "waiting to retry, or a lease run out)", value=depth)
    yield GaugeMetricFamily("backorder_outbox_oldest_due_age_seconds", "How long the oldest due message has been "
                            "waiting past its due time (0 when none is due)", value=_age(now, oldest))

    backlog = conn.execute(select(func.count()).select_from(i).where(i.c.status == "pending")).scalar_one()
    first = conn.execute(select(i.c.received_at).where(i.c.status == "pending").order_by(i.c.id).limit(1)).scalar()
    yield GaugeMetricFamily("backorder_inbox_backlog", "Events stored and not yet applied", value=backlog)
    yield GaugeMetricFamily("backorder_inbox_oldest_pending_age_seconds", "Age of the oldest event waiting to be "
                            "applied (0 when none waits)", value=_age(now, first))

    parked = conn.execute(select(func.count()).select_from(t.dead_letters)
                          .where(t.dead_letters.c.status == "parked")).scalar_one()
    yield GaugeMetricFamily("backorder_dead_letters", "Events parked as dead letters, waiting for a record or a "
                            "person", value=parked)
    live = live_workers(conn, now, timedelta(seconds=stale_s))
    yield GaugeMetricFamily("backorder_workers_live", "Workers whose heartbeat is younger than [health] "
                            "stale_seconds", value=len(live))


def _backpressure(conn: Connection, ctx: Context) -> Iterator[Metric]:
    """The configured depths beside the figures above, and whether either is passed (services/backlog.py)."""
    b = backlog.measure(conn, ctx)
    yield GaugeMetricFamily("backorder_inbox_backlog_limit", "[intake] backlog_warn_depth: events waiting past "
                            "which the workers are behind", value=b.inbox_limit)
    yield GaugeMetricFamily("backorder_outbox_queue_depth_limit", "[intake] outbox_warn_depth: messages due past "
                            "which the workers are behind", value=b.outbox_limit)
    yield GaugeMetricFamily("backorder_backpressure", "1 while the inbox backlog or the outbox queue is past its "
                            "configured depth (intake still stores every event)", value=int(b.behind))


def _age(now: datetime, then: datetime | None) -> float:
    return max((now - then).total_seconds(), 0.0) if then is not None else 0.0
