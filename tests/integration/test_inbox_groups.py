"""Events applied in groups (services.inbox.drain) end exactly as applied one by one (apply_next).

The same mixed stream, with duplicates, stale counts, events parked for a missing customer or SKU and
released when it arrives, cancellations and shipments, is applied both ways on a wiped database;
every event's outcome and every row the decisions wrote must match.
"""

from __future__ import annotations

import json
import random
from typing import Any

from sqlalchemy import Connection, select

from services.context import Context
from services.inbox import GROUP_SIZE, apply_next, drain, store_events
from store import tables as t
from tests.conftest import _wipe

AT = "2026-03-01T10:00:00+00:00"


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = AT) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "erp", "data": data}


def stream() -> list[dict[str, Any]]:
    rnd = random.Random(8)
    out = [ev("w1", "warehouse.upserted", {"warehouse_id": "W1", "name": "North", "region": "north"}),
           ev("w2", "warehouse.upserted", {"warehouse_id": "W2", "name": "South", "region": "south"}),
           ev("sup", "supplier.upserted", {"supplier_id": "SUP", "name": "Sup", "lead_time_days": 9})]
    out += [ev(f"c{k}", "customer.upserted", {"customer_id": f"C{k}", "name": f"C{k}",
                                              "region": ("north", "south")[k % 2],
                                              "tier": ("standard", "gold", "platinum")[k % 3]}) for k in range(6)]
    out += [ev(f"p{k}", "product.upserted", {"sku": f"S{k}", "name": f"P{k}", "price": "4.00", "supplier_id": "SUP"})
            for k in range(5)]

    def order(i: int, customer: str, skus: list[str], whole: bool = False) -> dict[str, Any]:
        return ev(f"o{i}", "order.placed", {
            "order_id": f"O{i}", "customer_id": customer, "placed_at": AT, "promised_date": "2026-03-04",
            "ship_complete": whole, "rush": i % 7 == 0,
            "lines": [{"line_id": str(n + 1), "sku": sku, "qty": 1 + (i + n) % 3, "unit_price": "4.00"}
                      for n, sku in enumerate(skus)]})

    for i in range(60):
        skus = sorted(rnd.sample([f"S{k}" for k in range(5)], rnd.choice((1, 2))))
        out.append(order(i, f"C{i % 6}", skus, whole=i % 9 == 0))
        if i % 10 == 4:
            out.append(ev(f"r{i}", "inventory.received", {"sku": f"S{i % 5}", "warehouse_id": f"W{1 + i % 2}",
                                                          "qty": 5}))
        if i % 15 == 7:
            out.append(ev(f"dup{i}", "order.placed", order(i, f"C{i % 6}", skus)["data"]))  # placed already: ignored
        if i % 12 == 11:
            out.append(ev(f"x{i}", "order.cancelled", {"order_id": f"O{i - 3}"}))
        if i % 20 == 13:
            out.append(ev(f"sh{i}", "shipment.updated", {"order_id": f"O{i - 8}", "status": "shipped"}))
    # Parked for a customer that comes later, then a cancel of that order, which must not park.
    out.append(order(100, "CX", ["S1"]))
    out.append(ev("ax", "inventory.adjusted", {"sku": "S2", "warehouse_id": "W1", "on_hand": 3},
                  at="2026-03-01T11:00:00+00:00"))
    out.append(ev("ax-stale", "inventory.adjusted", {"sku": "S2", "warehouse_id": "W1", "on_hand": 50}))
    out.append(order(101, "C1", ["S1", "SX"]))  # parked: unknown SKU
    out.append(ev("cx", "customer.upserted", {"customer_id": "CX", "name": "CX", "region": "north", "tier": "gold"}))
    out.append(ev("x100", "order.cancelled", {"order_id": "O100"}))
    out.append(ev("po1", "po.updated", {"po_id": "PO1", "supplier_id": "SUP", "warehouse_id": "W1",
                                        "expected_at": "2026-03-10", "lines": [{"sku": "S3", "qty": 20}]}))
    out.append(ev("psx", "product.upserted", {"sku": "SX", "name": "PX", "price": "4.00", "supplier_id": "SUP"}))
    out += [ev(f"r9{k}", "inventory.received", {"sku": f"S{k}", "warehouse_id": "W2", "qty": 4}) for k in range(5)]
    return out


