"""The choice in a task's Reassign menu (bot/slack/actions/task_reassign.py): action id "bo:task_reassign_to",
the selected option's value = the staff id, the block id = the task and the alert's thread.

The presser gives the task to the chosen staff member (services.tasks.reassign, via "slack"; both are
checked again now); the team reads it in the alert's thread. Choosing its owner changes nothing and is
told to the presser alone.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.actions.task_reassign import CHOOSE_ID, parse_block_id
from bot.slack.task_press import VIA, pressed, run
from services import tasks


async def choose(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
                 client: AsyncWebClient) -> None:
    press = await pressed(ack, body, context, client)
    if press is None:
        return
    parsed = parse_block_id(str(action.get("block_id", "")))
    to = str((action.get("selected_option") or {}).get("value") or "")
    if parsed is None or not to:
        await press.tell(tasks.words("not_found", task_id=action.get("block_id", "")))
        return
    task_id, target = parsed
    await run(press, "reassign", lambda: tasks.reassign(press.door.ctx, task_id, press.staff_id, to, via=VIA),
              target)


def register(app: AsyncApp) -> None:
    app.action(CHOOSE_ID)(choose)
