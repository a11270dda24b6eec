"""Benchmark of notification delivery (not a test): prints markdown tables and the conditions.

    python bench/notify.py [--quick] [--only 1,2,3,4] [--duration 20] [--messages 20000]

Every message goes to the fake webhook receiver (tests/fakes/webhook_receiver.py) running on
127.0.0.1 in its own process, verifying signatures:
  1 sustained  open-loop load of order.placed events (each for a SKU with no stock, so each makes
               a backorder: two `decision` webhooks, line_backordered and eta_changed) POSTed with
               ?wait=false to one `python -m backorder serve` (in-process worker, PostgreSQL), at
               each --rates level for --duration s; then the 200/s level again with
               `serve --no-worker` plus one `python -m backorder worker` process.
               Customers have preferences.opt_out ["all"]: webhooks are the only messages.
               Latency of an event = the receiver's arrival time (time.monotonic, one clock for
               every process on Linux) of the LAST of its messages - the time the POST that carried
               it got its 202. A message is tied to its event by the outbox row of its delivery key
               (X-Backorder-Delivery): the row's `cause` is the event, checked equal to the payload's.
               After --grace s the server is stopped and the receiver asked again, to tell messages
               lost (outbox says sent, never received) from late ones.
  2 dispatch   N pending webhook rows inserted directly, then services.worker.drain_outbox (what
               `backorder worker --once` runs) in a child process, timed around that call (its
               digest check and every claim, send and record; not the interpreter's start);
               PostgreSQL and SQLite. The receiver must hold exactly the N keys, once each.
  3 claim      M pending rows on PostgreSQL claimed in batches of notify.batch_size by 1 and by 2
               claimer processes, each round store.outbox.claim in one transaction then
               store.outbox.record (all sent) in another, on one held connection with relaxed
               commits (store.held), as the dispatcher does; no HTTP.
  4 apprise    the same N payloads POSTed with Apprise's json:// plugin, one notify() each, in a
               child process; beside figure 2's PostgreSQL figure.
Each database is fresh (PostgreSQL: CREATE DATABASE beside BACKORDER_BENCH_PG's) and dropped after.
Default: 20 s levels at 50, 200, 500 ev/s + 200 ev/s with a separate worker, 20 s grace, N 20,000,
M 50,000 (about 5 min). --quick: 4 s levels, 5 s grace, no separate-worker level, N 2,000, M 10,000
(about 70 s). Writes the figures as JSON to bench/results/ (git-ignored) too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._notify_helpers import (  # noqa: E402
    SOURCE,
    Proc,
    bench_env,
    busy_share,
    conditions,
    decision_payload,
    drop_database,
    free_port,
    insert_outbox,
    machine_cpu,
    message_key,
    ms,
    new_pg_database,
    outbox_counts,
    outbox_rows,
    payload_bytes,
    percentile,
    pg_backend_cpu,
    phase_cmd,
    phase_result,
    post_json,
    proc_cpu,
    run_phase,
    table,
    wait_http,
)

GOALS = {
    1: "goal: p99 < 1 s at 200 events/s",
    2: "goal: >= 2,000 messages/s per worker process end to end",
    4: "goal: well ahead of Apprise (seen here before ~480/s)",
}
CUSTOMERS = 50
SECRET = "bench-secret"


# ----------------------------------------------------------------------------------------------
# Child phases (`--phase NAME --opts JSON`); their environment is bench_env(...)
# ----------------------------------------------------------------------------------------------


def phase_dispatch(opts: dict[str, Any]) -> dict[str, Any]:
    """What `backorder worker --once` does (services.worker.drain_outbox), timed without start-up."""
    from sqlalchemy import text

    from backorder.config import load_settings
    from notifiers.dispatch import Dispatcher
    from services.context import Context
    from services.worker import drain_outbox

    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name + "_seconds"] += time.perf_counter() - t
                spent[name + "s"] += 1

        return wrapper

    # Instrumented here only (the class of this child process), to say where the time goes.
    Dispatcher.claim = timed("claim", Dispatcher.claim)  # type: ignore[method-assign]
    Dispatcher._record = timed("record", Dispatcher._record)  # type: ignore[method-assign]
    ctx = Context.from_settings(load_settings())
    with ctx.engine.connect() as conn:  # the pool's first connection is not part of the figure
        conn.execute(text("SELECT 1"))
    cpu0, t0 = _cpu(), time.perf_counter()
    sent = asyncio.run(drain_outbox(ctx))
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    ctx.engine.dispose()
    return {"sent": sent, "seconds": seconds, "cpu_seconds": cpu, **spent}


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def phase_apprise(opts: dict[str, Any]) -> dict[str, Any]:
    import apprise

    ap = apprise.Apprise()
    if not ap.add(opts["url"]):
        raise RuntimeError(f"apprise refused {opts['url']}")
    plugin = ap[0]
    bodies = []
    for i in range(opts["n"]):
        key = message_key(opts["run"], i)
        bodies.append((key, json.dumps(decision_payload(i, key), separators=(",", ":"), sort_keys=True)))
    failed = 0
    cpu0, t0 = _cpu(), time.perf_counter()
    for key, body in bodies:
        # The receiver counts unique delivery keys; Apprise has no per-message header, so set the
        # plugin's custom header (what `json://...?+X-Backorder-Delivery=...` sets) per message.
        plugin.headers["X-Backorder-Delivery"] = key
        if not ap.notify(body=body, title="decision"):
            failed += 1
    return {"seconds": time.perf_counter() - t0, "failed": failed, "cpu_seconds": _cpu() - cpu0}


def phase_claim(opts: dict[str, Any]) -> dict[str, Any]:
    from store.db import make_engine
    from store.held import HeldConnection
    from store.outbox import Result, claim, record

    engine = make_engine(opts["url"])
    db = HeldConnection(engine, relaxed=True)  # as the dispatcher holds its connection while rounds follow
    with db.transaction() as conn:
        conn.exec_driver_sql("SELECT 1")
    owner = f"bench-claimer-{os.getpid()}"
    wait = opts["start_at"] - time.monotonic()  # every claimer starts at the same instant
    if wait > 0:
        time.sleep(wait)
    t0, cpu0 = time.monotonic(), _cpu()
    claimed = recorded = rounds = 0
    while True:
        now = datetime.now(UTC)
        with db.transaction() as conn:
            rows = claim(conn, owner, opts["batch"], now, opts["lease"])
        if not rows:
            break
        with db.transaction() as conn:
            recorded += record(conn, owner, [Result(r.id, "sent") for r in rows], datetime.now(UTC))
        claimed += len(rows)
        rounds += 1
    t1, cpu = time.monotonic(), _cpu() - cpu0
    db.release()
    engine.dispose()
    return {"claimed": claimed, "recorded": recorded, "rounds": rounds, "t0": t0, "t1": t1, "cpu_seconds": cpu}


PHASES = {"dispatch": phase_dispatch, "apprise": phase_apprise, "claim": phase_claim}


# ----------------------------------------------------------------------------------------------
# Figure 1: sustained events/s with latency
# ----------------------------------------------------------------------------------------------


def _ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": datetime.now(UTC).isoformat(), "source": SOURCE,
            "data": data}


def _order(event_id: str, i: int, skus: int) -> dict[str, Any]:
    return _ev(event_id, "order.placed", {
        "order_id": event_id, "customer_id": f"C{i % CUSTOMERS}", "channel": "web",
        "lines": [{"line_id": "1", "sku": f"S{i % skus:05d}", "qty": 1, "unit_price": "3.00"}]})


def seed_template(url: str, skus: int) -> None:
    """Master data: a warehouse, a supplier, `skus` products with no stock, customers who opted out."""
    from backorder.config import load_settings
    from services.context import Context
    from services.inbox import drain, store_events
    from store.db import upgrade

    upgrade(url)
    ctx = Context.from_settings(load_settings(database_url=url))
    seed = [_ev("w1", "warehouse.upserted", {"warehouse_id": "W1", "name": "W1", "region": "north"}),
            _ev("sup", "supplier.upserted", {"supplier_id": "SUP", "name": "Sup", "lead_time_days": 10})]
    seed += [_ev(f"c{k}", "customer.upserted", {"customer_id": f"C{k}", "name": f"C{k}", "region": "north",
                                                "preferences": {"opt_out": ["all"]}}) for k in range(CUSTOMERS)]
    seed += [_ev(f"p{k}", "product.upserted", {"sku": f"S{k:05d}", "name": f"P{k}", "price": "3.00",
                                               "supplier_id": "SUP"}) for k in range(skus)]
    _, ids = store_events(ctx, seed)
    drain(ctx, ids)
    ctx.engine.dispose()


async def open_loop(base: str, events: list[dict[str, Any]], rate: float, per_request: int) -> dict[str, Any]:
    """POST `events` in requests of `per_request` on a fixed schedule, whatever the responses do."""
    import aiohttp

    batches = [events[k:k + per_request] for k in range(0, len(events), per_request)]
    bodies = [json.dumps(b).encode() for b in batches]
    interval = per_request / rate
    results: list[dict[str, Any] | None] = [None] * len(batches)
    url = f"{base}/events?wait=false"
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def send(k: int) -> None:
            sent = time.monotonic()
            try:
                async with session.post(url, data=bodies[k], headers=headers) as resp:
                    raw = await resp.read()
                    done = time.monotonic()
                    accepted = json.loads(raw).get("accepted", 0) if resp.status == 202 else 0
                    results[k] = {"sent": sent, "done": done, "status": resp.status, "accepted": accepted}
            except Exception as exc:  # an open-loop client records failures, it does not stop
                results[k] = {"sent": sent, "done": time.monotonic(), "status": repr(exc)[:200], "accepted": 0}

        tasks = []
        lag = 0.0
        start = time.monotonic() + 0.05
        for k in range(len(batches)):
            delay = start + k * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag = max(lag, -delay)
            tasks.append(asyncio.create_task(send(k)))
        await asyncio.gather(*tasks)
    accepted_at: dict[str, float] = {}
    errors: dict[str, int] = defaultdict(int)
    for batch, res in zip(batches, results, strict=True):
        assert res is not None
        if res["status"] != 202 or res["accepted"] != len(batch):
            errors[str(res["status"]) + ("" if res["status"] != 202 else f" accepted {res['accepted']}")] += 1
        if res["status"] == 202:
            for ev in batch:
                accepted_at[f"{SOURCE}:{ev['event_id']}"] = res["done"]
    done = [r["done"] for r in results if r]
    sent = [r["sent"] for r in results if r]
    return {"accepted_at": accepted_at, "errors": dict(errors), "first_sent": min(sent), "last_done": max(done),
            "schedule_lag": lag, "requests": len(batches),
            "response_p99": percentile(sorted(r["done"] - r["sent"] for r in results if r), 99)}


def _progress(url: str, prefix: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            pending = conn.execute(text("SELECT count(*) FROM inbox WHERE status = 'pending'")).scalar() or 0
            rows = dict(conn.execute(text(
                "SELECT status, count(*) FROM outbox WHERE channel = 'webhook' AND cause LIKE :p GROUP BY status"),
                {"p": f"{SOURCE}:{prefix}-%"}).tuples().all())
    finally:
        eng.dispose()
    return {"inbox_pending": int(pending), **{k: int(v) for k, v in rows.items()}}


def wait_delivered(url: str, rx: Any, prefix: str, deadline: float) -> dict[str, int]:
    """Until every event is applied, every webhook row is final and the receiver has them all (or deadline)."""
    while True:
        prog = _progress(url, prefix)
        open_ = sum(prog.get(s, 0) for s in ("pending", "sending", "failed"))
        final = sum(prog.get(s, 0) for s in ("sent", "delivered"))
        if prog["inbox_pending"] == 0 and open_ == 0 and rx.client.stats(keys=False)["accepted"] >= final:
            return prog
        if time.monotonic() > deadline:
            return prog
        time.sleep(0.2)


def analyse(url: str, prefix: str, load: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """The receiver's `stats` and the database at the end of the grace."""
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            rows = conn.execute(text(
                "SELECT idempotency_key, cause, payload->>'cause', status FROM outbox "
                "WHERE channel = 'webhook' AND cause LIKE :p"), {"p": f"{SOURCE}:{prefix}-%"}).all()
            inbox = conn.execute(text(
                "SELECT source || ':' || event_id, applied_at FROM inbox WHERE source = :s AND event_id LIKE :p "
                "AND status = 'applied'"), {"s": SOURCE, "p": f"{prefix}-%"}).all()
    finally:
        eng.dispose()
    # inbox.applied_at is wall-clock time; the receiver's and the client's are monotonic.
    offset = time.time() - time.monotonic()
    applied = {cause: at.timestamp() - offset for cause, at in inbox if at is not None}
    arrivals: dict[str, list[float]] = stats["arrivals"]
    keys_of: dict[str, list[str]] = defaultdict(list)
    mismatched = 0
    status_counts: dict[str, int] = defaultdict(int)
    for key, cause, payload_cause, status in rows:
        keys_of[cause].append(key)
        mismatched += cause != payload_cause
        status_counts[status] += 1
    accepted_at = load["accepted_at"]
    event_lat: list[float] = []
    msg_lat: list[float] = []
    to_apply: list[float] = []
    apply_to_last: list[float] = []
    not_planned = not_arrived = 0
    for cause, t_accepted in accepted_at.items():
        if cause in applied:
            to_apply.append(applied[cause] - t_accepted)
        keys = keys_of.get(cause)
        if not keys:
            not_planned += 1
            continue
        got = [min(arrivals[k]) for k in keys if k in arrivals]
        msg_lat += [t - t_accepted for t in got]
        if len(got) < len(keys):
            not_arrived += 1
        else:
            event_lat.append(max(got) - t_accepted)
            if cause in applied:
                apply_to_last.append(max(got) - applied[cause])
    ours = {k for ks in keys_of.values() for k in ks}
    received = [k for k in arrivals if k in ours]
    first = [min(arrivals[k]) for k in received]
    for v in (event_lat, msg_lat, to_apply, apply_to_last):
        v.sort()
    applied_times = sorted(applied.values())
    return {
        "events_accepted": len(accepted_at), "events_applied": len(applied), "messages_planned": len(rows),
        "messages_received": len(received),
        "cause_mismatch": mismatched,
        "not_planned": not_planned, "not_arrived": not_arrived, "outbox_status": dict(status_counts),
        "lat": {p: percentile(event_lat, p) for p in (50, 95, 99, 100)}, "lat_min": event_lat[0] if event_lat else None,
        "msg_lat": {p: percentile(msg_lat, p) for p in (50, 99, 100)},
        "to_apply": {p: percentile(to_apply, p) for p in (50, 99)},
        "apply_to_last": {p: percentile(apply_to_last, p) for p in (50, 99)},
        "achieved_ev_s": len(accepted_at) / max(1e-9, load["last_done"] - load["first_sent"]),
        "applied_ev_s": (len(applied_times) / max(1e-9, applied_times[-1] - load["first_sent"])
                         if applied_times else 0.0),
        "delivered_msg_s": len(received) / max(1e-9, max(first) - load["first_sent"]) if first else 0.0,
    }


