"""What every Slack listener needs from the product: who a Slack user is, and the chat answers.

services.chat is synchronous (it reads and writes the store), so it runs in a worker thread; the
notification worker is kicked afterwards because an answer may have planned messages (a hand-off task).
Decisions on drafts (services.approvals) run in a worker thread too; their callers kick the worker once
the card is redrawn, so the customer's message goes out.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from notifiers import slack_blocks
from notifiers.slack_blocks import escape
from prompts import render
from services import approvals, chat
from services.channels import staff_user
from services.chat import ChatUser
from services.context import Context
from store import tables as t
from store.chat_state import first_delivery, forget_delivery
from store.db import unit_of_work

CHANNEL = "slack"
# <@U123> or <@U123|name>: the mention of the bot (or anyone) is not part of the question.
MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
Card = tuple[str, str] | None  # an approval card's message (channel, ts); None for a button on no message
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

    # -- drafts waiting for approval (bot/slack/actions/draft_buttons.py, bot/slack/views/draft_edit.py)
    def unlinked(self, user_id: str) -> str:
        """What an unlinked account is told when it acts on a draft: how to get linked (plain text)."""
        return render("chat/en/unlinked.txt.j2", facts={"channel": CHANNEL, "account": user_id})

    def refusal(self, user: ChatUser) -> str | None:
        """Why this staff member may not decide on drafts (the role needed), or None when they may."""
        try:
            approvals.check(self.ctx, approver(user))
        except approvals.NotAllowed as exc:
            return str(exc)
        return None

    async def approve(self, user: ChatUser, draft_id: int, text: str | None = None) -> dict[str, Any]:
        """Approve (with `text`: as edited); raises approvals' NotAllowed, BadEdit, AlreadyDecided, DraftNotFound."""
        return await asyncio.to_thread(approvals.approve, self.ctx, draft_id, approver(user), via=CHANNEL, text=text)

    async def reject(self, user: ChatUser, draft_id: int) -> dict[str, Any]:
        return await asyncio.to_thread(approvals.reject, self.ctx, draft_id, approver(user), via=CHANNEL)

    async def draft(self, draft_id: int) -> dict[str, Any]:
        """The draft as the queue shows it (status, text, decided_by, ...); raises approvals.DraftNotFound."""
        return await asyncio.to_thread(approvals.get_draft, self.ctx, draft_id)

    async def outcome(self, draft_id: int) -> dict[str, Any] | None:
        """The card a decided draft's approval card becomes (no buttons; who did what and when); None while open."""
        return await asyncio.to_thread(self._outcome, draft_id)

    async def redraw(self, client: AsyncWebClient, card: Card, draft_id: int) -> None:
        """Redraw an approval card in place with the draft's outcome (no buttons); an open draft keeps its card."""
        if card is None:
            return
        outcome = await self.outcome(draft_id)
        if outcome is None:
            return
        args = slack_blocks.message(outcome, str(outcome.get("text") or ""))
        # Without `blocks` chat.update keeps the old ones (the buttons): always send them, if need be empty.
        await client.chat_update(channel=card[0], ts=card[1], **{"blocks": [], **args})

    def _outcome(self, draft_id: int) -> dict[str, Any] | None:
        with self.ctx.engine.connect() as conn:
            row = conn.execute(select(t.drafts).where(t.drafts.c.id == draft_id)).mappings().first()
        if row is None or row["status"] in ("drafting", "pending"):
            return None
        card = approvals.outcome_card(row)
        card.setdefault("edited", bool(row["edited"]))
        return card


def approver(user: ChatUser) -> approvals.Approver:
    """A linked Slack user as the approver services.approvals records (decided_by is their staff id)."""
    return approvals.Approver(staff_id=user.staff_id or "", roles=user.roles)
