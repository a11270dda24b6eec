"""A reorder suggestion's card in Teams: Approve and Reject (docs/reorder.md).

A host with Universal Actions sends an Action.Execute invoke (verb suggestion_approve / suggestion_reject,
data {"action", "value": task id}); the answer is the card the presser sees in place of the pressed one:
the decided card, or the same card with why nothing happened. An older host sends the Action.Submit
fallback as a message; the card it replies to is edited in place and anything more goes as a reply.
Everyone else's copy is edited by the worker (the `approval_update` rows services.suggestions plans).

The presser is the staff member linked to the Teams account; services.suggestions checks the role.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from microsoft_agents.activity import AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import TurnContext

from bot.teams import presses
from bot.teams.presses import VIA, Asker
from notifiers.adaptive_cards import adaptive_card, escape_markdown
from services import suggestions
from services.chat import ChatUser
from services.context import Context

VERBS = frozenset({"suggestion_approve", "suggestion_reject"})


def is_suggestion_press(data: object) -> bool:
    return presses.is_press(data, VERBS)


@dataclass(frozen=True)
class Answer:
    card: dict[str, Any] | None = None  # the Adaptive Card the presser sees
    decided: bool = False  # the card is the decided one (everyone's copy should become it)
    line: str | None = None  # what the presser is told beyond the card
    bad_request: str | None = None
    summary: str = ""


def _drawn(ctx: Context, task_id: int, line: str | None = None) -> tuple[dict[str, Any], bool, str]:
    card = suggestions.card_of(ctx, task_id, VIA)
    drawn = adaptive_card(card)
    if line:
        drawn["body"].insert(1, {"type": "TextBlock", "text": escape_markdown(line), "color": "Attention",
                                 "wrap": True})
    return drawn, not card.get("actions"), str(card.get("text") or "")


def decide(ctx: Context, user: ChatUser, data: Mapping[str, Any]) -> Answer:
    """Act on a press (in a worker thread: the store is synchronous)."""
    press = presses.press_of(data, VERBS, "suggestion", "task")
    if isinstance(press, str):
        return Answer(bad_request=press)
    verb, task_id = press
    who = suggestions.Decider(staff_id=user.staff_id or "", roles=user.roles if user.linked else frozenset())
    command = suggestions.approve if verb == "suggestion_approve" else suggestions.reject
    line = None
    try:
        command(ctx, task_id, who, via=VIA)
    except suggestions.SuggestionNotFound as exc:
        return Answer(bad_request=f"data.value: {exc}")
    except (suggestions.AlreadyDecided, suggestions.NotAllowed) as exc:
        line = str(exc)
    card, decided, summary = _drawn(ctx, task_id, line)
    return Answer(card=card, decided=decided, line=line, summary=summary)


async def on_execute(ctx: Context, context: TurnContext, data: Mapping[str, Any],
                     asker: Asker) -> AdaptiveCardInvokeResponse:
    return await presses.execute(ctx, context, data, asker, decide)


async def on_submit(ctx: Context, context: TurnContext, asker: Asker) -> None:
    """The Action.Submit fallback: the card it replies to becomes the decided card; the rest goes as a reply."""
    data, got = await presses.submitted(ctx, context, asker, decide)
    if got is None:
        return
    if got.decided and got.card is not None and context.activity.reply_to_id:
        shared = await asyncio.to_thread(suggestions.card_of, ctx, int(data["value"]), VIA)
        await presses.edit_card(context, got.summary, adaptive_card(shared))  # everyone's copy: no line for the presser
    if got.line:
        await presses.reply(context, got.line)
