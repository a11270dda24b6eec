"""Deciding on a reorder suggestion: approve (the ERP is asked, by a signed webhook) or reject.

A decision is one unit of work: a conditional UPDATE of the task (status = 'open' in its WHERE clause), so
of two clicks, two approvers or a stale card exactly one decides and every other gets `AlreadyDecided`
(who decided what, when); with it commit the audit row, on approval one `po.requested` /
`transfer.requested` webhook row per configured endpoint (the outbox path of decision webhooks,
docs/webhooks.md), and the redraw of every suggestion card already posted to Slack or Teams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from services import card_redraws
from services.context import Context
from services.reorder import KIND, KINDS
from store import allocation_io as io
from store import tables as t
from store.db import unit_of_work
from store.upsert import insert_ignore

CLOSED = "done"  # a task's closed status (services/chat_staff.py); `outcome` says how it closed
EVENT = {KIND["purchase"]: "po.requested", KIND["transfer"]: "transfer.requested"}
# Who may decide each kind; ops and admin may decide both.
ROLES = {KIND["purchase"]: frozenset({"procurement", "ops", "admin"}),
         KIND["transfer"]: frozenset({"warehouse_manager", "ops", "admin"})}


@dataclass(frozen=True)
class Decider:
    staff_id: str
    roles: frozenset[str]


class SuggestionNotFound(LookupError):
    pass


class NotAllowed(PermissionError):
    pass


class AlreadyDecided(Exception):
    def __init__(self, view: dict[str, Any]) -> None:
        self.view = view
        super().__init__(decided_message(view))


def decided_message(view: Mapping[str, Any]) -> str:
    """"already approved by ana at 2026-03-02T10:00:00+00:00" (what every late click hears)."""
    what = view["outcome"] or view["status"]
    return f"already {what} by {view['closed_by'] or 'nobody'} at {view['closed_at'] or '-'}"


def approve(ctx: Context, task_id: int, who: Decider, *, via: str) -> dict[str, Any]:
    return decide(ctx, task_id, who, "approved", via=via)


def reject(ctx: Context, task_id: int, who: Decider, *, via: str) -> dict[str, Any]:
    return decide(ctx, task_id, who, "rejected", via=via)


def decide(ctx: Context, task_id: int, who: Decider, outcome: str, *, via: str) -> dict[str, Any]:
    """Close an open suggestion with `outcome` (approved / rejected); returns the task as the API shows it."""
    if outcome not in ("approved", "rejected"):
        raise ValueError(f"outcome: {outcome!r} is neither approved nor rejected")
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        row = _row(conn, task_id)
        check(row, who)
        tk = t.tasks
        done = conn.execute(update(tk).where(tk.c.id == task_id, tk.c.status == "open").values(
            status=CLOSED, outcome=outcome, closed_by=who.staff_id[:100], closed_at=now)).rowcount
        if not done:
            raise AlreadyDecided(view(_row(conn, task_id)))
        row = _row(conn, task_id)
        hooks = webhook_rows(ctx, row, now) if outcome == "approved" else []
        if hooks:
            insert_ignore(conn, t.outbox, hooks, ["idempotency_key"])
        io.write_audit(conn, [{"entity": "task", "entity_id": str(task_id), "action": f"suggestion_{outcome}",
                               "before": {"status": "open"},
                               "after": {"status": CLOSED, "outcome": outcome, "kind": row["kind"], "sku": row["sku"],
                                         "detail": row["detail"], "via": via, "webhooks": len(hooks)}}],
                       who.staff_id[:100], None, now)
        _update_cards(conn, ctx, row, now)
        return view(row)


def check(row: Mapping[str, Any], who: Decider) -> None:
    allowed = ROLES[row["kind"]]
    if not who.roles & allowed:
        need = " or ".join(sorted(allowed))
        raise NotAllowed(f"only staff with the {need} role may decide on a {row['kind'].replace('_', ' ')}")


def _row(conn: Connection, task_id: int) -> Mapping[str, Any]:
    tk = t.tasks
    row = conn.execute(select(tk).where(tk.c.id == task_id)).mappings().first()
    if row is None or row["kind"] not in KINDS:
        raise SuggestionNotFound(f"suggestion {task_id} not found")
    return row


def get(ctx: Context, task_id: int) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return view(_row(conn, task_id))


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A suggestion as the API shows it."""
    return {"id": row["id"], "kind": row["kind"], "sku": row["sku"], "title": row["title"],
            "detail": dict(row["detail"] or {}), "status": row["status"], "outcome": row["outcome"],
            "created_at": _iso(row["created_at"]), "closed_at": _iso(row["closed_at"]), "closed_by": row["closed_by"]}


