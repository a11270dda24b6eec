"""`backorder chat`: a terminal chat on the same pipeline as every channel."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def _context():  # type: ignore[no-untyped-def]  # late import: the CLI module imports this one
    from backorder.cli import _context as make

    return make()


def chat(
    as_: Annotated[str, typer.Option("--as", help="customer:ID or staff:ROLE")] = "staff:ops",
    channel: Annotated[str, typer.Option(help="answer in this channel's style: web, sms, whatsapp, slack, teams")]
    = "web",
) -> None:
    """A terminal chat on the same pipeline as every channel: type a question, get the answer (Ctrl-D ends)."""
    from services.chat import ChatUser
    from services.chat import reply as chat_reply

    kind, _, value = as_.partition(":")
    if kind not in ("customer", "staff") or not value:
        console.print("[red]--as must be customer:ID or staff:ROLE[/red]")
        raise typer.Exit(2)
    user = ChatUser(customer_id=value) if kind == "customer" else ChatUser(staff_id=f"cli-{value}",
                                                                             roles=frozenset([value]))
    ctx = _context()
    interactive = sys.stdin.isatty()
    while True:
        try:
            text = console.input("[bold]> [/bold]") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not text:
            break
        if text.strip():
            answer = chat_reply(ctx, user, text.strip(), channel)
            console.print(answer.reply, highlight=False)
            console.print(f"[dim]({answer.intent} {answer.entities})[/dim]", highlight=False)
