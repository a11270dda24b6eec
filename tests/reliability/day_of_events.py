"""A generated day of canonical events at a small shop, deterministic from a seed, and ways to deliver it badly.

`day_of_events(seed, orders)` gives the day in the order its sources sent it (occurred_at strictly increasing):
warehouses, suppliers, products and customers first, opening stock counts and purchase orders, then orders,
receipts (some on a PO), recounts, cancellations, shipments, PO revisions and master-data changes through the
day. A few orders name SKUs whose product.upserted comes later (they park, then are released), and the
occurred_at offsets vary (Z, +01:00, -05:00) so "latest" has to be decided in UTC.

`with_late_copies` and `shuffled_copies` turn the day into at-least-once deliveries: every event 1 to 4 times.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

DAY = datetime(2026, 3, 1, tzinfo=UTC)
OFFSETS = (UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5)))
WAREHOUSES = (("LDS", "north"), ("BRS", "south"), ("GLA", "scotland"))
SUPPLIERS = ("ACME", "BOLT", "CRATE", "DELTA")
SOURCES = ("erp", "shopify", "wms")
TIERS = ("standard",) * 8 + ("gold", "platinum")


def stamp(at: datetime, rng: random.Random) -> str:
    """RFC 3339 in one of several offsets: the same instant written the way different sources write it."""
    return at.astimezone(rng.choice(OFFSETS)).isoformat()


def envelope(event_id: str, type_: str, at: str, data: dict[str, Any], source: str) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": source, "data": data}


@dataclass
class _Day:
    """What the generator has sent so far, so later events refer to records that exist (or soon will)."""

    rng: random.Random
    skus: list[str]
    customers: list[str]
    late_skus: list[str]
    events: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # (type, data, source)
    orders: dict[str, list[str]] = field(default_factory=dict)  # order_id -> line ids
    pos: dict[str, dict[str, Any]] = field(default_factory=dict)  # po_id -> its last full state
    counters: dict[str, int] = field(default_factory=dict)

    def next_id(self, prefix: str) -> str:
        self.counters[prefix] = self.counters.get(prefix, 0) + 1
        return f"{prefix}-{self.counters[prefix]}"

    def add(self, type_: str, data: dict[str, Any], source: str = "erp") -> None:
        self.events.append((type_, data, source))


def _master_data(d: _Day) -> None:
    rng = d.rng
    for wh, region in WAREHOUSES:
        d.add("warehouse.upserted", {"warehouse_id": wh, "name": f"{wh} DC", "region": region})
    for sup in SUPPLIERS:
        d.add("supplier.upserted", {"supplier_id": sup, "name": sup.title(), "lead_time_days": rng.randint(5, 20),
                                    "email": f"orders@{sup.lower()}.example"})
    for sku in d.skus:
        d.add("product.upserted", _product(d, sku))
    for cid in d.customers:
        d.add("customer.upserted", _customer(d, cid), "shopify")


def _product(d: _Day, sku: str) -> dict[str, Any]:
    rng = d.rng
    price = f"{rng.randint(5, 400)}.{rng.randint(0, 99):02d}"
    data: dict[str, Any] = {"sku": sku, "name": f"Product {sku}", "price": price,
                            "supplier_id": rng.choice(SUPPLIERS), "category": f"cat-{int(sku.split('-')[1]) % 5}",
                            "reorder_point": rng.randint(0, 5)}
    if rng.random() < 0.5:
        data["lead_time_days"] = rng.randint(3, 30)
    if rng.random() < 0.15:
        data["substitutes"] = [rng.choice(d.skus)]
    return data


def _customer(d: _Day, cid: str) -> dict[str, Any]:
    rng = d.rng
    n = int(cid.split("-")[1])
    data: dict[str, Any] = {"customer_id": cid, "name": f"Customer {n}", "tier": rng.choice(TIERS),
                            "region": rng.choice(WAREHOUSES)[1], "timezone": rng.choice(("UTC", "Europe/London",
                                                                                          "America/New_York")),
                            "locale": rng.choice(("en", "en", "es")),
                            "contacts": {"email": f"c{n}@example.com", "phone": f"+4479{n:08d}"}}
    roll = rng.random()
    if roll < 0.1:
        data["preferences"] = {"delivery": "digest"}
    elif roll < 0.2:
        data["preferences"] = {"quiet_hours": {"start": "21:00", "end": "10:00"}}
    return data


def _order(d: _Day) -> None:
    rng = d.rng
    order_id = d.next_id("ORD")
    pool = d.skus + d.late_skus if rng.random() < 0.03 else d.skus
    skus = rng.sample(pool, rng.choice((1, 1, 1, 2, 2, 3)))
    lines = [{"line_id": str(i + 1), "sku": sku, "qty": rng.randint(1, 5),
              "unit_price": f"{rng.randint(5, 400)}.00"} for i, sku in enumerate(skus)]
    data: dict[str, Any] = {"order_id": order_id, "customer_id": rng.choice(d.customers), "lines": lines,
                            "channel": rng.choice(("web", "shopify", "phone"))}
    if rng.random() < 0.6:
        data["promised_date"] = (DAY.date() + timedelta(days=rng.randint(1, 10))).isoformat()
    if rng.random() < 0.08:
        data["rush"] = True
    if len(lines) > 1 and rng.random() < 0.1:
        data["ship_complete"] = True
    d.orders[order_id] = [ln["line_id"] for ln in lines]
    d.add("order.placed", data, "shopify")


def _some_lines(d: _Day, order_id: str) -> dict[str, Any]:
    lines = d.orders[order_id]
    if len(lines) > 1 and d.rng.random() < 0.5:
        return {"order_id": order_id, "line_ids": d.rng.sample(lines, d.rng.randint(1, len(lines) - 1))}
    return {"order_id": order_id}


def _cancel(d: _Day) -> None:
    data = _some_lines(d, d.rng.choice(list(d.orders)))
    data["reason"] = d.rng.choice(("customer changed their mind", "duplicate order", "too slow"))
    d.add("order.cancelled", data, "shopify")


def _ship(d: _Day) -> None:
    data = _some_lines(d, d.rng.choice(list(d.orders)))
    data |= {"carrier": d.rng.choice(("DHL", "DPD", "UPS")), "tracking": d.next_id("TRK"),
             "status": d.rng.choice(("shipped", "shipped", "in_transit", "delivered", "label_created"))}
    d.add("shipment.updated", data, "wms")


def _po(d: _Day, po_id: str | None = None) -> None:
    rng = d.rng
    if po_id is None:
        po_id = d.next_id("PO")
        state = {"po_id": po_id, "supplier_id": rng.choice(SUPPLIERS), "warehouse_id": rng.choice(WAREHOUSES)[0],
                 "expected_at": (date(2026, 3, 3) + timedelta(days=rng.randint(0, 20))).isoformat(), "status": "open",
                 "lines": [{"sku": s, "qty": rng.randint(5, 30)} for s in rng.sample(d.skus, rng.randint(1, 3))]}
    else:  # a revision: the date slips, a quantity changes, or the PO closes; always the whole PO
        state = {**d.pos[po_id], "lines": [dict(ln) for ln in d.pos[po_id]["lines"]]}
        roll = rng.random()
        if roll < 0.5:
            state["expected_at"] = (date.fromisoformat(state["expected_at"]) + timedelta(days=rng.randint(1, 7))
                                    ).isoformat()
        elif roll < 0.85:
            rng.choice(state["lines"])["qty"] = rng.randint(5, 30)
        else:
            state["status"] = rng.choice(("closed", "cancelled"))
    d.pos[po_id] = state
    d.add("po.updated", state)


def _receive(d: _Day) -> None:
    rng = d.rng
    open_pos = [p for p in d.pos.values() if p["status"] == "open"]
    if open_pos and rng.random() < 0.5:
        po = rng.choice(open_pos)
        line = rng.choice(po["lines"])
        data = {"sku": line["sku"], "warehouse_id": po["warehouse_id"], "qty": rng.randint(1, line["qty"]),
                "po_id": po["po_id"]}
    else:
        data = {"sku": rng.choice(d.skus), "warehouse_id": rng.choice(WAREHOUSES)[0], "qty": rng.randint(1, 12)}
    d.add("inventory.received", data, "wms")


def _count(d: _Day, sku: str | None = None, wh: str | None = None) -> None:
    rng = d.rng
    d.add("inventory.adjusted", {"sku": sku or rng.choice(d.skus), "warehouse_id": wh or rng.choice(WAREHOUSES)[0],
                                 "on_hand": rng.randint(0, 12), "reason": "cycle count"}, "wms")


def _late_product(d: _Day) -> None:
    """A product launched after the shop started taking orders for it: those orders were parked until now."""
    if d.late_skus:
        sku = d.late_skus.pop(0)
        d.skus.append(sku)
        d.add("product.upserted", _product(d, sku))


def _revise_master(d: _Day) -> None:
    rng = d.rng
    roll = rng.random()
    if roll < 0.45:
        d.add("product.upserted", _product(d, rng.choice(d.skus)))
    elif roll < 0.9:
        d.add("customer.upserted", _customer(d, rng.choice(d.customers)), "shopify")
    else:
        sup = rng.choice(SUPPLIERS)
        d.add("supplier.upserted", {"supplier_id": sup, "name": sup.title(), "lead_time_days": rng.randint(5, 20)})


# The day's mix after the opening: (weight, action).
MIX = ((50, _order), (9, _receive), (7, _count), (7, _cancel), (14, _ship), (4, _po), (4, _revise_master))


def day_of_events(seed: int, orders: int = 600, skus: int = 40, customers: int = 120) -> list[dict[str, Any]]:
    """The day's events in the order they were sent: about three events per order placed."""
    rng = random.Random(seed)
    d = _Day(rng, [f"SKU-{k:03d}" for k in range(skus)], [f"C-{k:04d}" for k in range(customers)],
             late_skus=[f"SKU-{k:03d}" for k in range(skus, skus + 3)])
    _master_data(d)
    for sku in d.skus:  # the opening counts: scarce stock, so there is plenty to wait for
        for wh, _region in rng.sample(WAREHOUSES, rng.randint(1, 2)):
            _count(d, sku, wh)
    for _ in range(max(orders // 25, 3)):
        _po(d)
    actions = [a for w, a in MIX for _ in range(w)]
    placed = 0
    while placed < orders:
        action = rng.choice(actions) if d.orders else _order
        if action is _po and rng.random() < 0.6:
            _po(d, rng.choice(list(d.pos)))
            continue
        if action is _revise_master and d.late_skus and rng.random() < 0.1:
            _late_product(d)
            continue
        action(d)
        placed += action is _order
    while d.late_skus:
        _late_product(d)
    return _stamped(d, seed)


def _stamped(d: _Day, seed: int) -> list[dict[str, Any]]:
    """Envelopes with ids and strictly increasing times over the day (one second apart at least)."""
    step = max(int(86_000 / len(d.events)), 1)
    out: list[dict[str, Any]] = []
    for k, (type_, data, source) in enumerate(d.events):
        at = DAY + timedelta(seconds=k * step)
        out.append(envelope(f"s{seed}-{k:05d}-{type_}", type_, stamp(at, d.rng), data, source))
    return out


def copies_of(rng: random.Random) -> int:
    """How many times a source sends one event: at-least-once, now and then four times."""
    return rng.choice((1, 1, 2, 2, 3, 4))


def with_late_copies(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Every event once in its own place, and its extra copies (0-3) at random points after it."""
    n = len(events)
    keyed = [(float(k), ev) for k, ev in enumerate(events)]
    keyed += [(rng.uniform(k + 0.5, n), ev) for k, ev in enumerate(events) for _ in range(copies_of(rng) - 1)]
    keyed.sort(key=lambda pair: pair[0])
    return [ev for _key, ev in keyed]


def shuffled_copies(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Every event 1-4 times, all of it in random order."""
    stream = [ev for ev in events for _ in range(copies_of(rng))]
    rng.shuffle(stream)
    return stream


def batches(stream: list[dict[str, Any]], rng: random.Random, largest: int = 40) -> Iterator[list[dict[str, Any]]]:
    """The stream cut into requests of 1..largest events, in order."""
    k = 0
    while k < len(stream):
        n = rng.randint(1, largest)
        yield stream[k:k + n]
        k += n
