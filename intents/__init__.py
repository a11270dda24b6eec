"""Understanding what people ask: text -> intent + entities, rules first (an LLM fallback comes later)."""

from intents.model import Asker, Catalog, Understanding
from intents.understand import understand

__all__ = ["Asker", "Catalog", "Understanding", "understand"]
