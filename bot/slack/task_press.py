"""What the Take / Done / Reassign listeners share (bot/slack/actions/task_*.py): who pressed, on what, and
how the answer is said.

The presser is the staff member linked to the Slack account (door.who, in the middleware); an unlinked
account is told how to get linked and nothing happens. A command that changed the task is said where the
team sees it: in the thread of the alert the button is on, or (App Home) in the presser's DM with the app,
whose Home tab is then redrawn. A press that changed nothing (a second Take, a task already done, no role
for it) is told to the presser alone, so two presses make one outcome and one announcement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from slack_bolt.async_app import AsyncAck, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.actions.buttons import reply_target
from bot.slack.actions.draft_buttons import card_of, tell
from bot.slack.door import Door
from bot.slack.home import home_view
from notifiers.slack_blocks import escape
from services import tasks
from services.chat import ChatUser
from services.context import Context

VIA = "slack"

Listener = Callable[[AsyncAck, dict[str, Any], dict[str, Any], AsyncBoltContext, AsyncWebClient], Awaitable[None]]


class TaskCommand(Protocol):
    """services.tasks.take / finish: the presser does it to the task."""

    def __call__(self, ctx: Context, task_id: int, staff_id: str, *, via: str = ...) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class TaskPress:
    door: Door
    user: ChatUser
    client: AsyncWebClient
    body: dict[str, Any]

    @property
    def clicker(self) -> str:
        return str(self.body["user"]["id"])

    @property
    def staff_id(self) -> str:
        return self.user.staff_id or ""

    async def tell(self, text: str) -> None:
        """Plain `text`, escaped, to the presser only."""
        await tell(self.client, card_of(self.body), self.clicker, escape(text))

    async def announce(self, text: str, target: tuple[str, str | None] | None = None) -> None:
        """Plain `text`, escaped, where the team sees what was done: the alert's thread (or the presser's DM)."""
        channel, thread_ts = target or reply_target(self.body)
        await self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=escape(text),
                                           unfurl_links=False)

    async def refresh_home(self) -> None:
        """A press on the App Home redraws it, so the task shows its new owner (or is gone)."""
        if (self.body.get("container") or {}).get("type") != "view":
            return
        view = await asyncio.to_thread(home_view, self.door.ctx, self.user)
        await self.client.views_publish(user_id=self.clicker, view=view)


async def pressed(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext,
                  client: AsyncWebClient) -> TaskPress | None:
    """Ack the press; None when the account is linked to no staff member (they are told how to link it)."""
    await ack()
    press = TaskPress(context["door"], context["chat_user"], client, body)
    if not press.user.linked:
        await press.tell(press.door.unlinked(press.clicker))
        return None
    return press


async def pressed_task(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
                       client: AsyncWebClient) -> tuple[TaskPress, int] | None:
    """`pressed`, then the task id the button's value carries; None when the account is unlinked or the value
    is no task id (the presser is told which)."""
    press = await pressed(ack, body, context, client)
    if press is None:
        return None
    value = str(action.get("value", ""))
    if not value.isdigit():
        await press.tell(tasks.words("not_found", task_id=action.get("value", "")))
        return None
    return press, int(value)


async def run(press: TaskPress, action: str, command: Callable[[], dict[str, Any]],
              target: tuple[str, str | None] | None = None) -> None:
    """Run a task command in a worker thread and say what came of it."""
    try:
        out = await asyncio.to_thread(command)
    except tasks.TaskError as exc:
        await press.tell(str(exc))
        return
    said = tasks.words("outcome", action=action, changed=out["changed"], who=press.staff_id, task=out)
    if out["changed"]:
        press.door.kick()  # the command's event may have planned a message
        await press.announce(said, target)
    else:
        await press.tell(said)
    await press.refresh_home()


def task_listener(name: str, handle: Callable[[TaskPress, int], Awaitable[None]]) -> Listener:
    """The listener of a button whose value is a task id: a linked presser's press goes to `handle` with the
    task id (`pressed_task` answers the rest). Bolt passes a listener's arguments by their names."""

    async def listener(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
                       client: AsyncWebClient) -> None:
        got = await pressed_task(ack, body, action, context, client)
        if got is not None:
            await handle(*got)

    listener.__name__ = name  # Bolt's logs name a listener by it
    return listener


def command_listener(verb: str, command: TaskCommand) -> Listener:
    """The listener of a task button whose press runs `command` (Take, Done) as the presser; `verb` names
    it in the outcome's words."""

    async def handle(press: TaskPress, task_id: int) -> None:
        await run(press, verb, lambda: command(press.door.ctx, task_id, press.staff_id, via=VIA))

    return task_listener(f"task_{verb}", handle)