def payload_data(row: Mapping[str, Any], approved_at: datetime) -> dict[str, Any]:
    """The `data` of a po.requested / transfer.requested webhook (docs/webhooks.md)."""
    d = row["detail"] or {}
    data: dict[str, Any] = {"task_id": row["id"], "sku": row["sku"], "qty": d.get("qty"),
                            "expected_at": d.get("expected_at"), "approved_by": row["closed_by"],
                            "approved_at": approved_at.isoformat()}
    if row["kind"] == KIND["transfer"]:
        data.update(from_warehouse_id=d.get("from_warehouse_id"), to_warehouse_id=d.get("to_warehouse_id"))
    else:
        data.update(supplier_id=d.get("supplier_id"), warehouse_id=d.get("warehouse_id"))
    return data


def webhook_rows(ctx: Context, row: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """One signed request per configured endpoint that takes this event (an endpoint's `events` filter)."""
    from services.notifications import RowBuilder, idempotency_key

    etype = EVENT[row["kind"]]
    endpoints = [ep for ep in ctx.settings.webhook.all_endpoints() if not ep.events or etype in ep.events]
    if not endpoints or "webhook" not in ctx.channels:
        return []
    cause = f"task:{row['id']}"
    builder = RowBuilder(ctx, cause, now, now)
    rows = []
    for ep in endpoints:
        key = idempotency_key(etype, "webhook", cause, ep.url)
        payload = {"id": key, "type": etype, "occurred_at": now.isoformat(), "cause": cause,
                   "data": payload_data(row, now)}
        rows.append(builder._base(etype, "system", key, channel="webhook", recipient=ep.url, sku=row["sku"],
                                  payload=payload, urgent=True,
                                  body=f"{etype} {row['sku']} x {payload['data']['qty']}"))
    return rows


def card(row: Mapping[str, Any], channel: str = "slack") -> dict[str, Any]:
    """The suggestion's card as it stands: with Approve / Reject while open, with the outcome after."""
    from notifiers.render import render_notice

    rendered = render_notice(row["kind"], channel, "en", {"task": task_facts(row)})
    return {**(rendered.card or {}), "task_id": row["id"]}


def card_of(ctx: Context, task_id: int, channel: str = "slack") -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return card(_row(conn, task_id), channel)


def task_facts(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "kind": row["kind"], "sku": row["sku"], "title": row["title"],
            "severity": row["severity"], "detail": dict(row["detail"] or {}), "outcome": row["outcome"],
            "closed_by": row["closed_by"], "closed_at": _iso(row["closed_at"])}


def _update_cards(conn: Connection, ctx: Context, row: Mapping[str, Any], now: datetime) -> None:
    """Every suggestion card already posted for this task is redrawn with the outcome, in place."""
    posted = card_redraws.posted(conn, t.outbox.c.kind == row["kind"], t.outbox.c.sku == row["sku"])
    mine = [p for p in posted
            if any(str(a.get("value")) == str(row["id"]) for a in (p.payload or {}).get("actions", ()))]
    if mine:
        card_redraws.redraw(conn, ctx, f"task:{row['id']}", row["outcome"], mine, card(row), now, sku=row["sku"])
