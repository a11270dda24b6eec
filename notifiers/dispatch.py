"""Dispatch: claim due outbox rows, send them through the channel senders, record what happened.

Retries back off exponentially with jitter (or as the provider's Retry-After says); permanent
failures are not retried but fall back to the next channel when the routing allows; a message
is dead after `max_attempts` or once it is older than it is useful. Rate limits are reserved in
the store (store.outbox.reserve), so they hold across every worker; as each request leaves, a Pacer keeps this process's
sends of one limit 1/rate apart, and a send that missed its slot by more than LATE_S gets a fresh slot instead
of going out late in a bunch (see _Turn for the bound this gives as the provider counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from backorder.config import NotifySettings
from notifiers.render import render_notice
from notifiers.senders.base import SEND_TURN, Outgoing, PermanentError, RetryableError, Sender, SendError, Sent
from store import outbox
from store import tables as t
from store.held import HeldConnection
from store.upsert import insert_ignore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"


def backoff(attempt: int, cfg: NotifySettings, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds before attempt `attempt + 1`: the provider's Retry-After wins, else full-range jitter."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, cfg.backoff_max_seconds) + rng.uniform(0, 0.1)
    ceiling = min(cfg.backoff_max_seconds, cfg.backoff_seconds * 2 ** max(attempt - 1, 0))
    return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class Claimed:
    row: Any
    slot: datetime | None  # reserved send time under a rate limit
    hold: str | None = None  # hand the row back, due at `slot`, marked as holding its slot(s)


# A message whose slot is further off than this goes back to the outbox, due at its slot and marked as
# holding it, instead of a worker sleeping on it: when it comes due again it is sent without reserving
# anew (reserving again would put it behind everything reserved meanwhile, again and again).
HOLD_S = 2.0


# A send that reaches its turn (its slot, the pacer, a free in-flight place) more than this after its slot is
# handed back to reserve a fresh slot rather than sent late: late sends are what bunch up past a limit at the
# provider, the slots after them being on time. At most MAX_LATE times per row and worker, then it is sent,
# paced: a loaded machine cannot keep a message back for ever.
LATE_S = 0.2
MAX_LATE = 3
SLOT_MISSED = "rate_slot_missed: handed back to reserve a fresh slot"


class Pacer:
    """Per rate key, when this process may next send: consecutive sends of one key at least 1/rate apart.

    Shared by every dispatcher of the process on one store (pacer_for; threads included: the lock), so it holds
    whatever event loop a send runs on. It only ever delays a send; the slots reserved in the store keep
    processes apart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def take(self, limits: Sequence[tuple[str, float]], within: float | None = None) -> float | None:
        """Book a send now under every (key, rate) in `limits` if they all allow one (returns 0.0); else the
        seconds until they would (nothing booked: wait, then ask again), or None when that is more than
        `within`. Booking at the moment of asking, not at a time ahead, keeps the 1/rate between the sends as
        they happen, however late a waiter wakes."""
        with self._lock:
            now = time.monotonic()
            at = max([now, *(self._next.get(key, now) for key, _ in limits)])
            if within is not None and at - now > within:
                return None
            if at > now:
                return at - now
            for key, rate in limits:
                self._next[key] = now + 1.0 / rate
            if len(self._next) > 10_000:  # keys of past sends: drop those that no longer hold anything back
                self._next = {k: v for k, v in self._next.items() if v > now}
            return 0.0


_pacers: weakref.WeakKeyDictionary[Engine, Pacer] = weakref.WeakKeyDictionary()
_pacers_lock = threading.Lock()


def pacer_for(engine: Engine) -> Pacer:
    """The process's pacer for the rate limits kept in this engine's store: every dispatcher on it shares one."""
    with _pacers_lock:
        pacer = _pacers.get(engine)
        if pacer is None:
            pacer = _pacers[engine] = Pacer()
        return pacer


class SlotMissed(Exception):
    """A send's turn came more than LATE_S after its slot: it goes back to the outbox untried."""


