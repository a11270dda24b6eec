"""Channel-neutral cards drawn as Adaptive Cards 1.5, including the cards the real templates make."""

from __future__ import annotations

from typing import Any

import pytest

from notifiers.adaptive_cards import (
    CONTENT_TYPE,
    adaptive_card,
    answer_card,
    attachment,
    text_fallback,
)
from notifiers.render import render_notice

CARD: dict[str, Any] = {
    "kind": "procurement_task", "title": "Task #7: reorder KTL-200", "text": "Supplier is late; **reorder**.",
    "fields": [{"label": "Task", "value": "#7"}, {"label": "SKU", "value": "KTL-200"}],
    "actions": [{"id": "open_task", "label": "Open task", "value": "7"},
                {"id": "complete_task", "label": "Mark done", "value": "7"},
                {"id": "show_waiting", "label": "Show waiting orders", "value": "KTL-200"}],
    "topic": "sku:KTL-200",
}


def test_title_text_facts_and_execute_buttons_with_submit_fallback() -> None:
    card = adaptive_card(CARD)
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.5")
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, text, facts = card["body"]
    assert title == {"type": "TextBlock", "text": "Task #7: reorder KTL-200", "weight": "Bolder", "size": "Medium",
                     "wrap": True}
    assert text == {"type": "TextBlock", "text": "Supplier is late; **reorder**.", "wrap": True}
    assert facts == {"type": "FactSet", "facts": [{"title": "Task", "value": "#7"},
                                                  {"title": "SKU", "value": "KTL-200"}]}
    first = card["actions"][0]
    assert first == {"type": "Action.Execute", "verb": "open_task", "title": "Open task",
                     "data": {"action": "open_task", "value": "7"},
                     "fallback": {"type": "Action.Submit", "title": "Open task",
                                  "data": {"action": "open_task", "value": "7"}}}
    assert [a["verb"] for a in card["actions"]] == ["open_task", "complete_task", "show_waiting"]


def test_a_card_without_fields_or_actions_has_neither() -> None:
    card = adaptive_card({"title": "Digest", "text": "", "fields": [], "actions": []})
    assert [b["type"] for b in card["body"]] == ["TextBlock"] and "actions" not in card


def test_attachment_and_text_fallback() -> None:
    att = attachment(CARD)
    assert att["contentType"] == CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"
    assert att["content"] == adaptive_card(CARD)
    assert text_fallback(CARD) == ("Task #7: reorder KTL-200\nSupplier is late; **reorder**.\nTask: #7\n"
                                   "SKU: KTL-200")


def test_the_answer_card_has_the_answer_and_no_buttons() -> None:
    card = answer_card("Task #7 (Reorder) is done.")
    assert card["version"] == "1.5" and card["body"] == [{"type": "TextBlock", "text": "Task #7 (Reorder) is done.",
                                                          "wrap": True}]
    assert "actions" not in card


@pytest.mark.parametrize(("card", "field"), [
    ({"title": ""}, "card.title"),
    ({"title": "T", "fields": [{"label": "only a label"}]}, "card.fields[0]"),
    ({"title": "T", "actions": [{"label": "no id"}]}, "card.actions[0]"),
])
def test_bad_cards_name_the_part(card: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        adaptive_card(card)


def test_the_planners_cards_draw_with_their_buttons() -> None:
    facts = {"task": {"id": 12, "kind": "procurement_review", "sku": "KTL-200", "title": "Reorder blue kettles",
                      "severity": "high", "detail": {}, "created_at": "2026-03-02T09:00:00+00:00"}}
    rendered = render_notice("procurement_task", "teams", "en", facts)
    assert rendered.card is not None
    card = adaptive_card(rendered.card)
    assert card["body"][0]["text"] == rendered.card["title"]
    assert {"title": "SKU", "value": "KTL-200"} in card["body"][2]["facts"]
    assert [(a["verb"], a["data"]["value"]) for a in card["actions"]] == [
        ("open_task", "12"), ("complete_task", "12"), ("show_waiting", "KTL-200")]
    assert all(len(a["title"]) <= 20 for a in card["actions"])
