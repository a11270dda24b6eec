"""Done on a task's alert: action id "bo:task_finish", value = the task id.

The linked staff member finishes the task (services.tasks.finish, via "slack": their role must work it,
or they are ops or admin); the team reads who finished it in the alert's thread. A second press, by them
or anyone, is told privately that the task is already done, by whom and when (bot/slack/task_press.py).
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.task_press import command_listener
from notifiers.slack_blocks import ACTION_PREFIX
from services import tasks

ACTION_ID = f"{ACTION_PREFIX}task_finish"
finish = command_listener("finish", tasks.finish)


def register(app: AsyncApp) -> None:
    app.action(ACTION_ID)(finish)
