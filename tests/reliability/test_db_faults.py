"""Database faults: every connection of the service killed (pg_terminate_backend) again and again while
`backorder serve --no-worker` takes a stream of POST /events?wait=false and `backorder worker` applies them
and dispatches webhooks. Nobody restarts the processes; nothing the API acknowledged is lost.

PostgreSQL only, on a fresh database of its own: the server is shared, so its connections are killed, never
the server itself. Fails, never skips, when PostgreSQL cannot be reached.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text

from backorder.config import load_settings
from bot.api import create_app
from services.context import Context
from services.inbox import drain, store_events
from store import tables as t
from store.db import make_engine
from tests.fakes.webhook_receiver import WebhookReceiverProcess
from tests.reliability.procs import (
    SECRET,
    SKUS,
    SOURCE,
    Background,
    Posted,
    Proc,
    Stream,
    admin_engine,
    database_name,
    ev,
    load,
    post_until_acknowledged,
    process_env,
    seed_events,
    snapshot_check,
    start_all,
    stop_all,
    terminate_backends,
    wait_settled,
)

pytestmark = pytest.mark.postgres

EVENTS = 900
BATCH = 18
KILLS = 8  # at least this many rounds of kills, the first while events still arrive
MAX_KILLS = 20  # then more while events wait to be applied or sent, up to this many
KILL_EVERY_S = 0.7
LOAD_PAUSE_S = 0.08  # between the EVENTS / BATCH requests
KILL_LATER_S = 2.0
RUN_BOUND_S = 240  # generous: two shared cores; the test fails with what it saw when this passes




@pytest.fixture
def pg_ctx(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.chdir(tmp_path)  # no stray backorder.toml
    for key in [k for k in os.environ if k.startswith("BACKORDER_") and k != "BACKORDER_TEST_DATABASE_URL"]:
        monkeypatch.delenv(key)
    context = Context(engine=make_engine(pg_url), settings=load_settings(database_url=pg_url))
    yield context
    context.engine.dispose()


def kill_the_waiting_backend(admin: Engine, database: str, bound_s: float = 30) -> int:
    """Terminate the one backend of `database` waiting on a lock (the test holds it); returns its pid."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        with admin.connect() as conn:
            pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :db AND wait_event_type = "
                                     "'Lock'"), {"db": database}).scalars().all()
            if pids:
                assert len(pids) == 1, pids
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
                return int(pids[0])
        time.sleep(0.05)
    raise AssertionError("nothing came to wait on the lock the test holds")


def test_an_event_whose_connection_is_killed_mid_apply_is_applied_not_parked(pg_ctx: Context, pg_url: str) -> None:
    """The kill lands inside the handler, deterministically: it waits on a product row the test has locked."""
    admin = admin_engine()
    try:
        store_events(pg_ctx, seed_events())
        drain(pg_ctx)
        _, (order_id,) = store_events(pg_ctx, [ev("o-1", "order.placed", {
            "order_id": "O-1", "customer_id": "C1", "lines": [{"line_id": "1", "sku": SKUS[0], "qty": 1}]})])
        applied: list[int] = []
        with pg_ctx.engine.connect() as holder:
            holder.execute(select(t.products.c.sku).where(t.products.c.sku == SKUS[0]).with_for_update())
            applier = Background("apply", lambda: applied.append(drain(pg_ctx)))  # as the processes apply
            applier.start()
            # Twice: a group of events that fails is applied again one event at a time (services/inbox.py), so the
            # second kill lands in that path, where a failed handler parks its event.
            killed = [kill_the_waiting_backend(admin, database_name(pg_url)) for _ in range(2)]
            holder.rollback()  # the retry on a fresh connection can lock the row now
        applier.join(60)
        applier.check()
        assert not applier.is_alive(), "drain did not come back"
        assert applied == [1]
        with pg_ctx.engine.connect() as conn:
            row = conn.execute(select(t.inbox.c.status, t.inbox.c.note).where(t.inbox.c.id == order_id)).one()
            parked = conn.execute(select(func.count()).select_from(t.dead_letters)).scalar_one()
            lines = conn.execute(select(t.order_lines.c.qty_allocated).where(t.order_lines.c.order_id == "O-1"))
            allocated = lines.scalars().all()
        assert tuple(row) == ("applied", None) and parked == 0
        assert allocated == [1]  # applied once, in full, by the retry
        snapshot_check(pg_ctx.engine, "after the retry")
        print(f"\nbackends {killed} killed inside order.placed; the event was applied by the retry, nothing parked")
    finally:
        admin.dispose()


