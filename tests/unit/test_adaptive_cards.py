"""Channel-neutral cards drawn as Adaptive Cards 1.5, including the cards the real templates make."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from markdown_it import MarkdownIt

from notifiers.adaptive_cards import (
    CONTENT_TYPE,
    adaptive_card,
    answer_card,
    attachment,
    escape_markdown,
    text_fallback,
)
from notifiers.render import render_notice

# The Adaptive Cards renderer of Teams on the desktop and the web reads Markdown with markdown-it; this is
# its Python port, CommonMark like it, to see what a card's text would turn into.
MD = MarkdownIt("commonmark").enable(["strikethrough", "table"])
MARKUP = re.compile(r"<(a|strong|em|code|img|s|del|h\d|ul|ol|li|blockquote|table)\b")


def rendered(markdown: str) -> str:
    return MD.render(markdown)


def seen_text(markdown: str) -> str:
    """The characters a reader sees once the Markdown is rendered as one paragraph of plain text."""
    return html.unescape(re.sub(r"</?p>", "", rendered(markdown))).strip()


def shows_as_is(markdown: str, value: str) -> bool:
    """Whether the Markdown renders to exactly `value`, as plain text, with no markup at all."""
    return not MARKUP.search(rendered(markdown)) and seen_text(markdown) == value


CARD: dict[str, Any] = {
    "kind": "procurement_task", "title": "Task #7: reorder KTL-200", "text": "Supplier is late; reorder.",
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
    assert text == {"type": "TextBlock", "text": "Supplier is late; reorder.", "wrap": True}
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
    assert text_fallback(CARD) == ("Task #7: reorder KTL-200\nSupplier is late; reorder.\nTask: #7\n"
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
        ("task_take", "12"), ("task_finish", "12"), ("task_reassign", "12")]  # bot/teams/tasks.py answers them
    assert all(len(a["title"]) <= 20 for a in card["actions"])


HOSTILE = ["[Approve](https://evil.example)", "**urgent** _now_", "<https://evil.example>", "`rm -rf`",
           "a\\*b\\*", "![x](https://evil.example/p.png)", "~~gone~~", "- not a list", "1. not a list",
           "12) nor this", "# not a heading", "> not a quote", "+ plus", "a | b\n--|--\nc | d", "title\n===",
           "a\n---\nb"]


@pytest.mark.parametrize("value", HOSTILE)
def test_store_values_stay_text_when_teams_reads_markdown(value: str) -> None:
    assert not shows_as_is(value, value)  # as it is, Markdown makes something else of it
    assert shows_as_is(escape_markdown(value), value)


def test_title_text_and_facts_are_escaped_and_our_answer_card_is_not() -> None:
    link = "[Approve](https://evil.example)"
    card = adaptive_card({"title": f"Task #9: {link}", "text": f"New task: {link} for **Ada**",
                          "fields": [{"label": "Customer", "value": f"{link} **"}], "actions": []})
    title, text, facts = card["body"]
    assert shows_as_is(title["text"], f"Task #9: {link}")
    assert shows_as_is(text["text"], f"New task: {link} for **Ada**")
    assert shows_as_is(facts["facts"][0]["value"], f"{link} **")
    # The answer card carries services.chat's own Markdown (it escapes the values it puts in).
    assert answer_card("*1 line(s)* wait")["body"][0]["text"] == "*1 line(s)* wait"


def test_a_task_title_from_the_store_does_not_become_a_link_on_the_planners_card() -> None:
    facts = {"task": {"id": 12, "kind": "procurement_review", "sku": "KTL-200",
                      "title": "[Approve](https://evil.example) **now", "severity": "high", "detail": {},
                      "created_at": "2026-03-02T09:00:00+00:00"}}
    notice = render_notice("procurement_task", "teams", "en", facts)
    assert notice.card is not None
    card = adaptive_card(notice.card)
    assert shows_as_is(card["body"][0]["text"], notice.card["title"])
    assert shows_as_is(card["body"][1]["text"], notice.card["text"])
    assert "[Approve](https://evil.example) **now" in notice.card["text"]
