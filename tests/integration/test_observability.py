"""/readyz, /metrics, request ids and JSON logs, against the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from conftest import Clock, _drop_pg_database, _fresh_pg_database
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from backorder.config import load_settings
from bot.api import create_app
from services.context import Context
from services.heartbeats import beat, live_workers
from services.readiness import script_heads
from store import tables as t
from store.db import alembic_config, make_engine, upgrade
from tests.integration.test_api_flow import ev, seed
from tests.security_kit import json_logs

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def order(event_id: str, order_id: str, qty: int, customer: str = "C1", sku: str = "KTL-200") -> dict[str, Any]:
    return ev(event_id, "order.placed", {"order_id": order_id, "customer_id": customer,
                                         "placed_at": "2026-03-01T11:00:00Z", "promised_date": "2026-03-05",
                                         "lines": [{"line_id": "1", "sku": sku, "qty": qty, "unit_price": 40}]})


# -- /readyz ---------------------------------------------------------------------------------------

def test_readyz_is_ready_with_a_beating_worker_and_the_worker_leaves_cleanly(ctx: Context) -> None:
    app = create_app(ctx, background_applier=False, notify_worker=True)
    with TestClient(app) as client:
        deadline = time.monotonic() + 30  # the worker thread beats as it starts; wait for that, not a time
        r = client.get("/readyz")
        while r.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            r = client.get("/readyz")
        assert r.status_code == 200, r.text
        head = ",".join(sorted(script_heads()))
        assert r.json() == {"status": "ready", "checks": {
            "database": {"ok": True},
            "schema": {"ok": True, "revision": head, "head": head},
            "workers": {"ok": True, "live": 1, "stale_after_seconds": 60.0},
            "backlog": {"ok": True, "advisory": True, "behind": False, "inbox_pending": 0, "inbox_warn_depth": 10_000,
                        "outbox_due": 0, "outbox_warn_depth": 10_000},
        }, "backpressure": False}
        with ctx.engine.connect() as conn:
            (worker,) = live_workers(conn, ctx.now(), 60)
        assert worker["worker_id"].endswith(":serve") and worker["role"] == "serve"
        assert worker["beat_at"] == ctx.now() and worker["age_seconds"] == 0.0
    with ctx.engine.connect() as conn:  # a clean stop takes the row away
        assert conn.execute(select(func.count()).select_from(t.worker_heartbeats)).scalar_one() == 0
    assert TestClient(create_app(ctx, background_applier=False)).get("/healthz").json() == {"status": "ok"}


def test_readyz_names_a_stale_heartbeat(ctx: Context, clock: Clock) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["workers"] == {
        "ok": False, "live": 0, "stale_after_seconds": 60.0,
        "error": "no worker heartbeat in the last 60 s (none has ever beaten)"}
    beat(ctx.engine, "box-1:4242:worker", "worker", clock.now - timedelta(seconds=61))
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == {"ok": True} and body["checks"]["schema"]["ok"] is True
    assert body["checks"]["workers"]["error"] == "no worker heartbeat in the last 60 s (the last beat was 61 s ago)"
    beat(ctx.engine, "box-1:4242:worker", "worker", clock.now - timedelta(seconds=59))  # the same row, fresher
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["workers"]["live"] == 1
    with ctx.engine.connect() as conn:
        row = conn.execute(select(t.worker_heartbeats)).mappings().one()
    assert (row["host"], row["pid"], row["role"]) == ("box-1", 4242, "worker")
    assert row["started_at"] == clock.now - timedelta(seconds=61)  # the first beat's time is kept


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the session's kind, for tests that move the schema."""
    if make_url(database_url).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = _fresh_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(url)


def test_readyz_names_a_schema_behind_the_head(fresh_url: str, ctx: Context, clock: Clock) -> None:
    upgrade(fresh_url)
    command.downgrade(alembic_config(fresh_url), "-1")
    engine = make_engine(fresh_url)
    try:
        behind = Context(engine=engine, settings=load_settings(database_url=fresh_url), clock=clock)
        client = TestClient(create_app(behind, background_applier=False))
        r = client.get("/readyz")
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert checks["database"] == {"ok": True}
        (head,) = script_heads()
        with engine.connect() as conn:
            behind_rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert checks["schema"] == {"ok": False, "revision": behind_rev, "head": head,
                                    "error": f"schema at {behind_rev}, code expects {head}: run `backorder db upgrade`"}
        upgrade(fresh_url)
        beat(engine, "box-2:7:worker", "worker", clock.now)
        assert client.get("/readyz").status_code == 200
    finally:
        engine.dispose()


