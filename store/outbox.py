"""The outbox's statements: claim with a lease, record results, reserve rate slots, list and manage.

A claim moves rows to `sending` and sets `due_at` to the lease's end, so a worker that dies
mid-send leaves rows that the next claim picks up once the lease runs out. Results are written
only by the lease holder: a worker whose lease expired cannot overwrite the row's newer state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, select, update
from sqlalchemy.engine import Row

from store import tables as t
from store.upsert import dialect_insert

CLAIMABLE = ("pending", "failed", "sending")
LIST_COLUMNS = ("id", "kind", "channel", "recipient", "status", "attempts", "created_at", "sent_at", "error")

o = t.outbox
# What a send needs; the rest (facts, for a fallback's re-render) is read only when it is needed.
SEND_COLUMNS = (o.c.id, o.c.idempotency_key, o.c.kind, o.c.channel, o.c.recipient, o.c.locale, o.c.subject,
                o.c.body, o.c.html, o.c.payload, o.c.fallback, o.c.attempts, o.c.expires_at, o.c.error_reason)
# error_reason of a row handed back to wait for rate-limit slots it already holds (see notifiers/dispatch.py),
# as "<marker>@<the slot, ISO 8601>": the row is claimed a little before its slot and sent at it exactly.
SLOT_HELD = "rate_slot_held"  # every limit: reserve nothing again
DESTINATION_SLOT_HELD = "rate_dest_slot_held"  # its destination's: reserve the channel's only


def hold_reason(marker: str, slot: datetime) -> str:
    return f"{marker}@{slot.isoformat()}"


def held_slot(reason: str | None) -> tuple[str, datetime] | None:
    """(marker, slot) of a row handed back holding its slot, else None."""
    if not reason or "@" not in reason:
        return None
    marker, _, when = reason.partition("@")
    if marker not in (SLOT_HELD, DESTINATION_SLOT_HELD):
        return None
    try:
        return marker, datetime.fromisoformat(when)
    except ValueError:
        return None


def _claim_statement(skip_locked: bool) -> Any:
    due = (select(o.c.id).where(o.c.status.in_(CLAIMABLE), o.c.due_at <= bindparam("now"))
           .order_by(o.c.due_at).limit(bindparam("limit")))
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    return (update(o).where(o.c.id.in_(due.scalar_subquery()))
            .values(status="sending", lease_owner=bindparam("owner"), due_at=bindparam("until"),
                    attempts=o.c.attempts + 1, updated_at=bindparam("now"))
            .returning(*SEND_COLUMNS))


# Built once: the claim is the hottest statement of the dispatcher, and building it each round (and its cache
# key) cost more Python time than executing it.
CLAIM = {"postgresql": _claim_statement(skip_locked=True), "sqlite": _claim_statement(skip_locked=False)}


def claim(conn: Connection, owner: str, limit: int, now: datetime, lease_seconds: float) -> Sequence[Row[Any]]:
    """Take up to `limit` due rows for `owner`; rows other workers hold are skipped, not waited for."""
    return conn.execute(CLAIM[conn.dialect.name], {
        "now": now, "limit": limit, "owner": owner, "until": now + timedelta(seconds=lease_seconds)}).all()


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one claimed row."""

    id: int
    status: str  # sent | delivered | failed | dead | pending (handed back, not tried)
    provider_id: str | None = None
    error: str | None = None
    error_reason: str | None = None
    due_at: datetime | None = None
    attempts_back: int = 0  # a row handed back untried gives its attempt back


RECORD_OK = (update(o).where(o.c.id.in_(bindparam("ids", expanding=True)), o.c.lease_owner == bindparam("owner"),
                             o.c.status == "sending")
             .values(status=bindparam("status"), error=None, error_reason=None, due_at=None, lease_owner=None,
                     updated_at=bindparam("now"), sent_at=bindparam("now"), delivered_at=bindparam("delivered_at"))
             .execution_options(synchronize_session=False))


def record(conn: Connection, owner: str, results: Iterable[Result], now: datetime) -> int:
    """Write results of rows `owner` still holds; returns how many were written.

    Successes, the common case, are one statement per status (provider ids by CASE); the rest
    (errors, retries) one executemany.
    """
    results = list(results)
    ok: dict[str, dict[int, str | None]] = {}
    rest: list[Result] = []
    for r in results:
        if r.status in ("sent", "delivered"):
            ok.setdefault(r.status, {})[r.id] = r.provider_id
        else:
            rest.append(r)
    written = 0
    for status, ids in ok.items():
        given = {i: p for i, p in ids.items() if p is not None}
        params = {"ids": list(ids), "owner": owner, "status": status, "now": now,
                  "delivered_at": now if status == "delivered" else None}
        # Provider ids differ per row: one CASE, built for these rows.
        stmt = RECORD_OK.values(provider_id=case(given, value=o.c.id, else_=o.c.provider_id)) if given else RECORD_OK
        written += int(conn.execute(stmt, params).rowcount or 0)
    return written + _record_each(conn, owner, rest, now)


def _record_each(conn: Connection, owner: str, results: Sequence[Result], now: datetime) -> int:
    params = [{
        "b_id": r.id, "b_owner": owner, "status": r.status, "provider_id": r.provider_id, "error": r.error,
        "error_reason": r.error_reason, "due_at": r.due_at, "back": r.attempts_back,
        "sent_at": now if r.status in ("sent", "delivered") else None,
        "delivered_at": now if r.status == "delivered" else None,
    } for r in results]
    if not params:
        return 0
    stmt = (update(o).where(o.c.id == bindparam("b_id"), o.c.lease_owner == bindparam("b_owner"),
                            o.c.status == "sending")
            .values(status=bindparam("status"), provider_id=func.coalesce(bindparam("provider_id"), o.c.provider_id),
                    error=bindparam("error"), error_reason=bindparam("error_reason"), due_at=bindparam("due_at"),
                    attempts=o.c.attempts - bindparam("back"), lease_owner=None, updated_at=now,
                    sent_at=func.coalesce(bindparam("sent_at"), o.c.sent_at),
                    delivered_at=func.coalesce(bindparam("delivered_at"), o.c.delivered_at)))
    result = conn.execute(stmt.execution_options(synchronize_session=False), params)
    return int(result.rowcount or 0)


