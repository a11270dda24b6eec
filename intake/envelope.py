"""The canonical event envelope, one model per event type, and batch validation.

    {"event_id": "...", "type": "order.placed", "occurred_at": "2024-05-01T09:30:00Z",
     "source": "api", "data": {...}}

`Event` is the envelope; each type has a subclass whose `type` is a literal and whose
`data` is that type's payload model (intake.payloads). Validation goes through one
TypeAdapter over a discriminated union on `type`, built once at import.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from intake.errors import EventValidationError
from intake.fields import Id, Timestamp
from intake.payloads import (
    CustomerUpsertedData,
    InventoryAdjustedData,
    InventoryReceivedData,
    OrderCancelledData,
    OrderPlacedData,
    Payload,
    PoUpdatedData,
    ProductUpsertedData,
    ShipmentUpdatedData,
    SupplierUpsertedData,
    WarehouseUpsertedData,
)

MAX_BATCH = 10_000
SCHEMA_ID = "https://backorder-bot.example/schemas/events.schema.json"

Loc = tuple[str | int, ...]


class Event(BaseModel):
    """The canonical event envelope. (source, event_id) is the idempotency key."""

    model_config = ConfigDict(extra="forbid")

    event_id: Id = Field(description="Unique per source; replays with the same id are duplicates")
    type: str = Field(description="Event type, one of EVENT_TYPES")
    occurred_at: Timestamp = Field(description="When it happened at the source (RFC 3339, with timezone)")
    source: Id = Field(default="api", description="Sending system, e.g. api, csv, shopify, erp")
    data: Payload = Field(description="Type-specific payload")

    def data_dict(self) -> dict[str, Any]:
        """`data` as a plain dict of Python values (Decimal, date, datetime), extras included."""
        return self.data.model_dump()

    def to_dict(self) -> dict[str, Any]:
        """The whole event as JSON-ready values (Decimal -> str, dates -> ISO strings)."""
        return self.model_dump(mode="json")


class WarehouseUpsertedEvent(Event):
    """A warehouse was created or changed."""

    type: Literal["warehouse.upserted"]
    data: WarehouseUpsertedData


class SupplierUpsertedEvent(Event):
    """A supplier was created or changed."""

    type: Literal["supplier.upserted"]
    data: SupplierUpsertedData


class ProductUpsertedEvent(Event):
    """A product (SKU) was created or changed."""

    type: Literal["product.upserted"]
    data: ProductUpsertedData


class CustomerUpsertedEvent(Event):
    """A customer was created or changed."""

    type: Literal["customer.upserted"]
    data: CustomerUpsertedData


class OrderPlacedEvent(Event):
    """An order was placed (data.placed_at defaults to occurred_at)."""

    type: Literal["order.placed"]
    data: OrderPlacedData

    @model_validator(mode="after")
    def _default_placed_at(self) -> OrderPlacedEvent:
        if self.data.placed_at is None:  # plain dict write: pydantic's __setattr__ is slow
            self.data.__dict__["placed_at"] = self.occurred_at
        return self


class OrderCancelledEvent(Event):
    """An order, or some of its lines, was cancelled."""

    type: Literal["order.cancelled"]
    data: OrderCancelledData


class InventoryReceivedEvent(Event):
    """Stock arrived at a warehouse (a delta added to on hand)."""

    type: Literal["inventory.received"]
    data: InventoryReceivedData


class InventoryAdjustedEvent(Event):
    """Stock was counted: the absolute on-hand figure for a SKU at a warehouse."""

    type: Literal["inventory.adjusted"]
    data: InventoryAdjustedData


class PoUpdatedEvent(Event):
    """A purchase order was created or changed (carries its full current state)."""

    type: Literal["po.updated"]
    data: PoUpdatedData


class ShipmentUpdatedEvent(Event):
    """A shipment for an order changed status."""

    type: Literal["shipment.updated"]
    data: ShipmentUpdatedData


EVENT_CLASSES: tuple[type[Event], ...] = (
    WarehouseUpsertedEvent,
    SupplierUpsertedEvent,
    ProductUpsertedEvent,
    CustomerUpsertedEvent,
    OrderPlacedEvent,
    OrderCancelledEvent,
    InventoryReceivedEvent,
    InventoryAdjustedEvent,
    PoUpdatedEvent,
    ShipmentUpdatedEvent,
)
EVENT_MODELS: dict[str, type[Event]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in EVENT_CLASSES
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)

AnyEvent = Annotated[Union[EVENT_CLASSES], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007

_BATCH: TypeAdapter[list[Event]] = TypeAdapter(list[AnyEvent])  # type: ignore[valid-type]
_ALLOWED = ", ".join(EVENT_TYPES)


class _Collector:
    """Turns pydantic errors into intake's {"loc", "msg", "type"} dicts with tuple locs."""

    messages: ClassVar[dict[str, str]] = {
        "missing": "required field is missing",
        "model_type": "must be a JSON object",
        "model_attributes_type": "must be a JSON object (an event)",
        "extra_forbidden": "unknown field (only event_id, type, occurred_at, source, data are allowed)",
    }

    def __init__(self) -> None:
        self.errors: list[tuple[Loc, str, str]] = []

    def add(self, loc: Loc, msg: str, kind: str) -> None:
        self.errors.append((loc, msg, kind))

    def add_validation_error(self, exc: ValidationError, items: list[Any]) -> None:
        for err in exc.errors(include_url=False, include_context=False, include_input=False):
            loc = tuple(err["loc"])
            kind = err["type"]
            if len(loc) >= 2 and loc[1] in EVENT_MODELS:
                loc = (loc[0], *loc[2:])  # drop the union tag pydantic inserts
            if kind in ("union_tag_invalid", "union_tag_not_found") and len(loc) == 1:
                self._bad_type(loc[0], items[int(loc[0])], kind)
                continue
            self.add(loc, self._message(loc, kind, err["msg"]), kind)

    def _message(self, loc: Loc, kind: str, default: str) -> str:
        if kind == "extra_forbidden" and len(loc) > 2:
            # Deeper than the envelope: a closed object inside data (preferences, quiet_hours).
            return f"unknown field {loc[-1]!r}"
        return self.messages.get(kind, default)

    def _bad_type(self, index: str | int, item: Any, kind: str) -> None:
        if kind == "union_tag_not_found":
            self.add((index, "type"), f"required field is missing: one of {_ALLOWED}", "missing")
        else:
            value = item.get("type")
            self.add(
                (index, "type"), f"unknown event type {value!r}: allowed types are {_ALLOWED}", "event_type"
            )
        try:  # still report problems with the rest of the envelope
            Event.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_context=False, include_input=False):
                if err["loc"][:1] != ("type",):
                    self.add((index, *err["loc"]), self.messages.get(err["type"], err["msg"]), err["type"])