class _Turn:
    """A message's turn to leave (notifiers.senders.base.wait_turn), taken once, by its first request.

    Paced where the request leaves, after every wait before it (its slot, the in-flight limit, the sender's own
    store reads and connection queue): in this process the sends of one limit are 1/rate apart, so no second
    holds more than `rate` of them. A turn that comes more than LATE_S after the slot raises SlotMissed (MAX_LATE
    times a row and worker, then it goes, paced), so the sends of all processes leave within LATE_S of slots
    reserved 1/rate apart: across processes one second holds at most rate * (1 + LATE_S) + 1, save rows past
    MAX_LATE. What the provider counts differs only by each request's time from here to it.
    """

    def __init__(self, dispatcher: Dispatcher, claimed: Claimed) -> None:
        self.d, self.c, self.taken = dispatcher, claimed, False

    async def __call__(self) -> None:
        if self.taken:  # a message's later requests (an upload after the post) follow its first
            return
        self.taken = True
        d, row, slot = self.d, self.c.row, self.c.slot
        limits = d._limits(row)
        while True:
            within = None
            if slot is not None and d._late.get(row.id, 0) < MAX_LATE:
                within = (slot + timedelta(seconds=LATE_S) - d.clock()).total_seconds()
            # Too late already, or once paced: nothing is booked with the pacer and the slot goes unused.
            pause = d.pacer.take(limits, within) if within is None or within >= 0 else None
            if pause is None:
                raise SlotMissed(row.id)
            if pause == 0.0:
                return
            await asyncio.sleep(pause)


