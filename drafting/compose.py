"""A draft for a person to approve: the model's when it is grounded in the facts, else the template's.

    no LLM configured                  -> the template            fallback_reason "no_llm"
    attempt 1 grounded                 -> the model's text        source "llm"
    attempt 1 not grounded             -> attempt 2, told what was wrong
    attempt 2 not grounded             -> the template            fallback_reason "grounding_failed"
    HTTP error, timeout, broken output -> the template            fallback_reason "llm_error: ...", "timeout",
                                                                  "invalid_output"

Every problem found is recorded with the attempt it was found in, so the audit log shows what the model got
wrong even when its text never reached anyone. Runs outside any database transaction: it waits on the network.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from backorder.config import DRAFT_KINDS, LLMSettings
from drafting.grounding import check
from drafting.llm import PROMPT_VERSION, DraftingError, write

log = logging.getLogger(__name__)

ATTEMPTS = 2  # the first draft and one regeneration with feedback; then the template
NO_PROMPT = "template"  # the prompt_version of a draft no model was asked for


@dataclass(frozen=True, slots=True)
class Composed:
    text: str
    source: Literal["llm", "template"]
    model: str | None  # the model that wrote `text`; None for the template
    prompt_version: str  # PROMPT_VERSION whenever the model was asked, NO_PROMPT otherwise
    facts_used: list[str]  # the model's paths into the facts; [] for the template (it may read any of them)
    grounding: dict[str, Any]  # {attempts, problems: [{kind, value, reason, attempt}], fallback_reason}


def compose(kind: str, facts: Mapping[str, Any], template_text: str, *, llm: LLMSettings, locale: str, channel: str,
            question: str | None = None, max_chars: int = 1200) -> Composed:
    """Never raises for the model's sake: whatever the model does, a draft comes out."""
    if kind not in DRAFT_KINDS:
        raise ValueError(f"unknown draft kind {kind!r}")
    if not llm.enabled:
        return _template(template_text, NO_PROMPT, attempts=0, problems=[], reason="no_llm")
    problems: list[dict[str, Any]] = []
    feedback: list[str] | None = None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            draft = write(kind, facts, llm=llm, locale=locale, channel=channel, question=question,
                          feedback=feedback, max_chars=max_chars)
        except DraftingError as exc:
            log.warning("draft %s, attempt %d: %s", kind, attempt, exc)
            return _template(template_text, PROMPT_VERSION, attempts=attempt, problems=problems, reason=exc.reason)
        except Exception as exc:  # a bug of ours must not leave the draft unwritten: the template is always there
            log.exception("draft %s, attempt %d failed", kind, attempt)
            return _template(template_text, PROMPT_VERSION, attempts=attempt, problems=problems,
                             reason=f"llm_error: {type(exc).__name__}")
        found = check(draft.text, facts, locale)
        if not found:
            return Composed(text=draft.text, source="llm", model=draft.model, prompt_version=draft.prompt_version,
                            facts_used=draft.facts_used, grounding={"attempts": attempt, "problems": problems,
                                                                    "fallback_reason": None})
        problems += [{**p.as_dict(), "attempt": attempt} for p in found]
        feedback = [p.describe() for p in found]
    log.warning("draft %s: not grounded after %d attempts: %s", kind, ATTEMPTS, problems)
    return _template(template_text, PROMPT_VERSION, attempts=ATTEMPTS, problems=problems, reason="grounding_failed")


def _template(text: str, prompt_version: str, *, attempts: int, problems: list[dict[str, Any]],
              reason: str) -> Composed:
    return Composed(text=text, source="template", model=None, prompt_version=prompt_version, facts_used=[],
                    grounding={"attempts": attempts, "problems": problems, "fallback_reason": reason})
