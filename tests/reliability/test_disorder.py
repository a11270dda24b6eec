"""A day of events delivered the way real sources deliver it: each event 1-4 times, copies late, counts out of
order, everything shuffled from eight senders at once. Through POST /events, on SQLite and PostgreSQL.

- Late copies change nothing: the state and the messages planned and sent equal one clean in-order delivery's.
- Absolute counts end at the latest count (by occurred_at in UTC) whatever order they arrive in.
- Shuffled from 8 concurrent senders against a real uvicorn server: the allocation invariants hold and every
  event sent ends applied, ignored or parked with its reason, exactly once in the inbox; none is lost.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2 as httpx
import uvicorn
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import Connection, Table, func, select

from bot.api import create_app
from services.context import Context
from services.worker import make_dispatcher
from store import tables as t
from store.models import Base
from tests.conftest import _wipe
from tests.invariants import check_invariants
from tests.reliability.day_of_events import (
    DAY,
    WAREHOUSES,
    batches,
    day_of_events,
    envelope,
    shuffled_copies,
    stamp,
    with_late_copies,
)

SEED = 20260301
ORDERS = 150  # about 530 events a day, delivered about 1,100 times: bounded for two cores shared by many
SHUFFLED_ORDERS = 100  # eight senders and as many appliers contend: a smaller day, still about 800 deliveries
SENDERS = 8
APPLY_BOUND_S = 300  # generous: the machine is shared; a stuck applier fails with the counts so far


# -- driving the API ----------------------------------------------------------------------------------------

def quiet(ctx: Context) -> Context:
    """Thousands of requests from one client in seconds are this test's point, not abuse: no rate limit."""
    ctx.settings.limits.enabled = False
    return ctx


def post_all(client: TestClient, stream: list[dict[str, Any]], rng: random.Random, wait: bool) -> Counter[str]:
    """POST the stream in random-sized batches, in order; the per-event statuses the API answered."""
    answered: Counter[str] = Counter()
    for batch in batches(stream, rng):
        r = client.post("/events", params={"wait": str(wait).lower()}, json=batch)
        assert r.status_code == (200 if wait else 202), r.text
        answered.update(x["status"] for x in r.json()["results"])
    return answered


def wait_until_applied(ctx: Context, expected: int) -> dict[str, int]:
    """Wait until `expected` events are stored and none is pending; the inbox's statuses then."""
    deadline = time.monotonic() + APPLY_BOUND_S
    statuses: dict[str, int] = {}
    while time.monotonic() < deadline:
        with ctx.engine.connect() as conn:
            statuses = dict(conn.execute(select(t.inbox.c.status, func.count()).group_by(t.inbox.c.status))
                            .tuples().all())
        if sum(statuses.values()) >= expected and not statuses.get("pending"):
            return statuses
        time.sleep(0.2)
    raise AssertionError(f"events still pending after {APPLY_BOUND_S} s: {statuses} (expected {expected} stored)")


def send_everything_due(ctx: Context) -> str:
    """What a worker would send now, on the console channel; the transcript."""
    out = io.StringIO()

    async def go() -> None:
        dispatcher = make_dispatcher(ctx, console=Console(file=out, width=200, color_system=None))
        try:
            await dispatcher.drain()
        finally:
            await dispatcher.aclose()

    asyncio.run(go())
    return out.getvalue()


# -- a canonical snapshot of the store ----------------------------------------------------------------------

# Surrogate keys are not facts: a PostgreSQL sequence advances on a rolled-back insert (an event group the
# applier rolls back and applies again, a retried deadlock), so the same day can number its lines, drafts and
# offers with gaps in one delivery and not in another. Rows are compared by their natural keys, and wherever a
# surrogate key shows (a foreign key, an id inside JSON, "Draft #12", "Reply SWAP 48", "draft:12") it is
# replaced by the natural key of the row it names, or by a placeholder in free text.
SKIPPED_TABLES = {"rate_slots", "worker_heartbeats", "job_runs"}  # the dispatcher's bookkeeping, not outcomes
SKIPPED_COLUMNS = {"id", "lease_owner", "provider_id"}  # per-process and per-send tokens
TEXT_IDS = re.compile(r"#\d+\b|\b([A-Z]{3,}) \d+\b")  # "Draft #12", "Reply SWAP 48" / "CAMBIAR 48"
CAUSE_IDS = re.compile(r"^(draft|offer|task):(\d+)$")
JSON_IDS = {"line_pk": "line", "new_line_pk": "line", "inbox_id": "inbox", "offer_id": "offer", "draft_id": "draft",
            "task_id": "task"}
