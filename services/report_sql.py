"""SQL building blocks of the weekly report that both SQLite and PostgreSQL run the same way.

The report counts things per week and measures time between two stamps. Weeks are cut by bound
timestamps computed in Python (so a configured time zone decides where a week starts, on any dialect),
and durations use one helper that knows how each dialect subtracts timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Date, DateTime, Float, and_, case, cast, func, literal, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from store import tables as t
from store.models import TZDateTime

_de = t.domain_events
# A line stops waiting when it is allocated in full, cancelled or replaced by a substitute.
CLOSING_EVENTS = ("backorder_resolved", "line_cancelled", "line_substituted")


def at(value: datetime) -> ColumnElement[Any]:
    """A timestamp parameter typed like the store's columns (UTC on every dialect)."""
    return literal(value, TZDateTime)


def days(conn: Connection, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> ColumnElement[float]:
    """Fractional days from `earlier` to `later`; a DATE counts as its midnight UTC.

    SQLite keeps UTC text that julianday() reads; PostgreSQL subtracts UTC wall times (timestamp
    without zone), so the session's TimeZone setting cannot shift a date's midnight.
    """
    if conn.dialect.name == "sqlite":
        return cast(func.julianday(later) - func.julianday(earlier), Float)

    def utc(x: ColumnElement[Any]) -> ColumnElement[Any]:
        if isinstance(x.type, Date) and not isinstance(x.type, DateTime):
            return cast(x, DateTime())
        return func.timezone("UTC", x)

    return cast(func.extract("epoch", utc(later) - utc(earlier)), Float) / 86400.0


def bucket(col: ColumnElement[Any], bounds: Sequence[datetime]) -> ColumnElement[int]:
    """The index of the week [bounds[i], bounds[i+1]) that holds `col` (filter col to the whole range first)."""
    return case(*[(col < at(b), i) for i, b in enumerate(bounds[1:])], else_=len(bounds) - 1)


def in_range(col: ColumnElement[Any], start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(col >= at(start), col < at(end))


def line_pk() -> ColumnElement[int]:
    """The store key of the line a domain event is about (written beside the public line id)."""
    return _de.c.data["line_pk"].as_integer()


def _events(*kinds: str) -> Any:
    # The JSON key is extracted once, in a subquery: PostgreSQL would not match the GROUP BY's copy of the
    # expression to the select's (each carries its own bound parameter).
    return (select(line_pk().label("line_pk"), _de.c.type, _de.c.created_at)
            .where(_de.c.type.in_(kinds)).subquery())


def closings() -> Any:
    """Per line: when it was first allocated in full (resolved_at) and when it first stopped waiting (closed_at)."""
    ev = _events(*CLOSING_EVENTS)
    return (select(ev.c.line_pk,
                   func.min(case((ev.c.type == "backorder_resolved", ev.c.created_at))).label("resolved_at"),
                   func.min(ev.c.created_at).label("closed_at"))
            .group_by(ev.c.line_pk)
            .subquery("closings"))


def backorders_before(end: datetime) -> Any:
    """Every line backordered before `end`, with its resolved_at and closed_at (NULL while it has none).

    The lines come into the same GROUP BY as their events (a UNION ALL), so the caller joins order_lines to
    this by primary key, the cheap way round on every dialect: a LEFT JOIN to a grouped subquery is scanned
    once per line by SQLite.
    """
    lines = t.order_lines
    nothing = literal(None, TZDateTime)
    ev = _events(*CLOSING_EVENTS)
    both = union_all(
        select(lines.c.id.label("line_pk"), nothing.label("resolved_at"), nothing.label("closed_at"))
        .where(lines.c.backordered_at.is_not(None), lines.c.backordered_at < at(end)),
        select(ev.c.line_pk, case((ev.c.type == "backorder_resolved", ev.c.created_at)), ev.c.created_at),
    ).subquery()
    return (select(both.c.line_pk, func.min(both.c.resolved_at).label("resolved_at"),
                   func.min(both.c.closed_at).label("closed_at"))
            .group_by(both.c.line_pk).subquery("backorders"))


def first_times(**kinds: str) -> Any:
    """Per line: the first time of each event type, one column per keyword (label=type), in one grouped pass.

    Join order_lines to it by primary key (this subquery first): two grouped subqueries joined to each other
    are scanned once per row by SQLite.
    """
    ev = _events(*kinds.values())
    return (select(ev.c.line_pk, *[func.min(case((ev.c.type == kind, ev.c.created_at))).label(name)
                                   for name, kind in kinds.items()])
            .group_by(ev.c.line_pk).subquery("first_times"))


def first_event(kind: str, name: str) -> Any:
    """Per line: when the first `kind` domain event about it was written, and how many there were."""
    ev = _events(kind)
    return (select(ev.c.line_pk, func.min(ev.c.created_at).label(name), func.count().label("n"))
            .group_by(ev.c.line_pk).subquery(name))


def by_po(event_type: str) -> Any:
    """Per purchase order: when the first applied inbox event of `event_type` naming it occurred."""
    inbox = t.inbox
    ev = (select(inbox.c.payload[("data", "po_id")].as_string().label("po_id"), inbox.c.occurred_at)
          .where(inbox.c.type == event_type, inbox.c.status == "applied").subquery())
    return (select(ev.c.po_id, func.min(ev.c.occurred_at).label("at")).where(ev.c.po_id.is_not(None))
            .group_by(ev.c.po_id).subquery(event_type.replace(".", "_")))


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def stats(values: Sequence[float | None], scale: float = 1.0) -> dict[str, Any]:
    """count, mean, median and p90 of durations (days times `scale`), rounded for people."""
    xs = sorted(float(v) * scale for v in values if v is not None)
    if not xs:
        return {"count": 0, "mean": None, "median": None, "p90": None}
    p90 = xs[min(len(xs) - 1, round(0.9 * (len(xs) - 1)))]
    return {"count": len(xs), "mean": round(sum(xs) / len(xs), 1), "median": round(median(xs) or 0.0, 1),
            "p90": round(p90, 1)}
