"""Concurrency: two `backorder serve --no-worker` processes and four `backorder worker` processes on one
PostgreSQL store, under a stream of orders, receipts, counts, shipments and cancellations from several
client threads. Every API process and every worker applies stored events (SKIP LOCKED keeps them apart);
the workers dispatch webhooks. The allocation invariants hold at committed snapshots sampled during the
run and at the end; every event is applied; no message is sent twice.

PostgreSQL only, on a fresh database of its own; fails, never skips, when PostgreSQL cannot be reached.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import Engine, func, select

from store import tables as t
from store.db import make_engine
from tests.fakes.webhook_receiver import WebhookReceiverProcess
from tests.reliability.procs import (
    SECRET,
    Background,
    Posted,
    Proc,
    Stream,
    load,
    process_env,
    seed_events,
    snapshot_check,
    start_all,
    stop_all,
    wait_settled,
)

pytestmark = pytest.mark.postgres

API_PROCESSES = 2
WORKERS = 4
CLIENTS = 4
EVENTS_PER_CLIENT = 250
BATCH = 10
SAMPLE_EVERY_S = 1.0
RUN_BOUND_S = 420  # generous: two shared cores; the test fails with what it saw when this passes




def sample(engine: Engine, stop: threading.Event, taken: list[dict[str, int]]) -> None:
    """The invariants at a committed snapshot every SAMPLE_EVERY_S, with how far the run had got."""
    while not stop.wait(SAMPLE_EVERY_S):
        snapshot_check(engine, f"sample {len(taken) + 1}")
        with engine.connect() as conn:
            taken.append({"applied": conn.execute(select(func.count()).select_from(t.inbox)
                                                  .where(t.inbox.c.status != "pending")).scalar_one(),
                          "allocations": conn.execute(select(func.count()).select_from(t.allocations)).scalar_one()})


def test_two_api_and_four_worker_processes_keep_the_invariants(pg_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_url)
    deadline = time.monotonic() + RUN_BOUND_S
    with WebhookReceiverProcess(secret=SECRET) as rx:
        env = process_env(pg_url, rx.url)
        apis = [Proc.serve(f"serve{k} --no-worker", env, tmp_path) for k in range(API_PROCESSES)]
        workers = [Proc.worker(f"worker{k}", env, tmp_path) for k in range(WORKERS)]
        procs = [*apis, *workers]
        stop_sampling = threading.Event()
        samples: list[dict[str, int]] = []
        try:
            start_all(procs)
            with httpx.Client(base_url=apis[0].base_url, timeout=60) as http:
                r = http.post("/events", json=seed_events())  # wait=true: master data and stock, applied now
                assert r.status_code == 200 and r.json()["accepted"] == len(seed_events()), r.text
            posted = Posted()
            streams = [Stream(f"t{k}", 1000 + k) for k in range(CLIENTS)]
            started = time.monotonic()
            sampler = Background("sampler", sample, engine, stop_sampling, samples)
            sampler.start()
            loaders = [Background(f"client {k}", load, [a.base_url for a in apis], s, EVENTS_PER_CLIENT, BATCH,
                                  posted, deadline) for k, s in enumerate(streams)]
            for loader in loaders:
                loader.start()
            for loader in loaders:
                loader.join(max(1.0, deadline - time.monotonic()))
                loader.check()
                assert not loader.is_alive(), f"{loader.name} did not finish: {posted.statuses}"
            loaded_s = time.monotonic() - started
            inbox_by_status, outbox_by_status = wait_settled(engine, deadline, "after the load")
            settled_s = time.monotonic() - started
            stop_sampling.set()
            sampler.join(60)
            sampler.check()
            cpu = {p.name: p.cpu_seconds() for p in procs}
            dead = [p.name for p in procs if not p.alive()]
            assert not dead, f"processes died: {dead}\n" + "\n".join(p.output() for p in procs if not p.alive())
            snapshot_check(engine, "at the end")
            stats = rx.client.stats()
            i, o = t.inbox, t.outbox
            with engine.connect() as conn:
                stored = {(r.source, r.event_id): (r.status, r.note) for r in conn.execute(
                    select(i.c.source, i.c.event_id, i.c.status, i.c.note))}
                keys = set(conn.execute(select(o.c.idempotency_key)).scalars())
                attempts = dict(conn.execute(select(o.c.attempts, func.count()).group_by(o.c.attempts))
                                .tuples().all())
                lines = dict(conn.execute(select(t.order_lines.c.status, func.count())
                                          .group_by(t.order_lines.c.status)).tuples().all())
        finally:
            stop_sampling.set()
            stop_all(procs)
            engine.dispose()

    sent_by = [int(m.group(1)) for w in workers
               for m in [re.search(r"(\d+) message\(s\) sent", "".join(w.lines))] if m]
    kinds = sum((s.kinds for s in streams), start=Counter())
    print(f"\n{API_PROCESSES} API + {WORKERS} worker processes; {len(posted.acknowledged)} events acknowledged "
          f"({dict(kinds)}) by {CLIENTS} clients in {posted.requests} requests, answers {dict(posted.statuses)}")
    print(f"loaded in {loaded_s:.1f} s, all applied and sent {settled_s:.1f} s after the first event; "
          f"{len(samples)} snapshots checked during the run (applied at each: {[s['applied'] for s in samples]})")
    print(f"inbox {inbox_by_status}; lines {lines}; outbox {outbox_by_status} (attempts {attempts}); "
          f"messages sent per worker {sent_by}; receiver {stats['count']} requests, {len(keys)} keys")
    print(f"CPU of the processes under test: {sum(cpu.values()):.1f} s "
          f"({1000 * sum(cpu.values()) / len(stored):.0f} ms an event): "
          + ", ".join(f"{name.split()[0]} {s:.1f}" for name, s in cpu.items()))

    seeded = {(e["source"], e["event_id"]) for e in seed_events()}
    expected = set(posted.acknowledged) | seeded
    missing, extra = expected - set(stored), set(stored) - expected
    assert not missing and not extra, f"acknowledged but not stored: {sorted(missing)[:5]}; stored, never sent: {extra}"
    assert set(inbox_by_status) <= {"applied", "ignored"}, inbox_by_status  # nothing parked, nothing pending
    assert inbox_by_status.get("applied", 0) > 0.8 * len(stored), inbox_by_status
    errors = [(k, v) for k, v in stored.items() if (v[1] or "").startswith("error")]
    assert not errors, f"events that failed instead of applying: {errors[:5]}"
    assert len(samples) >= 3 and any(0 < s["applied"] < len(stored) for s in samples), samples
    assert set(outbox_by_status) == {"delivered"}, outbox_by_status
    twice = {k: n for k, n in stats["accepted_by_key"].items() if n > 1}
    assert not twice, f"messages sent more than once: {list(twice.items())[:5]}"
    assert set(stats["accepted_by_key"]) == keys and stats["count"] == len(keys), "receiver and outbox differ"
    assert stats["signature_failures"] == 0
    assert len(sent_by) == WORKERS and sum(sent_by) == len(keys), sent_by
