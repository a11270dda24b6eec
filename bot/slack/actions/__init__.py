"""Interactive components. ACTION_IDS matches every action_id the cards' buttons carry ("bo:<action>"):
the questions buttons stand for (buttons.py), the decisions on drafts (draft_buttons.py) and on reorder
suggestions (suggestion_buttons.py), and a task's Take / Done / Reassign (task_*.py, one listener each)."""

from __future__ import annotations

import re

from slack_bolt.async_app import AsyncApp

from bot.slack.actions import (
    buttons,
    draft_buttons,
    suggestion_buttons,
    task_finish,
    task_reassign,
    task_reassign_to,
    task_take,
)

ACTION_IDS = re.compile(f"{buttons.ACTION_IDS.pattern}|{draft_buttons.ACTION_IDS.pattern}"
                        f"|{suggestion_buttons.ACTION_IDS.pattern}"
                        # Take / Done / Reassign (and the Reassign menu's choice) on a task
                        f"|^(?:{'|'.join(re.escape(m.ACTION_ID) for m in (task_take, task_finish, task_reassign))}"
                        f"|{re.escape(task_reassign.CHOOSE_ID)})$")


def register(app: AsyncApp) -> None:
    buttons.register(app)
    draft_buttons.register(app)
    suggestion_buttons.register(app)  # Approve / Reject on a reorder suggestion
    for listener in (task_take, task_finish, task_reassign, task_reassign_to):  # a task's Take / Done / Reassign
        listener.register(app)
