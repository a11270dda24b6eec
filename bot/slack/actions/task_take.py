"""Take on a task's alert or the App Home: action id "bo:task_take", value = the task id.

The linked staff member becomes the task's owner (services.tasks.take, via "slack"); the team reads who
took it in the alert's thread. A second press by its owner, a task someone else has, a finished task or
a task of another role is told to the presser alone (bot/slack/task_press.py).
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.task_press import command_listener
from notifiers.slack_blocks import ACTION_PREFIX
from services import tasks

ACTION_ID = f"{ACTION_PREFIX}task_take"
take = command_listener("take", tasks.take)


def register(app: AsyncApp) -> None:
    app.action(ACTION_ID)(take)
