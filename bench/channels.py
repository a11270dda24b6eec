"""Benchmark of the chat front doors and channel senders (not a test): prints its figures and the conditions.

    python bench/channels.py [--db sqlite|postgresql|both] [--n 300] [--alerts 2000]

Per database (each a fresh scratch database: PostgreSQL beside BACKORDER_BENCH_PG, SQLite a temp file),
against the fakes of tests/fakes/ running in THIS process on 127.0.0.1 (FakeSlack, BotConnector,
FakeTwilio), with every rate limit lifted ([notify] rate_per_destination = {}, Twilio sms_mps and
whatsapp_mps 100,000) so the figures are the code's, not the pacing's:

  1 inbound  `python -m backorder serve` (uvicorn, its in-process notification worker and applier: what
             production runs) in a child process on a loopback port; a small catalog is seeded with
             POST /events. Then --n sequential questions per channel over one keep-alive HTTP connection,
             each signed as the vendor signs it and with its own event id / activity id / MessageSid:
             "who is waiting on KTL-200?" from an unlinked staff user in a Slack DM and in a Teams personal
             chat, "where is my order 1042?" from the customer's phone by SMS and by WhatsApp. Ack = the
             HTTP round trip of the inbound POST; end to end = from just before the POST until the fake
             records the answer (Slack chat.postMessage, the Teams reply activity, Twilio Messages.json, the
             last after the outbox and the server's worker). 10 questions per channel warm up first (Bolt's
             auth.test, the catalog cache, connection pools) and are not counted.
  2 outbound --alerts pending procurement_task rows per channel (slack, teams, whatsapp, sms), payload and body
             from notifiers.render.render_notice, one task each, spread over --alerts/10 destinations (Teams:
             conversation references stored for each; WhatsApp: an inbound message from each number, so all
             are inside the 24-hour window); then services.worker.drain_outbox(ctx) in a child process, timed
             around that call only. The fake must have received exactly --alerts messages and the outbox must
             say sent for each, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench._db import PG_ADMIN, drop_database, new_database  # noqa: E402
from bench._machine import cpu_model, package_version, pg_version  # noqa: E402
from bench._notify_helpers import Proc, free_port, percentile, run_phase, table, wait_http  # noqa: E402

SLACK_TOKEN = "xoxb-1234-5678-backorder"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ACCOUNT = "AC" + "a1" * 16
TWILIO_TOKEN = "twilio-auth-token-bench"
PUBLIC = "https://bot.example.com"  # only signed over, never called: Twilio signs the public URL
SMS_FROM, WA_FROM = "+15005550006", "+14155238886"
ADA = "+447911123456"
WARMUP = 10
REPLY_TIMEOUT_S = 15.0
LIFTED_MPS = 100_000
CHANNELS = ("slack", "teams", "sms", "whatsapp")


# ----------------------------------------------------------------------------------------------
# Settings (environment of the server and the drain child; this process reads the same)
# ----------------------------------------------------------------------------------------------


def channel_env(url: str, slack_api: str, twilio_api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_") or k == "BACKORDER_BENCH_PG"}
    env.update({
        "BACKORDER_CONFIG": os.devnull,
        "BACKORDER_DATABASE_URL": url,
        "BACKORDER_SLACK__BOT_TOKEN": SLACK_TOKEN,
        "BACKORDER_SLACK__SIGNING_SECRET": SLACK_SECRET,
        "BACKORDER_SLACK__API_BASE_URL": slack_api,
        "BACKORDER_TEAMS__ANONYMOUS": "true",  # no JWTs: the fake Bot Connector posts unauthenticated
        "BACKORDER_STAFF__UNLINKED_READ": "true",  # the bench's Slack and Teams askers are linked to no one
        "BACKORDER_TWILIO__ACCOUNT_SID": ACCOUNT,
        "BACKORDER_TWILIO__AUTH_TOKEN": TWILIO_TOKEN,
        "BACKORDER_TWILIO__API_BASE_URL": twilio_api,
        "BACKORDER_TWILIO__PUBLIC_BASE_URL": PUBLIC,
        "BACKORDER_TWILIO__SMS_FROM": SMS_FROM,
        "BACKORDER_TWILIO__WHATSAPP_FROM": WA_FROM,
        "BACKORDER_TWILIO__SMS_MPS": str(LIFTED_MPS),
        "BACKORDER_TWILIO__WHATSAPP_MPS": str(LIFTED_MPS),
        "BACKORDER_NOTIFY__RATE_PER_DESTINATION": "{}",
        "BACKORDER_NOTIFY__RULES": '{"ops_digest": {"enabled": false}}',
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    })
    return env


def use_env(env: dict[str, str]) -> None:
    """This process reads settings too (checks, the seeding of references): the children's environment."""
    for key in [k for k in os.environ if k.startswith("BACKORDER_") and k != "BACKORDER_BENCH_PG"]:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith("BACKORDER_")})


