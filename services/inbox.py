"""The inbox: accepted events are stored first, then applied in received order.

`apply_next` applies one event in its own unit of work; `drain` applies them in groups (`apply_group`):
up to GROUP_SIZE oldest pending events in one transaction, each event's handler as before, one commit.
Each event still gets its own outcome (applied, ignored, parked): one that is not applied stops the
group, which is rolled back; the events before it are applied again and committed, then that event
alone, exactly as `apply_next` does. The group saves per event the claim, the session settings, the
status update, the pool checkout and the commit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import DBAPIError

from services import log_context, master_data, metrics, orders, stock
from services.context import Context
from services.deadletters import REQUEUED, park, resolve
from services.outcomes import Ignore, Park
from store import allocation_io as io
from store import tables as t
from store.db import txn_state, unit_of_work
from store.upsert import insert_do_nothing

log = logging.getLogger(__name__)

Handler = Callable[[Connection, Context, dict[str, Any], datetime, str], None]
HANDLERS: dict[str, Handler] = {
    "warehouse.upserted": master_data.warehouse_upserted,
    "supplier.upserted": master_data.supplier_upserted,
    "product.upserted": master_data.product_upserted,
    "customer.upserted": master_data.customer_upserted,
    "order.placed": orders.order_placed,
    "order.cancelled": orders.order_cancelled,
    "shipment.updated": orders.shipment_updated,
    "inventory.received": stock.inventory_received,
    "inventory.adjusted": stock.inventory_adjusted,
    "po.updated": stock.po_updated,
}

ACCEPTED, DUPLICATE = "accepted", "duplicate"
# PostgreSQL deadlock, serialization failure, lock not available: the unit of work is rolled
# back and tried again (the event stays pending), never parked as a dead letter.
TRANSIENT_SQLSTATES = {"40P01", "40001", "55P03"}
APPLY_ATTEMPTS = 30
# Events applied in one transaction by drain. A group holds its SKUs' locks until it commits, so a
# larger one makes a second applying process wait longer; 32 keeps a group's commit within ~0.2 s.
GROUP_SIZE = 32


def _transient(exc: BaseException) -> bool:
    """A deadlock or the like, or a lost connection (server restarted, backend killed): the event is fine,
    the store was not; rolled back and tried again on a fresh connection, never parked as a dead letter."""
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) in TRANSIENT_SQLSTATES)


def store_events(ctx: Context, events: Sequence[dict[str, Any]]) -> tuple[list[str], list[int]]:
    """Store validated events (JSON-ready envelopes) in the inbox in one transaction.

    Returns each event's outcome (accepted or duplicate, in input order) and the inbox ids of
    the accepted ones. A replay of a stored (source, event_id), or a repeat inside the batch,
    is a duplicate and changes nothing.
    """
    with unit_of_work(ctx.engine) as conn:
        outcomes, ids = store_events_in(conn, events, ctx.now())
    metrics.events_stored(events, outcomes)
    return outcomes, sorted(i for i in ids if i is not None)


def store_events_in(conn: Connection, events: Sequence[dict[str, Any]],
                    now: datetime) -> tuple[list[str], list[int | None]]:
    """`store_events` inside the caller's transaction, which counts nothing (the caller does, after its commit).

    Returns each event's outcome and inbox id (None for a duplicate), in input order.
    """
    rows: list[dict[str, Any]] = []
    first_index: dict[tuple[str, str], int] = {}
    for i, ev in enumerate(events):
        key = (ev["source"], ev["event_id"])
        if key in first_index:
            continue
        first_index[key] = i
        rows.append({"source": ev["source"], "event_id": ev["event_id"], "type": ev["type"],
                     "occurred_at": datetime.fromisoformat(ev["occurred_at"]), "received_at": now,
                     "payload": ev, "status": "pending"})
    inserted: dict[tuple[str, str], int] = {}
    stmt = insert_do_nothing(t.inbox, ["source", "event_id"]).returning(
        t.inbox.c.id, t.inbox.c.source, t.inbox.c.event_id)
    for start in range(0, len(rows), 1000):
        for r in conn.execute(stmt, rows[start:start + 1000]):
            inserted[(r.source, r.event_id)] = r.id
    ids = [inserted.get(key) if first_index[key] == i else None
           for i, key in enumerate((ev["source"], ev["event_id"]) for ev in events)]
    return [DUPLICATE if i is None else ACCEPTED for i in ids], ids


def apply_next(ctx: Context) -> int | None:
    """Claim the oldest pending inbox event and apply it in its own unit of work; None when idle.

    A deadlock or serialization failure rolls the unit of work back and tries again.
    """
    return _retrying(lambda _attempt: _apply_next_once(ctx))


def apply_group(ctx: Context, limit: int = GROUP_SIZE) -> int:
    """Claim up to `limit` oldest pending events and apply them in received order; how many were handled.

    0 when idle. Handled: applied, or given their outcome (ignored, parked) as `apply_next` would.
    Each retry after a deadlock or a lost connection halves the group: a big group that keeps losing its
    connection (the database restarting, backends killed) would otherwise never commit anything.
    """
    return _retrying(lambda attempt: _apply_group_once(ctx, max(1, limit >> (attempt - 1))))


def _retrying(fn: Callable[[int], Any]) -> Any:
    for attempt in range(1, APPLY_ATTEMPTS + 1):
        try:
            return fn(attempt)
        except DBAPIError as exc:
            if not _transient(exc) or attempt == APPLY_ATTEMPTS:
                raise
            log.info("inbox apply hit %s; retrying (attempt %d)", type(exc.orig).__name__, attempt)
            time.sleep(random.uniform(0, min(0.25, 0.005 * 2 ** min(attempt, 10))))
    return None  # pragma: no cover - the loop returns or raises


class _Outcome(Exception):
    """Carries a handler's outcome out of its rolled-back unit of work."""

    def __init__(self, why: Ignore | Park) -> None:
        self.why = why