def test_readyz_and_metrics_when_the_database_does_not_answer(database_url: str, ctx: Context, clock: Clock,
                                                              tmp_path: Path) -> None:
    if make_url(database_url).get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"  # SQLite cannot create a file there
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/backorder"  # nothing listens on port 1
    engine = make_engine(url)
    try:
        down = Context(engine=engine, settings=ctx.settings, clock=clock)
        client = TestClient(create_app(down, background_applier=False))
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json() == {"status": "not ready", "checks": {
            "database": {"ok": False, "error": "unreachable (OperationalError)"},
            "schema": {"ok": False, "error": "not checked: the database does not answer"},
            "workers": {"ok": False, "error": "not checked: the database does not answer"},
            "backlog": {"ok": False, "advisory": True, "error": "not checked: the database does not answer"},
        }, "backpressure": False}
        samples = scrape(client)  # a scrape still answers, and says the store did not
        assert value(samples, "backorder_store_up") == 0.0
        assert ("backorder_inbox_backlog", ()) not in samples
        assert client.get("/healthz").status_code == 200
    finally:
        engine.dispose()


def test_readyz_and_metrics_need_the_token_unless_readyz_is_made_public(ctx: Context) -> None:
    ctx.settings.api_token = "s3cret"
    client = TestClient(create_app(ctx, background_applier=False))
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 401
    assert client.get("/metrics").status_code == 401
    bearer = {"Authorization": "Bearer s3cret"}
    assert client.get("/readyz", headers=bearer).status_code == 503  # no worker, but let in
    assert value(scrape(client, **bearer), "backorder_store_up") == 1.0
    ctx.settings.health.readyz_public = True
    client = TestClient(create_app(ctx, background_applier=False))
    assert client.get("/readyz").status_code == 503
    assert client.get("/metrics").status_code == 401


# -- /metrics --------------------------------------------------------------------------------------

def test_metrics_agree_with_the_store(ctx: Context, clock: Clock) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    before = scrape(client)  # counters are per process: compare what changed
    customer = ev("c2", "customer.upserted", {"customer_id": "C1", "name": "Ada", "tier": "gold", "region": "north",
                                              "timezone": "Europe/London", "locale": "en", "email": "ada@example.com"})
    assert client.post("/events", json=[*seed(), customer]).status_code == 200
    stock_brs = ev("i2", "inventory.adjusted", {"sku": "KTL-200", "warehouse_id": "BRS", "on_hand": 4})
    assert client.post("/events", json=[stock_brs, order("o1", "1042", 5), order("o2", "1043", 4)]).status_code == 200
    client.post("/events", json=order("o1", "1042", 5))  # a duplicate
    client.post("/events", json=ev("i0", "inventory.adjusted", {"sku": "KTL-200", "warehouse_id": "LDS",
                                                                "on_hand": 99}, at="2026-02-01T00:00:00Z"))  # stale
    client.post("/events", json=order("o3", "1044", 1, customer="NOBODY"))  # parked: unknown customer
    assert client.get("/orders/1042").status_code == 200
    clock.now += timedelta(seconds=30)
    client.post("/events?wait=false", json=order("o4", "1045", 1))  # stored, not applied (no applier here)
    clock.now += timedelta(seconds=45)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    with ctx.engine.connect() as conn:
        accepted = dict(conn.execute(select(t.inbox.c.type, func.count()).group_by(t.inbox.c.type)).all())
        outcomes = conn.execute(select(t.inbox.c.type, t.inbox.c.status, func.count())
                                .group_by(t.inbox.c.type, t.inbox.c.status)).all()
        allocated = dict(conn.execute(select(t.allocations.c.warehouse_id, func.sum(t.allocations.c.qty))
                                      .group_by(t.allocations.c.warehouse_id)).all())
        messages = conn.execute(select(t.outbox.c.channel, t.outbox.c.status, func.count())
                                .group_by(t.outbox.c.channel, t.outbox.c.status)).all()
        due = conn.execute(select(func.count()).select_from(t.outbox).where(
            t.outbox.c.status.in_(("pending", "failed", "sending")), t.outbox.c.due_at <= clock.now)).scalar_one()
    for type_, n in accepted.items():
        assert delta("backorder_events_total", type=type_, outcome="accepted") == n, type_
    assert delta("backorder_events_total", type="order.placed", outcome="duplicate") == 1
    names = {"applied": "applied", "ignored": "ignored", "parked": "dead"}
    applies: dict[str, int] = {}
    for type_, status, n in outcomes:
        if status != "pending":
            assert delta("backorder_events_total", type=type_, outcome=names[status]) == n, (type_, status)
            applies[type_] = applies.get(type_, 0) + n
    assert {(ty, st) for ty, st, _ in outcomes} >= {("inventory.adjusted", "ignored"), ("order.placed", "parked"),
                                                    ("order.placed", "pending")}
    for type_, n in applies.items():
        assert delta("backorder_event_apply_seconds_count", type=type_) == n
    assert allocated == {"LDS": 3, "BRS": 4}  # 1042 takes LDS's 3 and 2 of BRS's 4, 1043 the other 2
    for wh, units in allocated.items():
        assert delta("backorder_units_allocated_total", warehouse=wh) == units
    assert messages, "the scenario plans messages"
    for channel, status, n in messages:
        assert value(after, "backorder_messages", channel=channel, status=status) == n
    assert value(after, "backorder_outbox_queue_depth") == due > 0
    assert value(after, "backorder_outbox_oldest_due_age_seconds") == 75.0  # planned at 09:00, scraped 09:01:15
    assert value(after, "backorder_inbox_backlog") == 1
    assert value(after, "backorder_inbox_oldest_pending_age_seconds") == 45.0
    assert value(after, "backorder_dead_letters") == 1
    assert value(after, "backorder_workers_live") == 0
    assert value(after, "backorder_store_up") == 1
    assert delta("backorder_http_request_duration_seconds_count", method="POST", route="/events", status="200") == 5
    assert delta("backorder_http_request_duration_seconds_count", method="POST", route="/events", status="202") == 1
    assert delta("backorder_http_request_duration_seconds_count", method="GET", route="/orders/{order_id}",
                 status="200") == 1