# ----------------------------------------------------------------------------------------------
# Child phase: drain the outbox (what `backorder worker --once` runs), timed around the call only
# ----------------------------------------------------------------------------------------------


def phase_drain(opts: dict[str, Any]) -> dict[str, Any]:
    from backorder.config import load_settings
    from services.context import Context
    from services.worker import drain_outbox

    ctx = Context.from_settings(load_settings())
    with ctx.engine.connect() as conn:  # the pool's first connection is not part of the figure
        conn.execute(text("SELECT 1"))
    t0 = time.perf_counter()
    sent = asyncio.run(drain_outbox(ctx))
    seconds = time.perf_counter() - t0
    ctx.engine.dispose()
    return {"sent": sent, "seconds": seconds}


PHASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"drain": phase_drain}


# ----------------------------------------------------------------------------------------------
# Figure 1: inbound questions through the server
# ----------------------------------------------------------------------------------------------


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-02T08:00:00Z", "source": "bench",
            "data": data}


def catalog() -> list[dict[str, Any]]:
    """One warehouse, two products, the asking customer (order 1042) and 20 others waiting on KTL-200."""
    seed = [
        ev("w", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "lead_time_days": 9}),
        ev("p2", "product.upserted", {"sku": "TST-4", "name": "Four-slice toaster", "price": 30}),
        ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north",
                                       "contacts": {"phone": ADA, "whatsapp": ADA},
                                       "preferences": {"channels": ["console"]}}),
        ev("o1042", "order.placed", {"order_id": "1042", "customer_id": "C1", "lines": [
            {"line_id": "1", "sku": "KTL-200", "qty": 2, "unit_price": 40}]}),
    ]
    for k in range(20):
        seed += [ev(f"c{k + 2}", "customer.upserted", {"customer_id": f"C{k + 2}", "name": f"Customer {k + 2}",
                                                        "region": "north", "preferences": {"channels": ["console"]}}),
                 ev(f"o{2000 + k}", "order.placed", {"order_id": str(2000 + k), "customer_id": f"C{k + 2}",
                                                     "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 1 + k % 3,
                                                                "unit_price": 40}]})]
    return seed


def wait_until(count: Callable[[], int], want: int, what: str) -> None:
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while count() < want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {count()} of {want} answers arrived within {REPLY_TIMEOUT_S:.0f} s")
        time.sleep(0.001)  # polling only decides when we look: arrival times are the fake's own stamps


