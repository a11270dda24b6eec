"""`backorder staff …`: the people behind Slack, Teams and phone accounts, and their roles."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

staff_app = typer.Typer(help="Staff: link chat accounts to people and roles.", no_args_is_help=True)
console = Console()

ROLE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,39}$")


def _context():  # type: ignore[no-untyped-def]  # late import: the CLI module imports this one
    from backorder.cli import _context as make

    return make()


def _fail(field: str, why: str) -> typer.Exit:
    console.print(f"[red]{field}: {why}[/red]")
    return typer.Exit(2)


def _e164(raw: str) -> str:
    from intake.fields import e164

    number = e164(raw)
    if number is None:
        raise _fail("--phone", f"{raw!r} is not a valid phone number in international format (+ and country code)")
    return number


@staff_app.command("add")
def staff_add(
    staff_id: str,
    role: Annotated[list[str], typer.Option("--role", help="a role (repeat for several): ops and admin may act")],
    slack_user: Annotated[str | None, typer.Option("--slack-user", help="Slack member id, U…")] = None,
    teams_user: Annotated[str | None, typer.Option("--teams-user", help="Teams user: Entra object id or 29:… id")]
    = None,
    phone: Annotated[str | None, typer.Option("--phone", help="E.164 number for SMS and WhatsApp, +…")] = None,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    email: Annotated[str | None, typer.Option(help="e-mail address")] = None,
    warehouse: Annotated[str | None, typer.Option(help="their warehouse id: their App Home shows its backorders")]
    = None,
) -> None:
    """Add a staff member or update one: their roles and the chat accounts that are them."""
    from services.channels import add_staff
    from store.db import unit_of_work

    if not staff_id.strip() or len(staff_id) > 100:
        raise _fail("STAFF_ID", "give 1 to 100 characters")
    bad = [r for r in role if not ROLE.match(r)]
    if bad:
        raise _fail("--role", f"{bad[0]!r} is not a role name (lowercase letters, digits, _)")
    if slack_user is not None and not SLACK_USER.match(slack_user):
        raise _fail("--slack-user", f"{slack_user!r} is not a Slack member id (U… or W…)")
    if teams_user is not None and not teams_user.strip():
        raise _fail("--teams-user", "empty")
    number = _e164(phone) if phone is not None else None
    ctx = _context()
    try:
        with unit_of_work(ctx.engine) as conn:
            row = add_staff(conn, staff_id, role, ctx.now(), name=name, slack_user=slack_user,
                            teams_user=teams_user, phone=number, email=email, warehouse_id=warehouse)
    except ValueError as exc:
        raise _fail("account", str(exc)) from exc
    console.print(f"staff [bold]{row['staff_id']}[/bold]: roles {', '.join(row['roles'])}; "
                  + ", ".join(f"{k} {row[k]}" for k in ("slack_user", "teams_user", "phone") if row[k]))


@staff_app.command("list")
def staff_list() -> None:
    """List staff members (from the store and from [staff.members] in the configuration)."""
    from services.channels import list_staff

    ctx = _context()
    with ctx.engine.connect() as conn:
        rows = list_staff(conn, ctx.settings)
    table = Table("staff", "roles", "slack", "teams", "phone", "warehouse", "from", title="Staff",
                  title_justify="left")
    for r in rows:
        table.add_row(r["staff_id"], ", ".join(r["roles"]), r["slack_user"] or "-", r["teams_user"] or "-",
                      r["phone"] or "-", r["warehouse_id"] or "-", r["source"])
    console.print(table if rows else "no staff linked yet: backorder staff add STAFF_ID --role ops --slack-user U…")


@staff_app.command("remove")
def staff_remove(staff_id: str) -> None:
    """Unlink a staff member: their chat accounts get read-only answers again."""
    from services.channels import remove_staff
    from store.db import unit_of_work

    ctx = _context()
    with unit_of_work(ctx.engine) as conn:
        removed = remove_staff(conn, staff_id)
    if not removed:
        raise _fail("STAFF_ID", f"no staff member {staff_id} in the store")
    console.print(f"staff {staff_id} removed")
