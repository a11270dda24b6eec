"""Public face of the canonical events: models, EVENT_TYPES, parse_events, event_json_schema.

Regenerate docs/events.schema.json with `python -m intake.events`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from intake.envelope import (
    EVENT_CLASSES,
    EVENT_MODELS,
    EVENT_TYPES,
    MAX_BATCH,
    AnyEvent,
    CustomerUpsertedEvent,
    Event,
    InventoryAdjustedEvent,
    InventoryReceivedEvent,
    OrderCancelledEvent,
    OrderPlacedEvent,
    PoUpdatedEvent,
    ProductUpsertedEvent,
    ShipmentUpdatedEvent,
    SupplierUpsertedEvent,
    WarehouseUpsertedEvent,
    event_json_schema,
    parse_events,
)
from intake.errors import EventValidationError
from intake.fields import MAX_QTY
from intake.payloads import (
    Contacts,
    CustomerUpsertedData,
    InventoryAdjustedData,
    InventoryReceivedData,
    OrderCancelledData,
    OrderLine,
    OrderPlacedData,
    Payload,
    PoLine,
    PoUpdatedData,
    ProductUpsertedData,
    ShipmentUpdatedData,
    SupplierUpsertedData,
    WarehouseUpsertedData,
)

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "events.schema.json"


def render_json_schema() -> str:
    """The exact text of docs/events.schema.json."""
    return json.dumps(event_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the JSON Schema (to the path given, default docs/events.schema.json)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else SCHEMA_PATH
    path.write_text(render_json_schema(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


__all__ = [
    "EVENT_CLASSES",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "MAX_BATCH",
    "MAX_QTY",
    "SCHEMA_PATH",
    "AnyEvent",
    "Contacts",
    "CustomerUpsertedData",
    "CustomerUpsertedEvent",
    "Event",
    "EventValidationError",
    "InventoryAdjustedData",
    "InventoryAdjustedEvent",
    "InventoryReceivedData",
    "InventoryReceivedEvent",
    "OrderCancelledData",
    "OrderCancelledEvent",
    "OrderLine",
    "OrderPlacedData",
    "OrderPlacedEvent",
    "Payload",
    "PoLine",
    "PoUpdatedData",
    "PoUpdatedEvent",
    "ProductUpsertedData",
    "ProductUpsertedEvent",
    "ShipmentUpdatedData",
    "ShipmentUpdatedEvent",
    "SupplierUpsertedData",
    "SupplierUpsertedEvent",
    "WarehouseUpsertedData",
    "WarehouseUpsertedEvent",
    "event_json_schema",
    "main",
    "parse_events",
    "render_json_schema",
]

if __name__ == "__main__":
    raise SystemExit(main())