class Dispatcher:
    def __init__(self, engine: Engine, cfg: NotifySettings, senders: Mapping[str, Sender], *,
                 owner: str | None = None, clock: Clock = utcnow, rng: random.Random | None = None,
                 jobs: Callable[[], object] | None = None, jobs_every_s: float = 30.0,
                 channel_rates: Mapping[str, float] | None = None, hold_s: float = HOLD_S,
                 pacer: Pacer | None = None) -> None:
        self.engine = engine
        # Claims and results, two short transactions a round, on one connection while rounds follow each other.
        # Relaxed commits: if the database server crashes and loses one, the worst is the at-least-once case we
        # have anyway: a claim forgotten (the row is claimed again) or a result forgotten (the message is sent
        # again, with the same idempotency key).
        self.db = HeldConnection(engine, relaxed=True)
        self.cfg = cfg
        # Whole-channel limits: [notify] rate_per_channel, plus a provider's sender limit (Twilio's MPS).
        self.channel_rates = dict(cfg.rate_per_channel if channel_rates is None else channel_rates)
        self.hold = timedelta(seconds=hold_s)
        self.senders = senders
        self.owner = owner or worker_id()
        self.clock = clock
        self.rng = rng or random.Random()
        self.jobs = jobs
        self.jobs_every_s = jobs_every_s
        self._last_jobs = float("-inf")
        self._inflight = asyncio.Semaphore(cfg.concurrency)
        self.pacer = pacer or pacer_for(engine)
        self._late: dict[int, int] = {}  # outbox id: times handed back for missing its slot
        self.sent = 0

    # -- claim -----------------------------------------------------------------------------------
    def claim(self) -> list[Claimed]:
        now = self.clock()

        def claim_in(conn: Connection) -> list[Claimed]:
            rows = outbox.claim(conn, self.owner, self.cfg.batch_size, now, self.cfg.lease_seconds)
            return self._slots(conn, rows, now)

        # Claimed again after a lost connection: rows a lost commit claimed come back when their lease ends.
        return self.db.run(claim_in)

    def _slots(self, conn: Any, rows: Sequence[Any], now: datetime) -> list[Claimed]:
        """Reserve each row's send time under its destination's and its channel's limits.

        Destination slots first; a row whose destination slot is far off is handed back holding it and
        takes no channel slot now, so one busy recipient never holds up the rest of the channel. The
        channel's slots then go to the rows that will be sent this round, in the order their destinations
        allow; the channel's bucket is stretched to the last slot used (the caller's transaction holds its
        row). A row whose channel slot is far off is handed back holding both.
        """
        out: dict[int, Claimed] = {}
        dest_slot: dict[int, datetime] = {}
        by_destination: dict[tuple[str, float], list[Any]] = {}
        by_channel: dict[tuple[str, float], list[Any]] = {}
        hold = self.hold
        for row in rows:
            held = outbox.held_slot(row.error_reason)
            if held is not None and held[0] == outbox.SLOT_HELD:
                out[row.id] = Claimed(row, held[1])  # its slots: sent at its time, nothing reserved again
                continue
            if held is not None:
                dest_slot[row.id] = held[1]
                continue
            rate = self.cfg.rate_per_destination.get(row.channel)
            if rate:
                by_destination.setdefault((f"{row.channel}:{row.recipient}", rate), []).append(row)
        for (key, per_second), members in sorted(by_destination.items()):
            first = outbox.reserve(conn, key, len(members), 1.0 / per_second, now)
            for i, row in enumerate(sorted(members, key=lambda r: r.id)):
                slot = first + timedelta(seconds=i / per_second)
                if slot - now > hold:
                    out[row.id] = Claimed(row, slot, hold=outbox.DESTINATION_SLOT_HELD)
                else:
                    dest_slot[row.id] = slot
        for row in rows:
            rate = self.channel_rates.get(row.channel)
            if row.id not in out and rate:
                by_channel.setdefault((f"{row.channel}:*", rate), []).append(row)
        # The channel can put a row after its destination slot; the destination's next message, reserved before
        # (held, or in this round), must keep its distance from that later time: a second bucket per destination
        # ("...|sent") holds when its last scheduled send allows the next. Only rows of this channel touch it, under
        # the channel bucket's lock taken above.
        sent_floor: dict[str, datetime] = {}
        for (key, per_second), members in sorted(by_channel.items()):
            step = timedelta(seconds=1.0 / per_second)
            first = outbox.reserve(conn, key, len(members), step.total_seconds(), now)
            last = first - step
            for row in sorted(members, key=lambda r: (dest_slot.get(r.id, first), r.id)):
                last = max(dest_slot.get(row.id, first), last + step)
                dest_rate = self.cfg.rate_per_destination.get(row.channel)
                if dest_rate:
                    sent_key = f"{row.channel}:{row.recipient}|sent"
                    if sent_key not in sent_floor:
                        sent_floor[sent_key] = outbox.reserve(conn, sent_key, 0, 0.0, last)
                    last = max(last, sent_floor[sent_key])
                    sent_floor[sent_key] = last + timedelta(seconds=1.0 / dest_rate)
                out[row.id] = Claimed(row, last, hold=outbox.SLOT_HELD if last - now > hold else None)
            if last > first + step * (len(members) - 1):
                outbox.extend(conn, key, last + step)
        for sent_key, until in sorted(sent_floor.items()):
            outbox.extend(conn, sent_key, until)
        return [out.get(r.id) or Claimed(r, dest_slot.get(r.id)) for r in rows]

    # -- send ------------------------------------------------------------------------------------
    async def run_once(self) -> int:
        """One claim-send-record round; returns how many rows it claimed."""
        claimed = await asyncio.to_thread(self.claim)
        if claimed:
            await self._process(claimed)
        return len(claimed)

    async def pump(self, depth: int = 2) -> int:
        """Rounds until nothing is due, the next batch claimed while the last is still being sent."""
        inflight: set[asyncio.Task[None]] = set()
        total = 0
        try:
            while True:
                claimed = await asyncio.to_thread(self.claim)
                if not claimed:
                    break
                total += len(claimed)
                inflight.add(asyncio.create_task(self._process(claimed)))
                if len(inflight) >= depth:
                    done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
        finally:
            if inflight:
                await asyncio.gather(*inflight)
        return total

    async def drain(self, max_rounds: int = 1000) -> int:
        """Send everything due now and what waits for a rate-limit slot due within lease/2 (for `worker --once`,
        the demo and tests; the long-running loop polls instead of sleeping on a held slot)."""
        total = 0
        slept_for: datetime | None = None
        try:
            for _ in range(max_rounds):
                claimed = await self.pump()
                total += claimed
                if claimed:  # a round can leave new work behind (a fallback): look again
                    continue
                with self.engine.connect() as conn:
                    due = outbox.next_held(conn)
                if due is None or due == slept_for or (due - self.clock()).total_seconds() > self.cfg.lease_seconds / 2:
                    break  # nothing held, or held for later, or the clock stands still (a test's)
                slept_for = due
                await asyncio.sleep(max((due - self.clock()).total_seconds(), 0.0))
        finally:
            await asyncio.to_thread(self.db.release)
        return total

    async def _process(self, claimed: Sequence[Claimed]) -> None:
        # Rows handed back to wait for their slot are written first: recorded only after this batch's sends
        # (a slow provider's, up to its timeout) they could come due after their slot, be sent late together
        # and crowd past the rate limit.
        held = [c for c in claimed if c.hold is not None and c.slot is not None]
        if held:
            handed = await asyncio.gather(*(self._send(c) for c in held))
            await asyncio.to_thread(self._record, [r for r, _ in handed], [row for _, row in handed if row is not None])
            claimed = [c for c in claimed if not (c.hold is not None and c.slot is not None)]
            if not claimed:
                return
        outcomes = await asyncio.gather(*(self._send(c) for c in claimed))
        results = [r for r, _ in outcomes]
        fall_from = [row for _, row in outcomes if row is not None]
        await asyncio.to_thread(self._record, results, fall_from)

    def _record(self, results: Sequence[outbox.Result], fall_from: Sequence[Any]) -> None:
        now = self.clock()

        def record_in(conn: Connection) -> int:
            written = outbox.record(conn, self.owner, results, now)
            insert_ignore(conn, t.outbox, [fallback_row(row, outbox.fallback_source(conn, row.id), now)
                                           for row in fall_from], ["idempotency_key"])
            return written

        # Run again after a lost connection: results are written only to rows still held, fallbacks once by key.
        written = self.db.run(record_in)
        if written < len(results):
            log.warning("%d result(s) not recorded: the lease had passed to another worker, or a delivery "
                        "callback had already decided the message", len(results) - written)
        self.sent += sum(1 for r in results if r.status in ("sent", "delivered"))

    async def _send(self, c: Claimed) -> tuple[outbox.Result, Any]:
        """Send one claimed row; returns its result and, after a permanent failure, the row to fall back from."""
        row = c.row
        now = self.clock()
        if row.expires_at is not None and now > row.expires_at:
            return outbox.Result(row.id, "dead", error="older than it is useful", error_reason="expired"), None
        sender = self.senders.get(row.channel)
        if sender is None:
            return self._failed(row, PermanentError("channel_not_configured", row.channel), now)
        if c.hold is not None and c.slot is not None:
            # Its slot is far off: back to the outbox holding it, attempt unused. It comes due HOLD_S + 1 s
            # early, so a worker busy with a round (which sleeps at most HOLD_S) still claims it in time and
            # sends it at its slot exactly: a late send would crowd the next ones past the limit.
            due = c.slot - self.hold - timedelta(seconds=1)
            return outbox.Result(row.id, "pending", due_at=due, error_reason=outbox.hold_reason(c.hold, c.slot),
                                 attempts_back=1), None
        if c.slot is not None:
            wait = (c.slot - now).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
        msg = Outgoing(id=row.id, channel=row.channel, recipient=row.recipient, kind=row.kind, body=row.body,
                       idempotency_key=row.idempotency_key, subject=row.subject, html=row.html,
                       payload=row.payload or {}, locale=row.locale, attempt=row.attempts)
        turn = _Turn(self, c)
        token = SEND_TURN.set(turn)
        try:
            async with self._inflight:
                if not getattr(sender, "waits_turn", False):  # a sender that does not say where its request leaves
                    await turn()
                sent: Sent = await sender.send(msg)
        except SlotMissed:
            if len(self._late) > 10_000:  # rows another worker went on to send: forget them
                self._late.clear()
            self._late[row.id] = self._late.get(row.id, 0) + 1
            reason = None if outbox.held_slot(row.error_reason) else row.error_reason
            return outbox.Result(row.id, "pending", error=SLOT_MISSED, error_reason=reason, due_at=self.clock(),
                                 attempts_back=1), None
        except SendError as exc:
            self._late.pop(row.id, None)
            return self._failed(row, exc, self.clock())
        except Exception as exc:  # a sender bug must not kill the worker; treat it as transient
            self._late.pop(row.id, None)
            log.exception("sender %s failed on outbox row %s", row.channel, row.id)
            return self._failed(row, RetryableError("sender_error", f"{type(exc).__name__}: {exc}"), self.clock())
        finally:
            SEND_TURN.reset(token)
        self._late.pop(row.id, None)
        return outbox.Result(row.id, "delivered" if sent.delivered else "sent", provider_id=sent.provider_id), None

    def _limits(self, row: Any) -> list[tuple[str, float]]:
        """The (rate key, messages/s) limits a row's send counts against; keys as in _slots."""
        limits: list[tuple[str, float]] = []
        if rate := self.channel_rates.get(row.channel):
            limits.append((f"{row.channel}:*", rate))
        if rate := self.cfg.rate_per_destination.get(row.channel):
            limits.append((f"{row.channel}:{row.recipient}", rate))
        return limits

    def _failed(self, row: Any, exc: SendError, now: datetime) -> tuple[outbox.Result, Any]:
        error = str(exc)[:2000]
        if exc.retryable:
            delay = backoff(row.attempts, self.cfg, self.rng, exc.retry_after)
            due = now + timedelta(seconds=delay)
            if row.attempts >= self.cfg.max_attempts:  # this channel will not do: the next one may
                dead = outbox.Result(row.id, "dead", error=error, error_reason=exc.reason)
                return dead, row if row.fallback else None
            if row.expires_at is not None and due > row.expires_at:
                return outbox.Result(row.id, "dead", error=error, error_reason="expired"), None
            return outbox.Result(row.id, "failed", error=error, error_reason=exc.reason, due_at=due), None
        return outbox.Result(row.id, "dead", error=error, error_reason=exc.reason), row if row.fallback else None

    # -- loop ------------------------------------------------------------------------------------
    def run_jobs_if_due(self) -> None:
        if self.jobs is None or time.monotonic() - self._last_jobs < self.jobs_every_s:
            return
        self._last_jobs = time.monotonic()
        try:
            self.jobs()
        except Exception:  # digests are retried on the next tick; dispatch goes on
            log.exception("notification jobs failed")

    async def run(self, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Dispatch until `stop` is set; an idle worker polls every poll_seconds (or when woken)."""
        wake = wake or asyncio.Event()
        try:
            while not stop.is_set():
                await asyncio.to_thread(self.run_jobs_if_due)
                try:
                    claimed = await self.pump()
                except Exception:  # the database restarting, say: rows keep their leases and come back
                    log.exception("dispatch round failed")
                    claimed = 0
                    await asyncio.sleep(1.0)
                if claimed == 0 and not stop.is_set():
                    await asyncio.to_thread(self.db.release)  # idle: the pool may have the connection back
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=self.cfg.poll_seconds)
                    wake.clear()
        finally:
            await asyncio.to_thread(self.db.release)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.db.release)
        for sender in self.senders.values():
            await sender.aclose()


def fallback_row(row: Any, src: Any, now: datetime) -> dict[str, Any]:
    """The same message on the next chosen channel, after a permanent failure on this one.

    Its key is derived from the failed row's, so the failed row (dead, with its reason) and
    the one that replaced it can be told apart and the fallback is made once.
    """
    (channel, address), rest = row.fallback[0], row.fallback[1:]
    rendered = render_notice(row.kind, channel, row.locale, src.facts or {})
    return {
        "idempotency_key": f"{row.kind}:{channel}:fallback:{row.idempotency_key}"[:500],
        "kind": row.kind, "channel": channel, "recipient": address, "audience": src.audience,
        "customer_id": src.customer_id, "order_id": src.order_id, "sku": src.sku, "role": src.role,
        "line_ids": list(src.line_ids or ()), "locale": row.locale, "subject": rendered.subject,
        "body": rendered.body, "html": rendered.html, "payload": rendered.card or {}, "facts": src.facts or {},
        "fallback": rest, "urgent": src.urgent, "status": "pending", "due_at": now, "expires_at": row.expires_at,
        "attempts": 0, "error": None, "error_reason": None, "cause": src.cause, "occurred_at": src.occurred_at,
        "created_at": now, "updated_at": now,
    }