class _Stop(Exception):
    """The group's event at `index` was not applied: roll the group back."""

    def __init__(self, index: int) -> None:
        self.index = index


def _claim(conn: Connection, inbox_id: int | None = None) -> Any:
    rows = _claim_many(conn, 1, [inbox_id] if inbox_id is not None else None)
    return rows[0] if rows else None


def _claim_query(ids: bool, postgres: bool) -> Any:
    i, d = t.inbox, t.dead_letters
    was_parked = select(d.c.id).where(d.c.inbox_id == i.c.id).exists().label("was_parked")
    q = select(i.c.id, i.c.type, i.c.source, i.c.event_id, i.c.occurred_at, i.c.payload, was_parked).where(
        i.c.status == "pending")
    if ids:
        q = q.where(i.c.id.in_(bindparam("ids", expanding=True)))
    q = q.order_by(i.c.id).limit(bindparam("limit"))
    return q.with_for_update(of=i, skip_locked=True) if postgres else q


# Built once, by (named ids?, PostgreSQL?): claims run in every unit of work.
_CLAIMS = {(ids, postgres): _claim_query(ids, postgres) for ids in (False, True) for postgres in (False, True)}
_APPLIED = update(t.inbox).where(t.inbox.c.id.in_(bindparam("ids", expanding=True))).values(
    status="applied", note=None, applied_at=bindparam("b_now"))


def _claim_many(conn: Connection, limit: int, ids: Sequence[int] | None = None) -> list[Any]:
    """The oldest pending events (or those of `ids` still pending), locked; others' locked ones are skipped."""
    params: dict[str, Any] = {"limit": limit}
    if ids is not None:
        params["ids"] = list(ids)
    return list(conn.execute(_CLAIMS[(ids is not None, conn.dialect.name == "postgresql")], params).all())


def _session(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Safe to skip the wait for the WAL flush: the inbox row is durable already and
        # flips back to pending with everything else if this commit is lost in a crash.
        # An event reads a few SKUs' rows: starting parallel workers costs more than it saves.
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off; "
                             "SET LOCAL max_parallel_workers_per_gather = 0")


