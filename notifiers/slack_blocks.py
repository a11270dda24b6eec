"""Block Kit from a channel-neutral card (notifiers/render.py `_card`), within Slack's documented limits.

Slack rejects a whole message (invalid_blocks) when one element is over its limit, so every text is
clipped here rather than trusted to fit: header 150 characters, section text 3,000, field 2,000, at
most 10 fields, button text 75, button value 2,000, at most 25 elements in an actions block.

A decided card (an approval card redrawn with its outcome) carries a "note" (who did what and when), shown
as a context line; "edited": true adds that the text was edited before it was approved.
"""

from __future__ import annotations

from typing import Any

from prompts import render

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
ACTIONS_MAX = 25
FALLBACK_MAX = 4000  # Slack truncates `text` beyond 40,000; a notification preview needs far less
ACTION_PREFIX = "bo:"
STYLES = frozenset({"primary", "danger"})  # Slack's button styles (none: the default grey)
# A card action may name its style ("style"); these actions have one when it names none.
ACTION_STYLES = {"draft_approve": "primary", "draft_reject": "danger"}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """mrkdwn treats &, < and > as markup (links, mentions): a value from the store must not become one."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def mrkdwn(text: str, limit: int) -> dict[str, Any]:
    """`text` is already mrkdwn: escape what comes from the store before putting it in."""
    return {"type": "mrkdwn", "text": clip(text, limit)}


def button(action_id: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "button", "text": plain(label, BUTTON_TEXT_MAX),
                           "action_id": ACTION_PREFIX + action_id, "value": value[:BUTTON_VALUE_MAX]}
    if style in STYLES:
        out["style"] = style
    return out


def card_blocks(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Header (title), section (text), fields, buttons, the outcome's note, and a context line naming the kind."""
    blocks: list[dict[str, Any]] = []
    if card.get("title"):
        blocks.append({"type": "header", "text": plain(str(card["title"]), HEADER_MAX)})
    if card.get("text"):
        blocks.append({"type": "section", "text": mrkdwn(escape(str(card["text"])), SECTION_MAX)})
    fields = card.get("fields") or []
    if fields:
        blocks.append({"type": "section", "fields": [
            mrkdwn(f"*{escape(str(f['label']))}*\n{escape(str(f['value']))}", FIELD_MAX)
            for f in fields[:FIELDS_MAX]]})
    seen: set[str] = set()
    buttons = []
    for a in card.get("actions") or []:
        if a["id"] in seen:  # action_id must be unique within a block
            continue
        seen.add(a["id"])
        buttons.append(button(str(a["id"]), str(a["label"]), str(a["value"]),
                              a.get("style") or ACTION_STYLES.get(str(a["id"]))))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons[:ACTIONS_MAX]})
    if card.get("note") or card.get("edited"):
        notes = [mrkdwn(escape(str(card["note"])), FIELD_MAX)] if card.get("note") else []
        if card.get("edited"):
            notes.append(mrkdwn(escape(render("slack/en/draft_edited.txt.j2")), FIELD_MAX))
        blocks.append({"type": "context", "elements": notes})
    if card.get("kind"):
        kind = escape(str(card["kind"]).replace("_", " "))
        blocks.append({"type": "context", "elements": [mrkdwn(kind, FIELD_MAX)]})
    return blocks


def message(card: dict[str, Any], body: str) -> dict[str, Any]:
    """chat.postMessage arguments: `text` is the fallback (notifications, screen readers); blocks when a card."""
    out: dict[str, Any] = {"text": clip(escape(body), FALLBACK_MAX)}
    blocks = card_blocks(card) if card else []
    if blocks:
        out["blocks"] = blocks
    return out
