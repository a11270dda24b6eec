"""Dead letters: valid events that cannot be applied yet, kept with their reason, never dropped silently."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, String, bindparam, func, insert, select, update

from services.outcomes import Park
from store import tables as t
from store.db import txn_state

REQUEUED = "requeued_inbox_ids"  # txn_state key: inbox ids sent back to the queue in this transaction


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    id: int
    inbox_id: int
    source: str
    event_id: str
    type: str
    reason: str
    missing: str | None
    impact_value: Decimal
    status: str
    attempts: int
    created_at: datetime


# Where a missing record would be, by the kind a Park names.
_RECORDS = {
    "product": (t.products, "sku"),
    "customer": (t.customers, "customer_id"),
    "warehouse": (t.warehouses, "warehouse_id"),
    "order": (t.orders, "order_id"),
}


# Built once: an order placed looks for events parked for it (and on PostgreSQL takes the guard first),
# and building these statements anew on every call cost more client CPU than running them.
_d, _i = t.dead_letters, t.inbox
_GUARD = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=String), 0)))
_FOUND = {kind: select(table.c[column]).where(table.c[column] == bindparam("key"))
          for kind, (table, column) in _RECORDS.items()}
_PARK_AGAIN = update(_d).where(_d.c.inbox_id == bindparam("b_inbox_id")).values(attempts=_d.c.attempts + 1)
_PARK_FIRST = insert(_d).values(attempts=1)
_RESOLVE = update(_d).where(_d.c.inbox_id == bindparam("b_inbox_id"), _d.c.status != "resolved").values(
    status="resolved", updated_at=bindparam("b_now"))
_PARKED_FOR = select(_d.c.inbox_id).where(
    _d.c.status == "parked", _d.c.missing_kind == bindparam("kind"), _d.c.missing_key == bindparam("key"))
_RETRYING = update(_d).where(_d.c.inbox_id.in_(bindparam("ids", expanding=True))).values(
    status="retrying", updated_at=bindparam("b_now"))
_PENDING = update(_i).where(_i.c.id.in_(bindparam("ids", expanding=True))).values(status="pending")


def _guard(conn: Connection, kind: str, key: str) -> None:
    """Serialize parking for, and the arrival of, one missing record (PostgreSQL).

    Without it an event could be parked for a product just as another transaction adds the
    product and finds nothing parked yet: the event would wait for a record that has come.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_GUARD, {"key": f"deadletter:{kind}:{key}"})


def park(conn: Connection, inbox_id: int, why: Park, now: datetime) -> bool:
    """Park an event as a dead letter; False if what it waits for has arrived meanwhile (retry it)."""
    if why.missing_kind in _RECORDS and why.missing_key is not None:
        _guard(conn, why.missing_kind, why.missing_key)
        if conn.execute(_FOUND[why.missing_kind], {"key": why.missing_key}).first():
            return False
    values = {"reason": why.reason, "missing_kind": why.missing_kind, "missing_key": why.missing_key,
              "impact_value": why.impact_value, "status": "parked", "updated_at": now}
    updated = conn.execute(_PARK_AGAIN, {"b_inbox_id": inbox_id, **values}).rowcount
    if not updated:
        conn.execute(_PARK_FIRST, {"inbox_id": inbox_id, "created_at": now, **values})
    return True


def resolve(conn: Connection, inbox_id: int, now: datetime) -> None:
    conn.execute(_RESOLVE, {"b_inbox_id": inbox_id, "b_now": now})


def release_waiting_on(conn: Connection, kind: str, key: str, now: datetime) -> int:
    """Send the events parked for want of this record back to the inbox queue; returns how many."""
    _guard(conn, kind, key)
    ids = conn.execute(_PARKED_FOR, {"kind": kind, "key": key}).scalars().all()
    _requeue(conn, ids, now)
    return len(ids)


def _requeue(conn: Connection, inbox_ids: Sequence[int], now: datetime) -> None:
    if not inbox_ids:
        return
    # services.inbox applies a group of events in one transaction: these must come before its rest.
    txn_state(conn).setdefault(REQUEUED, []).extend(inbox_ids)
    conn.execute(_RETRYING, {"ids": list(inbox_ids), "b_now": now})
    conn.execute(_PENDING, {"ids": list(inbox_ids)})


def list_dead_letters(conn: Connection, status: str | None = "parked", limit: int = 100) -> list[DeadLetterView]:
    """Highest impact first (the value of the orders they hold up), then oldest."""
    d, i = t.dead_letters, t.inbox
    q = (select(d.c.id, d.c.inbox_id, i.c.source, i.c.event_id, i.c.type, d.c.reason, d.c.missing_kind,
                d.c.missing_key, d.c.impact_value, d.c.status, d.c.attempts, d.c.created_at)
         .join(i, i.c.id == d.c.inbox_id)
         .order_by(d.c.impact_value.desc(), d.c.created_at, d.c.id).limit(limit))
    if status:
        q = q.where(d.c.status == status)
    return [
        DeadLetterView(r.id, r.inbox_id, r.source, r.event_id, r.type, r.reason,
                       f"{r.missing_kind} {r.missing_key}" if r.missing_kind else None,
                       Decimal(r.impact_value), r.status, r.attempts, r.created_at)
        for r in conn.execute(q)
    ]


def retry(conn: Connection, ids: Sequence[int] | None, now: datetime) -> int:
    """Queue dead letters (all parked ones when ids is None) to be applied again."""
    d = t.dead_letters
    q = select(d.c.inbox_id).where(d.c.status == "parked")
    if ids is not None:
        q = q.where(d.c.id.in_(list(ids)))
    inbox_ids = conn.execute(q).scalars().all()
    _requeue(conn, inbox_ids, now)
    return len(inbox_ids)


def drop(conn: Connection, ids: Sequence[int], now: datetime) -> int:
    """Give up on dead letters by hand; the inbox keeps the event and says why."""
    d, i = t.dead_letters, t.inbox
    inbox_ids = conn.execute(select(d.c.inbox_id).where(d.c.id.in_(list(ids)), d.c.status == "parked")
                             ).scalars().all()
    if inbox_ids:
        conn.execute(update(d).where(d.c.inbox_id.in_(inbox_ids)).values(status="dropped", updated_at=now))
        conn.execute(update(i).where(i.c.id.in_(inbox_ids)).values(status="dropped", note="dropped by hand"))
    return len(inbox_ids)