def ask_all(base: str, fakes: Any, n: int) -> dict[str, dict[str, list[float]]]:
    """Every channel's questions, sequentially: {channel: {"ack": [...], "e2e": [...]}} in seconds."""
    import requests

    from tests.fakes.twilio_api import inbound_sms, inbound_whatsapp

    slack, signer, bc, twilio = fakes
    out: dict[str, dict[str, list[float]]] = {}

    def run(channel: str, build: Callable[[int], tuple[str, Any, dict[str, str]]], ok_status: int,
            answered: Callable[[int], float], check: Callable[[int], None]) -> None:
        acks: list[float] = []
        e2e: list[float] = []
        with requests.Session() as session:
            for i in range(WARMUP + n):
                path, body, headers = build(i)
                t0 = time.monotonic()
                r = session.post(base + path, data=body, headers=headers, timeout=30)
                t1 = time.monotonic()
                if r.status_code != ok_status:
                    raise RuntimeError(f"{channel} question {i}: HTTP {r.status_code}: {r.text[:300]}")
                arrived = answered(i)
                check(i)
                if i >= WARMUP:
                    acks.append(t1 - t0)
                    e2e.append(arrived - t0)
        out[channel] = {"ack": acks, "e2e": e2e}

    # Slack: a DM from an unlinked staff user (reads allowed); Bolt acks, then answers with chat.postMessage.
    slack_before = len(slack.calls("chat.postMessage"))

    def slack_build(i: int) -> tuple[str, Any, dict[str, str]]:
        ts = f"1767225600.{i + 1:06d}"
        dm = {"type": "message", "channel": "D0BENCH", "user": "U0BENCH", "text": "who is waiting on KTL-200?",
              "ts": ts, "event_ts": ts, "channel_type": "im", "client_msg_id": f"m-{uuid.uuid4()}",
              "team": "T0BACKORD"}
        body, headers = signer.event(dm, event_id=f"EvBench{uuid.uuid4().hex[:12]}")
        return "/slack/events", body, headers

    def slack_answered(i: int) -> float:
        return float(slack.wait_for("chat.postMessage", slack_before + i + 1, timeout=REPLY_TIMEOUT_S)[
            slack_before + i].monotonic)

    def slack_check(i: int) -> None:
        call = slack.calls("chat.postMessage")[slack_before + i]
        if call.args.get("channel") != "D0BENCH" or "KTL-200" not in call.args.get("text", ""):
            raise RuntimeError(f"slack answer {i} is not the expected one: {call.args}")

    run("slack", slack_build, 200, slack_answered, slack_check)

    # Teams: a personal chat; the SDK posts the reply during the turn, before our 202.
    teams_before = len(bc.posts)

    def teams_build(i: int) -> tuple[str, Any, dict[str, str]]:
        activity = bc.message("who is waiting on KTL-200?", conversation="a:1bench-personal", aad="aad-bench",
                              id=f"1{uuid.uuid4().int % 10**15:015d}")
        return "/api/messages", json.dumps(activity).encode(), {"Content-Type": "application/json"}

    def teams_answered(i: int) -> float:
        bc.wait_for(teams_before + i + 1, timeout=REPLY_TIMEOUT_S)
        return float(bc.posts[teams_before + i].monotonic)

    def teams_check(i: int) -> None:
        post = bc.posts[teams_before + i]
        if post.status != 200 or "KTL-200" not in post.activity.get("text", ""):
            raise RuntimeError(f"teams answer {i} is not the expected one: {post}")

    run("teams", teams_build, 202, teams_answered, teams_check)

    # SMS and WhatsApp: the customer asks from her phone; the answer goes through the outbox and the worker.
    for channel, builder, to in (("sms", inbound_sms, ADA), ("whatsapp", inbound_whatsapp, f"whatsapp:{ADA}")):
        before = len([m for m in twilio.messages if m.form.get("To") == to])

        def sent(to: str = to) -> list[Any]:
            return [m for m in twilio.messages if m.form.get("To") == to]

        def build(i: int, builder: Any = builder) -> tuple[str, Any, dict[str, str]]:
            path, form, headers = builder(TWILIO_TOKEN, PUBLIC, frm=ADA, body="where is my order 1042?",
                                          account_sid=ACCOUNT)
            return path, form, headers

        def answered(i: int, before: int = before, sent: Callable[[], list[Any]] = sent,
                     channel: str = channel) -> float:
            wait_until(lambda: len(sent()), before + i + 1, channel)
            return float(sent()[before + i].monotonic)

        def check(i: int, before: int = before, sent: Callable[[], list[Any]] = sent, channel: str = channel) -> None:
            msg = sent()[before + i]
            if "1042" not in msg.form.get("Body", "") or not msg.auth_ok:
                raise RuntimeError(f"{channel} answer {i} is not the expected one: {msg.form}")

        run(channel, build, 200, answered, check)
    return out


