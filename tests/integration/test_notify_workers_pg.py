"""Two `backorder worker` processes dispatch one PostgreSQL outbox: every message is sent exactly once.

PostgreSQL only (workers share the store there); fails, never skips, when it is unreachable.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fakes.webhook_receiver import WebhookReceiver
from sqlalchemy import func, select

from backorder.config import load_settings
from services.context import Context
from services.inbox import drain, store_events
from store import tables as t
from store.db import make_engine

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
ORDERS = 300
SECRET = "whsec-workers"



def events() -> list[dict[str, Any]]:
    def ev(i: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"event_id": i, "type": type_, "occurred_at": "2026-03-02T08:00:00Z", "source": "t", "data": data}

    out = [ev("w", "warehouse.upserted", {"warehouse_id": "W", "name": "W", "region": "r"}),
           ev("p", "product.upserted", {"sku": "S", "name": "Thing", "price": 5}),
           ev("c", "customer.upserted", {"customer_id": "C", "name": "C", "preferences": {"opt_out": ["all"]}})]
    out += [ev(f"o{i}", "order.placed", {"order_id": f"O{i}", "customer_id": "C",
                                         "lines": [{"line_id": "1", "sku": "S", "qty": 1}]}) for i in range(ORDERS)]
    return out


def test_two_workers_never_send_the_same_row_twice(pg_url: str) -> None:
    with WebhookReceiver(secret=SECRET) as rx:
        env = {**os.environ, "BACKORDER_DATABASE_URL": pg_url, "BACKORDER_WEBHOOK__URL": rx.url,
               "BACKORDER_WEBHOOK__SECRET": SECRET, "BACKORDER_WEBHOOK__ALLOW_HTTP": "true",
               "BACKORDER_WEBHOOK__ALLOW_PRIVATE": "true", "BACKORDER_NOTIFY__BATCH_SIZE": "25",
               "BACKORDER_NOTIFY__RULES": '{"ops_digest": {"enabled": false}}', "BACKORDER_CONFIG": os.devnull}
        settings = load_settings(database_url=pg_url, webhook={"url": rx.url, "secret": SECRET, "allow_http": True,
                                                               "allow_private": True})
        ctx = Context(engine=make_engine(pg_url), settings=settings)
        workers = [subprocess.Popen([sys.executable, "-m", "backorder", "worker"], cwd=REPO, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        try:
            for w in workers:  # both polling before the first row exists, so both get a share
                assert w.stdout is not None
                assert "worker dispatching" in w.stdout.readline()
            # Applied one event at a time, the rows trickle in while both workers claim.
            _, ids = store_events(ctx, events())
            drain(ctx, ids)
            with ctx.engine.connect() as conn:
                total = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
            assert total == ORDERS  # one line_backordered decision per order, to one endpoint (no ETA to change)
            deadline = time.monotonic() + 60
            while rx.stats(keys=False)["count"] < total and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # anything sent twice would arrive now
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            outputs = [w.communicate(timeout=30)[0] for w in workers]
        keys = Counter(r.key for r in rx.requests)
        assert len(keys) == total, outputs
        assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1][:5]
        assert all(r.signature_ok for r in rx.requests)
        sent = [int(m.group(1)) for out in outputs for m in [re.search(r"(\d+) message\(s\) sent", out)] if m]
        assert len(sent) == 2 and sum(sent) == total and min(sent) > 0, outputs
        with ctx.engine.connect() as conn:
            statuses = dict(conn.execute(select(t.outbox.c.status, func.count()).group_by(t.outbox.c.status))
                            .tuples().all())
        assert statuses == {"delivered": total}
        ctx.engine.dispose()
