"""What the notification planner reads from the store: lines with their orders, products and customers."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from notifiers.rules import LineFacts
from store import tables as t


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    customer_id: str
    name: str
    tier: str
    region: str | None
    timezone: str
    locale: str
    contacts: dict[str, Any]
    preferences: dict[str, Any]
    tags: frozenset[str]

    def template(self) -> dict[str, Any]:
        return {"id": self.customer_id, "name": self.name, "tier": self.tier, "locale": self.locale,
                "timezone": self.timezone}


@dataclass(frozen=True, slots=True)
class OrderFacts:
    order_id: str
    customer_id: str
    placed_at: datetime
    promised_date: date | None
    sources: frozenset[str]

    def template(self) -> dict[str, Any]:
        return {"id": self.order_id, "placed_at": self.placed_at.isoformat(),
                "promised_date": self.promised_date.isoformat() if self.promised_date else None}


# PostgreSQL takes at most 65,535 parameters per statement; a batch chunk can touch more lines.
IN_CHUNK = 10_000


@dataclass
class Facts:
    lines: dict[int, LineFacts]
    orders: dict[str, OrderFacts]
    customers: dict[str, CustomerFacts]
    # What each order is worth (order_value, as services.drafts.order_values counts it): the drafts
    # policy asks for the orders of these lines, and reading it here saves the planner a statement.
    order_values: dict[str, float] = field(default_factory=dict)


CUSTOMER_COLUMNS = (t.customers.c.customer_id, t.customers.c.name, t.customers.c.tier, t.customers.c.region,
                    t.customers.c.timezone, t.customers.c.locale, t.customers.c.contacts,
                    t.customers.c.preferences, t.customers.c.tags)


def customer_from_row(r: Any) -> CustomerFacts:
    return CustomerFacts(r.customer_id, r.name, r.tier, r.region, r.timezone or "UTC", r.locale or "en",
                         dict(r.contacts or {}), dict(r.preferences or {}), frozenset(r.tags or ()))


def order_value(lines: Any) -> Any:
    """What an order is worth, over its rows of `lines` (order_lines or an alias): every line's qty x unit price."""
    return func.sum(lines.c.qty * lines.c.unit_price)


def _lines_query() -> Any:
    l, o, p = t.order_lines, t.orders, t.products
    every = t.order_lines.alias("every_line")
    value = (select(order_value(every)).where(every.c.order_id == l.c.order_id)
             .scalar_subquery().label("order_value"))
    return (
        select(l.c.id, l.c.order_id, l.c.line_id, l.c.sku, p.c.name.label("product_name"), l.c.qty,
               l.c.qty_allocated, l.c.qty_shipped, l.c.status, l.c.eta, l.c.eta_reason, l.c.unit_price,
               l.c.backordered_at, o.c.placed_at, o.c.promised_date, o.c.source, o.c.channel,
               *CUSTOMER_COLUMNS, value)
        .join(o, o.c.order_id == l.c.order_id)
        .join(t.customers, t.customers.c.customer_id == o.c.customer_id)
        .join(p, p.c.sku == l.c.sku)
        .where(l.c.id.in_(bindparam("pks", expanding=True)))
    )


# Built once: the planner runs in every unit of work that decides something.
LINES = _lines_query()
CUSTOMERS = select(*CUSTOMER_COLUMNS).where(t.customers.c.customer_id.in_(bindparam("ids", expanding=True)))


def load_lines(conn: Connection, line_pks: Collection[int]) -> Facts:
    """The lines, their orders (and what each is worth) and customers, in one query."""
    facts = Facts({}, {}, {})
    if not line_pks:
        return facts
    pks = sorted(line_pks)
    for i in range(0, len(pks), IN_CHUNK):
        _load_chunk(conn, pks[i:i + IN_CHUNK], facts)
    return facts


def _load_chunk(conn: Connection, line_pks: list[int], facts: Facts) -> None:
    for r in conn.execute(LINES, {"pks": line_pks}):
        facts.lines[r.id] = LineFacts(
            line_pk=r.id, order_id=r.order_id, line_id=r.line_id, customer_id=r.customer_id, sku=r.sku,
            name=r.product_name, qty=r.qty, qty_allocated=r.qty_allocated, qty_shipped=r.qty_shipped,
            status=r.status, eta=r.eta.isoformat() if r.eta else None, eta_reason=r.eta_reason,
            unit_price=float(r.unit_price or 0),
            # A line still waiting now has waited, even before order_placed stamps backordered_at.
            waited=r.backordered_at is not None or r.status in ("backordered", "partially_allocated"),
        )
        if r.order_id not in facts.orders:
            facts.orders[r.order_id] = OrderFacts(r.order_id, r.customer_id, r.placed_at, r.promised_date,
                                                  frozenset(x for x in (r.source, r.channel) if x))
            facts.order_values[r.order_id] = float(r.order_value or 0)
        if r.customer_id not in facts.customers:
            facts.customers[r.customer_id] = customer_from_row(r)


def load_customers(conn: Connection, ids: Iterable[str]) -> dict[str, CustomerFacts]:
    ids = sorted(set(ids))
    if not ids:
        return {}
    return {r.customer_id: customer_from_row(r) for r in conn.execute(CUSTOMERS, {"ids": ids})}


def item(ln: LineFacts, previous_eta: str | None = None) -> dict[str, Any]:
    return {"line_id": ln.line_id, "sku": ln.sku, "name": ln.name, "qty": ln.qty,
            "qty_allocated": ln.qty_allocated, "qty_shipped": ln.qty_shipped, "waiting": ln.waiting,
            "status": ln.status, "eta": ln.eta, "eta_reason": ln.eta_reason, "previous_eta": previous_eta}
