"""Block Kit from cards: Slack's limits hold whatever the card holds, the text fallback is always there,
and buttons carry the action ids and values the Slack front door routes back to services.chat.act."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.slack.actions import ACTION_IDS
from bot.slack.door import question
from notifiers.render import render_notice
from notifiers.slack_blocks import (
    BUTTON_TEXT_MAX,
    BUTTON_VALUE_MAX,
    FIELD_MAX,
    FIELDS_MAX,
    HEADER_MAX,
    SECTION_MAX,
    card_blocks,
    message,
)

TASK_FACTS: dict[str, Any] = {"task": {"id": 7, "kind": "procurement_review", "sku": "KTL-200", "title":
                                       "Expedite KTL-200", "severity": "high", "detail": {}, "po_id": None}}


def card(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": "procurement_task", "title": "Procurement: KTL-200", "text": "Expedite it.",
                            "fields": [{"label": "SKU", "value": "KTL-200"}],
                            "actions": [{"id": "show_waiting", "label": "Show waiting orders", "value": "KTL-200"}],
                            "topic": "sku:KTL-200"}
    return base | kw


def test_a_card_becomes_header_text_fields_buttons_and_context() -> None:
    blocks = card_blocks(card())
    assert [b["type"] for b in blocks] == ["header", "section", "section", "actions", "context"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": "Procurement: KTL-200", "emoji": True}
    assert blocks[1]["text"] == {"type": "mrkdwn", "text": "Expedite it."}
    assert blocks[2]["fields"] == [{"type": "mrkdwn", "text": "*SKU*\nKTL-200"}]
    assert blocks[3]["elements"] == [{"type": "button", "text": {"type": "plain_text", "text": "Show waiting orders",
                                                                 "emoji": True},
                                      "action_id": "bo:show_waiting", "value": "KTL-200"}]
    assert blocks[4]["elements"] == [{"type": "mrkdwn", "text": "procurement task"}]


def test_a_real_task_card_has_every_button_the_front_door_routes() -> None:
    rendered = render_notice("procurement_task", "slack", "en", TASK_FACTS)
    assert rendered.card is not None
    out = message(rendered.card, rendered.body)
    assert out["text"] == rendered.body  # the fallback is the plain body, as notifications and screen readers show
    buttons = next(b for b in out["blocks"] if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("bo:task_take", "7"), ("bo:task_finish", "7"), ("bo:task_reassign", "7")]  # docs/tasks.md
    assert all(ACTION_IDS.match(b["action_id"]) for b in buttons)


def test_an_empty_payload_is_text_only() -> None:
    assert message({}, "Your answer") == {"text": "Your answer"}


def test_store_values_cannot_become_mentions_or_links() -> None:
    out = message(card(text="<!channel> & <https://evil|click>", fields=[{"label": "A<b>", "value": "x&y"}]),
                  "<!here>")
    assert out["text"] == "&lt;!here&gt;"
    assert out["blocks"][1]["text"]["text"] == "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"
    assert out["blocks"][2]["fields"][0]["text"] == "*A&lt;b&gt;*\nx&amp;y"


def test_duplicate_action_ids_keep_the_first_button() -> None:
    actions = [{"id": "open_task", "label": "Open", "value": "1"}, {"id": "open_task", "label": "Again", "value": "2"}]
    buttons = card_blocks(card(actions=actions))[3]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("bo:open_task", "1")]


text = st.text(min_size=1, max_size=5000)


@given(title=text, body=text, labels=st.lists(st.tuples(text, text), max_size=20),
       buttons=st.lists(st.tuples(st.sampled_from(["open_task", "complete_task", "show_waiting", "handoff"]),
                                  text, st.text(max_size=3000)), max_size=6))
def test_every_limit_holds_for_any_card(title: str, body: str, labels: list[tuple[str, str]],
                                        buttons: list[tuple[str, str, str]]) -> None:
    c = card(title=title, text=body, fields=[{"label": a, "value": b} for a, b in labels],
             actions=[{"id": i, "label": lb, "value": v} for i, lb, v in buttons])
    for block in card_blocks(c):
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_MAX
        elif block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= SECTION_MAX
        elif block["type"] == "section":
            assert 1 <= len(block["fields"]) <= FIELDS_MAX
            assert all(len(f["text"]) <= FIELD_MAX for f in block["fields"])
        elif block["type"] == "actions":
            ids = [b["action_id"] for b in block["elements"]]
            assert len(ids) == len(set(ids))
            assert all(len(b["text"]["text"]) <= BUTTON_TEXT_MAX and len(b["value"]) <= BUTTON_VALUE_MAX
                       for b in block["elements"])


def test_the_question_is_the_text_without_mentions_and_markup() -> None:
    assert question("<@UBOT0001> what is waiting for KTL-200?") == "what is waiting for KTL-200?"
    assert question("<@UBOT0001|backorder>   open tasks &amp; more") == "open tasks & more"
    assert question("see <https://shop.example/o/1042|order 1042> in <#C123|ops>") == "see order 1042 in ops"
