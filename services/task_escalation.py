"""Overdue tasks: each open task past its due time is escalated once, to the lead of its role, by their channel.

The lead is the staff member [tasks] leads names for the task's owner role; they hear on the first of
[tasks] lead_channels they have an account on (Slack DM, their Teams chat, e-mail, SMS), the rest being
fallbacks. A role with no lead (or a lead id nobody has) falls back to the [staff] lead contact, then the
team's, as a draft past its approval time does. `escalated_at` is set in the unit of work that writes the
notice, by a conditional UPDATE, so a task is escalated once however many workers run the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from allocation.model import DomainEvent
from notifiers import preferences as prefs_mod
from notifiers import routing
from services.context import Context
from services.reads import task_view
from services.recording import record
from services.task_staff import Member, member
from store import allocation_io as io
from store import tables as t
from store.db import unit_of_work
from store.upsert import insert_ignore

KIND = "task_overdue"
BATCH = 500
# Where each lead channel finds its address among a staff member's accounts.
ACCOUNT_OF = {"slack": "slack_user", "teams": "teams_user", "email": "email", "sms": "phone", "whatsapp": "phone"}


def escalate_due(ctx: Context) -> int:
    """Escalate every open task past due_at not yet escalated; returns how many were escalated now."""
    tk = t.tasks
    now = ctx.now()
    done = 0
    with unit_of_work(ctx.engine) as conn:
        # SKIP LOCKED: a task a person is acting on right now is escalated on the next run, not waited for.
        rows = conn.execute(select(tk).where(tk.c.status == "open", tk.c.escalated_at.is_(None), tk.c.due_at <= now)
                            .order_by(tk.c.due_at, tk.c.id).limit(BATCH)
                            .with_for_update(skip_locked=True)).mappings().all()
        for row in rows:
            flipped = conn.execute(update(tk).where(tk.c.id == row["id"], tk.c.status == "open",
                                                    tk.c.escalated_at.is_(None)).values(escalated_at=now)).rowcount
            if not flipped:
                continue
            escalate(conn, ctx, {**row, "escalated_at": now}, now)
            done += 1
    return done


def escalate(conn: Connection, ctx: Context, row: Mapping[str, Any], now: datetime) -> None:
    """The notice to the lead, the audit row and the task_escalated event of one overdue task."""
    task_id = row["id"]
    cause = f"task:{task_id}:overdue"
    lead = lead_of(conn, ctx, row["owner_role"])
    rows = notice_rows(ctx, row, lead, cause, now)
    if rows:
        insert_ignore(conn, t.outbox, rows, ["idempotency_key"])
    to = lead.staff_id if lead is not None else "lead"
    record(conn, ctx, [DomainEvent("task_escalated", {"task_id": task_id, "kind": row["kind"], "sku": row["sku"],
                                                      "owner_role": row["owner_role"], "owner": row["owner"],
                                                      "due_at": row["due_at"], "lead": to})], {}, cause, now)
    io.write_audit(conn, [{"entity": "task", "entity_id": str(task_id), "action": "escalated",
                           "before": {"escalated_at": None}, "after": {"escalated_at": now, "lead": to}}],
                   "escalation", cause, now)


def lead_of(conn: Connection, ctx: Context, role: str | None) -> Member | None:
    """The staff member who leads this role ([tasks] leads), or None for the [staff] lead contact."""
    lead_id = ctx.settings.tasks.leads.get(role) if role else None
    return member(conn, ctx.settings, lead_id) if lead_id else None


def address(channel: str, lead: Member) -> str | None:
    if channel == "console":
        return f"@{lead.staff_id}"
    account = ACCOUNT_OF.get(channel)
    return lead.accounts.get(account) if account else None


def notice_rows(ctx: Context, row: Mapping[str, Any], lead: Member | None, cause: str,
                now: datetime) -> list[dict[str, Any]]:
    from services.notifications import RowBuilder, rule  # the planner imports the services that import us

    facts = {"task": task_view(row, now),
             "lead": {"staff_id": lead.staff_id, "name": lead.name} if lead is not None else None}
    builder = RowBuilder(ctx, cause, now, now)
    scope = f"task:{row['id']}"
    if lead is None:  # [staff] lead, else the team (DEFAULT_ROLES task_overdue, or the rule's roles)
        return builder.for_staff(KIND, facts, scope=scope, sku=row["sku"])
    r = rule(ctx.settings.notify, KIND)
    if not r.enabled:
        return []
    channels = ctx.settings.tasks.lead_channels
    plan = routing.route(channels, "first", {c: address(c, lead) for c in channels}, ctx.channels)
    tz = prefs_mod.zone(ctx.settings.notify.ops_timezone)
    due = prefs_mod.inside_window(now, tz, prefs_mod.window(r.hours.model_dump()) if r.hours else None)
    common = {"role": row["owner_role"], "sku": row["sku"], "facts": facts, "urgent": r.urgent, "due_at": due,
              "expires_at": due + timedelta(hours=ctx.settings.notify.max_age_hours)}
    return builder.routed(KIND, "staff", plan, f"staff:{lead.staff_id}", scope, common)
