"""What every Slack listener needs from the product: who a Slack user is, and the chat answers.

services.chat is synchronous (it reads and writes the store), so it runs in a worker thread; the
notification worker is kicked afterwards because an answer may have planned messages (a hand-off task).
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from dataclasses import dataclass

from notifiers.slack_blocks import escape
from services import chat
from services.channels import staff_user
from services.chat import ChatUser
from services.context import Context
from store.chat_state import first_delivery, forget_delivery
from store.db import unit_of_work

CHANNEL = "slack"
# <@U123> or <@U123|name>: the mention of the bot (or anyone) is not part of the question.
MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
# <https://x|label> and <#C123|name>: keep what the reader saw.
LINK = re.compile(r"<[^>|]+\|([^>]*)>|<([^>]+)>")


def question(text: str) -> str:
    """The words of a Slack message as typed: mentions dropped, links as shown, &amp; &lt; &gt; decoded."""
    text = MENTION.sub(" ", text)
    text = LINK.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)
    return " ".join(html.unescape(text).split())


@dataclass(frozen=True)
class Door:
    ctx: Context
    kick: Callable[[], None]

    def who(self, user_id: str) -> ChatUser:
        """The staff member linked to this Slack user, or an unlinked account (told how to get linked)."""
        with self.ctx.engine.connect() as conn:
            found = staff_user(conn, self.ctx.settings, "slack_user", user_id)
        return found or ChatUser(staff_id=f"{CHANNEL}:{user_id}", roles=frozenset(), linked=False)

    def first_time(self, event_id: str, user_id: str) -> bool:
        with unit_of_work(self.ctx.engine) as conn:
            return first_delivery(conn, CHANNEL, event_id, user_id, self.ctx.now())

    def unsee(self, event_id: str) -> None:
        """Forget a delivery whose answer failed, so Slack's retry of it is answered instead of dropped."""
        with unit_of_work(self.ctx.engine) as conn:
            forget_delivery(conn, CHANNEL, event_id)

    async def ask(self, user: ChatUser, text: str) -> str:
        """The answer as Slack mrkdwn: store values (titles, ids) must not become mentions or links."""
        answer = await asyncio.to_thread(chat.reply, self.ctx, user, question(text), CHANNEL)
        self.kick()
        return escape(answer.reply)

    async def press(self, user: ChatUser, action: str, value: str) -> str:
        answer = await asyncio.to_thread(chat.act, self.ctx, user, action, value, CHANNEL)
        self.kick()
        return escape(answer.reply)
