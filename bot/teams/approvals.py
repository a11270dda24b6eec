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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from microsoft_agents.activity import AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import TurnContext
from sqlalchemy import select

from bot.teams import presses
from bot.teams.presses import VIA, Asker
from notifiers.adaptive_cards import approval_card, decided_card
from notifiers.render import render_notice
from notifiers.senders.teams import card_activity
from services import approvals, drafts
from services.chat import ChatUser
from services.context import Context
from store import tables as t

APPROVE, REJECT, EDIT = "draft_approve", "draft_reject", "draft_edit"
DRAFT_VERBS = frozenset({APPROVE, REJECT, EDIT})


def is_draft_press(data: object) -> bool:
    """Whether a button's data is one of a draft's buttons."""
    return presses.is_press(data, DRAFT_VERBS)


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
    press = presses.press_of(data, DRAFT_VERBS, "draft")
    if isinstance(press, str):
        return Answer(bad_request=press)
    verb, draft_id = press
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
        return presses.unlinked_line(user)
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
    return await presses.execute(ctx, context, data, asker, decide)


async def on_submit(ctx: Context, context: TurnContext, asker: Asker) -> None:
    """The Action.Submit fallback (a message whose value is the button's data): the card it replies to is
    edited into the decided card, and the presser is told, in a reply, what the card cannot say."""
    _, got = await presses.submitted(ctx, context, asker, decide)
    if got is None:
        return
    if got.shared is not None and context.activity.reply_to_id:
        await presses.edit_card(context, got.summary, got.shared)
    elif got.shared is not None:  # no card to edit named: the outcome as a reply
        await context.send_activity(card_activity(got.summary, got.shared))
    if got.line:
        await presses.reply(context, got.line)
    elif got.shared is None and got.card is not None:  # Edit pressed on a host that drew it as a button
        await context.send_activity(card_activity(got.summary, got.card))
