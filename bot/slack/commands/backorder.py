"""/backorder <question>: answered privately (ephemeral, through response_url) to whoever asked.

The answer is scoped to the asker, so it is not posted for the whole channel to read; an empty
command gets the help text with the ack itself.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from prompts import render

COMMAND = "/backorder"


async def answer_command(ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext,
                         respond: AsyncRespond) -> None:
    text = str(command.get("text", "")).strip()
    if not text:
        await ack(text=render("slack/en/help.md.j2", command=COMMAND), response_type="ephemeral")
        return
    await ack()
    reply = await context["door"].ask(context["chat_user"], text)
    await respond(text=reply, response_type="ephemeral")


def register(app: AsyncApp) -> None:
    app.command(COMMAND)(answer_command)