def figure_inbound(url: str, env: dict[str, str], fakes: Any, n: int, work: Path) -> dict[str, Any]:
    import requests

    port = free_port()
    server = Proc(["serve", "--host", "127.0.0.1", "--port", str(port)], env, work / f"serve-{port}.log").start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", server)
        r = requests.post(base + "/events", json=catalog(), timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"seeding the catalog: HTTP {r.status_code}: {r.text[:300]}")
        t0 = time.monotonic()
        results = ask_all(base, fakes, n)
        seconds = time.monotonic() - t0
    except BaseException:
        print(server.tail(), file=sys.stderr)
        raise
    finally:
        stopped = server.stop(10)
    return {"channels": results, "seconds": seconds, "stopped": stopped}


# ----------------------------------------------------------------------------------------------
# Figure 2: outbound alerts through drain_outbox
# ----------------------------------------------------------------------------------------------


def destination(channel: str, k: int) -> str:
    if channel == "slack":
        return f"C0BENCH{k:04d}"
    if channel == "teams":
        return f"19:bench{k:04d}@thread.tacv2"
    return f"+44770090{k:04d}"


def alert_rows(channel: str, n: int, destinations: int, run: str) -> list[dict[str, Any]]:
    """Pending procurement_task rows as the planner writes them: card payload and body from the templates."""
    from notifiers.render import render_notice

    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        sku = f"SKU-{i % 500:03d}"
        task = {"id": i + 1, "kind": "expedite_po", "sku": sku, "title": f"Expedite PO-{i + 7} for {sku}",
                "severity": "high", "detail": {"po_id": f"PO-{i + 7}", "waiting_units": 30, "lines": ["L1", "L2"]}}
        rendered = render_notice("procurement_task", channel, "en", {"task": task})
        rows.append({
            "idempotency_key": f"bench:{run}:{channel}:{i}", "kind": "procurement_task", "channel": channel,
            "recipient": destination(channel, i % destinations), "audience": "staff", "sku": sku,
            "role": "procurement", "line_ids": [], "locale": "en", "body": rendered.body,
            "payload": rendered.card or {}, "facts": {"task": task}, "fallback": [], "urgent": False,
            "status": "pending", "due_at": now, "attempts": 0, "cause": f"bench:{run}:{i}",
            "created_at": now, "updated_at": now, "occurred_at": now,
        })
    return rows


def prepare_destinations(url: str, channel: str, destinations: int, bc: Any) -> None:
    """Teams: a conversation reference per conversation; WhatsApp: an inbound message per number (24 h window)."""
    from microsoft_agents.activity import Activity

    from bot.teams.agent import reference_json
    from store.chat_state import first_delivery, save_ref
    from store.db import make_engine, unit_of_work
    from tests.fakes.twilio_api import new_sid

    if channel not in ("teams", "whatsapp"):
        return
    engine = make_engine(url)
    now = datetime.now(UTC)
    try:
        with unit_of_work(engine) as conn:
            for k in range(destinations):
                address = destination(channel, k)
                if channel == "teams":
                    activity = bc.message("hello", conversation=address, conversation_type="channel",
                                          aad=f"aad-bench-{k}")
                    save_ref(conn, "teams", address, reference_json(Activity.model_validate(activity)), now)
                else:
                    first_delivery(conn, "whatsapp", new_sid(), address, now)
    finally:
        engine.dispose()


def received(channel: str, fakes: Any) -> int:
    slack, _, bc, twilio = fakes
    if channel == "slack":
        return len([c for c in slack.calls("chat.postMessage") if str(c.args.get("channel", "")).startswith("C0BENCH")])
    if channel == "teams":
        return len([p for p in bc.posts if p.status == 200 and "bench" in (p.conversation_id or "")])
    prefix = "whatsapp:+44770090" if channel == "whatsapp" else "+44770090"
    return len([m for m in twilio.messages if m.form.get("To", "").startswith(prefix)])


def outbox_status(url: str, channel: str, run: str) -> dict[str, int]:
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM outbox WHERE channel = :c AND cause LIKE :p "
                                     "GROUP BY status"), {"c": channel, "p": f"bench:{run}:%"}).all()
    finally:
        eng.dispose()
    return {str(s): int(k) for s, k in rows}


