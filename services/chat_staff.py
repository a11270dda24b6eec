"""Team answers in chat: backorders, who waits on a SKU (in allocation order), revenue at risk,
stock and inbound POs, tasks, and the actions staff may take (allocate a SKU, close a task)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, func, select

from allocation.ordering import sort_key_for
from backorder.config import DEFAULT_TASK_OWNERS
from intents import Understanding
from services import reads, task_staff, tasks
from services.allocating import run_pass
from services.context import Context
from services.task_staff import ACTING_ROLES, may_work
from store import allocation_io as io
from store import tables as t

# The task kind each role works on by default ([tasks] owner_roles decides; see may_close); ops and admin any.
TASKS_OF_ROLE = {"procurement": "procurement_review", "warehouse_manager": "inventory_check",
                 "customer_service": "handoff"}


def may_close(roles: frozenset[str], task_kind: str, owner_role: str | None = None) -> bool:
    """Whether these roles may close a task of this kind: its owner role ([tasks] owner_roles), ops or admin."""
    return may_work(roles, owner_role or DEFAULT_TASK_OWNERS.get(task_kind))


AGING = ((0, 2, "0-2"), (3, 7, "3-7"), (8, 14, "8-14"), (15, 30, "15-30"), (31, 10**6, "30+"))
SHOW = 10

Answer = tuple[str, dict[str, Any]]  # template name, facts


CUSTOMER_NAMED = re.compile(r"\b(?:customer|cliente)\s+(.{1,60}?)\s*[?.!]*$", re.IGNORECASE)


def _customer(conn: Connection, text: str) -> str | None:
    """The customer a team question names ("... for customer Jane Smith" or "... customer C-ADA")."""
    m = CUSTOMER_NAMED.search(text.strip())
    if m is None:
        return None
    named = m.group(1).strip()
    c = t.customers
    found = conn.execute(select(c.c.customer_id).where(
        (func.lower(c.c.customer_id) == named.lower()) | (func.lower(c.c.name) == named.lower()))
        .order_by(c.c.customer_id).limit(2)).scalars().all()
    return found[0] if len(found) == 1 else None


def backorders(conn: Connection, ctx: Context, roles: frozenset[str], staff_id: str, u: Understanding,
               text: str) -> Answer:
    e = dict(u.entities)
    customer = _customer(conn, text)
    if customer is not None:
        e["customer_id"] = customer
    f = reads.BackorderFilter(sku=e.get("sku"), warehouse_id=e.get("warehouse_id"), customer_id=e.get("customer_id"),
                              supplier_id=e.get("supplier_id"), limit=10_000)
    rows = reads.list_backorders(conn, f, ctx.today())
    keys = ("sku", "warehouse_id", "supplier_id", "customer_id")
    return "staff_backorders", {"filters": {k: e[k] for k in keys if k in e},
                                "count": len(rows), "units": sum(r["qty_waiting"] for r in rows),
                                "value": round(sum(r["value"] for r in rows), 2), "lines": rows[:SHOW]}


def waiting_on_sku(conn: Connection, ctx: Context, roles: frozenset[str], staff_id: str, u: Understanding,
                   text: str) -> Answer:
    sku = u.entities.get("sku")
    if sku is None:
        return "staff_which_sku", {"candidates": u.ambiguous.get("sku", [])}
    loaded = io.load_open(conn, [str(sku)])
    waiting = [ln for ln in loaded.lines if ln.waiting > 0]
    waiting.sort(key=sort_key_for(waiting, ctx.settings.allocation_policy(loaded.regions)))
    customers = dict(conn.execute(select(t.orders.c.order_id, t.orders.c.customer_id).where(
        t.orders.c.order_id.in_({ln.order_id for ln in waiting}))).tuples().all())
    return "staff_waiting", {"sku": sku, "count": len(waiting), "lines": [
        {"order_id": ln.order_id, "customer_id": customers.get(ln.order_id), "waiting": ln.waiting, "tier": ln.tier,
         "rush": ln.rush, "eta": ln.eta.isoformat() if ln.eta else None} for ln in waiting[:SHOW]]}


def revenue_at_risk(conn: Connection, ctx: Context, roles: frozenset[str], staff_id: str, u: Understanding,
                    text: str) -> Answer:
    e = u.entities
    rows = reads.list_backorders(conn, reads.BackorderFilter(sku=e.get("sku"), warehouse_id=e.get("warehouse_id"),
                                                             supplier_id=e.get("supplier_id"), limit=1_000_000),
                                 ctx.today())
    buckets = [{"days": name, "lines": 0, "value": 0.0} for _, _, name in AGING]
    by_sku: dict[str, float] = {}
    for r in rows:
        for i, (low, high, _) in enumerate(AGING):
            if low <= r["age_days"] <= high:
                buckets[i]["lines"] += 1
                buckets[i]["value"] = round(buckets[i]["value"] + r["value"], 2)
        by_sku[r["sku"]] = by_sku.get(r["sku"], 0.0) + r["value"]
    top = sorted(by_sku.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return "staff_revenue", {"value": round(sum(r["value"] for r in rows), 2), "lines": len(rows),
                             "buckets": buckets, "top": [{"sku": s, "value": round(v, 2)} for s, v in top]}


def sku_stock(conn: Connection, ctx: Context, roles: frozenset[str], staff_id: str, u: Understanding,
              text: str) -> Answer:
    sku = u.entities.get("sku")
    if sku is None:
        return "staff_which_sku", {"candidates": u.ambiguous.get("sku", [])}
    return "staff_stock", {"sku": reads.get_sku(conn, str(sku))}


def open_tasks(conn: Connection, ctx: Context, roles: frozenset[str], staff_id: str, u: Understanding,
               text: str) -> Answer:
    tasks = reads.list_tasks(conn, "open", now=ctx.now())
    if "task_id" in u.entities:  # the "Open task" button on an alert
        tasks = [tk for tk in tasks if tk["id"] == u.entities["task_id"]]
    if "sku" in u.entities:
        tasks = [tk for tk in tasks if tk["sku"] == u.entities["sku"]]
    return "staff_tasks", {"count": len(tasks), "tasks": tasks[:SHOW]}


def run_allocation(conn: Connection, ctx: Context, roles: frozenset[str], staff_id: str, u: Understanding,
                   text: str) -> Answer:
    if not roles & ACTING_ROLES:
        return "staff_forbidden", {"action": "run allocation", "needs": sorted(ACTING_ROLES)}
    sku = u.entities.get("sku")
    if sku is None:
        return "staff_which_sku", {"candidates": u.ambiguous.get("sku", [])}
    cause = f"chat:{staff_id}:allocate:{sku}:{ctx.now().isoformat()}"
    events = run_pass(conn, ctx, [str(sku)], cause, actor=f"chat:{staff_id}")
    allocated = sum(int(ev.data.get("allocated_now", 0)) for ev in events
                    if ev.type in ("line_allocated", "line_partially_allocated"))
    lines = len({ev.data["line_id"] for ev in events if ev.type in ("line_allocated", "line_partially_allocated")})
    return "staff_allocated", {"sku": sku, "units": allocated, "lines": lines}


def complete_task(conn: Connection, ctx: Context, roles: frozenset[str], staff_id: str, u: Understanding,
                  text: str) -> Answer:
    task_id = u.entities.get("task_id")
    tk = t.tasks
    row = conn.execute(select(tk.c.kind, tk.c.owner_role).where(tk.c.id == task_id, tk.c.status == "open")).first()
    if row is None:
        return "staff_no_task", {"task_id": task_id}
    try:  # services.tasks checks the role and records the audit row and the event
        done = tasks.close(conn, ctx, int(task_id), tasks.Actor(staff_id, roles, "chat"))
    except tasks.NotAllowed:
        needs = task_staff.needs(tasks.role_of(ctx, {"kind": row.kind, "owner_role": row.owner_role}))
        return "staff_forbidden", {"action": f"close {row.kind.replace('_', ' ')} tasks", "needs": needs}
    except tasks.TaskError:  # closed by someone else in between
        return "staff_no_task", {"task_id": task_id}
    return "staff_task_done", {"task_id": task_id, "title": done["title"]}


STAFF_HANDLERS: dict[str, Callable[[Connection, Context, frozenset[str], str, Understanding, str], Answer]] = {
    "backorders_query": backorders,
    "waiting_on_sku": waiting_on_sku,
    "revenue_at_risk": revenue_at_risk,
    "sku_stock": sku_stock,
    "open_tasks": open_tasks,
    "run_allocation": run_allocation,
    "complete_task": complete_task,
}

