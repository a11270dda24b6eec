"""A channel-neutral card (notifiers/render.py) drawn as an Adaptive Card 1.5 for Microsoft Teams.

Buttons are Action.Execute (Universal Actions: the bot answers the invoke with a card that replaces
this one); each carries an Action.Submit fallback with the same data, for hosts that predate 1.4.

A draft's approval card (approval_card) has Approve and Reject as such buttons and Edit as an Action.ShowCard:
a multi-line Input.Text "text" holding the draft, and an Approve that sends the edited text with its data
({"action", "value", "text"}, on Action.Execute and on its Action.Submit fallback alike). Once decided, the
card becomes decided_card: the final text, who decided and when, and no buttons (bot/teams/approvals.py).

Teams reads TextBlock text and Fact titles and values as Markdown (links, emphasis, lists). A card's
title, text and fields are plain text holding store values (a customer's name, a task's title), so
they are drawn with every Markdown character backslash-escaped (CommonMark escapes, which the Teams
renderers honour): "[Approve](https://evil.example)" stays those characters, never a link.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from prompts import render

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
MAX_ACTIONS = 3  # what the planner's cards hold (WhatsApp's limit); Teams shows more, nothing needs them
APPROVAL_KINDS = frozenset({"approval_request", "approval_escalation"})
EDIT_ACTION = "draft_edit"
APPROVE_ACTION = "draft_approve"
TEXT_INPUT = "text"  # the id of the edit box: its value arrives as data["text"]

# Inline syntax anywhere (emphasis, links, code, autolinks and HTML, strikethrough, tables), and what only
# starts a block at the beginning of a line (headings, quotes, list items, "1." / "1)" numbered items).
_INLINE = re.compile(r"([\\`*_\[\]()<>~|{}!])")
_LINE_START = re.compile(r"^(\s*)(#{1,6}(?=\s|$)|[-+=](?=\s|$|[-=])|\d+(?=[.)]))", re.MULTILINE)


def escape_markdown(text: str) -> str:
    """Plain text as Markdown that shows exactly that text: no link, emphasis or list can form from it."""
    return _LINE_START.sub(_block_marker, _INLINE.sub(r"\\\1", text))


def _block_marker(m: re.Match[str]) -> str:
    lead, mark = m.groups()
    return f"{lead}{mark}\\" if mark[0].isdigit() else f"{lead}\\{mark}"  # "1\. x" is not a list; "\- x" neither


def _one_line(text: str) -> str:
    return escape_markdown(" ".join(text.split()))


def action_data(action_id: str, value: str) -> dict[str, str]:
    """What a button sends back: the same shape for Action.Execute data and Action.Submit value."""
    return {"action": action_id, "value": value}


def _action(action: Mapping[str, Any], *, inputs: bool = True) -> dict[str, Any]:
    """An Action.Execute with its Action.Submit fallback; `inputs=False`: it sends no input's value."""
    data = action_data(str(action["id"]), str(action.get("value", "")))
    made: dict[str, Any] = {
        "type": "Action.Execute",
        "verb": data["action"],
        "title": str(action["label"]),
        "data": data,
        "fallback": {"type": "Action.Submit", "title": str(action["label"]), "data": data},
    }
    if not inputs:
        made["associatedInputs"] = made["fallback"]["associatedInputs"] = "none"
    return made


def adaptive_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """The Adaptive Card JSON of a card {"title", "text", "fields", "actions", ...}; ValueError naming a bad part."""
    if not isinstance(card.get("title"), str) or not card["title"].strip():
        raise ValueError("card.title: a non-empty string is needed")
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _one_line(card["title"]), "weight": "Bolder", "size": "Medium", "wrap": True},
    ]
    if card.get("text"):
        body.append({"type": "TextBlock", "text": escape_markdown(str(card["text"])), "wrap": True})
    facts = []
    for i, field in enumerate(card.get("fields") or []):
        if not isinstance(field, Mapping) or "label" not in field or "value" not in field:
            raise ValueError(f"card.fields[{i}]: needs a label and a value")
        facts.append({"title": _one_line(str(field["label"])), "value": _one_line(str(field["value"]))})
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    actions = []
    for i, action in enumerate((card.get("actions") or [])[:MAX_ACTIONS]):
        if not isinstance(action, Mapping) or not action.get("id") or not action.get("label"):
            raise ValueError(f"card.actions[{i}]: needs an id and a label")
        actions.append(_action(action))
    made: dict[str, Any] = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body}
    if actions:
        made["actions"] = actions
    return made


