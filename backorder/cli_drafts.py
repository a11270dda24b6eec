"""`backorder drafts …`: the approval queue from a terminal. Each command's docstring is its --help text."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from services import approvals
from services.channels import list_staff

drafts_app = typer.Typer(help="Drafted customer messages waiting for approval.", no_args_is_help=True)
console = Console()
STATUSES = "drafting, pending, approved, rejected, sent, expired, cancelled"


def _context():  # type: ignore[no-untyped-def]  # late import: the CLI module imports this one
    from backorder.cli import _context as make

    return make()


def _approver(ctx, staff_id: str) -> approvals.Approver:  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        member = next((m for m in list_staff(conn, ctx.settings) if m["staff_id"] == staff_id), None)
    if member is None:
        raise typer.BadParameter(f"no staff member {staff_id!r} (backorder staff add)", param_hint="--as")
    return approvals.Approver(staff_id, frozenset(member["roles"]))


@drafts_app.command("list")
def drafts_list(
    status: Annotated[str | None, typer.Option(help=STATUSES)] = "pending",
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """List drafts, newest first (pending ones unless --status says otherwise)."""
    if status is not None and status not in STATUSES.split(", "):
        raise typer.BadParameter(f"{status!r} is not one of {STATUSES}", param_hint="--status")
    rows = approvals.list_drafts(_context(), status, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    table = Table("id", "kind", "order", "customer", "status", "by", "created", "text", box=box.SIMPLE_HEAD,
                  title=f"Drafts ({status or 'all'})", title_justify="left")
    for r in rows:
        table.add_row(str(r["id"]), r["kind"], r["order_id"] or "-", r["customer_id"] or "-", r["status"],
                      r["decided_by"] or "-", r["created_at"], " ".join(r["text"].split())[:60])
    console.print(table if rows else "no drafts")


@drafts_app.command("show")
def drafts_show(draft_id: int) -> None:
    """One draft in full, as JSON (the text, the facts' summary, who decided, the grounding result)."""
    try:
        typer.echo(json.dumps(approvals.get_draft(_context(), draft_id), default=str, indent=2))
    except approvals.DraftNotFound as exc:
        raise typer.BadParameter(str(exc), param_hint="DRAFT_ID") from None


def _decide(draft_id: int, staff_id: str, verb: str, text: str | None, reason: str | None) -> None:
    ctx = _context()
    who = _approver(ctx, staff_id)
    try:
        if verb == "approve":
            done = approvals.approve(ctx, draft_id, who, via="cli", text=text)
        else:
            done = approvals.reject(ctx, draft_id, who, via="cli", reason=reason)
    except (approvals.DraftNotFound, approvals.NotAllowed, approvals.BadEdit, approvals.AlreadyDecided) as exc:
        console.print(f"[red]draft {draft_id}: {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"draft {draft_id}: {done['status']} by {done['decided_by']}"
                  + (" (edited)" if done["edited"] else ""))


@drafts_app.command("approve")
def drafts_approve(
    draft_id: int,
    staff_id: Annotated[str, typer.Option("--as", help="the approving staff member's id")],
    text: Annotated[str | None, typer.Option(help="send this text instead of the draft's")] = None,
) -> None:
    """Approve a pending draft (as written, or with --text): its message is queued for the customer."""
    _decide(draft_id, staff_id, "approve", text, None)


@drafts_app.command("reject")
def drafts_reject(
    draft_id: int,
    staff_id: Annotated[str, typer.Option("--as", help="the rejecting staff member's id")],
    reason: Annotated[str | None, typer.Option(help="why, for the audit log")] = None,
) -> None:
    """Reject a pending draft: nothing is sent to the customer."""
    _decide(draft_id, staff_id, "reject", None, reason)
