"""The public shapes of understanding: intent names, entity names, the catalog the rules match against."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

CUSTOMER_INTENTS = ("order_status", "item_status", "eta", "list_backorders", "subscribe_back_in_stock",
                    "set_preferences", "opt_out", "opt_in", "handoff", "help", "greeting", "thanks")
STAFF_INTENTS = ("backorders_query", "waiting_on_sku", "revenue_at_risk", "sku_stock", "open_tasks",
                 "run_allocation", "complete_task")
SHARED_INTENTS = ("help", "greeting", "thanks")
UNKNOWN = "unknown"
ENTITIES = ("order_id", "sku", "warehouse_id", "supplier_id", "date", "qty", "channel", "locale", "task_id")


@dataclass(frozen=True, slots=True)
class Named:
    id: str
    name: str


@dataclass(frozen=True)
class Catalog:
    """What names in a message can refer to: products, warehouses, suppliers (read from the store)."""

    products: tuple[Named, ...] = ()
    warehouses: tuple[Named, ...] = ()
    suppliers: tuple[Named, ...] = ()


@dataclass(frozen=True, slots=True)
class Asker:
    """Who is asking, which decides the intents open to them."""

    audience: str = "customer"  # customer | staff
    today: date | None = None


@dataclass(frozen=True)
class Understanding:
    intent: str
    entities: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.0
    # An entity the text names ambiguously: {"sku": ["KTL-200", "KTL-210"]}, for a clarifying question.
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
