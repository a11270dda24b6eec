"""What a press on one of our Adaptive Cards comes to in Teams, whichever card it is on (a draft's approval card,
bot/teams/approvals.py; a reorder suggestion, bot/teams/suggestions.py; a task, bot/teams/tasks.py).

Each of those modules decides a press in its own `decide` (synchronous: the store is) and answers with an
`Answer` carrying at least `card` and `bad_request`; how that answer goes back to Teams is the same for all
and lives here, so the three doors cannot drift apart. An Action.Execute invoke is answered with the card (or
a BadRequest error the host shows); the Action.Submit fallback arrives as a message whose value is the
button's data, and its answer goes as replies or as an edit of the card the message replies to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Protocol, TypeVar

import aiohttp
from microsoft_agents.activity import Activity, AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import MessageFactory, TurnContext

from notifiers.adaptive_cards import CONTENT_TYPE, escape_markdown
from notifiers.senders.teams import card_activity
from prompts import render
from services.chat import ChatUser
from services.context import Context

VIA = "teams"
ERROR_TYPE = "application/vnd.microsoft.error"

log = logging.getLogger(__name__)

Asker = Callable[[Context, Activity], ChatUser]


class Pressed(Protocol):
    """The part of a door's Answer this module reads."""

    @property
    def card(self) -> dict[str, Any] | None: ...

    @property
    def bad_request(self) -> str | None: ...


A = TypeVar("A", bound=Pressed)
Decide = Callable[[Context, ChatUser, Mapping[str, Any]], A]


def is_press(data: object, verbs: frozenset[str]) -> bool:
    """Whether a button's data names one of `verbs`."""
    return isinstance(data, Mapping) and data.get("action") in verbs


def press_of(data: Mapping[str, Any], verbs: frozenset[str], action: str, item: str = "") -> tuple[str, int] | str:
    """(verb, id) of a press on a card of `action`s (draft, task, ...) whose value is the id of an `item`
    (default: the same word); or, when the data is none of `verbs` or carries no id, the bad request saying so."""
    verb, value = str(data.get("action") or ""), str(data.get("value") or "")
    if verb not in verbs:
        return f"data.action: not a {action} action"
    if not value.isdigit():
        return f"data.value: not a {item or action} id"
    return verb, int(value)


def unlinked_line(user: ChatUser) -> str:
    """What an account linked to no staff member is told: how to get linked."""
    account = (user.staff_id or "").partition(":")[2] or "unknown"
    return render("chat/en/unlinked.txt.j2", facts={"channel": VIA, "account": account})


async def _decided(ctx: Context, activity: Activity, data: Mapping[str, Any], asker: Asker,
                   decide: Decide[A]) -> A:
    # asker and decide read the store, which is synchronous: both run in a worker thread
    return await asyncio.to_thread(lambda: decide(ctx, asker(ctx, activity), data))


async def execute(ctx: Context, context: TurnContext, data: Mapping[str, Any], asker: Asker,
                  decide: Decide[A]) -> AdaptiveCardInvokeResponse:
    """An Action.Execute invoke: the answer's card replaces the pressed card for the presser."""
    got = await _decided(ctx, context.activity, data, asker, decide)
    if got.bad_request is not None or got.card is None:
        return AdaptiveCardInvokeResponse(status_code=HTTPStatus.BAD_REQUEST, type=ERROR_TYPE,
                                          value={"code": "BadRequest", "message": got.bad_request or "no card"})
    return AdaptiveCardInvokeResponse(status_code=HTTPStatus.OK, type=CONTENT_TYPE, value=got.card)


async def submitted(ctx: Context, context: TurnContext, asker: Asker,
                    decide: Decide[A]) -> tuple[Mapping[str, Any], A | None]:
    """An Action.Submit fallback: (its data, its answer); the answer is None when the data was no press we
    can act on, and the presser has then been told why in a reply."""
    value = context.activity.value
    data: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    got = await _decided(ctx, context.activity, data, asker, decide)
    if got.bad_request is not None:
        await reply(context, got.bad_request)
        return data, None
    return data, got


async def reply(context: TurnContext, line: str) -> None:
    """Plain `line`, escaped, as a reply."""
    await context.send_activity(MessageFactory.text(escape_markdown(line)))


async def edit_card(context: TurnContext, summary: str, card: dict[str, Any]) -> None:
    """Edit the card the Action.Submit message replies to into `card` (the decided card everyone should see)."""
    update = card_activity(summary, card)
    update.id = context.activity.reply_to_id
    try:
        await context.update_activity(update)
    except aiohttp.ClientResponseError as exc:  # the decision stands; the worker's approval_update edits it
        log.warning("teams: could not edit card %s after a decision: HTTP %s", update.id, exc.status)
