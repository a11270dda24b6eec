"""A draft's approval card in Teams: Approve, Edit (then Approve the edited text) and Reject (docs/approvals.md).

Two ways a press arrives. A host with Universal Actions sends an Action.Execute invoke (adaptiveCard/action,
verb draft_approve / draft_reject / draft_edit, data {"action", "value": draft id, "text"?}); its answer is
the card the presser sees in place of the pressed one: the decided card, or the same card with what went
wrong. An older host sends the Action.Submit fallback as a message whose value is that data; it cannot be
answered with a card, so the card (the message the press replies to) is edited in place and anything the
presser must hear goes as a reply.

Everyone else's copy of the card is edited by the worker: a decision plans an `approval_update` outbox row
for every approval card already posted (services.approvals), and notifiers/senders/teams.py sends it as an
edit of that card. So a decision made here, in Slack or through the API reaches every card the same way.

Only a linked staff member with an approver role may decide (services.approvals checks the role; an unlinked
account has none). Of two approvers pressing at once, one decides; the other sees the decided card and
"already approved by X at T".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp
from microsoft_agents.activity import Activity, AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import MessageFactory, TurnContext
from sqlalchemy import select

from notifiers.adaptive_cards import CONTENT_TYPE, approval_card, decided_card, escape_markdown
from notifiers.render import render_notice
from notifiers.senders.teams import card_activity
from prompts import render
from services import approvals, drafts
from services.chat import ChatUser
from services.context import Context
from store import tables as t

VIA = "teams"
APPROVE, REJECT, EDIT = "draft_approve", "draft_reject", "draft_edit"
DRAFT_VERBS = frozenset({APPROVE, REJECT, EDIT})
ERROR_TYPE = "application/vnd.microsoft.error"

log = logging.getLogger(__name__)

Asker = Callable[[Context, Activity], ChatUser]


def is_draft_press(data: object) -> bool:
    """Whether a button's data is one of a draft's buttons."""
    return isinstance(data, Mapping) and data.get("action") in DRAFT_VERBS


@dataclass(frozen=True)
class Answer:
    """What a press comes to.

    card: what the presser sees in place of the pressed card; shared: the decided card everyone should see
    (None while the draft waits); line: what the presser is told beyond that (a late press, a refusal, a bad
    edit); bad_request: the data is not a press we can act on (no card).
    """

    card: dict[str, Any] | None = None
    shared: dict[str, Any] | None = None
    line: str | None = None
    bad_request: str | None = None
    summary: str = ""  # the shown card as plain text: a message's fallback text and feed summary


def _row(ctx: Context, draft_id: int) -> Mapping[str, Any] | None:
    with ctx.engine.connect() as conn:
        return conn.execute(select(t.drafts).where(t.drafts.c.id == draft_id)).mappings().first()


def _request_card(ctx: Context, row: Mapping[str, Any], *, error: str | None = None,
                  editing: str | None = None) -> dict[str, Any]:
    """The approval card of a waiting draft, as the planner draws it, with its current text."""
    card = render_notice("approval_request", VIA, "en", drafts.card_facts(row)).card or {}
    return approval_card({**card, "draft_id": row["id"]}, draft_text=row["text"],
                         max_chars=ctx.settings.drafts.max_chars, error=error, editing=editing)


def _decided(row: Mapping[str, Any], line: str | None = None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(the presser's card, with `line`; everyone's card; its plain text) of a decided draft."""
    outcome = approvals.outcome_card(row)
    return decided_card(outcome, line=line), decided_card(outcome), str(outcome.get("text") or "")


def _late(row: Mapping[str, Any], line: str) -> Answer:
    mine, shared, summary = _decided(row, line)
    return Answer(card=mine, shared=shared, line=line, summary=summary)


