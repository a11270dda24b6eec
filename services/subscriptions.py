"""Back-in-stock subscriptions: a customer asks to hear when a SKU has stock again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from services import notifications
from services.context import Context
from store import tables as t
from store.db import unit_of_work
from store.upsert import dialect_insert, insert_ignore


class UnknownReference(ValueError):
    """A field names a record the store does not hold."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field
        self.msg = msg


def _public(row: Any) -> dict[str, Any]:
    return {"id": row.id, "customer_id": row.customer_id, "sku": row.sku, "channel": row.channel,
            "status": row.status, "created_at": row.created_at.isoformat(),
            "notified_at": row.notified_at.isoformat() if row.notified_at else None}


def subscribe(ctx: Context, customer_id: str, sku: str, channel: str | None = None) -> tuple[dict[str, Any], bool]:
    """Open a subscription (or return the open one); returns (subscription, created).

    If the SKU has free stock already, the customer is told at once, in the same transaction.
    """
    with unit_of_work(ctx.engine) as conn:
        return subscribe_in(conn, ctx, customer_id, sku, channel)


def subscribe_in(conn: Connection, ctx: Context, customer_id: str, sku: str,
                 channel: str | None = None) -> tuple[dict[str, Any], bool]:
    """subscribe() inside the caller's unit of work."""
    s = t.subscriptions
    now = ctx.now()
    if conn.execute(select(t.customers.c.customer_id).where(t.customers.c.customer_id == customer_id)).first() \
            is None:
        raise UnknownReference("customer_id", f"unknown customer {customer_id}")
    if conn.execute(select(t.products.c.sku).where(t.products.c.sku == sku)).first() is None:
        raise UnknownReference("sku", f"unknown SKU {sku}")
    existing = _open(conn, customer_id, sku)
    if existing is not None:
        return _public(existing), False
    # The partial unique index settles a race between two requests: the second inserts nothing.
    conn.execute(dialect_insert(conn, s).on_conflict_do_nothing().values(
        customer_id=customer_id, sku=sku, channel=channel, status="open", created_at=now))
    created = _open(conn, customer_id, sku)
    assert created is not None
    builder = notifications.RowBuilder(ctx, f"subscription:{created.id}", now, now)
    rows = notifications.back_in_stock(conn, builder, {sku})
    insert_ignore(conn, t.outbox, rows, ["idempotency_key"])
    return _public(conn.execute(select(s).where(s.c.id == created.id)).one()), True


def _open(conn: Connection, customer_id: str, sku: str) -> Any:
    s = t.subscriptions
    return conn.execute(select(s).where(s.c.customer_id == customer_id, s.c.sku == sku, s.c.status == "open")).first()


def unsubscribe(ctx: Context, subscription_id: int) -> bool:
    s = t.subscriptions
    with unit_of_work(ctx.engine) as conn:
        done = conn.execute(update(s).where(s.c.id == subscription_id, s.c.status == "open")
                            .values(status="cancelled"))
        return bool(done.rowcount)


def list_subscriptions(conn: Connection, customer_id: str | None = None, sku: str | None = None,
                       status: str | None = None) -> list[dict[str, Any]]:
    s = t.subscriptions
    q = select(s).order_by(s.c.id)
    if customer_id is not None:
        q = q.where(s.c.customer_id == customer_id)
    if sku is not None:
        q = q.where(s.c.sku == sku)
    if status is not None:
        q = q.where(s.c.status == status)
    return [_public(r) for r in conn.execute(q)]
