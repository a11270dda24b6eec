"""A `backorder worker` SIGKILLed again and again while it dispatches 10,000 webhooks to a receiver on 127.0.0.1.

Every message arrives; the only duplicates are messages a killed worker had sent but not yet recorded as sent
(its lease then ran out and the next worker claimed the row again), and each is resent with its own idempotency
key (X-Backorder-Delivery). One worker runs at a time, so nothing but a kill can make a row go out twice.

The bound asserted: a worker has at most `pump` depth (2) claimed batches of `batch_size` rows in flight at once,
so a kill can leave at most 2 x 200 rows sent but unrecorded; duplicates <= kills x 2 x 200, and each killed
worker's own share of them <= 2 x 200.

The kill points are drawn from a seed the test prints; BACKORDER_CRASH_SEED=<seed> draws the same ones again.
PostgreSQL only (the workers share the store there); fails, never skips, when it is unreachable.
"""

from __future__ import annotations

import inspect
import os
import random
import signal
import subprocess
import sys
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from backorder.config import NotifySettings
from notifiers.dispatch import Dispatcher
from store import tables as t
from store.db import make_engine, unit_of_work
from tests.fakes.webhook_receiver import WebhookReceiverProcess

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec-crash"
MESSAGES = 10_000
KILLS = 10
# Requests a worker may make before it is killed: drawn from 1..this, so the killed lives stay well under
# 10,000 and every kill falls while rows are still waiting (a kill after the last send would prove nothing).
MAX_PER_LIFE = 700
# Short, so a dead worker's claims come back soon; yet many times a live worker's claim-to-record round (two
# batches of 200 to a local receiver: well under a second, a few at worst on a starved machine), else a live
# worker could outlive its own lease and resend without any kill.
LEASE_S = 10.0
BATCH = NotifySettings().batch_size
DEPTH = inspect.signature(Dispatcher.pump).parameters["depth"].default  # claimed batches a worker has in flight
# A request the dying worker wrote just before SIGKILL can be stamped by the receiver a moment after it.
GRACE_S = 0.5
# Generous for a busy machine (a worker's start-up alone took up to 42 s at a load of 15 on 2 cores); failing past
# them says where the run stood.
LIFE_TIMEOUT_S = 120.0  # from a worker's start to the request it is killed at
FINISH_TIMEOUT_S = 180.0  # from the survivor's start to the last row recorded


@dataclass
class Life:
    """One worker process from its start to its SIGKILL (killed_at None: the last one, stopped by SIGTERM)."""

    started_at: float
    first_at: float | None = None  # its first request seen by the receiver: start-up took first_at - started_at
    killed_at: float | None = None
    dead_at: float | None = None
    resent: int = 0  # of the requests it made, how many went out again after it died




def key_of(i: int) -> str:
    return f"decision:webhook:crash:{i:06d}"


def seed_outbox(url: str, recipient: str) -> None:
    """Pending webhook rows written directly, as the notification rules would write them."""
    now = datetime.now(UTC) - timedelta(seconds=1)
    rows: list[dict[str, Any]] = [{
        "idempotency_key": key_of(i), "kind": "decision", "channel": "webhook", "recipient": recipient,
        "audience": "system", "order_id": f"O{i:06d}", "line_ids": [], "locale": "en", "body": f"decision {i}",
        "payload": {"id": key_of(i), "type": "line_backordered", "data": {"order_id": f"O{i:06d}", "n": i}},
        "facts": {}, "fallback": [], "urgent": False, "status": "pending", "due_at": now, "expires_at": None,
        "attempts": 0, "cause": f"crash:{i}", "created_at": now, "updated_at": now, "occurred_at": now,
    } for i in range(MESSAGES)]
    engine = make_engine(url)
    try:
        with unit_of_work(engine) as conn:
            conn.execute(t.outbox.insert(), rows)
    finally:
        engine.dispose()


