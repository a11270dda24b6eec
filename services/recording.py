"""Record decisions: domain events and the notifications they call for, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection

from allocation.model import DomainEvent
from services import notifications
from services.context import Context
from store import allocation_io as io


def record(conn: Connection, ctx: Context, events: Sequence[DomainEvent], public_ids: dict[str, str],
           cause: str | None, now: datetime, restocked: Iterable[str] = ()) -> None:
    written = io.write_events(conn, events, public_ids, cause, now)
    restocked = list(restocked)
    if written or restocked:
        notifications.plan(conn, ctx, written, cause, restocked)