# -- request ids and JSON logs ---------------------------------------------------------------------

@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    with json_logs() as stream:
        yield stream


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_logs_carry_the_request_id_and_the_event_being_applied(ctx: Context, json_log: io.StringIO) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    r = client.post("/events", json=[*seed(), order("o1", "1042", 5), order("o2", "1043", 1, customer="NOBODY")],
                    headers={"X-Request-ID": "req-42"})
    assert r.status_code == 200
    assert r.headers["X-Request-ID"] == "req-42"
    logged = records(json_log)
    applied = [rec for rec in logged if rec["logger"] == "services.inbox" and rec["message"].startswith("event ")]
    assert {(rec["event_id"], rec["message"].split(" in ")[0]) for rec in applied} >= {
        ("test:o1", "event order.placed applied"), ("test:o2", "event order.placed dead"),
        ("test:i1", "event inventory.adjusted applied")}
    assert all(rec["request_id"] == "req-42" and rec["level"] == "DEBUG" for rec in applied)
    (access,) = [rec for rec in logged if rec["logger"] == "backorder.http"]
    assert (access["request_id"], access["route"], access["status"], access["level"]) == (
        "req-42", "/events", 200, "INFO")
    assert "event_id" not in access  # logged after the events were applied
    assert access["time"].endswith("+00:00")


def test_a_missing_or_unsafe_request_id_is_replaced(ctx: Context, json_log: io.StringIO) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    ids = [client.get("/orders/none", headers=h).headers["X-Request-ID"]
           for h in ({}, {"X-Request-ID": "a b<script>"}, {"X-Request-ID": "x" * 200}, {"X-Request-ID": "ok.1:2"})]
    assert ids[3] == "ok.1:2"
    for rid in ids[:3]:
        assert len(rid) == 32 and int(rid, 16) >= 0
    assert len(set(ids)) == 4
    logged = [rec for rec in records(json_log) if rec["logger"] == "backorder.http"]
    assert [(rec["request_id"], rec["status"], rec["route"]) for rec in logged] == [
        (rid, 404, "/orders/{order_id}") for rid in ids]


def test_backorder_worker_beats_while_it_runs_and_forgets_its_row_when_stopped(ctx: Context) -> None:
    from services.worker import run_worker

    def rows() -> list[dict[str, Any]]:
        with ctx.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(t.worker_heartbeats)).mappings()]

    seen: list[dict[str, Any]] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(ctx, stop, role="worker"))
        deadline = time.monotonic() + 30  # waits for the first beat; asserts nothing about time
        while not seen and time.monotonic() < deadline and not task.done():
            seen.extend(await asyncio.to_thread(rows))
            await asyncio.sleep(0.02)
        stop.set()
        await task

    asyncio.run(main())
    assert len(seen) == 1
    host, pid, role = seen[0]["worker_id"].split(":")
    assert (seen[0]["host"], seen[0]["pid"], seen[0]["role"], role) == (host, int(pid), "worker", "worker")
    assert seen[0]["beat_at"] == seen[0]["started_at"] == ctx.now()
    assert rows() == []