def format_loc(loc: Loc) -> str:
    """(3, "data", "lines", 0, "qty") -> "[3].data.lines.0.qty"."""
    if not loc:
        return "body"
    head, rest = loc[0], loc[1:]
    text = f"[{head}]" if isinstance(head, int) else str(head)
    return text + "".join(f".{part}" for part in rest)


NUL_MSG = "contains a NUL character (\\u0000), which cannot be stored"


def _nul_locs(value: Any, loc: Loc) -> Iterator[Loc]:
    """Where a string (key or value) holds a NUL: valid JSON, but PostgreSQL text cannot store it."""
    if isinstance(value, str):
        if "\x00" in value:
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                yield (*loc, key.replace("\x00", "\\u0000"))
            yield from _nul_locs(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nul_locs(item, (*loc, i))


def validate_items(items: list[Any]) -> tuple[list[Event], list[tuple[Loc, str, str]]]:
    """Validate a list of event dicts; returns (events, errors) with every error found."""
    nul = [(loc, NUL_MSG, "string_nul") for i, item in enumerate(items) for loc in _nul_locs(item, (i,))]
    collector = _Collector()
    # Validation allocates ~10 objects per event and frees none, so the cyclic GC would
    # rescan the whole growing batch several times (over half the time at 10,000 events).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        events = _BATCH.validate_python(items)
        return ([], nul) if nul else (events, [])
    except ValidationError as exc:
        collector.add_validation_error(exc, items)
    finally:
        if gc_was_enabled:
            gc.enable()
    return [], collector.errors + nul


def _body_error(msg: str, kind: str) -> EventValidationError:
    return EventValidationError([{"loc": "body", "msg": msg, "type": kind}])


def parse_events(body: Any) -> list[Event]:
    """Validate one event object or a JSON array of 1..MAX_BATCH events.

    `body` is already-decoded JSON (dict or list); str/bytes are decoded as JSON first.
    A single object is treated as a batch of one, so its error locations start with "[0]".
    Raises EventValidationError listing every error across every event; nothing is
    returned unless all events are valid.
    """
    if isinstance(body, (str, bytes, bytearray)):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise _body_error(f"invalid JSON: {exc}", "json_invalid") from None
    if isinstance(body, dict):
        items: list[Any] = [body]
    elif isinstance(body, list):
        items = body
    else:
        raise _body_error("expected one event object or a JSON array of events", "body_type")
    if not items:
        raise _body_error("empty array: send at least one event", "too_short")
    if len(items) > MAX_BATCH:
        raise _body_error(f"too many events: {len(items)} (at most {MAX_BATCH} per request)", "too_long")
    events, errors = validate_items(items)
    if errors:
        raise EventValidationError(
            [{"loc": format_loc(loc), "msg": msg, "type": kind} for loc, msg, kind in errors]
        )
    return events


def event_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a POST /events body: one event or an array of them."""
    single = TypeAdapter(AnyEvent).json_schema(mode="validation")
    defs = single.pop("$defs")
    defs["Event"] = {"title": "Event", "description": "One canonical event, by type.", **single}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "backorder-bot canonical events",
        "description": f"One canonical event, or an array of 1..{MAX_BATCH} of them.",
        "anyOf": [
            {"$ref": "#/$defs/Event"},
            {"type": "array", "items": {"$ref": "#/$defs/Event"}, "minItems": 1, "maxItems": MAX_BATCH},
        ],
        "$defs": defs,
    }
