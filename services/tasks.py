"""Tasks for people: one open task per kind and SKU."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select

from allocation.model import DomainEvent
from services.context import Context
from services.recording import record
from store import allocation_io as io
from store import tables as t


def open_task(conn: Connection, ctx: Context, kind: str, *, sku: str | None, title: str,
              detail: dict[str, Any], cause: str, po_id: str | None = None,
              severity: str | None = None) -> int | None:
    """Open a task unless one of this kind is already open for the SKU; returns the new task id."""
    tk = t.tasks
    if sku is not None and conn.execute(
        select(tk.c.id).where(tk.c.kind == kind, tk.c.sku == sku, tk.c.status == "open")
    ).first():
        return None
    now = ctx.now()
    task_id = conn.execute(insert(tk).values(
        kind=kind, sku=sku, po_id=po_id, title=title, detail=detail, severity=severity, status="open",
        created_at=now,
    ).returning(tk.c.id)).scalar_one()
    record(conn, ctx, [DomainEvent("task_opened", {"task_id": task_id, "kind": kind, "sku": sku, "po_id": po_id,
                                                    "title": title, "severity": severity, "detail": detail})],
           {}, cause, now)
    io.write_audit(conn, [{"entity": "task", "entity_id": str(task_id), "action": "opened", "before": None,
                           "after": {"kind": kind, "sku": sku, "title": title}}], "workflow", cause, now)
    return task_id
