"""Interactive components. ACTION_IDS matches every action_id the cards' buttons carry ("bo:<action>"):
the questions buttons stand for (buttons.py) and the decisions on drafts (draft_buttons.py)."""

from __future__ import annotations

import re

from slack_bolt.async_app import AsyncApp

from bot.slack.actions import buttons, draft_buttons

ACTION_IDS = re.compile(f"{buttons.ACTION_IDS.pattern}|{draft_buttons.ACTION_IDS.pattern}")


def register(app: AsyncApp) -> None:
    buttons.register(app)
    draft_buttons.register(app)
