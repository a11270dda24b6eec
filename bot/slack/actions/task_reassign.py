"""Reassign on a task's alert or the App Home: action id "bo:task_reassign", value = the task id.

It shows the presser alone (ephemeral beside the alert, or in their DM for the App Home) a menu of the staff
members who can work the task (they hold its role, or ops/admin), its owner left out. Choosing one is
bot/slack/actions/task_reassign_to.py's; the menu's block id carries the task id and the alert's thread,
so the reassignment is announced where the alert is. Someone who may not reassign it, a finished task,
or nobody to give it to is told so instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack.actions.buttons import reply_target
from bot.slack.actions.draft_buttons import card_of
from bot.slack.task_press import VIA, TaskPress, task_listener
from notifiers.slack_blocks import ACTION_PREFIX, SECTION_MAX, clip, escape, mrkdwn, plain
from services import task_staff, tasks

ACTION_ID = f"{ACTION_PREFIX}task_reassign"
CHOOSE_ID = f"{ACTION_PREFIX}task_reassign_to"
BLOCK_PREFIX = "task_reassign"
OPTIONS_MAX = 100  # Slack's limit for a static_select
OPTION_TEXT_MAX = 75
BLOCK_ID_MAX = 255


def block_id(task_id: int, target: tuple[str, str | None]) -> str:
    return f"{BLOCK_PREFIX}|{task_id}|{target[0]}|{target[1] or ''}"[:BLOCK_ID_MAX]


def parse_block_id(value: str) -> tuple[int, tuple[str, str | None]] | None:
    """(task id, (channel, thread ts)) from a picker's block id; None when it is not one of ours."""
    parts = value.split("|")
    if len(parts) != 4 or parts[0] != BLOCK_PREFIX or not parts[1].isdigit() or not parts[2]:
        return None
    return int(parts[1]), (parts[2], parts[3] or None)


def picker(task: dict[str, Any], people: list[task_staff.Member],
           target: tuple[str, str | None]) -> list[dict[str, Any]]:
    text = escape(tasks.words("reassign_pick", task=task))
    options = [{"text": plain(clip(f"{m.name} ({m.staff_id})" if m.name else m.staff_id, OPTION_TEXT_MAX),
                              OPTION_TEXT_MAX), "value": m.staff_id} for m in people[:OPTIONS_MAX]]
    return [{"type": "section", "block_id": block_id(int(task["id"]), target), "text": mrkdwn(text, SECTION_MAX),
             "accessory": {"type": "static_select", "action_id": CHOOSE_ID,
                           "placeholder": plain(tasks.words("reassign_placeholder"), 150), "options": options}}]


async def show_picker(press: TaskPress, task_id: int) -> None:
    who = tasks.Actor(press.staff_id, press.user.roles, VIA)
    try:
        task, people = await asyncio.to_thread(tasks.reassign_choices, press.door.ctx, task_id, who)
    except tasks.TaskError as exc:
        await press.tell(str(exc))
        return
    if not people:
        await press.tell(tasks.words("no_candidates", task=task, needs=task_staff.needs(task["owner_role"])))
        return
    blocks = picker(task, people, reply_target(press.body))
    fallback = escape(tasks.words("reassign_pick", task=task))
    card = card_of(press.body)
    if card is None:  # App Home: the menu goes to the presser's DM with the app
        await press.client.chat_postMessage(channel=press.clicker, text=fallback, blocks=blocks)
    else:
        await press.client.chat_postEphemeral(channel=card[0], user=press.clicker, text=fallback, blocks=blocks)


reassign = task_listener("task_reassign", show_picker)


def register(app: AsyncApp) -> None:
    app.action(ACTION_ID)(reassign)