def _prelock(conn: Connection, rows: Sequence[Any]) -> None:
    """Lock the SKUs a group's events name, in one sorted pass (PostgreSQL).

    Each handler locks its own SKUs in order; taken event by event across a group, two groups
    could wait on each other (a deadlock, found only after deadlock_timeout). Locked up front, a
    handler finds them held (store.allocation_io.lock_skus). Cancellations and shipments name
    orders: their open lines' SKUs are read here. A SKU learned later (a product made earlier in
    the group, a ship-complete order's other SKUs) is still locked when its handler gets there.
    """
    if conn.dialect.name != "postgresql" or len(rows) < 2:
        return
    skus: set[str] = set()
    orders_named: set[str] = set()
    for row in rows:
        # Only a hint: a malformed payload is the handler's to judge (and park), not the group's.
        data = row.payload.get("data") if isinstance(row.payload, dict) else None
        if not isinstance(data, dict):
            continue
        if row.type in ("order.placed", "po.updated"):
            skus.update(ln["sku"] for ln in data.get("lines") or () if isinstance(ln, dict) and ln.get("sku"))
        elif row.type in ("inventory.received", "inventory.adjusted") and data.get("sku"):
            skus.add(data["sku"])
        elif row.type in ("order.cancelled", "shipment.updated") and data.get("order_id"):
            orders_named.add(data["order_id"])
    if orders_named:
        skus |= io.skus_of_orders(conn, orders_named)
    if skus:
        io.lock_skus(conn, skus)


def _apply_group_once(ctx: Context, limit: int, ids: Sequence[int] | None = None) -> int:
    """Apply a group in one unit of work; on an event that is not applied, see the module's docstring."""
    rows: list[Any] = []
    try:
        with unit_of_work(ctx.engine) as conn:
            rows = _claim_many(conn, limit, ids)
            if not rows:
                return 0
            _session(conn)
            _prelock(conn, rows)
            done: list[tuple[str, float, str]] = []
            now = ctx.now()
            for index, row in enumerate(rows):
                started = time.perf_counter()
                token = log_context.set_event(f"{row.source}:{row.event_id}")
                try:
                    txn_state(conn)["occurred_at"] = row.occurred_at
                    HANDLERS[row.type](conn, ctx, row.payload["data"], row.occurred_at,
                                       f"{row.source}:{row.event_id}")
                    if row.was_parked:
                        resolve(conn, row.id, now)
                except Exception as exc:
                    if _transient(exc):
                        raise  # apply_group rolls back and tries again
                    raise _Stop(index) from None  # applied alone below, where its outcome is recorded
                finally:
                    log_context.reset_event(token)
                done.append((row.type, time.perf_counter() - started, f"{row.source}:{row.event_id}"))
                if _requeued_before(conn, rows, index):
                    break
            conn.execute(_APPLIED, {"ids": [r.id for r in rows[:len(done)]], "b_now": ctx.now()})
            metrics.on_commit(conn, lambda: [_done_after(kind, "applied", took, event) for kind, took, event in done])
            return len(done)
    except _Stop as stop:
        handled = 0
        if stop.index:
            # Applied once already in the rolled-back group: most likely they apply again.
            handled += _apply_group_once(ctx, stop.index, [r.id for r in rows[:stop.index]])
        if _apply_next_once(ctx, rows[stop.index].id) is not None:
            handled += 1
        return handled


def _requeued_before(conn: Connection, rows: Sequence[Any], index: int) -> bool:
    """Did the event at `index` send parked events back to the queue that were received before some of the rest?

    One by one (each the oldest pending), those would come before the rest: the group stops there and
    commits, and the next group claims them in received order.
    """
    requeued = txn_state(conn).get(REQUEUED)
    return bool(requeued) and index + 1 < len(rows) and min(requeued) < rows[-1].id


