"""A task's Take / Done / Reassign in Teams (docs/tasks.md), pressed on a task alert or an overdue notice.

As for drafts (bot/teams/approvals.py), a press arrives two ways. A host with Universal Actions sends an
Action.Execute invoke (verb task_take / task_finish / task_reassign, data {"action", "value": task id,
"to"?}); its answer is the card the presser sees in place of the pressed one: the task as it now stands
(who has it, or how it closed) with the buttons still useful, and under the title what the press did or
why it did nothing. An older host sends the Action.Submit fallback as a message with that data; it is
answered with a reply (the line), or the card when there is one to show (the Reassign picker).

Reassign without "to" answers with a picker: a choice of the staff members who can work the task and a
Reassign button whose press brings the choice back as data["to"]. The presser is the linked staff member
(bot.teams.agent._asker); services.tasks checks the roles, and its conditional updates make two presses
one outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from microsoft_agents.activity import AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import TurnContext

from bot.teams import presses
from bot.teams.presses import VIA, Asker
from notifiers.adaptive_cards import adaptive_card, escape_markdown
from notifiers.senders.teams import card_activity
from services import task_staff, tasks
from services.chat import ChatUser
from services.context import Context

TAKE, FINISH, REASSIGN = "task_take", "task_finish", "task_reassign"
VERBS = frozenset({TAKE, FINISH, REASSIGN})
ACTIONS = {TAKE: "take", FINISH: "finish", REASSIGN: "reassign"}
CHOICE_INPUT = "to"


def is_task_press(data: object) -> bool:
    """Whether a button's data is one of a task's buttons."""
    return presses.is_press(data, VERBS)


@dataclass(frozen=True)
class Answer:
    card: dict[str, Any] | None = None  # what the presser sees in place of the pressed card
    line: str | None = None  # what the press did or why it did nothing
    bad_request: str | None = None


def _buttons(task: Mapping[str, Any]) -> list[dict[str, str]]:
    """The buttons still useful on a task: none once closed; Take only while nobody has it."""
    if task["status"] != "open":
        return []
    value = str(task["id"])
    out = [] if task["owner"] else [{"id": TAKE, "label": tasks.words("button_take"), "value": value}]
    if task["kind"] not in tasks.DECIDED_KINDS:
        out.append({"id": FINISH, "label": tasks.words("button_done"), "value": value})
    return [*out, {"id": REASSIGN, "label": tasks.words("button_reassign"), "value": value}]


def task_card(task: Mapping[str, Any], line: str | None = None) -> dict[str, Any]:
    """The task as it stands (title, state, buttons), with `line` under the title."""
    card = adaptive_card({"title": tasks.words("card_title", task=task), "text": tasks.words("card_state", task=task),
                          "actions": _buttons(task)})
    if line:
        card["body"].insert(1, {"type": "TextBlock", "text": escape_markdown(line), "wrap": True, "weight": "Bolder"})
    return card


def picker_card(task: Mapping[str, Any], people: list[task_staff.Member]) -> dict[str, Any]:
    """The Reassign picker: who can work the task, and a Reassign button that sends the choice as "to"."""
    card = adaptive_card({"title": tasks.words("card_title", task=task),
                          "text": tasks.words("reassign_pick", task=task),
                          "actions": [{"id": REASSIGN, "label": tasks.words("button_reassign"),
                                       "value": str(task["id"])}]})
    choices = [{"title": f"{m.name} ({m.staff_id})" if m.name else m.staff_id, "value": m.staff_id} for m in people]
    card["body"].append({"type": "Input.ChoiceSet", "id": CHOICE_INPUT, "style": "compact", "isRequired": True,
                         "placeholder": tasks.words("reassign_placeholder"), "choices": choices})
    return card


def decide(ctx: Context, user: ChatUser, data: Mapping[str, Any]) -> Answer:
    """Act on a press of a task's button (in a worker thread: the store is synchronous)."""
    press = presses.press_of(data, VERBS, "task")
    if isinstance(press, str):
        return Answer(bad_request=press)
    verb, task_id = press
    if not user.linked:
        return _as_is(ctx, task_id, presses.unlinked_line(user))
    who = tasks.Actor(user.staff_id or "", user.roles, VIA)
    to = str(data.get(CHOICE_INPUT) or "")
    try:
        if verb == REASSIGN and not to:
            task, people = tasks.reassign_choices(ctx, task_id, who)
            if not people:
                return Answer(card=task_card(task, tasks.words("no_candidates", task=task,
                                                               needs=task_staff.needs(task["owner_role"]))))
            return Answer(card=picker_card(task, people))
        if verb == TAKE:
            out = tasks.take(ctx, task_id, who.staff_id, via=VIA)
        elif verb == FINISH:
            out = tasks.finish(ctx, task_id, who.staff_id, via=VIA)
        else:
            out = tasks.reassign(ctx, task_id, who.staff_id, to, via=VIA)
    except tasks.TaskNotFound:
        return Answer(bad_request=f"data.value: task {task_id} not found")
    except tasks.TaskError as exc:
        return _as_is(ctx, task_id, str(exc))
    line = tasks.words("outcome", action=ACTIONS[verb], changed=out["changed"], who=who.staff_id, task=out)
    return Answer(card=task_card(out, line), line=line)


def _as_is(ctx: Context, task_id: int, line: str) -> Answer:
    """The task's card as it stands, with why the press did nothing."""
    try:
        return Answer(card=task_card(tasks.get_task(ctx, task_id), line), line=line)
    except tasks.TaskNotFound:
        return Answer(bad_request=f"data.value: task {task_id} not found")


async def on_execute(ctx: Context, context: TurnContext, data: Mapping[str, Any],
                     asker: Asker) -> AdaptiveCardInvokeResponse:
    """An Action.Execute invoke: the answer's card replaces the pressed card for the presser."""
    return await presses.execute(ctx, context, data, asker, decide)


async def on_submit(ctx: Context, context: TurnContext, asker: Asker) -> None:
    """The Action.Submit fallback: the line as a reply, or the card when the press has one to show (the picker)."""
    _, got = await presses.submitted(ctx, context, asker, decide)
    if got is None:
        return
    if got.line is not None:
        await presses.reply(context, got.line)
    elif got.card is not None:
        await context.send_activity(card_activity(tasks.words("reassign_placeholder"), got.card))
