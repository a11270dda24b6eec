"""Load benchmark of the performance goals (not a test): prints markdown tables, each with its conditions and a
baseline beside it.

    python bench/load.py [--quick] [--only intake,outbox,alert] [--db postgresql,sqlite] [--rate 500]

  intake  POST /events, one order.placed a request, on a fixed schedule of --rate (500) requests/s for --duration s
          (25; quick 6) after --warmup s not measured; an open-loop aiohttp client on loopback, each latency taken
          from the request's SCHEDULED send time to its answer (no coordinated omission). A fresh database per row
          (PostgreSQL: a copy of a seeded template; SQLite: a copy of a seeded file). The rate limiter ([limits]) is
          raised to 1,000,000 req/s so it is measured but never answers 429. Rows, per database:
            api-only   ?wait=false to ONE API process that applies nothing: bot.asgi:create under uvicorn, i.e.
                       one process of `backorder serve --workers N` (no applier, no notification worker). The goal.
            serve      ?wait=false to `backorder serve --no-worker`: one process whose background applier applies
                       the events while it answers (what one process alone does).
            baseline   wait=true (the default: each answer waits until its event is applied) to the api-only
                       process, same rate, for --baseline-duration s (5; quick 3).
          An answer later than --timeout s (30; quick 15) counts as an error (TimeoutError), not as a latency.
  outbox  bench/notify.py figure 3 on PostgreSQL (store.outbox.claim in one transaction, record(sent) in another,
          on one held connection with synchronous_commit off, as the dispatcher does; no HTTP), one row a claim
          (--claim-rows-one rows) and notify.batch_size (200) a claim (--claim-rows), by 1 and 2 claimer processes.
          Beside it, bench/notify.py figure 2 (one worker's claim + HTTP send + record, PostgreSQL) and figure 4
          (Apprise json://).
  alert   bench/notify.py figure 1 at --alert-rate (200) order.placed/s for --alert-duration s (20; quick 5) on
          PostgreSQL, latency from the POST's 202 to the last of the event's two webhooks at the fake receiver:
          `serve --no-worker` beside 1 and beside 2 `backorder worker` processes; baseline `serve` alone (its
          in-process applier and worker).
Default about 8 minutes on a quiet machine, --quick about 3 (much longer on a busy one: requests time out,
claims crawl). Writes the figures as JSON to bench/results/ (git-ignored) too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import notify  # noqa: E402
from bench._load_helpers import ScriptProc, commit, goal_word, open_loop  # noqa: E402
from bench._notify_helpers import (  # noqa: E402
    Proc,
    bench_env,
    busy_share,
    conditions,
    drop_database,
    free_port,
    machine_cpu,
    ms,
    new_pg_database,
    pg_backend_cpu,
    proc_cpu,
    scalar,
    table,
    wait_http,
)

GOALS = {
    "intake": "p99 < 50 ms at 500 requests/s, one API process",
    "outbox": ">= 2,000 claims/s one at a time, and in batches of 200 (PostgreSQL)",
    "alert": "p99 < 1 s at 200 events/s, event to webhook",
}
LIMITS = {"BACKORDER_LIMITS__RATE_PER_SECOND": "1000000", "BACKORDER_LIMITS__BURST": "1000000"}
NO_HOOK = "http://127.0.0.1:9/webhook"  # nothing is sent during intake rows: no worker runs


# ----------------------------------------------------------------------------------------------
# The API-only process (`--phase api`): what each process of `backorder serve --workers N` runs
# ----------------------------------------------------------------------------------------------


def phase_api(opts: dict[str, Any]) -> None:
    import uvicorn

    from backorder.config import load_settings
    from bot.asgi import IMPORT_STRING

    level = load_settings().logging.level.lower()
    # The options `backorder serve` passes (backorder/cli.py); the factory builds the app without background threads.
    uvicorn.run(IMPORT_STRING, factory=True, host="127.0.0.1", port=opts["port"], log_config=None,
                access_log=False, log_level=level)


# ----------------------------------------------------------------------------------------------
# 1. Intake
# ----------------------------------------------------------------------------------------------


def bodies(tag: str, n: int, skus: int, first: int = 0) -> list[bytes]:
    return [json.dumps(notify._order(f"{tag}-{i:06d}", i, skus)).encode() for i in range(first, first + n)]


def seeded(kind: str, tmp: Path, skus: int) -> str:
    """A seeded database to copy for each row (notify.seed_template: warehouse, supplier, products, customers)."""
    url = new_pg_database() if kind == "postgresql" else f"sqlite:///{tmp / f'seed-{uuid.uuid4().hex[:8]}.db'}"
    notify.seed_template(url, skus)
    return url


def copy_of(template: str, tmp: Path) -> str:
    if template.startswith("postgresql"):
        return new_pg_database(template=template)
    src = Path(template.removeprefix("sqlite:///"))
    dst = tmp / f"intake-{uuid.uuid4().hex[:8]}.db"
    for suffix in ("", "-wal"):  # the seeding engine was disposed, so the WAL is normally checkpointed away
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")
    return f"sqlite:///{dst}"


def intake_row(args: argparse.Namespace, kind: str, mode: str, template: str, tmp: Path) -> dict[str, Any]:
    url = copy_of(template, tmp)
    port = free_port()
    env = bench_env(url, NO_HOOK, **LIMITS)
    log = tmp / f"{mode}-{kind}-{port}.log"
    proc: Proc = (Proc(["serve", "--no-worker", "--port", str(port)], env, log) if mode == "serve"
                  else ScriptProc([__file__, "--phase", "api", "--opts", json.dumps({"port": port})], env, log))
    wait = mode == "baseline"
    duration = args.baseline_duration if wait else args.duration
    base = f"http://127.0.0.1:{port}"
    target = f"{base}/events?wait={'true' if wait else 'false'}"
    expect = 200 if wait else 202
    tag = f"{mode[:3]}{uuid.uuid4().hex[:6]}"
    res: dict[str, Any] = {"db": kind, "mode": mode, "rate": args.rate, "duration": duration}
    try:
        proc.start()
        wait_http(f"{base}/healthz", proc)
        # Warm-up: connections, the pool, first-call costs. With wait=true only a few, slowly: a second at the full
        # rate would leave a queue of applying requests in the measured window.
        warm_n, warm_rate = (20, 20.0) if wait else (int(args.rate * args.warmup), args.rate)
        warm = asyncio.run(open_loop(target, bodies(f"{tag}w", warm_n, args.skus), warm_rate, args.timeout, expect))
        res["warmup_ok"] = warm["ok"]
        n = int(args.rate * duration)
        load_bodies = bodies(tag, n, args.skus)
        res["loadavg_before"] = os.getloadavg()
        cpu0, pg0 = proc_cpu(proc.pid), pg_backend_cpu(url) if kind == "postgresql" else {}
        m0, t0 = machine_cpu(), time.monotonic()
        res.update(asyncio.run(open_loop(target, load_bodies, args.rate, args.timeout, expect)))
        wall = time.monotonic() - t0
        res["window_seconds"] = wall
        res["server_cpu_seconds"] = proc_cpu(proc.pid) - cpu0
        if kind == "postgresql":
            pg1 = pg_backend_cpu(url)
            res["pg_cpu_seconds"] = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items())
        res["machine_busy"] = busy_share(m0, machine_cpu())
        if not proc.alive():
            raise RuntimeError(f"{' '.join(proc.args)} died during the run:\n{proc.tail()}")
        like = {"p": f"{tag}-%"}
        res["stored"] = int(scalar(url, "SELECT count(*) FROM inbox WHERE event_id LIKE :p", like))
        res["applied"] = int(scalar(url, "SELECT count(*) FROM inbox WHERE event_id LIKE :p AND status <> 'pending'",
                                    like))
        res["stop"] = proc.stop(args.stop_timeout)
        return res
    finally:
        proc.stop(args.stop_timeout)
        drop_database(url)


def part_intake(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    out = []
    for kind in args.db:
        template = seeded(kind, tmp, args.skus)
        try:
            for mode in args.modes:
                r = intake_row(args, kind, mode, template, tmp)
                print(f"  [intake] {kind} {mode}: p99 {ms(r['lat']['99'])}, {r['achieved_rate']:,.0f} req/s, "
                      f"errors {sum(r['errors'].values())}", flush=True)
                out.append(r)
        finally:
            drop_database(template)
    return out


# ----------------------------------------------------------------------------------------------
# 2. Outbox claims (bench/notify.py figures 3, 2 and 4)
# ----------------------------------------------------------------------------------------------


def part_outbox(args: argparse.Namespace, rx: Any, tmp: Path, batch_size: int, lease: float) -> dict[str, Any]:
    out: dict[str, Any] = {"claims": []}
    for batch, rows in ((1, args.claim_rows_one), (batch_size, args.claim_rows)):
        before = os.getloadavg()
        for r in notify.figure_claims(argparse.Namespace(claim_rows=rows, claimers=args.claimers), batch, lease):
            r.update(batch=batch, loadavg_before=before)
            out["claims"].append(r)
    ns = argparse.Namespace(messages=args.messages)
    out["dispatch_loadavg"] = os.getloadavg()
    out["dispatch"] = notify.figure_dispatch(ns, rx, tmp, "postgresql")
    out["apprise_loadavg"] = os.getloadavg()
    out["apprise"] = notify.figure_apprise(ns, rx)
    return out


# ----------------------------------------------------------------------------------------------
# 3. Event to alert (bench/notify.py figure 1's level)
# ----------------------------------------------------------------------------------------------


def part_alert(args: argparse.Namespace, rx: Any, tmp: Path) -> list[dict[str, Any]]:
    ns = argparse.Namespace(events_per_request=args.alert_events_per_request, skus=args.skus,
                            duration=args.alert_duration, grace=args.grace, stop_timeout=args.stop_timeout)
    template = new_pg_database()
    out = []
    try:
        notify.seed_template(template, args.skus)
        for workers in args.alert_workers:
            tag = f"a{workers}-{uuid.uuid4().hex[:4]}"
            res = notify.run_level(ns, template, rx, tmp, args.alert_rate, workers > 0, tag, workers=workers)
            print(f"  [alert] {args.alert_rate}/s, {workers} worker process(es): p99 {ms(res['lat'][99])}, "
                  f"{res['messages_received']:,}/{res['messages_planned']:,} messages", flush=True)
            out.append(res)
    finally:
        drop_database(template)
    return out


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def _per(seconds: float | None, n: int) -> str:
    return "-" if seconds is None or not n else f"{seconds * 1000 / n:.2f}"


def _load(v: Any) -> str:
    return ", ".join(f"{x:.2f}" for x in v) if v else "-"


def report_intake(run: dict[str, Any]) -> list[str]:
    a = run["args"]
    lines = ["", f"### 1. Intake: POST /events (goal: {GOALS['intake']})", "",
             f"Open loop at {a['rate']} requests/s, one order.placed a request (~{run['body_bytes']:.0f} bytes), "
             f"{a['duration']:g} s (baseline {a['baseline_duration']:g} s) after {a['warmup']:g} s of warm-up; "
             "latency from each request's scheduled send time to its answer; rate limiter raised out of the way.",
             ""]
    rows: list[list[Any]] = [["db", "server", "requests", "achieved req/s", "p50", "p90", "p99", "p99.9", "max",
                              "errors", "stored / applied", "server CPU ms/req", "PG CPU ms/req", "client lag max",
                              "load avg before"]]
    label = {"api-only": "api-only, ?wait=false", "serve": "`serve --no-worker`, ?wait=false",
             "baseline": "baseline: api-only, wait=true"}
    for r in run["intake"]:
        lat = r["lat"]
        errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
        rows.append([r["db"], label[r["mode"]], f"{r['requests']:,}", f"{r['achieved_rate']:,.0f}",
                     *(ms(lat[p]) for p in ("50", "90", "99", "99.9", "100")), errs,
                     f"{r['stored']:,} / {r['applied']:,}", _per(r["server_cpu_seconds"], r["stored"]),
                     _per(r.get("pg_cpu_seconds"), r["stored"]), ms(r["send_lag_max"]),
                     f"{r['loadavg_before'][0]:.2f}"])
    lines.append(table(rows))
    lines.append("")
    for r in run["intake"]:
        if r["mode"] == "api-only":
            met = r["lat"]["99"] < 0.050 and not r["errors"] and r["achieved_rate"] >= 0.98 * r["rate"]
            base = next((b for b in run["intake"] if b["db"] == r["db"] and b["mode"] == "baseline"), None)
            lines.append(f"- {r['db']}: p99 {ms(r['lat']['99'])} at {r['achieved_rate']:,.0f} req/s, "
                         f"{sum(r['errors'].values())} errors: goal {goal_word(met)}"
                         + (f"; baseline wait=true p99 {ms(base['lat']['99'])} at "
                            f"{base['achieved_rate']:,.0f} req/s answered, {sum(base['errors'].values())} errors"
                            if base else ""))
    lines += ["", "\"achieved\" = requests answered OK / (last answer - first scheduled send); \"stored / applied\": "
              "this row's events in the inbox at the end, and how many of them were applied by then; \"CPU ms/req\": "
              "CPU seconds the server process (and this database's PostgreSQL backends) used from the first "
              "scheduled send to the last answer, per event stored (so it includes what the server spent on requests "
              "that timed out, and for `serve` what its applier spent): 1,000 / that is about what one process "
              "can take per second with a core to itself; \"client lag\": how late the load generator sent "
              "(included in the latencies; over a few ms, the client itself was short of CPU)."]
    return lines


def report_outbox(run: dict[str, Any]) -> list[str]:
    o = run["outbox"]
    lines = ["", f"### 2. Outbox claims on PostgreSQL (goal: {GOALS['outbox']})", "",
             "Each round: `store.outbox.claim` (UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING) in one transaction, "
             "`store.outbox.record` (sent) in another, on one held connection (store.held) with synchronous_commit "
             "off, as the dispatcher does; claimers are processes; no HTTP (bench/notify.py figure 3).", ""]
    rows: list[list[Any]] = [["rows per claim", "claimers", "rows", "seconds", "rows/s claimed + recorded",
                              "transactions/s", "claimer CPU ms/row", "exact", "load avg before"]]
    for r in o["claims"]:
        rows.append([r["batch"], r["claimers"], f"{r['rows']:,}", f"{r['seconds']:.2f}", f"{r['rate']:,.0f}",
                     f"{2 * r['rounds'] / r['seconds']:,.0f}", _per(r.get("cpu_seconds"), r["claimed"]),
                     "yes" if r["exact"] else "NO", f"{r['loadavg_before'][0]:.2f}"])
    d, ap = o["dispatch"], o["apprise"]
    rows.append(["baseline: our dispatcher, claim + HTTP send + record (notify fig. 2)", 1,
                 f"{d['count']:,}", f"{d['seconds']:.2f}", f"{d['rate']:,.0f} msg/s", "-",
                 _per(d["cpu_seconds"], d["count"]), "yes" if d["exact"] else "NO",
                 f"{o['dispatch_loadavg'][0]:.2f}"])
    rows.append(["baseline: Apprise json://, one notify() each, no database (notify fig. 4)", 1,
                 f"{ap['count']:,}", f"{ap['seconds']:.2f}", f"{ap['rate']:,.0f} msg/s", "-",
                 _per(ap["cpu_seconds"], ap["count"]), "yes" if ap["exact"] else "NO",
                 f"{o['apprise_loadavg'][0]:.2f}"])
    lines.append(table(rows))
    lines.append("")
    # Each claimer count gets its verdict: the goal names no number of claimers, and workers scale out by
    # design (SKIP LOCKED), but one claimer alone is the harder reading and is printed as such.
    for r in sorted(o["claims"], key=lambda r: (r["batch"], r["claimers"])):
        lines.append(f"- {r['batch']} row(s) a claim, {r['claimers']} claimer(s): {r['rate']:,.0f} rows/s: goal "
                     f"{goal_word(r['rate'] >= 2000 and r['exact'])}")
    return lines


def report_alert(run: dict[str, Any]) -> list[str]:
    a = run["args"]
    lines = ["", f"### 3. Event to alert (goal: {GOALS['alert']})", "",
             f"{a['alert_duration']:g} s open loop (bench/notify.py figure 1) of order.placed for SKUs without stock "
             f"on PostgreSQL, each making 2 webhooks; latency from the POST's 202 to the last of the event's webhooks "
             f"at the fake receiver; grace {a['grace']:g} s after the last POST.", ""]
    rows: list[list[Any]] = [["setup", "offered ev/s", "ev/request", "achieved ev/s", "applied ev/s", "msgs received",
                              "p50", "p95", "p99", "max", "not arrived", "lost", "dup", "POST errors",
                              "load avg before"]]
    for r in run["alert"]:
        setup = (f"`serve --no-worker` + {r['workers']} `backorder worker`" if r["separate"]
                 else "baseline: `serve` alone (in-process applier + worker)")
        missing = r["not_arrived"] + r["not_planned"]
        errs = ", ".join(f"{k}: {v}" for k, v in (r["post_errors"] or {}).items()) or "0"
        rows.append([setup, r["rate"], r["per_request"], f"{r['achieved_ev_s']:,.0f}", f"{r['applied_ev_s']:,.0f}",
                     f"{r['messages_received']:,} / {r['messages_planned']:,}", ms(r["lat"][50]), ms(r["lat"][95]),
                     ms(r["lat"][99]), ms(r["lat"][100]),
                     f"{missing:,}" + (f" ({r['not_planned']:,} not applied)" if r["not_planned"] else ""),
                     r["lost"], r["duplicates"], errs, f"{r['loadavg_before'][0]:.2f}"])
    lines.append(table(rows))
    lines.append("")
    for r in run["alert"]:
        if r["separate"]:
            missing = r["not_arrived"] + r["not_planned"]
            met = r["lat"][99] < 1.0 and missing == 0 and r["lost"] == 0
            lines.append(f"- {r['workers']} worker(s): p99 {ms(r['lat'][99])}, {missing:,} events not delivered "
                         f"within the grace: goal {goal_word(met)}")
    lines += ["", "Breakdown (p50 / p99): accepted -> applied, applied -> last webhook; CPU share over the window "
              "(1.00 = one core):", ""]
    for r in run["alert"]:
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_share"].items())
        ours = sum(v for k, v in r["cpu_share"].items() if k == "serve" or k.startswith("worker"))
        pg = r["cpu_share"].get("postgres (this db)", 0.0)
        per = r["window_seconds"] * 1000 / max(1, r["events_applied"])
        lines.append(f"- {r['workers']} worker(s){'' if r['separate'] else ' (serve alone)'}: "
                     f"{ms(r['to_apply'][50])} / {ms(r['to_apply'][99])}; {ms(r['apply_to_last'][50])} / "
                     f"{ms(r['apply_to_last'][99])}; applied {r['events_applied']:,} of {r['events_accepted']:,}, "
                     f"inbox pending at end {r['inbox_pending_at_end']:,}; CPU {cpu}; per event applied: "
                     f"{ours * per:.1f} ms of serve + worker CPU, {pg * per:.1f} ms of PostgreSQL; machine busy "
                     f"{r['machine_busy']:.0%}")
    lines += ["", "Not \"arrived\": events whose webhooks had not all reached the receiver by the end of the grace "
              "(\"not applied\": still in the inbox); they are left out of the percentiles, so a row with many is "
              "worse than its p99 says. Reference (BENCHMARKS.md, 2026-11-22): `serve --no-worker` + 1 worker at "
              "200 ev/s applied 120 ev/s, p50 6,084 ms, p99 13,188 ms."]
    return lines


def report(run: dict[str, Any]) -> str:
    c, a = run["conditions"], run["args"]
    lines = ["", "## Load benchmark (bench/load.py" + (" --quick)" if a["quick"] else ")"), "",
             f"- date: {c['date']}; commit {run['commit']}; machine: {c['cpu_count']} cores ({c['cpu']}), "
             f"{c['memory_gb']} GB RAM; load average at start {_load(c['loadavg_at_start'])}, at end "
             f"{_load(run.get('loadavg_at_end'))}",
             f"- {c['platform']}; Python {c['python']}; PostgreSQL {c['postgresql']} "
             f"({', '.join(f'{k}={v}' for k, v in c['pg_settings'].items())}); SQLite {c['sqlite']} (WAL)",
             f"- aiohttp {c['aiohttp']}, SQLAlchemy {c['sqlalchemy']}, psycopg {c['psycopg']}, FastAPI "
             f"{c['fastapi']}, uvicorn {c['uvicorn']}, apprise {c['apprise']}",
             "- everything on one machine: server processes, PostgreSQL, the load generator and the receiver share "
             f"the {c['cpu_count']} cores; fresh databases, dropped after"]
    for part, fn in (("intake", report_intake), ("outbox", report_outbox), ("alert", report_alert)):
        if part in run:
            lines += fn(run)
    for part, why in run.get("failed", {}).items():
        lines += ["", f"**{part}: FAILED**, no figures:", "", "```", why, "```"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short check run (~3 min when quiet)")
    ap.add_argument("--only", default="intake,outbox,alert", help="parts to run")
    ap.add_argument("--db", default="postgresql,sqlite", help="databases of the intake part")
    ap.add_argument("--modes", default="api-only,serve,baseline", help="intake rows (api-only, serve, baseline)")
    ap.add_argument("--rate", type=float, default=500.0, help="intake requests/s")
    ap.add_argument("--duration", type=float, default=None, help="intake seconds measured (25; quick 6)")
    ap.add_argument("--baseline-duration", type=float, default=None, help="wait=true seconds (5; quick 3)")
    ap.add_argument("--warmup", type=float, default=None, help="intake seconds not measured (2; quick 1)")
    ap.add_argument("--timeout", type=float, default=None, help="client timeout of one request, s (30; quick 15)")
    ap.add_argument("--skus", type=int, default=500)
    ap.add_argument("--claim-rows-one", type=int, default=None, help="rows claimed one at a time (20,000; quick 2,000)")
    ap.add_argument("--claim-rows", type=int, default=None, help="rows claimed in batches (50,000; quick 10,000)")
    ap.add_argument("--claimers", default="1,2")
    ap.add_argument("--messages", "-n", type=int, default=None, help="dispatch and Apprise N (20,000; quick 2,000)")
    ap.add_argument("--alert-rate", type=int, default=200)
    ap.add_argument("--alert-workers", default="0,1,2", help="worker processes beside serve; 0: serve alone")
    ap.add_argument("--alert-duration", type=float, default=None, help="seconds (20; quick 5)")
    ap.add_argument("--alert-events-per-request", type=int, default=0, help="0: rate/50 (50 requests/s)")
    ap.add_argument("--grace", type=float, default=None, help="alert: seconds after the last POST (20; quick 8)")
    ap.add_argument("--stop-timeout", type=float, default=5.0)
    ap.add_argument("--phase", choices=["api"], help=argparse.SUPPRESS)
    ap.add_argument("--opts", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    q = args.quick
    for name, full, quick in (("duration", 25.0, 6.0), ("baseline_duration", 5.0, 3.0), ("warmup", 2.0, 1.0),
                              ("claim_rows_one", 20_000, 2_000), ("claim_rows", 50_000, 10_000),
                              ("messages", 20_000, 2_000), ("alert_duration", 20.0, 5.0), ("grace", 20.0, 8.0),
                              ("timeout", 30.0, 15.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    args.only = [x for x in args.only.split(",") if x]
    args.db = [x for x in args.db.split(",") if x]
    args.modes = [x for x in args.modes.split(",") if x]
    args.claimers = [int(x) for x in args.claimers.split(",") if x]
    args.alert_workers = [int(x) for x in args.alert_workers.split(",") if x]
    return args


def main() -> None:
    args = parse_args()
    if args.phase:
        phase_api(json.loads(args.opts))
        return
    from backorder.config import load_settings
    from tests.fakes.webhook_receiver import WebhookReceiverProcess

    # This process seeds and reads settings too: the environment of the children, nothing from a config file.
    for key in [k for k in os.environ if k.startswith("BACKORDER_") and k != "BACKORDER_BENCH_PG"]:
        del os.environ[key]
    os.environ.update({k: v for k, v in bench_env("sqlite://", NO_HOOK).items()
                       if k.startswith("BACKORDER_") and k not in ("BACKORDER_DATABASE_URL", "BACKORDER_WEBHOOK__URL")})
    settings = load_settings(database_url="sqlite://")
    run: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k not in ("phase", "opts")},
                           "conditions": conditions(), "commit": commit(),
                           "body_bytes": len(bodies("x" * 9, 1, args.skus)[0])}
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="backorder-bench-load-") as tmp, \
            WebhookReceiverProcess(secret=notify.SECRET) as rx:
        run["part_seconds"], run["failed"] = {}, {}
        parts = {"intake": lambda: part_intake(args, Path(tmp)),
                 "outbox": lambda: part_outbox(args, rx, Path(tmp), settings.notify.batch_size,
                                               settings.notify.lease_seconds),
                 "alert": lambda: part_alert(args, rx, Path(tmp))}
        for name, fn in parts.items():
            if name in args.only:
                t0 = time.monotonic()
                try:
                    run[name] = fn()
                except Exception as exc:  # one part failing must not lose the figures of the others
                    traceback.print_exc()
                    run["failed"][name] = f"{type(exc).__name__}: {str(exc)[:2000]}"
                run["part_seconds"][name] = time.monotonic() - t0
    run["seconds"] = time.monotonic() - t_start
    run["loadavg_at_end"] = os.getloadavg()
    print(report(run))
    spent = ", ".join(f"{k} {v:.0f} s" for k, v in run["part_seconds"].items())
    print(f"\nwhole run {run['seconds']:.0f} s ({spent})")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"load-{'quick' if args.quick else 'full'}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(run, indent=2, default=str))
    print(f"written: {path}")
    if run["failed"]:
        sys.exit(f"failed: {', '.join(run['failed'])}")


if __name__ == "__main__":
    main()