def _apply_next_once(ctx: Context, inbox_id: int | None = None) -> int | None:
    """Apply one event: the handler's writes and the inbox status commit together, or not at all.

    A handler that ends in Ignore or Park (or fails) has its writes rolled back whole; the
    outcome is then recorded in a second, short unit of work. No savepoint on the happy path.
    While it is applied, every log record names the event (services/log_context.py).
    """
    token = None
    started = time.perf_counter()
    try:
        with unit_of_work(ctx.engine) as conn:
            row = _claim(conn, inbox_id)
            if row is None:
                return None
            token = log_context.set_event(f"{row.source}:{row.event_id}")
            _session(conn)
            # The planner stamps outbox rows with it: time-to-alert counts from the source's clock.
            txn_state(conn)["occurred_at"] = row.occurred_at
            try:
                HANDLERS[row.type](conn, ctx, row.payload["data"], row.occurred_at, f"{row.source}:{row.event_id}")
            except (Ignore, Park) as why:
                raise _Outcome(why) from None
            except Exception as exc:
                if _transient(exc):
                    raise  # apply_next rolls back and tries again
                log.exception("applying inbox event %s failed", row.id)
                raise _Outcome(Park(f"error: {type(exc).__name__}: {exc}")) from exc
            if row.was_parked:
                resolve(conn, row.id, ctx.now())
            _mark(conn, ctx, row.id, "applied", None)
            metrics.on_commit(conn, lambda: _done(row.type, "applied", started))
            return int(row.id)
    except _Outcome as outcome:
        status = _record(ctx, row.id, outcome.why)
        if status is not None:
            _done(row.type, "ignored" if status == "ignored" else "dead", started)
        return int(row.id)
    finally:
        log_context.reset_event(token)


def _done(event_type: str, outcome: str, started: float) -> None:
    _done_after(event_type, outcome, time.perf_counter() - started)


def _done_after(event_type: str, outcome: str, seconds: float, event: str | None = None) -> None:
    """Count and log an event's outcome; `event` (source:event_id) names it when this runs after a group's
    commit, outside the event's own log context."""
    metrics.event_done(event_type, outcome, seconds)
    token = log_context.set_event(event) if event is not None else None
    try:
        log.debug("event %s %s in %.1f ms", event_type, outcome, seconds * 1000)
    finally:
        log_context.reset_event(token)


def _record(ctx: Context, inbox_id: int, why: Ignore | Park) -> str | None:
    """Record an event's outcome; returns the status it got (None: it stays pending or was taken)."""
    with unit_of_work(ctx.engine) as conn:
        if _claim(conn, inbox_id) is None:
            return None  # another process took it up meanwhile
        now = ctx.now()
        if isinstance(why, Ignore):
            resolve(conn, inbox_id, now)
            _mark(conn, ctx, inbox_id, "ignored", why.note)
            return "ignored"
        if park(conn, inbox_id, why, now):
            _mark(conn, ctx, inbox_id, "parked", why.reason)
            return "parked"
        return None  # what it waited for arrived meanwhile; it stays pending and is applied next


def _mark(conn: Connection, ctx: Context, inbox_id: int, status: str, note: str | None) -> None:
    i = t.inbox
    conn.execute(update(i).where(i.c.id == inbox_id).values(status=status, note=note, applied_at=ctx.now()))


def drain(ctx: Context, wait_for: Sequence[int] = (), timeout_s: float = 300.0,
          stop: Callable[[], bool] | None = None) -> int:
    """Apply pending events until none is left; then wait until `wait_for` ids are no longer pending.

    Other processes may be applying some of them (SKIP LOCKED on PostgreSQL); we wait for theirs.
    `stop` is asked between events: a server shutting down leaves the rest pending for next time.
    """
    applied = 0
    while not (stop is not None and stop()):
        handled = apply_group(ctx)
        if not handled:
            break
        applied += handled
    if wait_for:
        deadline = time.monotonic() + timeout_s
        ids = list(wait_for)
        while time.monotonic() < deadline:
            with ctx.engine.connect() as conn:
                pending = conn.execute(select(t.inbox.c.id).where(
                    t.inbox.c.id.in_(ids), t.inbox.c.status == "pending").limit(1)).first()
            if pending is None:
                break
            handled = apply_group(ctx)
            if handled:
                applied += handled
            else:
                time.sleep(0.01)
    return applied