def reserve(conn: Connection, key: str, count: int, interval: float, now: datetime) -> datetime:
    """Reserve `count` consecutive send slots `interval` seconds apart for `key`; returns the first.

    One row per key holds the next free instant; every worker reserves through it, so a rate
    limit holds across processes and machines.
    """
    span = timedelta(seconds=interval * count)
    rs = t.rate_slots
    if conn.dialect.name == "postgresql":
        stmt = dialect_insert(conn, rs).values(key=key, next_free_at=now + span).on_conflict_do_update(
            index_elements=["key"], set_={"next_free_at": func.greatest(rs.c.next_free_at, now) + span},
        ).returning(rs.c.next_free_at)
        return conn.execute(stmt).scalar_one() - span
    # SQLite has one writer at a time (BEGIN IMMEDIATE), so reading then writing cannot race.
    current = conn.execute(select(rs.c.next_free_at).where(rs.c.key == key)).scalar_one_or_none()
    start = max(current, now) if current is not None else now
    if current is None:
        conn.execute(rs.insert().values(key=key, next_free_at=start + span))
    else:
        conn.execute(update(rs).where(rs.c.key == key).values(next_free_at=start + span))
    return start


def note_provider_id(conn: Connection, outbox_id: int, provider_id: str) -> None:
    """Record the provider's id of a row still being sent, before the worker's batch result is written.

    A provider's delivery callback can overtake that result (the batch waits for its slowest send); with
    the id noted at once the callback finds its row.
    """
    conn.execute(update(o).where(o.c.id == outbox_id, o.c.status == "sending").values(provider_id=provider_id))


def next_held(conn: Connection) -> datetime | None:
    """When the first message handed back to wait for its rate-limit slot comes due (None: none waits)."""
    return conn.execute(select(func.min(o.c.due_at)).where(
        o.c.status == "pending", o.c.error_reason.like("rate_%slot_held@%"))).scalar_one_or_none()


def extend(conn: Connection, key: str, until: datetime) -> None:
    """Push `key`'s next free instant out to `until` (never back): slots were used past what was reserved.

    The caller reserved on the same row in this transaction, so it holds that row's lock (PostgreSQL)
    or the write lock (SQLite): no other worker can reserve in between.
    """
    rs = t.rate_slots
    conn.execute(update(rs).where(rs.c.key == key, rs.c.next_free_at < until).values(next_free_at=until))


def fallback_source(conn: Connection, outbox_id: int) -> Row[Any] | None:
    """What a fallback row copies from the row that failed."""
    return conn.execute(select(o.c.audience, o.c.customer_id, o.c.order_id, o.c.sku, o.c.role, o.c.line_ids,
                               o.c.facts, o.c.urgent, o.c.cause, o.c.occurred_at)
                        .where(o.c.id == outbox_id)).first()


def listing(conn: Connection, *, order_id: str | None = None, customer_id: str | None = None,
            status: str | None = None, kind: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    q = select(*(o.c[c] for c in LIST_COLUMNS), o.c.order_id, o.c.customer_id, o.c.error_reason, o.c.role,
               o.c.due_at)
    if order_id is not None:
        q = q.where(o.c.order_id == order_id)
    if customer_id is not None:
        q = q.where(o.c.customer_id == customer_id)
    if status is not None:
        q = q.where(o.c.status == status)
    if kind is not None:
        q = q.where(o.c.kind == kind)
    return [dict(r) for r in conn.execute(q.order_by(o.c.id.desc()).limit(limit)).mappings()]


def retry(conn: Connection, ids: Sequence[int], now: datetime, max_age: timedelta) -> list[int]:
    """Send dead, failed or cancelled messages again now, with a fresh attempt count and age."""
    rows = conn.execute(update(o).where(o.c.id.in_(ids), o.c.status.in_(("dead", "failed", "cancelled")))
                        .values(status="pending", due_at=now, attempts=0, error=None, error_reason=None,
                                lease_owner=None, expires_at=now + max_age,
                                updated_at=now)
                        .returning(o.c.id)).scalars().all()
    return sorted(rows)


def cancel(conn: Connection, ids: Sequence[int], now: datetime) -> list[int]:
    """Cancel messages that have not gone out (a message being sent right now cannot be recalled)."""
    rows = conn.execute(update(o).where(o.c.id.in_(ids), o.c.status.in_(("pending", "failed", "held")))
                        .values(status="cancelled", error_reason="cancelled_by_user", due_at=None, updated_at=now)
                        .returning(o.c.id)).scalars().all()
    return sorted(rows)


def counts(conn: Connection) -> dict[str, int]:
    return {s: int(n) for s, n in conn.execute(select(o.c.status, func.count()).group_by(o.c.status)).tuples()}


def held_by_customer(conn: Connection) -> dict[str, datetime]:
    """Customers with messages waiting for a digest, and the oldest such message's time."""
    return dict(conn.execute(select(o.c.customer_id, func.min(o.c.created_at)).where(
        and_(o.c.status == "held", o.c.customer_id.is_not(None))).group_by(o.c.customer_id)).tuples().all())
