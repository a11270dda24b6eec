"""Dispatch mechanics on both stores: leases, rate limits across workers, allowed hours, the
in-process worker of `serve`, and the CLI around the outbox."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.webhook_receiver import WebhookReceiver
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from backorder.config import load_settings
from bot.api import create_app
from notifiers.dispatch import backoff
from services.context import Context, utcnow
from services.inbox import drain, store_events
from services.worker import make_dispatcher
from store import outbox
from store import tables as t
from store.db import unit_of_work

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rx:
        yield rx


def webhook_ctx(ctx: Context, rx: WebhookReceiver, clock: Any = None, **notify: Any) -> Context:
    settings = load_settings(database_url=ctx.settings.database_url,
                             webhook={"url": rx.url, "allow_http": True, "allow_private": True},
                             notify={"rules": {"ops_digest": {"enabled": False}}, **notify})
    return Context(engine=ctx.engine, settings=settings, clock=clock or ctx.clock)


def add_rows(ctx: Context, url: str, n: int, now: datetime) -> None:
    rows = [{"idempotency_key": f"test:{i}", "kind": "decision", "channel": "webhook", "recipient": url,
             "audience": "system", "line_ids": [], "locale": "en", "body": f"m{i}", "payload": {"n": i},
             "facts": {}, "fallback": [], "urgent": False, "status": "pending", "due_at": now, "attempts": 0,
             "created_at": now, "occurred_at": now, "expires_at": now + timedelta(hours=1)} for i in range(n)]
    with unit_of_work(ctx.engine) as conn:
        conn.execute(insert(t.outbox), rows)


def statuses(ctx: Context) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        return outbox.counts(conn)


def test_a_dead_workers_rows_are_claimed_again_after_the_lease_and_its_late_result_is_refused(
        ctx: Context, receiver: WebhookReceiver) -> None:
    ctx = webhook_ctx(ctx, receiver)
    add_rows(ctx, receiver.url, 3, ctx.now())
    lease = ctx.settings.notify.lease_seconds
    with unit_of_work(ctx.engine) as conn:
        first = outbox.claim(conn, "worker-a", 10, ctx.now(), lease)
    assert len(first) == 3
    with unit_of_work(ctx.engine) as conn:  # worker-a "crashed": its rows are not due yet
        assert outbox.claim(conn, "worker-b", 10, ctx.now() + timedelta(seconds=lease - 1), lease) == []
    later = ctx.now() + timedelta(seconds=lease + 1)
    with unit_of_work(ctx.engine) as conn:
        again = outbox.claim(conn, "worker-b", 10, later, lease)
    assert sorted(r.id for r in again) == sorted(r.id for r in first)
    assert all(r.attempts == 2 for r in again)
    with unit_of_work(ctx.engine) as conn:
        assert outbox.record(conn, "worker-a", [outbox.Result(r.id, "sent") for r in first], later) == 0
        assert outbox.record(conn, "worker-b", [outbox.Result(r.id, "delivered") for r in again], later) == 3
    assert statuses(ctx) == {"delivered": 3}


def test_a_rate_limit_holds_across_two_workers(ctx: Context, receiver: WebhookReceiver) -> None:
    rate, n = 5.0, 12
    ctx = webhook_ctx(ctx, receiver, clock=utcnow, rate_per_destination={"webhook": rate}, batch_size=3)
    add_rows(ctx, receiver.url, n, utcnow())

    def work(owner: str) -> None:
        async def go() -> None:
            d = make_dispatcher(ctx, owner=owner)
            try:
                await d.drain()
            finally:
                await d.aclose()
        asyncio.run(go())

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    arrivals = sorted(r.monotonic for r in receiver.requests)
    assert len(arrivals) == n and statuses(ctx) == {"delivered": n}
    # No window shorter than a second (by a 50 ms allowance for loopback jitter) saw more than `rate`.
    for i, start in enumerate(arrivals):
        assert sum(1 for a in arrivals[i:] if a < start + 0.95) <= rate
    assert arrivals[-1] - arrivals[0] >= (n - 1) / rate - 0.1


def test_backoff_grows_with_jitter_and_retry_after_wins(ctx: Context) -> None:
    import random

    cfg = ctx.settings.notify.model_copy(update={"backoff_seconds": 2.0, "backoff_max_seconds": 60.0})
    rng = random.Random(7)
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (8, 60.0)]:
        waits = [backoff(attempt, cfg, rng) for _ in range(200)]
        assert min(waits) >= ceiling / 2 and max(waits) <= ceiling and len(set(waits)) > 100
    assert 30.0 <= backoff(1, cfg, rng, retry_after=30.0) <= 30.1
    assert backoff(1, cfg, rng, retry_after=3600.0) <= 60.1  # capped


def test_a_kind_limited_to_hours_waits_for_them(ctx: Context) -> None:
    ctx = Context(engine=ctx.engine, clock=ctx.clock, settings=load_settings(
        database_url=ctx.settings.database_url,
        notify={"rules": {"ops_digest": {"enabled": False},
                          "backorder_created": {"hours": {"start": "11:00", "end": "18:00"}}}}))
    events = [
        {"event_id": "p", "type": "product.upserted", "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
         "data": {"sku": "K", "name": "Kettle", "price": 10}},
        {"event_id": "c", "type": "customer.upserted", "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
         "data": {"customer_id": "C", "name": "Cy", "timezone": "Europe/Madrid"}},
        {"event_id": "o", "type": "order.placed", "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
         "data": {"order_id": "O", "customer_id": "C", "lines": [{"line_id": "1", "sku": "K", "qty": 1}]}},
    ]
    _, ids = store_events(ctx, events)
    drain(ctx, ids)
    with ctx.engine.connect() as conn:
        due = conn.execute(select(t.outbox.c.due_at).where(t.outbox.c.kind == "backorder_created")).scalar_one()
    # The clock says 09:00 UTC, 10:00 in Madrid (CET): the notice waits for 11:00 there, 10:00 UTC.
    assert due == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_serve_dispatches_in_process(ctx: Context, receiver: WebhookReceiver) -> None:
    ctx = webhook_ctx(ctx, receiver, clock=utcnow)
    events = [
        {"event_id": "p", "type": "product.upserted", "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
         "data": {"sku": "K", "name": "Kettle", "price": 10}},
        {"event_id": "c", "type": "customer.upserted", "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
         "data": {"customer_id": "C", "name": "Cy", "preferences": {"opt_out": ["all"]}}},
        {"event_id": "o", "type": "order.placed", "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
         "data": {"order_id": "O", "customer_id": "C", "lines": [{"line_id": "1", "sku": "K", "qty": 1}]}},
    ]
    with TestClient(create_app(ctx, notify_worker=True)) as client:
        assert client.post("/events", params={"wait": "false"}, json=events).status_code == 202
        got = receiver.wait_for(1, timeout=20)
        assert got[0].json()["type"] == "line_backordered"
        deadline = time.monotonic() + 10
        while client.get("/notifications").json()[0]["status"] != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
        [row] = client.get("/notifications").json()
        assert (row["channel"], row["status"], row["attempts"]) == ("webhook", "delivered", 1)


def cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_")} | env | {"COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "backorder", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120)


def test_cli_lists_sends_retries_cancels_and_reports(ctx: Context, receiver: WebhookReceiver,
                                                       tmp_path: Path) -> None:
    env = {"BACKORDER_DATABASE_URL": ctx.settings.database_url, "BACKORDER_WEBHOOK__URL": receiver.url,
           "BACKORDER_WEBHOOK__ALLOW_HTTP": "true", "BACKORDER_WEBHOOK__ALLOW_PRIVATE": "true",
           "BACKORDER_NOTIFY__RULES": '{"ops_digest": {"enabled": false}}', "BACKORDER_NOTIFY__MAX_ATTEMPTS": "1"}
    add_rows(ctx, receiver.url, 3, utcnow())
    listed = cli(["notifications", "list", "--status", "pending", "--json"], tmp_path, env)
    assert listed.returncode == 0, listed.stderr
    ids = sorted(r["id"] for r in json.loads(listed.stdout))
    assert len(ids) == 3
    assert "1 message(s) cancelled" in cli(["notifications", "cancel", str(ids[0])], tmp_path, env).stdout
    receiver.fail_next(1, "503")
    sent = cli(["worker", "--once"], tmp_path, env)
    assert sent.returncode == 0 and "1 message(s) sent" in sent.stdout, sent.stdout + sent.stderr
    dead = [r["id"] for r in json.loads(cli(["notifications", "list", "--status", "dead", "--json"], tmp_path,
                                            env).stdout)]
    assert len(dead) == 1
    retried = cli(["notifications", "retry", str(dead[0]), str(ids[0])], tmp_path, env)
    assert "2 message(s) queued again" in retried.stdout, retried.stdout
    assert "2 message(s) sent" in cli(["worker", "--once"], tmp_path, env).stdout
    stats = json.loads(cli(["notifications", "stats", "--json"], tmp_path, env).stdout)
    assert stats["by_status"] == {"delivered": 3} and stats["delivery_rate"] == 1.0
    assert "delivery rate" in cli(["notifications", "stats"], tmp_path, env).stdout
