"""The LLM fallback: an OpenAI-compatible model picks one of our intents with arguments, through
function calling. Nothing it says is shown to anyone; its choice is validated like user input and
scoped to the asker afterwards, so a model that is wrong, or talked into something, gets nowhere."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backorder.config import LLMSettings
from backorder.llm import client as llm_client
from intents.model import CUSTOMER_INTENTS, SHARED_INTENTS, STAFF_INTENTS, UNKNOWN, Catalog, Understanding
from prompts import render

log = logging.getLogger(__name__)
TOOL_NAME = "choose_intent"


class Choice(BaseModel):
    """The tool's arguments, checked as strictly as a request body."""

    model_config = ConfigDict(extra="forbid")
    intent: str = Field(max_length=40)
    order_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,40}$")
    sku: str | None = Field(default=None, max_length=100)
    warehouse_id: str | None = Field(default=None, max_length=100)
    supplier_id: str | None = Field(default=None, max_length=100)
    date: dt.date | None = None  # the entity is called date; the type is datetime's
    qty: int | None = Field(default=None, ge=1, le=1_000_000)
    channel: Literal["whatsapp", "sms", "email"] | None = None
    locale: Literal["en", "es"] | None = None
    task_id: int | None = Field(default=None, ge=1)


def intents_for(audience: str) -> tuple[str, ...]:
    return (*STAFF_INTENTS, *SHARED_INTENTS) if audience == "staff" else CUSTOMER_INTENTS


def tool(audience: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": TOOL_NAME,
        "description": "Record what the message asks for.",
        "parameters": {
            "type": "object", "additionalProperties": False, "required": ["intent"],
            "properties": {
                "intent": {"type": "string", "enum": [*intents_for(audience), UNKNOWN]},
                "order_id": {"type": "string"}, "sku": {"type": "string"}, "warehouse_id": {"type": "string"},
                "supplier_id": {"type": "string"}, "date": {"type": "string", "format": "date"},
                "qty": {"type": "integer"}, "channel": {"type": "string", "enum": ["whatsapp", "sms", "email"]},
                "locale": {"type": "string", "enum": ["en", "es"]}, "task_id": {"type": "integer"},
            },
        },
    }}


def ask(text: str, audience: str, catalog: Catalog, settings: LLMSettings, today: dt.date) -> Understanding | None:
    """The model's reading of `text`, or None when it fails or chooses something it may not."""
    import openai  # lazily: the SDK takes ~2 s to import, and most processes never ask a model

    client = llm_client(settings)
    system = render("llm/understand.txt.j2", audience=audience, intents=intents_for(audience), today=today)
    try:
        response = client.chat.completions.create(
            model=settings.model or "", tools=[tool(audience)],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": TOOL_NAME}},
            messages=[{"role": "system", "content": system},
                      # The message travels as data, marked untrusted, never as instructions.
                      {"role": "user", "content": json.dumps({"untrusted_message": text}, ensure_ascii=False)}],
        )
        calls = response.choices[0].message.tool_calls or []
    except (openai.OpenAIError, IndexError) as exc:
        log.warning("LLM fallback unavailable: %s", exc)
        return None
    if len(calls) != 1 or calls[0].type != "function" or calls[0].function.name != TOOL_NAME:
        return None
    try:
        choice = Choice.model_validate(json.loads(calls[0].function.arguments))
    except (ValidationError, ValueError):
        log.warning("LLM fallback refused: arguments do not validate")
        return None
    if choice.intent not in (*intents_for(audience), UNKNOWN):
        log.warning("LLM fallback refused: intent %r is not open to a %s", choice.intent, audience)
        return None
    return Understanding(choice.intent, _checked(choice, catalog), 0.6)


def _checked(choice: Choice, catalog: Catalog) -> dict[str, Any]:
    """Entities that name things we have; anything else is dropped rather than trusted."""
    out = choice.model_dump(exclude_none=True, exclude={"intent"})
    known = {"sku": {p.id for p in catalog.products}, "warehouse_id": {w.id for w in catalog.warehouses},
             "supplier_id": {s.id for s in catalog.suppliers}}
    for key, ids in known.items():
        if key in out and out[key] not in ids:
            del out[key]
    if "date" in out:
        out["date"] = out["date"].isoformat()
    return out
