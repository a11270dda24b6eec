"""Interactive components; ACTION_IDS matches every action_id the cards' buttons carry ("bo:<action>")."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.actions import buttons

ACTION_IDS = buttons.ACTION_IDS


def register(app: AsyncApp) -> None:
    buttons.register(app)