def test_a_post_whose_connection_is_killed_answers_503_and_its_retry_is_stored(pg_ctx: Context, pg_url: str) -> None:
    """The kill lands while POST /events inserts into the inbox: it waits on the same key, held by the test."""
    admin = admin_engine()
    event = ev("k-1", "inventory.received", {"sku": SKUS[0], "warehouse_id": "W1", "qty": 2})
    try:
        with TestClient(create_app(pg_ctx, background_applier=False)) as client:
            answers: list[Any] = []
            with pg_ctx.engine.connect() as holder:
                holder.execute(t.inbox.insert().values(source=SOURCE, event_id="k-1", type=event["type"],
                                                       occurred_at=pg_ctx.now(), received_at=pg_ctx.now(),
                                                       payload=event, status="pending"))
                poster = threading.Thread(target=lambda: answers.append(
                    client.post("/events", params={"wait": "false"}, json=[event])))
                poster.start()
                kill_the_waiting_backend(admin, database_name(pg_url))
                poster.join(60)
                holder.rollback()  # the test's row goes: only the API's retry stores the event
            assert len(answers) == 1, "POST /events did not answer"
            r = answers[0]
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "1" and "retry" in r.json()["detail"]
            again = client.post("/events", params={"wait": "false"}, json=[event])
            assert again.status_code == 202 and again.json()["accepted"] == 1, again.text
        with pg_ctx.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(t.inbox).where(t.inbox.c.event_id == "k-1"))
            assert stored.scalar_one() == 1
        print(f"\nfirst answer {r.status_code} {r.json()['detail']!r}; the retry: {again.status_code}")
    finally:
        admin.dispose()