def figure_outbound(url: str, env: dict[str, str], fakes: Any, alerts: int) -> dict[str, Any]:
    from bench._notify_helpers import insert_outbox

    destinations = max(1, alerts // 10)
    run = uuid.uuid4().hex[:8]
    out: dict[str, Any] = {"destinations": destinations}
    twilio = fakes[3]
    for channel in CHANNELS:
        prepare_destinations(url, channel, destinations, fakes[2])
        rows = alert_rows(channel, alerts, destinations, run)
        insert_outbox(url, rows)
        before = received(channel, fakes)
        contents_before = len(twilio.contents)
        res = run_phase(str(Path(__file__).resolve()), "drain", {}, env, timeout=600)
        got = received(channel, fakes) - before
        status = outbox_status(url, channel, run)
        if got != alerts or status.get("sent", 0) != alerts:
            raise RuntimeError(f"{channel}: the fake received {got} of {alerts} alerts; outbox says {status}; "
                               f"drain_outbox returned {res['sent']}")
        out[channel] = {**res, "received": got, "outbox": status, "rate": alerts / res["seconds"],
                        "contents": len(twilio.contents) - contents_before}
    return out


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def ms(v: float) -> str:
    return f"{v * 1000:,.1f}"


def latency_row(db: str, channel: str, what: str, values: Sequence[float]) -> list[str]:
    s = sorted(values)
    return [db, channel, what, str(len(s)), ms(percentile(s, 50)), ms(percentile(s, 95)), ms(percentile(s, 99)),
            ms(s[-1])]


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]], started: str, seconds: float) -> str:
    from backorder.config import load_settings

    s = load_settings(database_url="sqlite://")
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    versions = ", ".join(f"{d} {package_version(d)}" for d in (
        "fastapi", "uvicorn", "sqlalchemy", "psycopg", "slack-bolt", "slack-sdk", "twilio",
        "microsoft-agents-hosting-core", "aiohttp", "requests"))
    lines = [
        f"# Chat front doors and channel senders (bench/channels.py), {started}",
        "",
        f"Command: python bench/channels.py --db {args.db} --n {args.n} --alerts {args.alerts}",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GB RAM, "
        f"{platform.platform()}; load average at start {', '.join(f'{x:.2f}' for x in args.load_at_start)}",
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version} (temp file, WAL); "
        f"PostgreSQL {pg_version(PG_ADMIN)} (127.0.0.1:5432, stock settings, fresh database per run); {versions}",
        f"N = {args.n} questions per channel (after {WARMUP} warm-up questions, not counted); "
        f"alerts = {args.alerts} per channel; notify batch_size {s.notify.batch_size}, "
        f"concurrency {s.notify.concurrency}; rate limits lifted (rate_per_destination {{}}, "
        f"Twilio sms_mps/whatsapp_mps {LIFTED_MPS:,}).",
        "Fakes (tests/fakes: FakeSlack, BotConnector, FakeTwilio) run in threads of the bench process, on 127.0.0.1; "
        "they share its interpreter with the HTTP client of figure 1 (which waits while the server works).",
        "",
        "## 1. Inbound answers (ms)",
        "",
        "Server: `python -m backorder serve` (uvicorn, in-process notification worker and applier) in a child "
        "process on a loopback port, real HTTP/1.1 keep-alive (requests.Session), sequential questions. "
        "Slack and Teams: \"who is waiting on KTL-200?\" from an unlinked staff user (DM / personal chat); "
        "SMS and WhatsApp: \"where is my order 1042?\" from the customer's number. ack = HTTP round trip of the "
        "inbound POST; e2e = POST sent -> the fake records the answer (Slack chat.postMessage after Bolt's ack; "
        "Teams: the reply is posted inside the turn, before the 202, so e2e < ack; Twilio: via the outbox row "
        "and the server's worker, kicked by the request).",
        "",
    ]
    rows = [["db", "channel", "measure", "n", "p50", "p95", "p99", "max"]]
    for db, res in results.items():
        for channel in CHANNELS:
            got = res["inbound"]["channels"][channel]
            rows.append(latency_row(db, channel, "ack", got["ack"]))
            rows.append(latency_row(db, channel, "end to end", got["e2e"]))
    lines.append(table(rows))
    lines += ["", "Figure 1 wall time: " + "; ".join(
        f"{db} {res['inbound']['seconds']:.1f} s (server stopped in {res['inbound']['stopped'].get('seconds', 0):.1f} s"
        f"{', KILLED' if res['inbound']['stopped'].get('killed') else ''})" for db, res in results.items())]
    lines += [
        "",
        "## 2. Outbound alerts: services.worker.drain_outbox(ctx)",
        "",
        f"{args.alerts} pending procurement_task rows per channel (card payload and body from "
        "notifiers.render.render_notice; a distinct task per row, so its buttons carry its own task id), over "
        f"{max(1, args.alerts // 10)} destinations per channel (Slack channel ids; Teams channel conversations "
        "with stored references; phone numbers, each with a recent inbound WhatsApp message so all are inside the "
        "24-hour window). Timed inside a child process around the drain_outbox call only (its digest check and "
        "every claim, send and record; not the interpreter's start). Must match: fake received = outbox sent = "
        "alerts.",
        "",
    ]
    rows = [["db", "channel", "alerts", "seconds", "msg/s", "fake received", "outbox", "API calls per alert"]]
    for db, res in results.items():
        for channel in CHANNELS:
            r = res["outbound"][channel]
            calls = "1 (chat.postMessage)" if channel == "slack" else "1 (activity POST)" if channel == "teams" \
                else "1 (Messages.json)" if channel == "sms" else \
                f"{1 + r['contents'] / args.alerts:.2f} (Messages.json + {r['contents']:,} Content creates)"
            rows.append([db, channel, f"{args.alerts:,}", f"{r['seconds']:.2f}", f"{r['rate']:,.0f}",
                         f"{r['received']:,}", ", ".join(f"{k} {v:,}" for k, v in sorted(r["outbox"].items())), calls])
    lines.append(table(rows))
    lines += ["", "Not measured: real vendor latency and their rate limits (the fakes answer at once; limits were "
              "lifted), Teams JWT validation (anonymous mode), Slack user DMs (conversations.open) and "
              "WhatsApp template sends outside the window.", "",
              f"whole run {seconds:.0f} s; load average at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------


def run_db(kind: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from tests.fakes.bot_connector import BotConnector
    from tests.fakes.slack_api import FakeSlack, SlackSigner
    from tests.fakes.twilio_api import FakeTwilio

    url = new_database(kind, work, "bench_channels")
    bc = BotConnector()
    try:
        with FakeSlack(SLACK_TOKEN) as slack, bc, FakeTwilio(ACCOUNT, TWILIO_TOKEN) as twilio:
            env = channel_env(url, slack.api_url, twilio.url)
            use_env(env)
            from backorder.config import load_settings

            if load_settings().notify.rate_per_destination:
                raise RuntimeError("rate_per_destination was not lifted by the environment")
            fakes = (slack, SlackSigner(SLACK_SECRET), bc, twilio)
            print(f"[{kind}] figure 1: {args.n} questions per channel ...", file=sys.stderr, flush=True)
            inbound = figure_inbound(url, env, fakes, args.n, work)
            print(f"[{kind}] figure 2: {args.alerts} alerts per channel ...", file=sys.stderr, flush=True)
            outbound = figure_outbound(url, env, fakes, args.alerts)
        return {"inbound": inbound, "outbound": outbound}
    finally:
        drop_database(url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--n", type=int, default=300, help="questions per channel (figure 1)")
    ap.add_argument("--alerts", type=int, default=2000, help="outbound messages per channel (figure 2)")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--opts", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](json.loads(args.opts))))
        return
    if args.n < 1 or args.alerts < 1:
        ap.error("--n and --alerts must be at least 1")
    args.load_at_start = os.getloadavg()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-channels-") as tmp:
        for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
            results[kind] = run_db(kind, args, Path(tmp))
    print(report(args, results, started, time.monotonic() - t0))


if __name__ == "__main__":
    main()