def progress(lives: list[Life]) -> str:
    """Each life as start-up / lifetime in seconds, for a failure's message."""
    return ", ".join(f"{(life.first_at or float('nan')) - life.started_at:.1f}/"
                     f"{(life.killed_at or time.monotonic()) - life.started_at:.1f}" for life in lives)


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no output)"


def outbox_state(url: str) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per status, and each row's attempts (the claims it was taken in)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            statuses = dict(conn.execute(select(t.outbox.c.status, func.count()).group_by(t.outbox.c.status))
                            .tuples().all())
            attempts = dict(conn.execute(select(t.outbox.c.idempotency_key, t.outbox.c.attempts)).tuples().all())
        return statuses, attempts
    finally:
        engine.dispose()


class Workers:
    """`python -m backorder worker` processes, one at a time, each logging to a file of its own."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.lives: list[Life] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def log(self) -> Path:
        """The latest worker's output."""
        return self.logs / f"worker-{len(self.lives) - 1}.log"

    def spawn(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.lives)}.log"
        with log.open("wb") as out:  # a file, not a pipe: nobody reads a killed worker's pipe
            proc = subprocess.Popen([sys.executable, "-m", "backorder", "worker"], cwd=REPO, env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.lives.append(Life(started_at=time.monotonic()))
        self.procs.append(proc)
        return proc

    def failure(self, what: str) -> str:
        return f"{what} (lives, start-up/lifetime s: {progress(self.lives)}):\n{tail(self.log)}"

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def kill_at_random(workers: Workers, received: Callable[[], int], rng: random.Random) -> None:
    """Start a worker, SIGKILL it once the receiver got a random number of further requests; KILLS times."""
    for n in range(KILLS):
        proc = workers.spawn()
        life = workers.lives[-1]
        start = received()
        target = start + rng.randint(1, MAX_PER_LIFE)
        while (count := received()) < target:
            if count > start and life.first_at is None:
                life.first_at = time.monotonic()
            if proc.poll() is not None:
                pytest.fail(workers.failure(f"worker {n} exited by itself ({proc.returncode})"))
            if time.monotonic() - life.started_at > LIFE_TIMEOUT_S:
                pytest.fail(workers.failure(f"worker {n} stuck at {count - start} of {target - start} requests"))
            time.sleep(0.01)
        life.killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        life.dead_at = time.monotonic()
        life.first_at = life.first_at or life.killed_at


def finish(workers: Workers, unique: Callable[[], int], url: str) -> tuple[dict[str, int], dict[str, int]]:
    """Start the survivor and let it send what is left, the dead workers' claims included; stop it with SIGTERM."""
    proc = workers.spawn()
    life = workers.lives[-1]
    try:
        while (got := unique()) < MESSAGES:
            if proc.poll() is not None:
                pytest.fail(workers.failure(f"the last worker exited by itself ({proc.returncode})"))
            if time.monotonic() - life.started_at > FINISH_TIMEOUT_S:
                pytest.fail(workers.failure(f"only {got} of {MESSAGES} messages arrived after {KILLS} kills"))
            time.sleep(0.05)
        while True:  # its last results are recorded just after their responses arrive
            statuses, attempts = outbox_state(url)
            if statuses == {"delivered": MESSAGES} or time.monotonic() - life.started_at > FINISH_TIMEOUT_S:
                break
            time.sleep(0.2)
        time.sleep(0.5)  # anything it sent twice would arrive by now
        return statuses, attempts
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def attribute(arrivals: dict[str, list[float]], killed: list[Life]) -> list[str]:
    """Charge every resend to the kill it followed; returns the keys sent again with no kill between the sends.

    A send belongs to the first killed life still alive when it went out (give or take GRACE_S); the next send
    of that key must come after that life's kill.
    """
    dead_at = [(life.dead_at or 0.0) + GRACE_S for life in killed]
    strays: list[str] = []
    for key, times in arrivals.items():
        for sent, again in pairwise(times):
            i = bisect_left(dead_at, sent)
            if i == len(killed) or again < (killed[i].killed_at or 0.0):
                strays.append(key)
            else:
                killed[i].resent += 1
    return strays


def test_sigkilled_workers_lose_nothing_and_resend_only_what_was_in_flight(pg_url: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("BACKORDER_CRASH_SEED", random.randrange(1 << 32)))  # printed: rerun with it
    began = time.monotonic()
    with WebhookReceiverProcess(secret=SECRET) as rx:
        seed_outbox(pg_url, rx.url)
        env = {**os.environ, "BACKORDER_CONFIG": os.devnull, "BACKORDER_DATABASE_URL": pg_url,
               "BACKORDER_WEBHOOK__URL": rx.url, "BACKORDER_WEBHOOK__SECRET": SECRET,
               "BACKORDER_WEBHOOK__ALLOW_HTTP": "true", "BACKORDER_WEBHOOK__ALLOW_PRIVATE": "true",
               "BACKORDER_NOTIFY__LEASE_SECONDS": str(LEASE_S),
               "BACKORDER_NOTIFY__RULES": '{"ops_digest": {"enabled": false}}', "PYTHONUNBUFFERED": "1"}
        workers = Workers(env, tmp_path)
        try:
            kill_at_random(workers, lambda: int(rx.client.stats(keys=False)["count"]), random.Random(seed))
            statuses, attempts = finish(workers, lambda: int(rx.client.stats(keys=False)["unique_keys"]), pg_url)
        finally:
            workers.close()
        elapsed = time.monotonic() - began
        stats = rx.client.stats()

    arrivals: dict[str, list[float]] = {k: sorted(v) for k, v in stats["arrivals"].items()}
    requests, duplicates = int(stats["count"]), int(stats["duplicates_accepted"])
    killed = [life for life in workers.lives if life.killed_at is not None]
    strays = attribute(arrivals, killed)
    per_kill = [life.resent for life in killed]
    reclaimed = sum(1 for n in attempts.values() if n > 1)
    startup = sorted((life.first_at or life.started_at) - life.started_at for life in killed)
    print(f"\ncrash test (seed {seed}): {len(killed)} SIGKILLs, {requests} requests, {stats['unique_keys']} unique "
          f"keys, {duplicates} duplicates (per kill {per_kill}, bound {DEPTH} x {BATCH} each), {reclaimed} rows "
          f"claimed more than once, outbox {statuses}, {elapsed:.1f} s (worker start-up to first send: median "
          f"{startup[len(startup) // 2]:.1f} s, max {startup[-1]:.1f} s)")

    assert len(killed) >= 10
    assert statuses == {"delivered": MESSAGES}, f"rows lost or stuck: {statuses}\n{tail(workers.log)}"
    assert set(arrivals) == {key_of(i) for i in range(MESSAGES)}, "a message never arrived, or an unknown key did"
    assert stats["outcomes"] == {"ok": requests} and stats["signature_failures"] == 0
    # Every request carried one of the 10,000 keys, so all beyond the first of a key are resends of that key.
    assert requests - MESSAGES == duplicates
    assert not strays, f"{len(strays)} key(s) sent again with no kill between the sends: {strays[:5]}"
    assert reclaimed > 0, "no kill left a claim behind: the stale-lease path was never taken"
    assert max(per_kill) <= DEPTH * BATCH, per_kill
    assert duplicates <= len(killed) * DEPTH * BATCH
    # A row goes out at most once per claim: each resend was a claim taken over from a dead worker.
    over = {k: (len(v), attempts.get(k)) for k, v in arrivals.items() if len(v) > attempts.get(k, 0)}
    assert not over, f"sent more often than claimed: {list(over.items())[:5]}"
    assert workers.procs[-1].returncode == 0 and "worker stopped" in workers.log.read_text(), tail(workers.log)
