"""Play the demo story through the same intake path as every source, and tell what was decided."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.panel import Panel
from sqlalchemy import func, select

from prompts import render
from services import approvals, ops_figures, reorder
from services.context import Context
from services.demo_data import story
from services.inbox import drain, store_events
from services.reads import get_order
from services.worker import drain_outbox
from services.workflow import check_overdue
from store import tables as t

DECISIONS = ("line_backordered", "line_allocated", "line_partially_allocated", "backorder_resolved",
             "eta_changed", "line_cancelled", "line_shipped", "delay_detected", "task_opened", "incident_recorded")


class DemoClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def play(ctx: Context, console: Console, quiet: bool = False) -> None:
    """Apply every chapter; unless quiet, print the story and the decisions of each."""
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    clock = DemoClock(start)
    ctx.clock = clock
    for chapter in story(start):
        clock.now += timedelta(days=chapter.advance_days)
        with ctx.engine.connect() as conn:
            mark = conn.execute(select(func.coalesce(func.max(t.domain_events.c.id), 0))).scalar_one()
        if chapter.events:
            _, ids = store_events(ctx, chapter.events)
            drain(ctx, ids)
        if chapter.check_overdue:
            check_overdue(ctx)
        signed = _approve_drafts(ctx) if chapter.approve_drafts else []
        if chapter.ops_view:
            clock.now += timedelta(hours=9)
            reorder.check(ctx)
        if quiet:
            continue
        console.print()
        console.print(Panel(chapter.story, title=f"[bold]{chapter.title}[/bold]  [dim]{clock.now:%d %b %Y}[/dim]",
                            title_align="left"))
        with ctx.engine.connect() as conn:
            decided = conn.execute(
                select(t.domain_events.c.type, t.domain_events.c.data)
                .where(t.domain_events.c.id > mark, t.domain_events.c.type.in_(DECISIONS))
                .order_by(t.domain_events.c.id)).all()
            for row in decided:
                if row.type == "eta_changed" and row.data.get("new_eta") is None and not row.data.get("reason"):
                    continue  # the line stopped waiting; the allocation line above already says so
                console.print("  " + render("cli/decision.txt.j2", type=row.type, e=row.data), highlight=False)
            if chapter.ops_view:
                figures = ops_figures.snapshot(conn, clock.now, ctx.settings)
                console.print("  " + render("cli/ops_view.txt.j2", s=figures), highlight=False)
            for view in signed:
                console.print("  " + render("cli/draft.txt.j2", d=view), highlight=False)
            if chapter.show_orders:
                from backorder.cli import _order_table

                for oid in chapter.show_orders:
                    order = get_order(conn, oid)
                    if order:
                        console.print(_order_table(order))
        # What the customers and the team were told, through the console channel.
        asyncio.run(drain_outbox(ctx, console))


DEMO_APPROVER = approvals.Approver("sam", frozenset({"approver"}))


def _approve_drafts(ctx: Context) -> list[dict[str, object]]:
    """Sam approves what waits, as the approval buttons would; the first gets a line of her own."""
    waiting = sorted(approvals.list_drafts(ctx, "pending"), key=lambda d: int(d["id"]))
    done = []
    for i, d in enumerate(waiting):
        own = render("cli/demo_edit.txt.j2", text=d["text"]) if i == 0 else None
        done.append(approvals.approve(ctx, int(d["id"]), DEMO_APPROVER, via="demo", text=own))
    return done
