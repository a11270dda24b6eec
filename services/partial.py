"""A customer's answer to a partial-shipment offer: ship what is ready now, or wait and get everything together.

`wait_all` makes the order ship-complete (all or nothing) and runs an allocation pass over its SKUs. The
engine keeps the units a line already holds, so on its own it would leave an order that cannot complete
sitting on them; the pass's `prepare` step gives them back first, unless the order can be completed now, so
other customers' lines get them. `ship_now` keeps (or makes) the order one that may ship in parts.

The choice is made once per order: it is recorded in the audit log, and a second answer is told what was
chosen before. Either way the customer gets a `partial_shipment_confirmed` notice, planned in the same
unit of work.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from allocation.engine import allocate, line_status
from allocation.model import DomainEvent, Move
from allocation.policy import AllocationPolicy
from allocation.result import AllocationResult
from notifiers.rules import Segment
from services import allocating, notifications
from services.context import Context
from services.notify_facts import load_customers
from store import allocation_io as io
from store import tables as t
from store.db import unit_of_work
from store.upsert import insert_ignore

Choice = Literal["ship_now", "wait_all"]
CHOICES: tuple[Choice, ...] = ("ship_now", "wait_all")
AUDIT_ACTION = "partial_shipment_chosen"
RELEASE_REASON = "ship_complete_chosen"


class UnknownOrder(LookupError):
    """No such order, or not this customer's: the same answer, so guessing order numbers reveals nothing."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"no order {order_id}")
        self.order_id = order_id


