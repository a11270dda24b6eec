"""Slash commands; COMMANDS is what the manifest's slash_commands must declare."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.commands import backorder

COMMANDS = (backorder.COMMAND,)


def register(app: AsyncApp) -> None:
    backorder.register(app)
