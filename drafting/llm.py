"""One draft from an OpenAI-compatible model, as structured output (docs/drafting.md).

The system prompt is ours alone (prompts/drafts/); the facts travel as JSON in the user message, and the
customer's own words only in its `untrusted_customer_message` field, which the system prompt calls data. The
reply must match a strict JSON schema and is validated again here: a server that ignores the schema gets
nowhere. Anything wrong (HTTP error, timeout, broken or oversized output) raises DraftingError with a short
reason, and the caller falls back to the template.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from allocation.model import TIERS
from backorder.config import DRAFT_KINDS, LLMSettings
from backorder.llm import client as llm_client
from drafting.grounding import printed
from notifiers.render import resolve_locale
from prompts import TEMPLATE_DIR, render

log = logging.getLogger(__name__)

SCHEMA_NAME = "customer_message"
_PROMPT_DIR = TEMPLATE_DIR / "drafts"
_LANGUAGES = {"en": "English", "es": "Spanish"}
# Tiers the prompt may name (allocation/model.py's TIERS): master data is not ours to put in a system prompt raw.
_TIERS = TIERS
_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def _prompt_version() -> str:
    """'drafts-v1+<hash>': the hand-kept number says what the prompt means; the hash of the template files
    changes with any edit, so two drafts with the same version were asked the very same way."""
    digest = hashlib.sha256()
    for path in sorted(_PROMPT_DIR.glob("*.j2")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"drafts-v1+{digest.hexdigest()[:8]}"


PROMPT_VERSION = _prompt_version()


class DraftingError(Exception):
    """The model gave no usable draft. `reason`: "timeout", "llm_error: ..." or "invalid_output"."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class LLMDraft:
    text: str
    channel: str
    facts_used: list[str]  # paths that exist in the facts ("items[0].eta"); invented ones are dropped
    model: str
    prompt_version: str


class _Output(BaseModel):
    """The reply, checked as strictly as a request body (the schema alone binds only servers that honour it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text: str = Field(min_length=1)
    channel: str = Field(max_length=40)
    facts_used: list[Annotated[str, StringConstraints(max_length=200)]] = Field(max_length=100)


def response_format(channel: str) -> dict[str, Any]:
    """Strict structured output: an object with exactly these fields (strict mode forbids maxLength, so the
    length limit is checked in _Output)."""
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["text", "channel", "facts_used"],
        "properties": {
            "text": {"type": "string", "description": "the message to the customer"},
            "channel": {"type": "string", "enum": [channel]},
            "facts_used": {"type": "array", "items": {"type": "string"},
                           "description": "paths of the facts the message states, e.g. items[0].eta"},
        },
    }}}


def system_prompt(kind: str, facts: Mapping[str, Any], *, locale: str, channel: str, max_chars: int) -> str:
    customer = facts.get("customer") if isinstance(facts.get("customer"), Mapping) else {}
    tier = str(customer.get("tier") or "standard").lower()
    return render("drafts/system.txt.j2", kind=kind, channel=channel, max_chars=max_chars,
                  language=_LANGUAGES[resolve_locale(locale)], tier=tier if tier in _TIERS else "standard")


def user_message(kind: str, facts: Mapping[str, Any], *, locale: str, channel: str, question: str | None,
                 feedback: list[str] | None) -> str:
    """The data of the request, as JSON; the customer's words appear in this one field and nowhere else."""
    body: dict[str, Any] = {"kind": kind, "channel": channel, "locale": locale, "facts": facts,
                            "printed": printed(facts, locale)}
    if question is not None:
        body["untrusted_customer_message"] = question
    if feedback:
        body["problems_in_previous_draft"] = feedback
    return json.dumps(body, ensure_ascii=False, default=str)


def write(kind: str, facts: Mapping[str, Any], *, llm: LLMSettings, locale: str, channel: str,
          question: str | None = None, feedback: list[str] | None = None, max_chars: int = 1200) -> LLMDraft:
    """Ask the model once. Raises DraftingError when there is no usable draft; ValueError for a bad kind or channel
    (a caller's bug, not the model's)."""
    if kind not in DRAFT_KINDS:
        raise ValueError(f"unknown draft kind {kind!r}")
    if not _CHANNEL.match(channel):
        raise ValueError(f"bad channel name {channel!r}")
    import openai  # lazily: the SDK takes ~2 s to import, and most processes never ask a model

    client = llm_client(llm)  # one try: the caller has a template to fall back to, not time to wait
    try:
        response = client.chat.completions.create(
            model=llm.model or "", response_format=response_format(channel),  # type: ignore[arg-type]
            messages=[
                {"role": "system", "content": system_prompt(kind, facts, locale=locale, channel=channel,
                                                            max_chars=max_chars)},
                {"role": "user", "content": user_message(kind, facts, locale=locale, channel=channel,
                                                         question=question, feedback=feedback)},
            ])
    except openai.APITimeoutError as exc:
        raise DraftingError("timeout", str(exc)) from exc
    except openai.APIStatusError as exc:
        raise DraftingError(f"llm_error: HTTP {exc.status_code}", exc.message) from exc
    except openai.OpenAIError as exc:  # connection refused, DNS, a body that is not a completion
        raise DraftingError(f"llm_error: {type(exc).__name__}", str(exc)) from exc
    if not response.choices:
        raise DraftingError("invalid_output", "no choices")
    choice = response.choices[0]
    if choice.message.refusal:
        raise DraftingError("invalid_output", "the model refused")
    if choice.finish_reason == "length":
        raise DraftingError("invalid_output", "cut off at the token limit")
    out = _parse(choice.message.content, max_chars)
    return LLMDraft(text=out.text, channel=out.channel, facts_used=_existing(out.facts_used, facts),
                    model=response.model or llm.model or "", prompt_version=PROMPT_VERSION)


def _parse(content: str | None, max_chars: int) -> _Output:
    try:
        out = _Output.model_validate(json.loads(content or ""))
    except (ValueError, ValidationError) as exc:  # json.JSONDecodeError is a ValueError
        log.warning("draft refused: output does not validate: %s", str(exc)[:300])
        raise DraftingError("invalid_output", "output does not match the schema") from exc
    if len(out.text) > max_chars:
        raise DraftingError("invalid_output", f"text longer than {max_chars} characters")
    return out


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _existing(paths: list[str], facts: Mapping[str, Any]) -> list[str]:
    """The paths that name something in the facts, once each, in the model's order."""
    out: list[str] = []
    for path in paths:
        if not _STEP.search(path):
            continue
        node: Any = facts
        for m in _STEP.finditer(path):
            key, index = m.group(1), m.group(2)
            if index is not None and isinstance(node, list) and int(index) < len(node):
                node = node[int(index)]
            elif key is not None and isinstance(node, Mapping) and key in node:
                node = node[key]
            elif key is not None and key.isdigit() and isinstance(node, list) and int(key) < len(node):
                node = node[int(key)]  # items.0.eta
            else:
                node = _MISSING
                break
        if node is not _MISSING and path not in out:
            out.append(path)
    return out


_MISSING = object()
