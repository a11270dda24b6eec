"""The `backorder` command. Each command's docstring is its --help text."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from backorder.cli_chat import chat
from backorder.cli_drafts import drafts_app
from backorder.cli_jobs import jobs_app
from backorder.cli_notifications import notifications_app, worker
from backorder.cli_report import report_app
from backorder.cli_staff import staff_app
from backorder.config import Settings, load_settings
from backorder.logs import configure as configure_logging
from services.context import Context
from store.db import upgrade

app = typer.Typer(help="backorder-bot: backorder intake, allocation, ETAs and alerts.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
events_app = typer.Typer(help="Canonical events.", no_args_is_help=True)
orders_app = typer.Typer(help="Orders.", no_args_is_help=True)
dl_app = typer.Typer(help="Dead letters: events that could not be applied yet.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(events_app, name="events")
app.add_typer(orders_app, name="orders")
app.add_typer(dl_app, name="deadletters")
app.add_typer(notifications_app, name="notifications")
app.add_typer(staff_app, name="staff")
app.add_typer(drafts_app, name="drafts")
app.add_typer(report_app, name="report")
app.add_typer(jobs_app, name="jobs")
app.command("worker")(worker)
app.command("chat")(chat)

console = Console()
DEMO_DB = "backorder-demo.db"


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except Exception as exc:  # a bad config file or variable: say which, then stop
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def check_senders(settings: Settings) -> None:
    """Stop with a configuration error naming the field when a webhook URL breaks the policy, before any
    process starts, rather than a traceback from a worker that half-started."""
    from notifiers.senders.registry import validate_webhook_endpoints

    try:
        validate_webhook_endpoints(settings)
    except ValueError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _context(upgrade_first: bool = True, **overrides: Any) -> Context:
    settings = _settings(**overrides)
    if upgrade_first:
        upgrade(settings.database_url)
    return Context.from_settings(settings)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    settings = _settings()
    upgrade(settings.database_url, revision)
    console.print(f"schema at [bold]{revision}[/bold] on {settings.database_url.split('@')[-1]}")


@events_app.command("post")
def events_post(file: Path, wait: bool = True) -> None:
    """Store and apply the canonical events in FILE (one JSON event or an array)."""
    from intake.envelope import parse_events
    from intake.errors import EventValidationError

    ctx = _context()
    try:
        events = parse_events(json.loads(file.read_text()))
    except (EventValidationError, json.JSONDecodeError) as exc:
        console.print(f"[red]{file}: rejected, nothing stored[/red]\n{exc}")
        raise typer.Exit(1) from exc
    _store_and_apply(ctx, [e.to_dict() for e in events], wait)


def _store_and_apply(ctx: Context, envelopes: list[dict[str, Any]], wait: bool) -> None:
    from rich.progress import Progress

    from services.inbox import apply_next, store_events

    outcomes, ids = store_events(ctx, envelopes)
    console.print(f"{outcomes.count('accepted')} accepted, {outcomes.count('duplicate')} duplicate")
    if wait and ids:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("applying", total=len(ids))
            while apply_next(ctx) is not None:
                progress.advance(task)
        _print_inbox_summary(ctx, ids)


def _print_inbox_summary(ctx: Context, ids: list[int]) -> None:
    from sqlalchemy import func, select

    from store import tables as t

    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.inbox.c.status, func.count()).where(t.inbox.c.id.in_(ids))
                            .group_by(t.inbox.c.status)).all()
    console.print(", ".join(f"{n} {status}" for status, n in sorted(rows)))


@app.command("import")
def import_(kind: Annotated[str, typer.Argument(help="orders, stock, purchase_orders, products or customers")],
            file: Path, wait: bool = True) -> None:
    """Import a CSV file of KIND through the same validation and events as the API."""
    from intake.csv_import import read_csv
    from intake.envelope import parse_events
    from intake.errors import EventValidationError

    ctx = _context()
    try:
        envelopes = read_csv(kind, file, now=ctx.now())
        events = parse_events(envelopes)
    except (EventValidationError, ValueError, FileNotFoundError) as exc:
        console.print(f"[red]{file}: rejected, nothing stored[/red]\n{exc}")
        raise typer.Exit(1) from exc
    _store_and_apply(ctx, [e.to_dict() for e in events], wait)


@orders_app.command("show")
def orders_show(order_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show an order with its lines, allocations and ETAs."""
    from services.reads import get_order

    ctx = _context()
    with ctx.engine.connect() as conn:
        order = get_order(conn, order_id)
    if order is None:
        console.print(f"[red]order {order_id} not found[/red]")
        raise typer.Exit(1)
    if as_json:
        console.print_json(data=order)
        return
    console.print(_order_table(order))


