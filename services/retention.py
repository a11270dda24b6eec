"""Data retention: finished outbox rows and inbound events are deleted once older than `[retention]` says.

Only rows whose story is over go: messages sent, delivered, cancelled or folded into a digest, and
events applied or ignored. Messages still to send (pending, failed, held, sending), dead ones (the
record of what never reached a customer) and parked dead letters are never touched.

Deletes go in batches, each its own short transaction, so a first run over a large backlog neither
holds locks for long nor builds one huge transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, select

from services.context import Context
from store import tables as t
from store.db import unit_of_work

BATCH = 1000
OUTBOX_DONE = ("sent", "delivered", "cancelled", "digested")
INBOX_DONE = ("applied", "ignored")


@dataclass
class Pruned:
    outbox: int = 0
    inbox: int = 0


def prune(ctx: Context, batch: int = BATCH) -> Pruned:
    """Delete finished outbox rows older than outbox_days and finished events older than inbox_days."""
    cfg = ctx.settings.retention
    now = ctx.now()
    pruned = Pruned()
    pruned.outbox = _in_batches(ctx, batch, lambda conn: _outbox_batch(conn, now - timedelta(days=cfg.outbox_days),
                                                                       batch))
    pruned.inbox = _in_batches(ctx, batch, lambda conn: _inbox_batch(conn, now - timedelta(days=cfg.inbox_days),
                                                                     batch))
    return pruned


def _in_batches(ctx: Context, batch: int, step: Callable[[Connection], int]) -> int:
    total = 0
    while True:
        with unit_of_work(ctx.engine) as conn:
            done = step(conn)
        total += done
        if done < batch:
            return total


def _outbox_batch(conn: Connection, before: datetime, batch: int) -> int:
    o = t.outbox
    ids = conn.execute(select(o.c.id).where(o.c.status.in_(OUTBOX_DONE),
                                            func.coalesce(o.c.updated_at, o.c.created_at) < before)
                       .order_by(o.c.id).limit(batch)).scalars().all()
    if ids:
        conn.execute(delete(o).where(o.c.id.in_(ids), o.c.status.in_(OUTBOX_DONE)))
    return len(ids)


def _inbox_batch(conn: Connection, before: datetime, batch: int) -> int:
    i, d = t.inbox, t.dead_letters
    parked = select(d.c.id).where(d.c.inbox_id == i.c.id, d.c.status.in_(("parked", "retrying"))).exists()
    ids = conn.execute(select(i.c.id).where(i.c.status.in_(INBOX_DONE), ~parked,
                                            func.coalesce(i.c.applied_at, i.c.received_at) < before)
                       .order_by(i.c.id).limit(batch)).scalars().all()
    if ids:
        # A dead letter that was resolved goes with its event (its row points at the event).
        conn.execute(delete(d).where(d.c.inbox_id.in_(ids), d.c.status.notin_(("parked", "retrying"))))
        conn.execute(delete(i).where(i.c.id.in_(ids), i.c.status.in_(INBOX_DONE)))
    return len(ids)