class NothingWaiting(Exception):
    """Every line of the order is allocated, shipped or cancelled: there is nothing to choose."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} has nothing waiting")
        self.order_id = order_id


class AlreadyChosen(Exception):
    """The customer answered for this order before; `choice` and `at` say what and when."""

    def __init__(self, order_id: str, choice: str, at: datetime) -> None:
        super().__init__(f"order {order_id}: {choice} was chosen already at {at.isoformat()}")
        self.order_id = order_id
        self.choice = choice
        self.at = at


def previous_choice(conn: Connection, order_id: str) -> tuple[str, datetime] | None:
    a = t.audit_log
    row = conn.execute(select(a.c.after, a.c.at).where(a.c.entity == "order", a.c.entity_id == order_id,
                                                       a.c.action == AUDIT_ACTION).order_by(a.c.id).limit(1)).first()
    if row is None:
        return None
    return str((row.after or {}).get("choice")), row.at


def open_choices(conn: Connection, customer_id: str) -> list[str]:
    """The customer's orders a SHIP or WAIT without a number could mean: some units held, some waiting,
    and no answer given yet."""
    l, o = t.order_lines, t.orders
    rows = conn.execute(
        select(l.c.order_id, l.c.status, l.c.qty_allocated, l.c.qty_shipped)
        .join(o, o.c.order_id == l.c.order_id)
        .where(o.c.customer_id == customer_id, l.c.status.in_(io.OPEN_STATUSES))).all()
    held = {r.order_id for r in rows if r.qty_allocated > r.qty_shipped}
    waiting = {r.order_id for r in rows if r.status in io.WAITING_STATUSES}
    return [oid for oid in sorted(held & waiting) if previous_choice(conn, oid) is None]


def choose(ctx: Context, order_id: str, customer_id: str | None, choice: Choice, via: str,
           actor: str | None = None) -> dict[str, Any]:
    """Record the customer's choice for `order_id` in one unit of work (see the module's docstring).

    `customer_id` None skips the ownership check (a staff action). Raises UnknownOrder, NothingWaiting,
    AlreadyChosen.
    """
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
    now = ctx.now()
    cause = f"partial_choice:{order_id}"
    o, l = t.orders, t.order_lines
    with unit_of_work(ctx.engine) as conn:
        order = conn.execute(select(o.c.order_id, o.c.customer_id).where(o.c.order_id == order_id)).first()
        if order is None or (customer_id is not None and order.customer_id != customer_id):
            raise UnknownOrder(order_id)
        who = actor or f"customer:{order.customer_id}"
        skus = io.skus_of_orders(conn, [order_id])
        # SKU locks first, in the order every allocation pass takes them; then the order row, so two answers
        # at once are decided one after the other and the second sees the first.
        io.lock_skus(conn, skus)
        locked = select(o.c.ship_complete).where(o.c.order_id == order_id)
        was_complete = bool(conn.execute(locked.with_for_update()).scalar_one())
        before = previous_choice(conn, order_id)
        if before is not None:
            raise AlreadyChosen(order_id, before[0], before[1])
        waiting = conn.execute(select(l.c.id).where(l.c.order_id == order_id,
                                                    l.c.status.in_(io.WAITING_STATUSES)).limit(1)).first()
        if waiting is None:
            raise NothingWaiting(order_id)
        ship_complete = choice == "wait_all"
        released = 0
        if ship_complete != was_complete:
            conn.execute(update(o).where(o.c.order_id == order_id).values(ship_complete=ship_complete))
            prepare = _release_unless_complete(order_id) if ship_complete else None
            events = allocating.run_pass(conn, ctx, skus, cause, prepare=prepare, actor=who, restock=ship_complete)
            released = sum(int(e.data["qty"]) for e in events
                           if e.type == "allocation_released" and e.data.get("order_id") == order_id)
        io.write_audit(conn, [{
            "entity": "order", "entity_id": order_id, "action": AUDIT_ACTION,
            "before": {"ship_complete": was_complete},
            "after": {"ship_complete": ship_complete, "choice": choice, "via": via, "released": released}}],
            who, cause, now)
        lines = _lines(conn, order_id)
        _confirm(conn, ctx, order.customer_id, order_id, choice, lines, cause, now)
    return {"order_id": order_id, "customer_id": order.customer_id, "choice": choice, "ship_complete": ship_complete,
            "released": released, "decided_at": now.isoformat(), "via": via, "lines": lines}


def _lines(conn: Connection, order_id: str) -> list[dict[str, Any]]:
    l = t.order_lines
    rows = conn.execute(select(l.c.line_id, l.c.sku, l.c.qty, l.c.qty_allocated, l.c.qty_shipped, l.c.status)
                        .where(l.c.order_id == order_id).order_by(l.c.line_id)).all()
    return [dict(r._mapping) for r in rows]


def _confirm(conn: Connection, ctx: Context, customer_id: str, order_id: str, choice: str,
             lines: list[dict[str, Any]], cause: str, now: datetime) -> None:
    customer = load_customers(conn, [customer_id]).get(customer_id)
    if customer is None:
        return
    o = t.orders
    order = conn.execute(select(o.c.source, o.c.channel).where(o.c.order_id == order_id)).one()
    sources = frozenset(x for x in (order.source, order.channel) if x)
    data = {"customer": customer.template(), "order": {"id": order_id}, "choice": choice}
    segment = Segment(customer.customer_id, customer.tier, customer.region, customer.tags, sources)
    rows = notifications.RowBuilder(ctx, cause, now, now).for_customer(
        conn, "partial_shipment_confirmed", customer, data, segment, scope=f"partial:{order_id}",
        order_id=order_id, line_ids=[ln["line_id"] for ln in lines])
    insert_ignore(conn, t.outbox, rows, ["idempotency_key"])


def _release_unless_complete(order_id: str) -> allocating.Prepare:
    """The pass's prepare step for a ship-complete order: give back the units its lines hold unless the
    pass can complete the order now (tried on copies, in the pass's own priority order)."""

    def prepare(loaded: io.Loaded, policy: AllocationPolicy) -> AllocationResult:
        result = AllocationResult()
        mine = [ln for ln in loaded.lines if ln.order_id == order_id and not ln.cancelled]
        if not any(ln.allocations for ln in mine) or not any(ln.waiting for ln in mine):
            return result
        trial_lines, trial_stocks = copy.deepcopy(loaded.lines), copy.deepcopy(loaded.stocks)
        allocate(trial_lines, trial_stocks, policy)
        if all(ln.waiting == 0 for ln in trial_lines if ln.order_id == order_id and not ln.cancelled):
            return result  # the pass completes it: the units it holds stay its own
        stocks = {(s.sku, s.warehouse_id): s for s in loaded.stocks}
        for ln in mine:
            if not ln.allocations:
                continue
            previous, released = ln.status, dict(ln.allocations)
            for wh, qty in released.items():
                stock = stocks[(ln.sku, wh)]
                stock.allocated -= qty
                result.moves.append(Move("release", ln.line_id, ln.order_id, ln.sku, wh, qty))
                result.changed_stocks[(ln.sku, wh)] = stock
            ln.allocations.clear()
            ln.qty_allocated -= sum(released.values())
            ln.status = line_status(ln)
            result.changed_lines[ln.line_id] = ln
            result.events.append(DomainEvent("allocation_released", {
                "line_id": ln.line_id, "order_id": ln.order_id, "sku": ln.sku, "qty": sum(released.values()),
                "warehouses": released, "qty_allocated": ln.qty_allocated, "previous_status": previous,
                "status": ln.status, "reason": RELEASE_REASON}))
        return result

    return prepare