def decide(ctx: Context, user: ChatUser, data: Mapping[str, Any]) -> Answer:
    """Act on a press of a draft's button (in a worker thread: the store is synchronous)."""
    verb = str(data.get("action") or "")
    value = str(data.get("value") or "")
    if verb not in DRAFT_VERBS:
        return Answer(bad_request="data.action: not a draft action")
    if not value.isdigit():
        return Answer(bad_request="data.value: not a draft id")
    draft_id = int(value)
    row = _row(ctx, draft_id)
    if row is None:
        return Answer(bad_request=f"data.value: draft {draft_id} not found")
    who = approvals.Approver(staff_id=user.staff_id or "", roles=user.roles if user.linked else frozenset())
    refusal = _refusal(ctx, user, who)
    if refusal is not None:  # the card stays as it is for everyone; the presser is told why
        return _refused(ctx, row, refusal)
    text = data.get("text")
    edited = str(text) if text is not None else None
    if verb == EDIT:  # a host that drew Edit as a button: the card opens its edit box
        if row["status"] != "pending":
            return _late(row, approvals.decided_message(approvals.view(row)))
        return Answer(card=_request_card(ctx, row, editing=row["text"]), summary=row["text"])
    try:
        if verb == REJECT:
            approvals.reject(ctx, draft_id, who, via=VIA)
        else:
            approvals.approve(ctx, draft_id, who, via=VIA, text=edited)
    except approvals.AlreadyDecided as exc:
        return _late(_row(ctx, draft_id) or row, str(exc))
    except approvals.NotAllowed as exc:
        return _refused(ctx, _row(ctx, draft_id) or row, str(exc))
    except approvals.BadEdit as exc:
        return Answer(card=_request_card(ctx, row, error=str(exc), editing=edited or ""), line=str(exc))
    except approvals.DraftNotFound:
        return Answer(bad_request=f"data.value: draft {draft_id} not found")
    mine, shared, summary = _decided(_row(ctx, draft_id) or row)
    return Answer(card=mine, shared=shared, summary=summary)


def _refusal(ctx: Context, user: ChatUser, who: approvals.Approver) -> str | None:
    """Why this presser may not decide: an unlinked account is told how to get linked, a staff member
    without an approver role which role it takes; None when they may."""
    if not user.linked:
        account = (user.staff_id or "").partition(":")[2] or "unknown"
        return render("chat/en/unlinked.txt.j2", facts={"channel": VIA, "account": account})
    try:
        approvals.check(ctx, who)  # services.approvals' own words for the role needed
    except approvals.NotAllowed as exc:
        return str(exc)
    return None


def _refused(ctx: Context, row: Mapping[str, Any], why: str) -> Answer:
    """The card unchanged (a waiting draft's approval card, or the decided card) with why under its title."""
    if row["status"] in drafts.OPEN:
        return Answer(card=_request_card(ctx, row, error=why), line=why)
    return Answer(card=_decided(row, why)[0], line=why)


async def on_execute(ctx: Context, context: TurnContext, data: Mapping[str, Any],
                     asker: Asker) -> AdaptiveCardInvokeResponse:
    """An Action.Execute invoke: the answer's card replaces the pressed card for the presser."""
    got = await asyncio.to_thread(lambda: decide(ctx, asker(ctx, context.activity), data))
    if got.bad_request is not None or got.card is None:
        return AdaptiveCardInvokeResponse(status_code=HTTPStatus.BAD_REQUEST, type=ERROR_TYPE,
                                          value={"code": "BadRequest", "message": got.bad_request or "no card"})
    return AdaptiveCardInvokeResponse(status_code=HTTPStatus.OK, type=CONTENT_TYPE, value=got.card)


async def on_submit(ctx: Context, context: TurnContext, asker: Asker) -> None:
    """The Action.Submit fallback (a message whose value is the button's data): the card it replies to is
    edited into the decided card, and the presser is told, in a reply, what the card cannot say."""
    activity = context.activity
    data = activity.value if isinstance(activity.value, Mapping) else {}
    got = await asyncio.to_thread(lambda: decide(ctx, asker(ctx, activity), data))
    if got.bad_request is not None:
        await _reply(context, got.bad_request)
        return
    if got.shared is not None and activity.reply_to_id:
        update = card_activity(got.summary, got.shared)
        update.id = activity.reply_to_id
        try:
            await context.update_activity(update)
        except aiohttp.ClientResponseError as exc:  # the decision stands; the worker's approval_update edits it
            log.warning("teams: could not edit card %s after a decision: HTTP %s", activity.reply_to_id, exc.status)
    elif got.shared is not None:  # no card to edit named: the outcome as a reply
        await context.send_activity(card_activity(got.summary, got.shared))
    if got.line:
        await _reply(context, got.line)
    elif got.shared is None and got.card is not None:  # Edit pressed on a host that drew it as a button
        await context.send_activity(card_activity(got.summary, got.card))


async def _reply(context: TurnContext, line: str) -> None:
    out = MessageFactory.text(escape_markdown(line))
    await context.send_activity(out)