NESTED_IDS = {"draft": "draft", "offer": "offer", "task": "task"}  # {"draft": {"id": 12, ...}}
AUDITED_IDS = {"draft": "draft", "offer": "offer", "substitution_offer": "offer", "task": "task"}
# Messages and drafts scoped to an offer, a draft or a task hash its surrogate id into their idempotency key.
SCOPED_KINDS = {"substitution_offer", "approval_request", "approval_outcome", "question_reply"}

Keys = dict[str, dict[int, str]]


def _natural_keys(conn: Connection) -> Keys:
    lines = {r.id: f"{r.order_id}/{r.line_id}" for r in conn.execute(
        select(t.order_lines.c.id, t.order_lines.c.order_id, t.order_lines.c.line_id))}
    inbox = {r.id: f"{r.source}:{r.event_id}" for r in conn.execute(
        select(t.inbox.c.id, t.inbox.c.source, t.inbox.c.event_id))}
    so = t.substitution_offers
    offers = {r.id: f"{r.order_id}/{r.line_id}->{r.substitute_sku}@{r.created_at}" for r in conn.execute(
        select(so.c.id, so.c.order_id, so.c.line_id, so.c.substitute_sku, so.c.created_at))}
    d = t.drafts
    drafts = {r.id: _draft_key(r._mapping, offers) for r in conn.execute(select(d))}
    tk = t.tasks
    tasks = {r.id: f"{r.kind}|{r.sku}|{r.po_id}|{r.title}" for r in conn.execute(
        select(tk.c.id, tk.c.kind, tk.c.sku, tk.c.po_id, tk.c.title))}
    return {"line": lines, "inbox": inbox, "offer": offers, "draft": drafts, "task": tasks}


def _draft_key(row: Any, offers: dict[int, str]) -> str:
    if row["kind"] not in SCOPED_KINDS:
        return str(row["idempotency_key"])
    return (f"{row['kind']}|{row['cause']}|{row['customer_id']}|{row['order_id']}|{sorted(row['line_ids'])}|"
            f"{offers.get(row['offer_id'])}")


def _scoped(row: dict[str, Any]) -> bool:
    """Is this message scoped to a draft, an offer or a task (whose id its key hashes)?"""
    facts = row["facts"] or {}
    return (row["kind"] in SCOPED_KINDS or bool(CAUSE_IDS.match(row["cause"] or ""))
            or any(isinstance(facts.get(k), dict) and "id" in facts[k] for k in NESTED_IDS))


def _json(value: Any, keys: Keys) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in JSON_IDS and isinstance(v, int):
                out[k] = keys[JSON_IDS[k]].get(v, v)
            elif k in NESTED_IDS and isinstance(v, dict) and isinstance(v.get("id"), int):
                out[k] = _json({**v, "id": keys[NESTED_IDS[k]].get(v["id"], v["id"])}, keys)
            else:
                out[k] = _json(v, keys)
        return out
    if isinstance(value, list):
        return [_json(v, keys) for v in value]
    if isinstance(value, str):
        return TEXT_IDS.sub(lambda m: f"{m[1]} <id>" if m[1] else "#<id>", value)
    return value


def _plain(value: Any, keys: Keys) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(_json(value, keys), sort_keys=True, default=str)
    if isinstance(value, str):
        cause = CAUSE_IDS.match(value)
        if cause:
            return f"{cause[1]}:{keys[cause[1]].get(int(cause[2]), cause[2])}"
        return _json(value, keys)
    return value


def _row(table: Table, row: dict[str, Any], keys: Keys) -> tuple[Any, ...]:
    out = {}
    for name, v in row.items():
        fk = JSON_IDS.get(name)
        out[name] = keys[fk].get(v, v) if fk and isinstance(v, int) else _plain(v, keys)
    if table.name == "audit_log" and row["entity"] in AUDITED_IDS and str(row["entity_id"]).isdigit():
        out["entity_id"] = keys[AUDITED_IDS[row["entity"]]].get(int(row["entity_id"]), row["entity_id"])
    if table.name == "drafts":
        out["idempotency_key"] = keys["draft"][row["id"]]
    if table.name == "outbox" and _scoped(row):
        out["idempotency_key"] = (f"{row['kind']}:{row['channel']}:{row['recipient']}:{out['cause']}:"
                                  f"{row['order_id']}:{out['line_ids']}")
    return tuple(v for name, v in out.items() if name not in SKIPPED_COLUMNS)


def _rows(conn: Connection, table: Table, keys: Keys) -> list[tuple[Any, ...]]:
    return sorted((_row(table, dict(r._mapping), keys) for r in conn.execute(select(table))), key=repr)


