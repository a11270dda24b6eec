"""The embedded default channel: messages printed to the terminal (the demo, and a safe fallback)."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from notifiers.senders.base import Outgoing, Sent


class ConsoleSender:
    channel = "console"

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    async def send(self, msg: Outgoing) -> Sent:
        body = Text()
        if msg.subject:
            body.append(msg.subject, style="bold")
            body.append("\n\n")
        # Text, not markup: a body containing "[red]" or "[/]" must print as written, not fail to render.
        body.append(msg.body)
        title = Text.assemble((msg.kind, "bold cyan"), " → ", (msg.recipient, "green"))
        self.console.print(Panel(body, title=title, title_align="left", subtitle=f"#{msg.id}", expand=False))
        return Sent(provider_id=f"console-{msg.id}", delivered=True)

    async def aclose(self) -> None:
        return None
