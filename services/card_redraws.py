"""Redrawing chat cards already posted once what they ask about is decided (a draft's approval card,
services/approvals.py; a reorder suggestion's card, services/suggestions.py).

A decision plans one `approval_update` outbox row per card posted in Slack or Teams; the senders send it as
an edit of that card (payload "replace" = the provider's message id), so a decision made in any door reaches
every copy the same way. The idempotency key names the card and the decided state, so a redraw is planned
once however often the decision is replayed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, select

from services.context import Context
from store import tables as t
from store.upsert import insert_ignore

KIND = "approval_update"
CHAT_CHANNELS = ("slack", "teams")  # the channels whose messages can be edited in place


def posted(conn: Connection, *where: ColumnElement[bool],
           extra_columns: Sequence[ColumnElement[Any]] = ()) -> Sequence[Row[Any]]:
    """The outbox rows matching `where` that reached Slack or Teams as a message we can edit
    (`extra_columns`: more of their columns, e.g. the cause when many decisions are redrawn at once)."""
    o = t.outbox
    return conn.execute(select(o.c.id, o.c.channel, o.c.recipient, o.c.provider_id, o.c.role, o.c.payload,
                               *extra_columns).where(
        *where, o.c.channel.in_(CHAT_CHANNELS), o.c.status.in_(("sent", "delivered")),
        o.c.provider_id.isnot(None))).all()


def redraw(conn: Connection, ctx: Context, cause: str, state: str, cards: Sequence[Row[Any]],
           outcome: Mapping[str, Any], now: datetime, *, extra: Mapping[str, Any] | None = None,
           **fields: Any) -> None:
    """Plan an edit of each of `cards` (from `posted`) into `outcome`, the card as decided (`state`).
    `extra` joins the payload; `fields` are further outbox columns (sku, order_id, ...)."""
    if cards:
        insert_ignore(conn, t.outbox, rows(ctx, cause, state, cards, outcome, now, extra=extra, **fields),
                      ["idempotency_key"])


def rows(ctx: Context, cause: str, state: str, cards: Sequence[Row[Any]], outcome: Mapping[str, Any],
         now: datetime, *, extra: Mapping[str, Any] | None = None, **fields: Any) -> list[dict[str, Any]]:
    """The outbox rows `redraw` plans, for a caller that inserts many decisions' rows at once."""
    # services.notifications is in an import cycle with the services it plans for: imported late, as they do
    from services.notifications import RowBuilder, idempotency_key

    builder = RowBuilder(ctx, cause, now, now)
    return [builder._base(KIND, "staff", idempotency_key(KIND, c.channel, cause, state, c.id), channel=c.channel,
                          recipient=c.recipient, role=c.role, body=str(outcome.get("text") or ""), urgent=True,
                          payload={**outcome, "replace": c.provider_id, **(extra or {})}, **fields)
            for c in cards]
