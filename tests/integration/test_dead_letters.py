"""Dead letters are never stranded: parking re-checks for the record it would wait for."""

from __future__ import annotations

from sqlalchemy import select

from services.context import Context
from services.deadletters import park
from services.inbox import drain, store_events
from services.outcomes import Park
from store import tables as t
from store.db import unit_of_work


def test_park_declines_when_the_missing_record_has_arrived(ctx: Context) -> None:
    _, ids = store_events(ctx, [
        {"event_id": "p", "type": "product.upserted", "occurred_at": "2026-03-01T09:00:00Z", "source": "erp",
         "data": {"sku": "KTL", "name": "Kettle", "price": "10"}},
    ])
    drain(ctx, ids)
    with unit_of_work(ctx.engine) as conn:
        # As if an order for KTL had failed just before the product's transaction committed.
        assert park(conn, ids[0], Park("unknown SKU KTL", "product", "KTL"), ctx.now()) is False
        assert park(conn, ids[0], Park("unknown SKU MUG", "product", "MUG"), ctx.now()) is True
        reasons = conn.execute(select(t.dead_letters.c.reason)).scalars().all()
    assert reasons == ["unknown SKU MUG"]