def test_killed_connections_lose_no_event_and_no_message(pg_url: str, tmp_path: Path) -> None:
    engine, admin = make_engine(pg_url), admin_engine()
    deadline = time.monotonic() + RUN_BOUND_S
    with WebhookReceiverProcess(secret=SECRET) as rx:
        # A claim whose result could not be recorded (its connection killed) is claimed again after its lease:
        # a short lease keeps that within the test's time. One webhook in five fails and is retried soon, so
        # messages wait in the outbox (and dispatch writes their outcomes) while the kills go on.
        env = process_env(pg_url, rx.url, BACKORDER_NOTIFY__LEASE_SECONDS="5", BACKORDER_NOTIFY__BACKOFF_SECONDS="0.5",
                          BACKORDER_NOTIFY__BACKOFF_MAX_SECONDS="2", BACKORDER_NOTIFY__MAX_ATTEMPTS="12")
        rx.client.fail_rate(0.2, "500", seed=8)
        api, worker = Proc.serve("serve --no-worker", env, tmp_path), Proc.worker("worker", env, tmp_path)
        procs = [api, worker]
        try:
            start_all(procs)
            pids = [p.proc.pid for p in procs]
            posted = Posted()
            with httpx.Client(base_url=api.base_url, timeout=30) as http:
                post_until_acknowledged(http, seed_events(), posted, deadline)
            stream = Stream("f", 20260302)
            started = time.monotonic()
            # Paced so the load lasts 4 s or more however fast the machine: several kill rounds land during intake.
            loader = Background("loader", load, [api.base_url], stream, EVENTS, BATCH, posted, deadline, LOAD_PAUSE_S)
            loader.start()
            # Each round: (backends killed, events still arriving, events pending, messages not yet delivered),
            # the counts read just before the kill. Every KILL_EVERY_S while events arrive, then every
            # KILL_LATER_S while events wait to be applied or messages to be sent: a group of events applied in
            # one transaction (services/inbox.py) takes longer than KILL_EVERY_S on a busy machine, and kills that
            # close together would only show that no transaction outlives them.
            kills: list[tuple[int, bool, int, int]] = []
            while len(kills) < KILLS or loader.is_alive() or (len(kills) < MAX_KILLS and any(kills[-1][2:])):
                assert time.monotonic() < deadline, f"the load did not finish: {posted.statuses}"
                time.sleep(KILL_EVERY_S if loader.is_alive() or len(kills) < KILLS else KILL_LATER_S)
                loading = loader.is_alive()
                with engine.connect() as conn:
                    pending = conn.execute(select(func.count()).select_from(t.inbox)
                                           .where(t.inbox.c.status == "pending")).scalar_one()
                    undelivered = conn.execute(select(func.count()).select_from(t.outbox)
                                               .where(t.outbox.c.status != "delivered")).scalar_one()
                kills.append((terminate_backends(admin, database_name(pg_url)), loading, pending, undelivered))
            loader.join()
            loader.check()
            loaded_s = time.monotonic() - started
            inbox_by_status, outbox_by_status = wait_settled(engine, deadline, "after the kills")
            settled_s = time.monotonic() - started
            assert [p.proc.pid for p in procs if p.alive()] == pids, "a process died: " + "\n".join(
                f"{p.name}:\n{p.output()}" for p in procs)
            snapshot_check(engine, "after the kills")

            i, o = t.inbox, t.outbox
            with engine.connect() as conn:
                stored = {(r.source, r.event_id): (r.status, r.note) for r in conn.execute(
                    select(i.c.source, i.c.event_id, i.c.status, i.c.note))}
                keys = set(conn.execute(select(o.c.idempotency_key)).scalars())
            stats = rx.client.stats()
            logged = {p.name: sum(1 for line in p.lines if "Traceback" in line) for p in procs}
            dispatch_failed = sum(1 for line in worker.lines if "dispatch round failed" in line)
        finally:
            stop_all(procs)
            engine.dispose()
            admin.dispose()

    refused = sum(n for status, n in posted.statuses.items() if status >= 500)
    effective = [k for k, *_ in kills if k]
    duplicates = sum(1 for n in stats["accepted_by_key"].values() if n > 1)
    print(f"\n{len(posted.acknowledged)} events acknowledged ({dict(stream.kinds)}) in {posted.requests} "
          f"requests; answers {dict(posted.statuses)}, {posted.transport_errors} transport error(s), "
          f"{refused} refusal(s) retried")
    print(f"{len(effective)} kill rounds, {sum(effective)} backends terminated: "
          f"{[k for k, *_ in kills]}; while loading {sum(1 for k, loading, *_ in kills if k and loading)}, "
          f"while applying {sum(1 for k, _, p, _u in kills if k and p)}, "
          f"while dispatching {sum(1 for k, *_, u in kills if k and u)}")
    print(f"inbox {inbox_by_status}; outbox {outbox_by_status}; receiver {stats['count']} requests, "
          f"{len(stats['accepted_by_key'])} keys, {duplicates} delivered more than once (at least once)")
    print(f"loaded in {loaded_s:.1f} s, settled {settled_s:.1f} s after the first event; tracebacks logged "
          f"(each a recovered failure): {logged}, of which dispatch rounds cut short: {dispatch_failed}")
    lost = [k for k in posted.acknowledged if k not in stored]
    assert not lost, f"{len(lost)} acknowledged event(s) not in the inbox: {lost[:5]}"
    assert set(stored) == set(posted.acknowledged)
    not_done = {k: v for k, v in stored.items() if v[0] not in ("applied", "ignored", "parked")}
    assert not not_done, f"events neither applied, ignored nor parked: {list(not_done.items())[:5]}"
    errors = {k: v for k, v in stored.items() if v[0] == "parked" and (v[1] or "").startswith("error")}
    assert not errors, f"events parked by a database error instead of applied: {list(errors.items())[:5]}"
    unseen = keys - set(stats["accepted_by_key"])
    assert not unseen, f"{len(unseen)} planned message(s) the receiver never got: {sorted(unseen)[:5]}"
    assert stats["signature_failures"] == 0
    unclear = [r for r in posted.refusals if not r.startswith("503")]
    assert not unclear, f"the API refused events without saying why: {unclear[:5]}"
    assert len(effective) >= 5, kills
    assert sum(1 for k, loading, *_ in kills if k and loading) >= 3, f"too few kills during intake: {kills}"
    assert sum(1 for k, _, p, _u in kills if k and p) >= 3, f"too few kills while applying: {kills}"
    assert sum(1 for k, *_, u in kills if k and u) >= 3, f"too few kills while messages waited to be sent: {kills}"