def _order_table(order: dict[str, Any]) -> Table:
    flags = [f for f in ("rush", "ship_complete") if order[f]]
    table = Table(title=f"Order {order['order_id']} for {order['customer_id']}"
                  + (f" ({', '.join(flags)})" if flags else ""), title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, padding=(0, 1))
    for col in ("line", "sku", "qty", "alloc", "ship", "status", "eta", "from"):
        table.add_column(col, no_wrap=True)
    for ln in order["lines"]:
        table.add_row(ln["line_id"], ln["sku"], str(ln["qty"]), str(ln["qty_allocated"]), str(ln["qty_shipped"]),
                      _status(ln["status"]), ln["eta"] or "-",
                      ", ".join(f"{a['warehouse_id']}:{a['qty']}" for a in ln["allocations"]) or "-")
    return table


def _status(status: str) -> str:
    colour = {"allocated": "green", "shipped": "blue", "partially_allocated": "yellow", "backordered": "red",
              "cancelled": "dim"}.get(status, "white")
    return f"[{colour}]{status}[/{colour}]"


@app.command("allocate")
def allocate(skus: Annotated[list[str] | None, typer.Argument(help="SKUs (all when none)")] = None,
             notify: Annotated[bool, typer.Option(help="plan customer and team notifications for the "
                                                       "decisions (--no-notify for an initial load)")] = True,
             ) -> None:
    """Run the batch allocation now: give available stock to waiting lines and project ETAs."""
    from rich.progress import Progress

    from services.batch import allocate_all

    ctx = _context()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("allocating", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = allocate_all(ctx, skus or None, progress=advance, notify=notify)
    rate = report.lines_seen / report.seconds if report.seconds else 0.0
    console.print(f"{report.lines_seen:,} open line(s) over {report.skus:,} SKU(s) in {report.seconds:.1f} s "
                  f"({rate:,.0f} lines/s): {report.lines_changed:,} changed, {report.units_allocated:,} unit(s) "
                  f"allocated, {report.events_written:,} domain event(s), {report.notifications:,} notification(s)")


@app.command("check-overdue")
def check_overdue() -> None:
    """Run the backorder workflow: rate late backorders, open procurement tasks and incidents."""
    from services.workflow import check_overdue as run

    ctx = _context()
    _print_overdue(run(ctx))


def _print_overdue(report: Any) -> None:
    console.print(f"{report.lines} late line(s) over {report.skus} SKU(s), {report.total_value:,.2f} waiting; "
                  f"{report.tasks_opened} task(s) and {report.incidents_opened} incident(s) opened")
    if report.by_sku:
        table = Table("sku", "lines", "value", "days late", "severity", "new ETA", title="Late backorders",
                      title_justify="left")
        for s in report.by_sku:
            table.add_row(str(s["sku"]), str(s["lines"]), f"{s['value']:,.2f}", str(s["max_days_late"]),
                          str(s["severity"]), str(s["new_eta"] or "none"))
        console.print(table)


@dl_app.command("list")
def deadletters_list(status: str = "parked", limit: int = 100) -> None:
    """List dead letters, highest impact (value of the orders they hold up) first."""
    from services.deadletters import list_dead_letters

    ctx = _context()
    with ctx.engine.connect() as conn:
        rows = list_dead_letters(conn, status or None, limit)
    table = Table("id", "event", "type", "reason", "waiting for", "impact", "attempts", "since",
                  title=f"Dead letters ({status or 'all'})", title_justify="left")
    for r in rows:
        table.add_row(str(r.id), f"{r.source}:{r.event_id}", r.type, r.reason, r.missing or "-",
                      f"{r.impact_value:,.2f}", str(r.attempts), r.created_at.isoformat(timespec="minutes"))
    console.print(table if rows else "no dead letters")


@dl_app.command("retry")
def deadletters_retry(ids: Annotated[list[int] | None, typer.Argument(help="dead letter ids")] = None,
                      all_: Annotated[bool, typer.Option("--all")] = False) -> None:
    """Queue dead letters to be applied again (by id, or --all), then apply them."""
    from services.deadletters import retry
    from services.inbox import drain
    from store.db import unit_of_work

    if not ids and not all_:
        console.print("[red]name dead letter ids, or --all[/red]")
        raise typer.Exit(2)
    ctx = _context()
    with unit_of_work(ctx.engine) as conn:
        n = retry(conn, None if all_ else ids, ctx.now())
    drain(ctx)
    console.print(f"{n} dead letter(s) retried")


@dl_app.command("drop")
def deadletters_drop(ids: list[int]) -> None:
    """Give up on dead letters by id (the inbox keeps the event, marked dropped)."""
    from services.deadletters import drop
    from store.db import unit_of_work

    ctx = _context()
    with unit_of_work(ctx.engine) as conn:
        n = drop(conn, ids, ctx.now())
    console.print(f"{n} dead letter(s) dropped")


@app.command("serve")
def serve(host: str = "127.0.0.1", port: int = 8000,
          demo: Annotated[bool, typer.Option(help="serve a fresh demo data set")] = False,
          with_worker: Annotated[bool | None, typer.Option(
              "--worker/--no-worker", help="also dispatch notifications in this process (default: on with one "
              "process, off with --workers > 1)")] = None,
          workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes serving the API only "
                                               "(no applier, no notification worker: run `backorder worker`)")] = 1,
          ) -> None:
    """Run the HTTP API (FastAPI on uvicorn), with a notification worker inside unless --no-worker.
    --workers N: N processes on one port serving the API only, beside `backorder worker` (docs/deploy.md)."""
    import uvicorn

    from bot.api import create_app

    if workers > 1 and (demo or with_worker):
        console.print("[red]usage error:[/red] --workers > 1 serves the API only: run `backorder worker` beside it "
                      "instead of --worker, and the demo with one process")
        raise typer.Exit(2)
    check_senders(_settings())
    ctx = _fresh_demo_context(quiet=True) if demo else _context()  # migrates once, before any process starts
    configure_logging(ctx.settings.logging)
    try:
        api = create_app(ctx, notify_worker=with_worker is not False and workers == 1)
    except ValueError as exc:  # a channel that cannot work as configured: say which, do not half-start
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    channels = ", ".join(api.state.channels) or "none (configure [slack], [teams] or [twilio])"
    console.print(f"serving on http://{host}:{port} (docs at /docs); chat channels: {channels}"
                  + (f"; {workers} API processes" if workers > 1 else ""))
    # Our own handler formats uvicorn's records too; bot/observability.py logs each request (with its id),
    # so uvicorn's access log would only repeat it.
    options: dict[str, Any] = {"host": host, "port": port, "log_config": None, "access_log": False,
                               "log_level": ctx.settings.logging.level.lower()}
    if workers == 1:
        uvicorn.run(api, **options)
        return
    # Several processes: uvicorn needs an import string, and each process builds its own app (bot/asgi.py);
    # the one built above only checked the configuration.
    from bot.asgi import IMPORT_STRING

    ctx.engine.dispose()
    uvicorn.run(IMPORT_STRING, factory=True, workers=workers, **options)


def _fresh_demo_context(quiet: bool) -> Context:
    from services.demo import play

    url = os.environ.get("BACKORDER_DEMO_DATABASE_URL", f"sqlite:///{DEMO_DB}")
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    ctx = _context(database_url=url)
    configure_logging(ctx.settings.logging)
    play(ctx, console, quiet=quiet)
    return ctx


@app.command("demo")
def demo() -> None:
    """Play a week of orders, stock-outs, a late PO and a replenishment on a fresh SQLite file."""
    started = datetime.now(UTC)
    _fresh_demo_context(quiet=False)
    console.print(f"\n[dim]demo finished in {(datetime.now(UTC) - started) / timedelta(seconds=1):.1f} s; "
                  f"the data is in {DEMO_DB}: try `backorder serve --demo` and open /dashboard or /docs[/dim]")
