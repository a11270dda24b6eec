"""Dispatch: claim due outbox rows, send them through the channel senders, record what happened.

Retries back off exponentially with jitter (or as the provider's Retry-After says); permanent
failures are not retried but fall back to the next channel when the routing allows; a message
is dead after `max_attempts` or once it is older than it is useful. Rate limits are reserved in
the store (store.outbox.reserve), so they hold across every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from backorder.config import NotifySettings
from notifiers.render import render_notice
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, Sender, SendError, Sent
from store import outbox
from store import tables as t
from store.db import unit_of_work
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


class Dispatcher:
    def __init__(self, engine: Engine, cfg: NotifySettings, senders: Mapping[str, Sender], *,
                 owner: str | None = None, clock: Clock = utcnow, rng: random.Random | None = None,
                 jobs: Callable[[], object] | None = None, jobs_every_s: float = 30.0,
                 channel_rates: Mapping[str, float] | None = None, hold_s: float = HOLD_S) -> None:
        self.engine = engine
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
        self.sent = 0

    # -- claim -----------------------------------------------------------------------------------
    def claim(self) -> list[Claimed]:
        now = self.clock()
        with unit_of_work(self.engine) as conn:
            outbox.relaxed_commit(conn)
            rows = outbox.claim(conn, self.owner, self.cfg.batch_size, now, self.cfg.lease_seconds)
            return self._slots(conn, rows, now)

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
        for (key, per_second), members in sorted(by_channel.items()):
            step = timedelta(seconds=1.0 / per_second)
            first = outbox.reserve(conn, key, len(members), step.total_seconds(), now)
            last = first - step
            for row in sorted(members, key=lambda r: (dest_slot.get(r.id, first), r.id)):
                last = max(dest_slot.get(row.id, first), last + step)
                out[row.id] = Claimed(row, last, hold=outbox.SLOT_HELD if last - now > hold else None)
            if last > first + step * (len(members) - 1):
                outbox.extend(conn, key, last + step)
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
        return total

    async def _process(self, claimed: Sequence[Claimed]) -> None:
        outcomes = await asyncio.gather(*(self._send(c) for c in claimed))
        results = [r for r, _ in outcomes]
        fall_from = [row for _, row in outcomes if row is not None]
        await asyncio.to_thread(self._record, results, fall_from)

    def _record(self, results: Sequence[outbox.Result], fall_from: Sequence[Any]) -> None:
        now = self.clock()
        with unit_of_work(self.engine) as conn:
            outbox.relaxed_commit(conn)
            written = outbox.record(conn, self.owner, results, now)
            if written < len(results):
                log.warning("%d result(s) not recorded: the lease had passed to another worker, or a delivery "
                            "callback had already decided the message", len(results) - written)
            insert_ignore(conn, t.outbox, [fallback_row(row, outbox.fallback_source(conn, row.id), now)
                                           for row in fall_from], ["idempotency_key"])
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
        try:
            async with self._inflight:
                sent: Sent = await sender.send(msg)
        except SendError as exc:
            return self._failed(row, exc, self.clock())
        except Exception as exc:  # a sender bug must not kill the worker; treat it as transient
            log.exception("sender %s failed on outbox row %s", row.channel, row.id)
            return self._failed(row, RetryableError("sender_error", f"{type(exc).__name__}: {exc}"), self.clock())
        return outbox.Result(row.id, "delivered" if sent.delivered else "sent", provider_id=sent.provider_id), None

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
        while not stop.is_set():
            await asyncio.to_thread(self.run_jobs_if_due)
            try:
                claimed = await self.pump()
            except Exception:  # the database restarting, say: rows keep their leases and come back
                log.exception("dispatch round failed")
                claimed = 0
                await asyncio.sleep(1.0)
            if claimed == 0 and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.cfg.poll_seconds)
                wake.clear()

    async def aclose(self) -> None:
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