def snapshot(conn: Connection) -> dict[str, Any]:
    """Everything the decisions wrote, by public keys (surrogate ids differ once a group is rolled back)."""
    i, d, l, s, de, o, a = (t.inbox, t.dead_letters, t.order_lines, t.stock, t.domain_events, t.outbox,
                            t.audit_log)

    def rows(q: Any) -> list[tuple[Any, ...]]:
        return sorted(tuple(r) for r in conn.execute(q).tuples())

    def events() -> list[tuple[Any, ...]]:
        # Per cause and line, in the order written: that sequence is behaviour. Across the lines of one decision
        # it is not: lines load in the table's physical order, which a rolled-back group's dead rows change.
        out: dict[tuple[Any, ...], list[str]] = {}
        for typ, data, cause in conn.execute(select(de.c.type, de.c.data, de.c.cause).order_by(de.c.id)).tuples():
            data = {k: v for k, v in data.items() if k != "line_pk"}
            key = (cause, str(data.get("order_id")), str(data.get("line_id")), str(data.get("sku")))
            out.setdefault(key, []).append(json.dumps([typ, data, cause], sort_keys=True, default=str))
        return sorted((k, tuple(v)) for k, v in out.items())

    return {
        "inbox": rows(select(i.c.event_id, i.c.status, i.c.note)),
        "dead_letters": rows(select(i.c.event_id, d.c.status, d.c.reason).join(i, i.c.id == d.c.inbox_id)),
        "lines": rows(select(l.c.order_id, l.c.line_id, l.c.status, l.c.qty_allocated, l.c.qty_shipped, l.c.eta,
                             l.c.eta_reason, l.c.backordered_at)),
        "stock": rows(select(s.c.sku, s.c.warehouse_id, s.c.on_hand, s.c.allocated)),
        "orders": rows(select(t.orders.c.order_id, t.orders.c.status)),
        "domain_events": events(),
        # A draft's audit rows name it by its surrogate id.
        "audit": sorted((e, "#" if eid.isdigit() else eid, act, why) for e, eid, act, why in
                        conn.execute(select(a.c.entity, a.c.entity_id, a.c.action, a.c.reason)).tuples()),
        "outbox": rows(select(o.c.kind, o.c.audience, o.c.channel, o.c.recipient, o.c.status, o.c.order_id,
                              o.c.sku, o.c.error_reason)),
        "drafts": rows(select(t.drafts.c.notice_kind, t.drafts.c.customer_id, t.drafts.c.order_id,
                              t.drafts.c.status)),
    }


def test_groups_end_as_one_by_one(ctx: Context) -> None:
    events = stream()
    assert len(events) > 2 * GROUP_SIZE  # several groups, each mixing outcomes
    _, ids = store_events(ctx, events)
    while apply_next(ctx) is not None:
        pass
    with ctx.engine.connect() as conn:
        one_by_one = snapshot(conn)
    _wipe(ctx.engine)

    _, ids = store_events(ctx, events)
    handled = drain(ctx, ids)
    with ctx.engine.connect() as conn:
        grouped = snapshot(conn)
    outcomes = [status for _, status, _ in grouped["inbox"]]
    print(f"{len(events)} events, {handled} handled in groups; outcomes "
          f"{ {s: outcomes.count(s) for s in sorted(set(outcomes))} }, {len(grouped['domain_events'])} decisions, "
          f"{len(grouped['outbox'])} outbox rows")
    assert {"applied", "ignored"} <= set(outcomes)
    assert {("o100", "resolved"), ("o101", "resolved")} <= {(e, s) for e, s, _ in grouped["dead_letters"]}
    assert not [e for e, _, _ in grouped["dead_letters"] if e == "x100"]  # its order came first
    for key in one_by_one:
        assert grouped[key] == one_by_one[key], key
