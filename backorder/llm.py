"""One OpenAI client per model endpoint and process: building one costs ~20 ms (its SSL context), which every
draft and every chat fallback paid when each made its own."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from backorder.config import LLMSettings

if TYPE_CHECKING:  # the SDK takes ~2 s to import; processes without a model never pay it
    import openai


def client(settings: LLMSettings) -> openai.OpenAI:
    """A client for these settings, without retries: every caller has a fallback, not time to wait."""
    return _client(settings.base_url, settings.key() or "not-needed", settings.timeout_seconds)


@lru_cache(maxsize=8)
def _client(base_url: str | None, api_key: str, timeout: float) -> openai.OpenAI:
    import openai

    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