def loss_check(url: str, prefix: str, within_grace: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Once the server and worker have stopped: rows the outbox says were sent that never arrived."""
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            rows = conn.execute(text("SELECT idempotency_key, status FROM outbox WHERE channel = 'webhook' "
                                     "AND cause LIKE :p"), {"p": f"{SOURCE}:{prefix}-%"}).all()
    finally:
        eng.dispose()
    final = after["arrivals"]
    ours = {key for key, _ in rows}
    return {"lost": sum(1 for key, status in rows if status in ("sent", "delivered") and key not in final),
            "late": sum(1 for k in final if k in ours and k not in within_grace["arrivals"]),
            "duplicates": sum(len(v) - 1 for k, v in final.items() if k in ours),
            "stray_keys": sum(1 for k in final if k not in ours),
            "signature_failures": after["signature_failures"]}


def run_level(args: argparse.Namespace, template: str, rx: Any, tmp: Path, rate: int, separate: bool,
              tag: str, workers: int = 1) -> dict[str, Any]:
    """One level; `separate`: `serve --no-worker` beside `workers` `backorder worker` processes."""
    url = new_pg_database(template=template)
    port = free_port()
    env = bench_env(url, rx.url)
    server = Proc(["serve", "--port", str(port), *(["--no-worker"] if separate else [])], env, tmp / f"serve-{tag}.log")
    worker_procs = {f"worker{'' if k == 0 else k + 1}": Proc(["worker"], env, tmp / f"worker-{tag}-{k}.log")
                    for k in range(workers if separate else 0)}
    base = f"http://127.0.0.1:{port}"
    per_request = args.events_per_request or max(1, round(rate / 50))
    stops: dict[str, Any] = {}
    res: dict[str, Any] = {"rate": rate, "separate": separate, "workers": len(worker_procs), "per_request": per_request,
                           "loadavg_before": os.getloadavg()}
    try:
        server.start()
        for w in worker_procs.values():
            w.start()
        wait_http(f"{base}/healthz", server)
        # Warm up (not measured): connections, caches, the first outbox rounds.
        warm = [_order(f"{tag}w-{i:04d}", i, args.skus) for i in range(20)]
        post_json(f"{base}/events?wait=false", warm)
        wait_delivered(url, rx, f"{tag}w", time.monotonic() + 60)
        rx.client.reset()
        n = int(rate * args.duration)
        events = [_order(f"{tag}-{i:06d}", i, args.skus) for i in range(n)]
        procs = {"serve": server, **worker_procs, "receiver": rx.proc}
        cpu0 = {name: proc_cpu(p.pid) for name, p in procs.items() if p is not None}
        pg0 = pg_backend_cpu(url)
        m0, t0 = machine_cpu(), time.monotonic()
        load = asyncio.run(open_loop(base, events, rate, per_request))
        prog = wait_delivered(url, rx, tag, load["last_done"] + args.grace)
        wall = time.monotonic() - t0
        stats = rx.client.stats()  # what arrived within the grace
        res["cpu_share"] = {name: (proc_cpu(p.pid) - cpu0[name]) / wall
                            for name, p in procs.items() if p is not None}
        pg1 = pg_backend_cpu(url)
        res["cpu_share"]["postgres (this db)"] = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items()) / wall
        res["machine_busy"] = busy_share(m0, machine_cpu())
        res["window_seconds"] = wall
        res.update(analyse(url, tag, load, stats))
        for p in (server, *worker_procs.values()):
            if p is not None and not p.alive():
                raise RuntimeError(f"{' '.join(p.args)} died during the run:\n{p.tail()}")
        # Stop everything, then look again: a row the outbox says was sent that the receiver never
        # saw would be a lost message (as opposed to one that arrived after the grace).
        stops["serve"] = server.stop(args.stop_timeout)
        for name, w in worker_procs.items():
            stops[name] = w.stop(args.stop_timeout)
        res.update(loss_check(url, tag, stats, rx.client.stats()))
        res.update(requests=load["requests"], post_errors=load["errors"], schedule_lag=load["schedule_lag"],
                   response_p99=load["response_p99"], inbox_pending_at_end=prog["inbox_pending"])
        return res
    finally:
        if "serve" not in stops:
            stops["serve"] = server.stop(args.stop_timeout)
        for name, w in worker_procs.items():
            if name not in stops:
                stops[name] = w.stop(args.stop_timeout)
        res["stops"] = stops
        drop_database(url)


def figure_sustained(args: argparse.Namespace, rx: Any, tmp: Path) -> list[dict[str, Any]]:
    template = new_pg_database()
    out = []
    try:
        seed_template(template, args.skus)
        levels = [(r, False) for r in args.rates] + ([(args.separate_rate, True)] if args.separate_rate else [])
        for rate, separate in levels:
            tag = f"r{rate}{'s' if separate else ''}-{uuid.uuid4().hex[:4]}"
            res = run_level(args, template, rx, tmp, rate, separate, tag)
            print(f"  [1] {rate}/s {'separate worker' if separate else 'in-process worker'}: "
                  f"p99 {ms(res['lat'][99])}, {res['messages_received']:,}/{res['messages_planned']:,} messages",
                  flush=True)
            out.append(res)
    finally:
        drop_database(template)
    return out


# ----------------------------------------------------------------------------------------------
# Figures 2-4
# ----------------------------------------------------------------------------------------------


def _check_receiver(stats: dict[str, Any], n: int, run: str) -> dict[str, Any]:
    expected = {message_key(run, i) for i in range(n)}
    got = set(stats["arrivals"])
    return {"count": stats["count"], "accepted": stats["accepted"], "unique_keys": stats["unique_keys"],
            "duplicates": stats["duplicates_accepted"], "missing": len(expected - got),
            "unexpected": len(got - expected), "signature_failures": stats["signature_failures"],
            "exact": stats["count"] == n and got == expected and stats["duplicates_accepted"] == 0,
            "span": (stats["last_monotonic"] or 0) - (stats["first_monotonic"] or 0)}


def figure_dispatch(args: argparse.Namespace, rx: Any, tmp: Path, kind: str) -> dict[str, Any]:
    from store.db import upgrade

    url = new_pg_database() if kind == "postgresql" else f"sqlite:///{tmp / f'dispatch-{uuid.uuid4().hex[:8]}.db'}"
    run = f"d{kind[:2]}{uuid.uuid4().hex[:6]}"
    try:
        upgrade(url)
        insert_s = insert_outbox(url, outbox_rows(run, args.messages, rx.url, datetime.now(UTC) - timedelta(seconds=1)))
        rx.client.reset()
        rx_cpu, m0 = proc_cpu(rx.proc.pid), machine_cpu()
        res = run_phase(__file__, "dispatch", {}, bench_env(url, rx.url))
        res.update(receiver_cpu=proc_cpu(rx.proc.pid) - rx_cpu, machine_busy=busy_share(m0, machine_cpu()))
        res.update(_check_receiver(rx.client.stats(), args.messages, run))
        res.update(db=kind, insert_seconds=insert_s, outbox=outbox_counts(url), rate=args.messages / res["seconds"])
        res["exact"] = res["exact"] and res["signature_failures"] == 0
        print(f"  [2] dispatch on {kind}: {res['rate']:,.0f} msg/s", flush=True)
        return res
    finally:
        drop_database(url)


def figure_claims(args: argparse.Namespace, batch: int, lease: float) -> list[dict[str, Any]]:
    from store.db import upgrade

    url = new_pg_database()
    out = []
    try:
        upgrade(url)
        env = bench_env(url, "http://127.0.0.1:9/webhook")
        for k in args.claimers:
            insert_s = insert_outbox(url, outbox_rows(f"c{k}{uuid.uuid4().hex[:6]}", args.claim_rows,
                                                      "http://127.0.0.1:9/webhook", datetime.now(UTC)))
            opts = {"url": url, "batch": batch, "lease": lease, "start_at": time.monotonic() + 3.0}
            procs = [subprocess.Popen(phase_cmd(__file__, "claim", opts), cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(k)]
            parts = []
            for p in procs:
                o, e = p.communicate(timeout=600)
                parts.append(phase_result(o, e, p.returncode, "claim"))
            counts = outbox_counts(url)
            seconds = max(p["t1"] for p in parts) - min(p["t0"] for p in parts)
            claimed = sum(p["claimed"] for p in parts)
            res = {"claimers": k, "rows": args.claim_rows, "claimed": claimed,
                   "recorded": sum(p["recorded"] for p in parts), "rounds": sum(p["rounds"] for p in parts),
                   "per_claimer": [p["claimed"] for p in parts], "seconds": seconds,
                   "cpu_seconds": sum(p["cpu_seconds"] for p in parts),
                   "rate": claimed / seconds, "outbox": counts, "insert_seconds": insert_s,
                   "exact": claimed == args.claim_rows and counts == {"sent": args.claim_rows}}
            print(f"  [3] {k} claimer(s): {res['rate']:,.0f} rows/s", flush=True)
            out.append(res)
            from sqlalchemy import create_engine, text

            eng = create_engine(url)
            with eng.begin() as conn:
                conn.execute(text("TRUNCATE outbox"))
            eng.dispose()
    finally:
        drop_database(url)
    return out


def figure_apprise(args: argparse.Namespace, rx: Any) -> dict[str, Any]:
    run = f"ap{uuid.uuid4().hex[:6]}"
    rx.client.reset()
    rx_cpu, m0 = proc_cpu(rx.proc.pid), machine_cpu()
    res = run_phase(__file__, "apprise", {"url": f"json://127.0.0.1:{rx.port}/webhook", "n": args.messages,
                                          "run": run}, bench_env("sqlite://", rx.url))
    res.update(receiver_cpu=proc_cpu(rx.proc.pid) - rx_cpu, machine_busy=busy_share(m0, machine_cpu()))
    res.update(_check_receiver(rx.client.stats(), args.messages, run))
    res["rate"] = args.messages / res["seconds"]
    print(f"  [4] apprise: {res['rate']:,.0f} msg/s", flush=True)
    return res


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def report(run: dict[str, Any]) -> str:
    c, a, s = run["conditions"], run["args"], run["settings"]
    lines = ["", "## Notification delivery benchmark (bench/notify.py" + (" --quick)" if a["quick"] else ")"), "",
             f"- date: {c['date']}; machine: {c['cpu_count']} cores ({c['cpu']}), {c['memory_gb']} GB RAM, "
             f"load average at start {', '.join(f'{x:.2f}' for x in c['loadavg_at_start'])}",
             f"- {c['platform']}; Python {c['python']}; PostgreSQL {c['postgresql']} "
             f"({', '.join(f'{k}={v}' for k, v in c['pg_settings'].items())}); SQLite {c['sqlite']}",
             f"- aiohttp {c['aiohttp']}, apprise {c['apprise']} (requests {c['requests']}), SQLAlchemy "
             f"{c['sqlalchemy']}, psycopg {c['psycopg']}, FastAPI {c['fastapi']}, uvicorn {c['uvicorn']}",
             f"- notify settings (defaults): batch_size {s['batch_size']}, concurrency {s['concurrency']}, "
             f"lease {s['lease_seconds']:g} s, poll {s['poll_seconds']:g} s; webhook timeout {s['timeout']:g} s, "
             "HMAC-signed, the receiver verifies signatures",
             "- all on one machine: the receiver (own process), the server/worker, PostgreSQL and the load "
             f"generator share the {c['cpu_count']} cores",
             f"- payloads ~{run['payload_bytes']:.0f} bytes (figures 2-4); PostgreSQL and SQLite databases "
             "fresh for each figure/level"]
    if "sustained" in run:
        lines += ["", f"### 1. Sustained events/s, latency event accepted (POST /events?wait=false answered) -> last "
                  f"of its webhooks at the receiver ({GOALS[1]})", "",
                  f"{a['duration']:g} s per level, open-loop aiohttp client, one `backorder serve` on PostgreSQL, "
                  f"{a['skus']} SKUs without stock, customers opted out (only webhooks). Each order.placed makes "
                  f"2 webhooks (line_backordered, eta_changed). Grace after the last POST: {a['grace']:g} s."
                  + ("" if a["separate_rate"] else " (The separate-worker level was skipped: --separate-rate 0.)"),
                  ""]
        rows: list[list[Any]] = [["worker", "offered ev/s", "ev/request", "achieved ev/s", "applied ev/s", "events",
                                  "msgs received", "p50", "p95", "p99", "max", "not arrived", "dup", "lost", "errors"]]
        for r in run["sustained"]:
            missing = r["not_arrived"] + r["not_planned"]
            errs = r["post_errors"] or {}
            err_txt = ", ".join(f"{k}: {v}" for k, v in errs.items()) or "0"
            if r["stray_keys"] or r["cause_mismatch"] or r["signature_failures"]:
                err_txt += (f"; stray {r['stray_keys']}, cause mismatch {r['cause_mismatch']}, "
                            f"bad signatures {r['signature_failures']}")
            rows.append(["separate process" if r["separate"] else "in serve", f"{r['rate']}", r["per_request"],
                         f"{r['achieved_ev_s']:,.0f}", f"{r['applied_ev_s']:,.0f}", f"{r['events_accepted']:,}",
                         f"{r['messages_received']:,} / {r['messages_planned']:,}",
                         ms(r["lat"][50]), ms(r["lat"][95]), ms(r["lat"][99]), ms(r["lat"][100]),
                         f"{missing:,}" + (f" ({r['not_planned']:,} not applied)" if r["not_planned"] else ""),
                         r["duplicates"], r["lost"], err_txt])
        lines.append(table(rows))
        lines += ["", "Latency percentiles are over the events whose webhooks all arrived within the grace; "
                  "\"not arrived\" counts the others (\"not applied\": the event was still waiting in the inbox, "
                  "so no message existed yet). \"applied ev/s\" = events applied / (last applied - first POST). "
                  "\"msgs received\": at the end of the grace / messages planned by then. After the grace the "
                  "server (and worker) are stopped and the receiver asked again: \"lost\" = rows the outbox "
                  "records as sent/delivered that the receiver never got; \"dup\" = repeated delivery keys.",
                  "Breakdown (p50 / p99): accepted -> applied (inbox.applied_at) and applied -> last webhook at the "
                  "receiver; CPU share over the window from the first POST to the end of the wait "
                  "(1.00 = one core busy):", ""]
        for r in run["sustained"]:
            cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_share"].items())
            stops = "; ".join(f"{k} stop {v['seconds']:.1f} s" + (" (did not exit, killed)" if v["killed"] else "")
                              for k, v in r["stops"].items() if v)
            lines.append(f"- {r['rate']}/s {'separate worker' if r['separate'] else 'in serve'}: accepted -> applied "
                         f"{ms(r['to_apply'][50])} / {ms(r['to_apply'][99])}; applied -> last webhook "
                         f"{ms(r['apply_to_last'][50])} / {ms(r['apply_to_last'][99])}; per message "
                         f"{ms(r['msg_lat'][50])} / {ms(r['msg_lat'][99])}; min event latency "
                         f"{ms(r['lat_min']) if r['lat_min'] is not None else '-'}; POST response p99 "
                         f"{ms(r['response_p99'])}; client schedule lag max {ms(r['schedule_lag'])}; "
                         f"applied {r['events_applied']:,}, inbox pending at end {r['inbox_pending_at_end']:,}; "
                         f"messages arriving after the grace (during the stop) {r['late']:,}; "
                         f"outbox {r['outbox_status']}; CPU {cpu}; machine busy {r['machine_busy']:.0%}; "
                         f"load avg before {r['loadavg_before'][0]:.2f}; {stops}")
    if "dispatch" in run:
        lines += ["", f"### 2. Raw dispatch throughput, one worker process ({GOALS[2]})", "",
                  f"N = {a['messages']:,} pending webhook rows inserted directly; services.worker.drain_outbox "
                  "(= `backorder worker --once`) in a child process, timed around that call (not the interpreter "
                  "start).", ""]
        rows = [["db", "N", "seconds", "msg/s", "receiver: requests / unique keys", "exact N, no dups, signed",
                 "outbox after", "worker CPU s", "receiver CPU s", "machine busy", "process wall s"]]
        for r in run["dispatch"]:
            rows.append([r["db"], f"{a['messages']:,}", f"{r['seconds']:.2f}", f"{r['rate']:,.0f}",
                         f"{r['count']:,} / {r['unique_keys']:,}", "yes" if r["exact"] else
                         f"NO (missing {r['missing']}, dup {r['duplicates']}, unexpected {r['unexpected']}, "
                         f"bad signatures {r['signature_failures']})",
                         r["outbox"], f"{r['cpu_seconds']:.2f}", f"{r['receiver_cpu']:.2f}",
                         f"{r['machine_busy']:.0%}", f"{r['process_seconds']:.2f}"])
        lines.append(table(rows))
        lines += ["", "Inside the worker (sums of wall time; the dispatcher claims the next batch while it sends "
                  "the last, so they overlap): " + "; ".join(
                      f"{r['db']}: {int(r.get('claims', 0))} claims {r.get('claim_seconds', 0):.2f} s, "
                      f"{int(r.get('records', 0))} records {r.get('record_seconds', 0):.2f} s"
                      for r in run["dispatch"]),
                  "\"process wall s\" includes the child's interpreter start, imports and settings; \"machine busy\" "
                  "is all cores over the child's life."]
    if "claims" in run:
        lines += ["", "### 3. Outbox claim rate on PostgreSQL (no HTTP)", "",
                  f"M = {a['claim_rows']:,} pending rows; batch {s['batch_size']}; each round: claim "
                  "(UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING) in one transaction, record(sent) in another, "
                  "synchronous_commit off per transaction (as the dispatcher); claimers are processes.", ""]
        rows = [["claimers", "rows", "seconds", "rows/s claimed+recorded", "rounds", "per claimer", "exact"]]
        for r in run["claims"]:
            rows.append([r["claimers"], f"{r['rows']:,}", f"{r['seconds']:.2f}", f"{r['rate']:,.0f}", r["rounds"],
                         ", ".join(f"{x:,}" for x in r["per_claimer"]),
                         "yes" if r["exact"] else f"NO: claimed {r['claimed']}, recorded {r['recorded']}, "
                         f"outbox {r['outbox']}"])
        lines.append(table(rows))
    if "apprise" in run:
        r = run["apprise"]
        lines += ["", f"### 4. Baseline: Apprise json:// ({GOALS[4]})", "",
                  f"The same {a['messages']:,} payloads, one `Apprise.notify()` each (sequential, requests, "
                  "no keep-alive), in a child process; no database.", ""]
        rows = [["sender", "N", "seconds", "msg/s", "receiver: requests / unique keys", "exact", "sender CPU s",
                 "receiver CPU s", "ratio"]]
        rows.append(["apprise json://", f"{a['messages']:,}", f"{r['seconds']:.2f}", f"{r['rate']:,.0f}",
                     f"{r['count']:,} / {r['unique_keys']:,}", "yes" if r["exact"] else
                     f"NO (missing {r['missing']}, dup {r['duplicates']}, failed {r['failed']})",
                     f"{r['cpu_seconds']:.2f}", f"{r['receiver_cpu']:.2f}", "1.0x"])
        for d in run.get("dispatch", []):
            rows.append([f"our dispatcher ({d['db']}, figure 2)", f"{a['messages']:,}", f"{d['seconds']:.2f}",
                         f"{d['rate']:,.0f}", f"{d['count']:,} / {d['unique_keys']:,}",
                         "yes" if d["exact"] else "NO", f"{d['cpu_seconds']:.2f}", f"{d['receiver_cpu']:.2f}",
                         f"{d['rate'] / r['rate']:.1f}x"])
        lines.append(table(rows))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a fast smoke run (about a minute)")
    ap.add_argument("--only", default="1,2,3,4", help="figures to run, e.g. 2,4")
    ap.add_argument("--rates", default="50,200,500", help="offered events/s levels of figure 1")
    ap.add_argument("--duration", type=float, default=None, help="seconds per level (default 20; quick 4)")
    ap.add_argument("--separate-rate", type=int, default=None,
                    help="also run this level with serve --no-worker + a worker process (200; quick: 0, skip)")
    ap.add_argument("--events-per-request", type=int, default=0, help="0: rate/50 (50 requests/s), at least 1")
    ap.add_argument("--grace", type=float, default=None, help="seconds to wait after the last POST (20; quick 5)")
    ap.add_argument("--skus", type=int, default=500)
    ap.add_argument("--stop-timeout", type=float, default=None,
                    help="seconds a server/worker gets after SIGTERM before SIGKILL (5; quick 3)")
    ap.add_argument("--messages", "-n", type=int, default=None, help="N of figures 2 and 4 (20,000; quick 2,000)")
    ap.add_argument("--claim-rows", type=int, default=None, help="M of figure 3 (50,000; quick 10,000)")
    ap.add_argument("--claimers", default="1,2")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--opts", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](json.loads(args.opts))))
        return
    args.duration = args.duration or (4.0 if args.quick else 20.0)
    args.grace = args.grace or (5.0 if args.quick else 20.0)
    args.stop_timeout = args.stop_timeout or (3.0 if args.quick else 5.0)
    args.messages = args.messages or (2_000 if args.quick else 20_000)
    if args.separate_rate is None:
        args.separate_rate = 0 if args.quick else 200
    args.claim_rows = args.claim_rows or (10_000 if args.quick else 50_000)
    args.rates = [int(x) for x in args.rates.split(",") if x]
    args.claimers = [int(x) for x in args.claimers.split(",") if x]
    only = {int(x) for x in args.only.split(",") if x}

    from backorder.config import load_settings
    from tests.fakes.webhook_receiver import WebhookReceiverProcess

    # This process reads settings too (seeding, the figures' batch size): the same environment as the children.
    for key in [k for k in os.environ if k.startswith("BACKORDER_") and k != "BACKORDER_BENCH_PG"]:
        del os.environ[key]
    os.environ.update({k: v for k, v in bench_env("sqlite://", "http://127.0.0.1:9/webhook").items()
                       if k.startswith("BACKORDER_") and k not in ("BACKORDER_DATABASE_URL", "BACKORDER_WEBHOOK__URL")})
    settings = load_settings(database_url="sqlite://")
    n = settings.notify
    run: dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k not in ("phase", "opts")}, "conditions": conditions(),
        "settings": {"batch_size": n.batch_size, "concurrency": n.concurrency, "lease_seconds": n.lease_seconds,
                     "poll_seconds": n.poll_seconds, "timeout": settings.webhook.timeout_seconds},
        "payload_bytes": payload_bytes(),
    }
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="backorder-bench-notify-") as tmp, \
            WebhookReceiverProcess(secret=SECRET) as rx:
        figures: list[tuple[int, str, Any]] = [
            (1, "sustained", lambda: figure_sustained(args, rx, Path(tmp))),
            (2, "dispatch", lambda: [figure_dispatch(args, rx, Path(tmp), k) for k in ("postgresql", "sqlite")]),
            (4, "apprise", lambda: figure_apprise(args, rx)),
            (3, "claims", lambda: figure_claims(args, n.batch_size, n.lease_seconds)),
        ]
        run["figure_seconds"] = {}
        for number, name, fn in figures:
            if number in only:
                t0 = time.monotonic()
                run[name] = fn()
                run["figure_seconds"][name] = time.monotonic() - t0
    run["seconds"] = time.monotonic() - t_start
    run["loadavg_at_end"] = os.getloadavg()
    print(report(run))
    spent = ", ".join(f"{k} {v:.0f} s" for k, v in run["figure_seconds"].items())
    print(f"\nwhole run {run['seconds']:.0f} s ({spent}); load average at end "
          f"{', '.join(f'{x:.2f}' for x in run['loadavg_at_end'])}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"notify-{'quick' if args.quick else 'full'}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(run, indent=2, default=str))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
