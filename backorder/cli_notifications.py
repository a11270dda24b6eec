"""`backorder notifications …` and `backorder worker`. Each command's docstring is its --help text."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import timedelta
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from store import outbox
from store.db import unit_of_work

notifications_app = typer.Typer(help="Customer and team notifications (the outbox).", no_args_is_help=True)
console = Console()


def _context():  # type: ignore[no-untyped-def]  # late import: the CLI module imports this one
    from backorder.cli import _context as make

    return make()


@notifications_app.command("list")
def notifications_list(
    status: Annotated[str | None, typer.Option(help="pending, held, sending, sent, delivered, failed, dead, "
                                                    "cancelled, digested")] = None,
    order_id: Annotated[str | None, typer.Option("--order", help="only this order's messages")] = None,
    customer_id: Annotated[str | None, typer.Option("--customer", help="only this customer's messages")] = None,
    kind: Annotated[str | None, typer.Option(help="e.g. backorder_created, eta_changed, decision")] = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """List messages, newest first."""
    ctx = _context()
    with ctx.engine.connect() as conn:
        rows = outbox.listing(conn, order_id=order_id, customer_id=customer_id, status=status, kind=kind,
                              limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    table = Table("id", "kind", "channel", "recipient", "status", "tries", "created", "sent", "error",
                  box=box.SIMPLE_HEAD, title=f"Notifications ({status or 'all'})", title_justify="left")
    for r in rows:
        table.add_row(str(r["id"]), r["kind"], r["channel"], r["recipient"] or "-", r["status"], str(r["attempts"]),
                      r["created_at"].isoformat(timespec="seconds"),
                      r["sent_at"].isoformat(timespec="seconds") if r["sent_at"] else "-",
                      r["error_reason"] or "")
    console.print(table if rows else "no notifications")


@notifications_app.command("retry")
def notifications_retry(ids: Annotated[list[int], typer.Argument(help="notification ids")]) -> None:
    """Send dead, failed or cancelled messages again (a running worker picks them up at once)."""
    ctx = _context()
    with unit_of_work(ctx.engine) as conn:
        done = outbox.retry(conn, ids, ctx.now(), timedelta(hours=ctx.settings.notify.max_age_hours))
    console.print(f"{len(done)} message(s) queued again" + (f": {', '.join(map(str, done))}" if done else ""))
    if set(ids) - set(done):
        console.print(f"[yellow]not retried (not dead, failed or cancelled): "
                      f"{', '.join(map(str, sorted(set(ids) - set(done))))}[/yellow]")


@notifications_app.command("cancel")
def notifications_cancel(ids: Annotated[list[int], typer.Argument(help="notification ids")]) -> None:
    """Cancel messages that have not gone out yet."""
    ctx = _context()
    with unit_of_work(ctx.engine) as conn:
        done = outbox.cancel(conn, ids, ctx.now())
    console.print(f"{len(done)} message(s) cancelled")
    if set(ids) - set(done):
        console.print(f"[yellow]not cancelled (already sent, sending or closed): "
                      f"{', '.join(map(str, sorted(set(ids) - set(done))))}[/yellow]")


@notifications_app.command("stats")
def notifications_stats(
    days: Annotated[float, typer.Option(help="look back this many days")] = 7.0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Delivery rate, time from event to provider acceptance (p50/p99), opt-outs, dead letters by reason."""
    from services.notify_kpis import notification_kpis

    ctx = _context()
    with ctx.engine.connect() as conn:
        k = notification_kpis(conn, ctx.now(), days)
    if as_json:
        typer.echo(json.dumps(k, indent=2))
        return
    rate = f"{k['delivery_rate']:.2%}" if k["delivery_rate"] is not None else "-"
    tta = k["time_to_alert_ms"]
    table = Table(show_header=False, box=box.SIMPLE, title=f"Notifications, last {days:g} day(s)",
                  title_justify="left")
    table.add_row("messages", str(k["messages"]))
    table.add_row("by status", ", ".join(f"{s} {n}" for s, n in sorted(k["by_status"].items())) or "-")
    table.add_row("delivery rate", rate)
    table.add_row("time to alert", f"p50 {tta['p50']} ms, p99 {tta['p99']} ms over {tta['count']}"
                  if tta["count"] else "-")
    table.add_row("opted out", f"{k['opted_out']} of {k['customers']} customers ({k['stopped_all']} stopped all)")
    table.add_row("dead by reason", ", ".join(f"{r} {n}" for r, n in sorted(k["dead_by_reason"].items())) or "-")
    console.print(table)


def worker(
    once: Annotated[bool, typer.Option(help="send what is due now, then exit")] = False,
    apply: Annotated[bool, typer.Option("--apply/--no-apply",
                                        help="also apply stored events (the inbox), beside the API's applier")] = True,
) -> None:
    """Run the worker: dispatch the outbox, run the scheduled jobs ([schedule], each once cluster-wide) and
    apply stored events, until stopped (Ctrl-C, SIGTERM). --once: run digests and drafts, send, exit."""
    from backorder.cli import check_senders
    from backorder.logs import configure as configure_logging
    from services.worker import drain_outbox, run_worker

    ctx = _context()
    check_senders(ctx.settings)
    configure_logging(ctx.settings.logging)
    if once:
        sent = asyncio.run(drain_outbox(ctx, console))
        console.print(f"{sent} message(s) sent")
        return

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        dispatcher = await run_worker(ctx, stop, console, apply_inbox=apply)
        console.print(f"worker stopped; {dispatcher.sent} message(s) sent")

    console.print(f"worker dispatching from {ctx.settings.database_url.split('@')[-1]} "
                  f"(channels: {', '.join(sorted(ctx.channels))})")
    asyncio.run(main())

