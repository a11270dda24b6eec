"""Drafts written and closed set-based (issue 8): the same rows as one by one, one outcome per draft."""

from __future__ import annotations

from typing import Any

from test_drafts import APPROVER, configured, ev, rows

from services import approvals, drafts
from services.context import Context
from services.inbox import drain, store_events
from store import tables as t
from store.db import unit_of_work


def apply(ctx: Context, events: list[dict[str, Any]]) -> None:
    _, ids = store_events(ctx, events)
    drain(ctx, ids)


def three_gold_orders(ctx: Context) -> None:
    events = [
        ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "lead_time_days": 14}),
    ]
    for n in (1, 2, 3):
        events += [
            ev(f"c{n}", "customer.upserted", {"customer_id": f"C{n}", "name": f"Ada {n}", "tier": "gold",
                                              "contacts": {"email": f"ada{n}@example.com"}}),
            ev(f"o{n}", "order.placed", {"order_id": f"O{n}", "customer_id": f"C{n}", "promised_date": "2026-03-05",
                                         "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 2, "unit_price": 40}]}),
        ]
    apply(ctx, events)


def test_a_receipt_cancels_its_drafts_at_once_and_leaves_a_decided_one_alone(ctx: Context) -> None:
    ctx = configured(ctx)
    three_gold_orders(ctx)
    pending = rows(ctx, t.drafts)
    assert [d["status"] for d in pending] == ["pending"] * 3
    assert len(rows(ctx, t.outbox, kind="approval_request")) == 3  # one card each, written with its draft
    approvals.approve(ctx, pending[0]["id"], APPROVER, via="api")

    apply(ctx, [ev("r1", "inventory.received", {"sku": "KTL-200", "warehouse_id": "LDS", "qty": 6})])

    after = {d["id"]: d for d in rows(ctx, t.drafts)}
    assert after[pending[0]["id"]]["status"] == "approved" and after[pending[0]["id"]]["decided_by"] == "ana"
    for d in pending[1:]:
        closed = after[d["id"]]
        assert (closed["status"], closed["decided_by"], closed["decided_via"]) == ("cancelled", "allocator", "system")
    audits = [a for a in rows(ctx, t.audit_log, entity="draft") if a["action"] == "draft_cancelled"]
    assert sorted(int(a["entity_id"]) for a in audits) == [d["id"] for d in pending[1:]]
    assert all(a["before"] == {"text": after[int(a["entity_id"])]["text"]} and a["after"]["via"] == "system"
               for a in audits)


def test_close_many_closes_only_what_is_still_open(ctx: Context) -> None:
    ctx = configured(ctx)
    three_gold_orders(ctx)
    ids = [d["id"] for d in rows(ctx, t.drafts)]
    approvals.reject(ctx, ids[1], APPROVER, via="api")
    with unit_of_work(ctx.engine) as conn:
        closed = approvals.close_many(conn, ctx, ids, "cancelled", decided_by="allocator", via="system",
                                      now=ctx.now())
        again = approvals.close_many(conn, ctx, ids, "cancelled", decided_by="allocator", via="system",
                                     now=ctx.now())
    assert closed == [ids[0], ids[2]] and again == []
    assert [d["status"] for d in rows(ctx, t.drafts)] == ["cancelled", "rejected", "cancelled"]
    actions = sorted((a["entity_id"], a["action"]) for a in rows(ctx, t.audit_log, entity="draft"))
    assert actions == sorted([(str(ids[0]), "draft_cancelled"), (str(ids[1]), "draft_rejected"),
                              (str(ids[2]), "draft_cancelled")])


def test_write_drafts_skips_a_key_written_already(ctx: Context) -> None:
    ctx = configured(ctx)
    three_gold_orders(ctx)
    stored = rows(ctx, t.drafts)[0]
    row = {k: v for k, v in stored.items() if k != "id"}
    with unit_of_work(ctx.engine) as conn:
        replay = drafts.write_drafts(conn, ctx, [drafts.PendingDraft(dict(row), "approve", ctx.now())])
        fresh = {**row, "idempotency_key": "another-cause"}
        twice = drafts.write_drafts(conn, ctx, [drafts.PendingDraft(dict(fresh), "approve", ctx.now()),
                                                drafts.PendingDraft(dict(fresh), "approve", ctx.now())])
    assert replay == [] and len(twice) == 1
    assert len(rows(ctx, t.drafts)) == 4
    cards = rows(ctx, t.outbox, kind="approval_request")
    assert len(cards) == 4 and sum(c["cause"] == f"draft:{twice[0]}" for c in cards) == 1