def attachment(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card as a Bot Framework attachment."""
    return {"contentType": CONTENT_TYPE, "content": adaptive_card(card)}


def answer_card(text: str) -> dict[str, Any]:
    """The card that replaces a pressed one: the answer, as Markdown, and no buttons (one was used).

    The answer comes from services.chat already rendered as Markdown for "teams": it is not escaped here."""
    return {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION,
            "body": [{"type": "TextBlock", "text": text, "wrap": True}]}


def _edit_box(text: str, max_chars: int) -> dict[str, Any]:
    # The draft as it is: an input's value is not Markdown, so it is not escaped.
    return {"type": "Input.Text", "id": TEXT_INPUT, "isMultiline": True, "value": text, "maxLength": max_chars}


def _line(text: str, color: str) -> dict[str, Any]:
    return {"type": "TextBlock", "text": escape_markdown(text), "color": color, "wrap": True}


def approval_card(card: Mapping[str, Any], *, draft_text: str, max_chars: int, error: str | None = None,
                  editing: str | None = None) -> dict[str, Any]:
    """A draft's approval card: Approve / Edit / Reject, in the order the card lists them.

    Approve and Reject send no input. Edit opens the edit box (the draft's text, at most `max_chars`) under
    an Approve that sends it. `error` (a refusal, a bad edit) shows under the title; with `editing` the edit
    box is open in the card itself, holding that text, and Approve sends it (a bad edit kept for fixing).
    """
    drawn = adaptive_card({**card, "actions": []})
    if error:
        drawn["body"].insert(1, _line(error, "Attention"))
    actions: list[dict[str, Any]] = []
    listed = [a for a in card.get("actions") or [] if isinstance(a, Mapping)]
    for i, action in enumerate(listed[:MAX_ACTIONS]):
        if not action.get("id") or not action.get("label"):
            raise ValueError(f"card.actions[{i}]: needs an id and a label")
    approve = next((a for a in listed if a.get("id") == APPROVE_ACTION), None)
    for action in listed[:MAX_ACTIONS]:
        if action["id"] == EDIT_ACTION:
            if editing is not None or approve is None:
                continue  # the box is open already (or there is nothing to send it with)
            drawn_edit = {"type": "AdaptiveCard", "body": [_edit_box(draft_text, max_chars)],
                          "actions": [_action(approve)]}
            actions.append({"type": "Action.ShowCard", "title": str(action["label"]), "card": drawn_edit})
        else:
            actions.append(_action(action, inputs=editing is not None and action["id"] == APPROVE_ACTION))
    if editing is not None:
        drawn["body"].append(_edit_box(editing, max_chars))
    if actions:
        drawn["actions"] = actions
    return drawn


def decided_card(card: Mapping[str, Any], *, line: str | None = None) -> dict[str, Any]:
    """What an approval card becomes once its draft is decided (services.approvals.outcome_card): the final
    text, who decided what and when (its "note", drawn on its own), whether it was edited first, no buttons;
    `line` (e.g. "already approved by ana at ...", for a late click) shows under the title."""
    text = str(card.get("text") or "").rstrip()
    note = str(card.get("note") or "").strip()
    if note and text.endswith(note):
        text = text[: -len(note)].rstrip()
    drawn = adaptive_card({**card, "text": text, "actions": []})
    if line:
        drawn["body"].insert(1, _line(line, "Warning"))
    if note:
        drawn["body"].append({"type": "TextBlock", "text": escape_markdown(note), "weight": "Bolder", "wrap": True})
    if card.get("edited"):  # the words Slack's card uses for it
        drawn["body"].append({"type": "TextBlock", "text": escape_markdown(render("slack/en/draft_edited.txt.j2")),
                              "isSubtle": True, "wrap": True})
    return drawn


def text_fallback(card: Mapping[str, Any]) -> str:
    """The card as plain text, for notifications and clients that show no cards."""
    lines = [str(card.get("title") or "").strip()]
    if card.get("text"):
        lines.append(str(card["text"]).strip())
    lines += [f"{f['label']}: {f['value']}" for f in card.get("fields") or []]
    return "\n".join(line for line in lines if line)