def snapshot(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    """Every outcome table, rows as tuples of plain values, in a canonical order."""
    with ctx.engine.connect() as conn:
        keys = _natural_keys(conn)
        return {tb.name: _rows(conn, tb, keys) for tb in Base.metadata.sorted_tables if tb.name not in SKIPPED_TABLES}


BOX = re.compile(r"[─╭╮╰╯│]+")  # a panel's frame: its width around a title depends on the title's length


def console_lines(transcript: str) -> list[str]:
    """What the console channel printed, ids as in the snapshot, without the panels' padding, in a fixed order."""
    return sorted(" ".join(BOX.sub(" ", _json(line, {})).split()) for line in transcript.splitlines())


def tally(conn: Connection, column: Any) -> dict[str, int]:
    return dict(conn.execute(select(column, func.count()).group_by(column)).tuples().all())


def differences(a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    out = []
    for name in a:
        if a[name] != b[name]:
            only_a = [r for r in a[name] if r not in b[name]][:3]
            only_b = [r for r in b[name] if r not in a[name]][:3]
            out.append(f"{name}: {len(a[name])} vs {len(b[name])} rows; only in-order: {only_a}; "
                       f"only with copies: {only_b}")
    return out


# -- 1. late copies change nothing -------------------------------------------------------------------------

def deliver_in_order(ctx: Context, events: list[dict[str, Any]]) -> tuple[Counter[str], str]:
    with TestClient(create_app(ctx, background_applier=False)) as client:
        answered = post_all(client, events, random.Random(SEED + 1), wait=True)
    return answered, send_everything_due(ctx)


def deliver_with_late_copies(ctx: Context, stream: list[dict[str, Any]], distinct: int) -> tuple[Counter[str], str]:
    # wait=false: stored at once and applied by the app's one background applier, in the order received.
    with TestClient(create_app(ctx, background_applier=True)) as client:
        answered = post_all(client, stream, random.Random(SEED + 2), wait=False)
        wait_until_applied(ctx, distinct)
    return answered, send_everything_due(ctx)


def test_late_copies_end_where_one_in_order_delivery_ends(ctx: Context) -> None:
    events = day_of_events(SEED, ORDERS)
    stream = with_late_copies(events, random.Random(SEED))
    assert len({(e["source"], e["event_id"]) for e in stream}) == len(events) < len(stream)

    started = time.monotonic()
    answered, transcript = deliver_in_order(quiet(ctx), events)
    in_order = snapshot(ctx)
    reference_s = time.monotonic() - started
    assert answered == {"accepted": len(events)}

    _wipe(ctx.engine)
    started = time.monotonic()
    answered_copies, transcript_copies = deliver_with_late_copies(ctx, stream, len(events))
    with_copies = snapshot(ctx)
    copies_s = time.monotonic() - started

    with ctx.engine.connect() as conn:
        inbox = tally(conn, t.inbox.c.status)
        lines = tally(conn, t.order_lines.c.status)
        outbox = tally(conn, t.outbox.c.status)
        kinds = tally(conn, t.outbox.c.kind)
    print(f"\n[{ctx.engine.dialect.name}] late copies: {len(events)} events sent {len(stream)} times "
          f"(accepted {answered_copies['accepted']}, duplicate {answered_copies['duplicate']}); "
          f"inbox {inbox}; lines {lines}; outbox {sum(outbox.values())} rows {outbox} {kinds}; "
          f"console transcript {len(transcript.splitlines())} lines; "
          f"in order {reference_s:.1f} s, with copies {copies_s:.1f} s")

    assert answered_copies == {"accepted": len(events), "duplicate": len(stream) - len(events)}
    assert in_order["outbox"], "the day planned no message at all: the comparison would prove little"
    assert inbox["applied"] > len(events) * 0.9 and outbox.get("delivered", 0) > 0
    problems = differences(in_order, with_copies)
    assert not problems, "\n".join(problems)
    assert console_lines(transcript) == console_lines(transcript_copies)
    with ctx.engine.connect() as conn:
        check_invariants(conn, "after the day with late copies")


# -- 2. absolute counts out of order --------------------------------------------------------------------------

def counts_day(rng: random.Random, pairs: int = 30, per_pair: int = 6) -> tuple[list[dict[str, Any]],
                                                                                list[dict[str, Any]]]:
    """Master data and a few orders holding stock (sent first, in order), then `per_pair` counts for each SKU
    and warehouse at distinct times, written in assorted offsets."""
    setup = [envelope(f"wh-{wh}", "warehouse.upserted", DAY.isoformat(), {"warehouse_id": wh, "name": wh,
                                                                           "region": region}, "erp")
             for wh, region in WAREHOUSES]
    setup.append(envelope("cust-1", "customer.upserted", DAY.isoformat(), {"customer_id": "C-1", "name": "Ada"},
                          "shop"))
    skus = [f"CNT-{k:02d}" for k in range(pairs // len(WAREHOUSES) + 1)]
    setup += [envelope(f"prod-{sku}", "product.upserted", DAY.isoformat(), {"sku": sku, "name": sku, "price": "9"},
                       "erp") for sku in skus]
    grid = [(sku, wh) for sku in skus for wh, _ in WAREHOUSES][:pairs]
    setup += [envelope(f"open-{sku}-{wh}", "inventory.adjusted", DAY.isoformat(),
                       {"sku": sku, "warehouse_id": wh, "on_hand": 10}, "wms") for sku, wh in grid]
    setup += [envelope(f"ord-{k}", "order.placed", (DAY + timedelta(minutes=k + 1)).isoformat(), {
        "order_id": f"O-{k}", "customer_id": "C-1", "lines": [{"line_id": "1", "sku": sku, "qty": rng.randint(1, 8)}]},
        "shop") for k, sku in enumerate(skus * 3)]
    counts = []
    for sku, wh in grid:
        minutes = rng.sample(range(60, 24 * 60), per_pair)
        counts += [envelope(f"count-{sku}-{wh}-{m}", "inventory.adjusted", stamp(DAY + timedelta(minutes=m), rng),
                            {"sku": sku, "warehouse_id": wh, "on_hand": rng.randint(0, 15)}, "wms") for m in minutes]
    return setup, counts


def utc(at: str) -> datetime:
    return datetime.fromisoformat(at).astimezone(UTC)


def test_reordered_counts_end_at_the_latest_count(ctx: Context) -> None:
    rng = random.Random(SEED + 3)
    setup, counts = counts_day(rng)
    arrivals = shuffled_copies(counts, rng)
    with TestClient(create_app(quiet(ctx), background_applier=False)) as client:
        assert post_all(client, setup, rng, wait=True) == {"accepted": len(setup)}
        answered = post_all(client, arrivals, rng, wait=True)

    # Applied one by one in arrival order: a count is applied if none later (in UTC) was applied before it.
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    expected_status: dict[str, str] = {}
    for ev in arrivals:
        key = (ev["data"]["sku"], ev["data"]["warehouse_id"])
        if ev["event_id"] in expected_status:
            continue
        newest = latest.get(key)
        fresh = newest is None or utc(ev["occurred_at"]) >= utc(newest["occurred_at"])
        expected_status[ev["event_id"]] = "applied" if fresh else "ignored"
        if fresh:
            latest[key] = ev
    s = t.stock
    with ctx.engine.connect() as conn:
        stock = {(r.sku, r.warehouse_id): r for r in conn.execute(select(s.c.sku, s.c.warehouse_id, s.c.on_hand,
                                                                         s.c.counted_at))}
        inbox = {r.event_id: r for r in conn.execute(select(t.inbox.c.event_id, t.inbox.c.status, t.inbox.c.note)
                                                     .where(t.inbox.c.event_id.like("count-%")))}
        check_invariants(conn, "after reordered counts")
    statuses = Counter(r.status for r in inbox.values())
    print(f"\n[{ctx.engine.dialect.name}] counts: {len(counts)} counts for {len(latest)} SKU/warehouse pairs sent "
          f"{len(arrivals)} times (accepted {answered['accepted']}, duplicate {answered['duplicate']}); "
          f"{dict(statuses)}")

    assert answered == {"accepted": len(counts), "duplicate": len(arrivals) - len(counts)}
    for key, ev in latest.items():
        newest = max((c for c in counts if (c["data"]["sku"], c["data"]["warehouse_id"]) == key),
                     key=lambda c: utc(c["occurred_at"]))
        assert ev is newest
        assert stock[key].on_hand == newest["data"]["on_hand"], (key, newest)
        assert utc(stock[key].counted_at.isoformat()) == utc(newest["occurred_at"])
    assert {e: r.status for e, r in inbox.items()} == expected_status
    assert all(r.note.startswith("stale count") for r in inbox.values() if r.status == "ignored")
    assert statuses["ignored"] > 0, "no count arrived after a newer one: the shuffle proved nothing"


# -- 3. shuffled, from eight senders at once -------------------------------------------------------------------

class Server:
    """The app served by uvicorn on 127.0.0.1 in a thread of this process, its background applier running."""

    def __init__(self, ctx: Context) -> None:
        config = uvicorn.Config(create_app(ctx, background_applier=True), host="127.0.0.1", port=0,
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def send(url: str, requests: list[tuple[list[dict[str, Any]], bool]], answered: Counter[str],
         errors: list[str], lock: threading.Lock) -> None:
    mine: Counter[str] = Counter()
    try:
        with httpx.Client(base_url=url, timeout=APPLY_BOUND_S) as http:
            for batch, wait in requests:
                r = http.post("/events", params={"wait": str(wait).lower()}, json=batch)
                if r.status_code != (200 if wait else 202):
                    raise AssertionError(f"{r.status_code}: {r.text[:500]}")
                mine.update(x["status"] for x in r.json()["results"])
    except Exception as exc:  # reported by the test thread, which owns the assertions
        errors.append(f"{type(exc).__name__}: {exc}")
    with lock:
        answered.update(mine)


def deal(stream: list[dict[str, Any]], rng: random.Random) -> Iterator[list[tuple[list[dict[str, Any]], bool]]]:
    """The shuffled stream cut into requests (a third of them wait=true), dealt round-robin to the senders."""
    requests = [(batch, rng.random() < 1 / 3) for batch in batches(stream, rng, largest=25)]
    for k in range(SENDERS):
        yield requests[k::SENDERS]


def test_shuffled_from_eight_senders_loses_nothing(ctx: Context) -> None:
    rng = random.Random(SEED + 4)
    events = day_of_events(SEED + 4, SHUFFLED_ORDERS)
    stream = shuffled_copies(events, rng)
    sent = {(e["source"], e["event_id"]) for e in stream}
    answered: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    started = time.monotonic()
    with Server(quiet(ctx)) as url:
        senders = [threading.Thread(target=send, args=(url, part, answered, errors, lock))
                   for part in deal(stream, rng)]
        for th in senders:
            th.start()
        for th in senders:
            th.join(APPLY_BOUND_S)
        assert not any(th.is_alive() for th in senders), "a sender is still waiting for an answer"
        assert not errors, errors
        statuses = wait_until_applied(ctx, len(sent))
    seconds = time.monotonic() - started

    i, d = t.inbox, t.dead_letters
    with ctx.engine.connect() as conn:
        stored = conn.execute(select(i.c.source, i.c.event_id, i.c.type, i.c.status, i.c.note)).all()
        parked = conn.execute(select(d.c.missing_kind, d.c.missing_key, d.c.reason, i.c.event_id)
                              .join(i, i.c.id == d.c.inbox_id).where(d.c.status == "parked")).all()
        dead_letters = tally(conn, d.c.status)
        check_invariants(conn, "after the shuffled day")
        existing = {kind: set(conn.execute(select(tb.c[col])).scalars()) for kind, (tb, col) in {
            "product": (t.products, "sku"), "customer": (t.customers, "customer_id"),
            "warehouse": (t.warehouses, "warehouse_id"), "order": (t.orders, "order_id")}.items()}
        orders = set(conn.execute(select(t.orders.c.order_id)).scalars())
    notes = Counter((r.note or "").split(":")[0] for r in stored if r.status == "ignored")
    print(f"\n[{ctx.engine.dialect.name}] shuffled: {len(sent)} events sent {len(stream)} times by {SENDERS} senders "
          f"(accepted {answered['accepted']}, duplicate {answered['duplicate']}); inbox {statuses}; "
          f"ignored because {dict(notes.most_common(4))}; dead letters {dead_letters}; {seconds:.1f} s")

    assert answered == {"accepted": len(sent), "duplicate": len(stream) - len(sent)}
    assert len(stored) == len(sent) and {(r.source, r.event_id) for r in stored} == sent
    assert set(statuses) <= {"applied", "ignored", "parked"}, statuses
    assert all(r.note for r in stored if r.status in ("ignored", "parked"))
    assert len(parked) == statuses.get("parked", 0)
    assert dead_letters.get("resolved", 0) > 0, "nothing arrived before what it needed: the shuffle proved little"
    for p in parked:  # a dead letter waits only for a record that never came: else its wake-up was lost
        assert p.reason and p.missing_key not in existing.get(p.missing_kind, set()), p
    placed = {e["data"]["order_id"] for e in events if e["type"] == "order.placed"}
    parked_orders = {p.event_id for p in parked if p.event_id.endswith("order.placed")}
    assert len(orders) == len(placed) - len(parked_orders) and orders <= placed
