"""The `data` model of each event type.

Documented fields are validated; any other field is allowed and kept as sent
(`model_extra`), so sources can pass through attributes this service does not use yet.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    field_serializer,
    field_validator,
)
from pydantic_core import PydanticCustomError

from intake.fields import (
    Count,
    Day,
    Email,
    Id,
    Locale,
    Money,
    Name,
    Phone,
    Qty,
    Text,
    Timestamp,
    TimeZoneName,
)

MAX_LINES = 10_000


class Payload(BaseModel):
    """Base of every `data` model: extra fields allowed and kept."""

    model_config = ConfigDict(extra="allow")


def _unique(values: list[str], what: str) -> list[str]:
    seen: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            raise PydanticCustomError(
                "duplicate",
                "duplicate {what} '{value}' (entries {first} and {second})",
                {"what": what, "value": value, "first": seen[value], "second": index},
            )
        seen[value] = index
    return values


class WarehouseUpsertedData(Payload):
    warehouse_id: Id = Field(description="Warehouse identifier")
    name: Name = Field(description="Display name")
    region: Id = Field(description="Region the warehouse serves, e.g. eu-west")


class SupplierUpsertedData(Payload):
    supplier_id: Id = Field(description="Supplier identifier")
    name: Name = Field(description="Display name")
    lead_time_days: Count = Field(description="Usual days from purchase order to receipt")
    email: Email | None = Field(default=None, description="Contact email")


MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_CHARS = 300
AttributeKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


def _attribute_value(value: Any) -> bool | int | float | str:
    # One plain reason instead of a union's four (the message ends up in 422 bodies and CSV errors).
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, str) and len(value) <= MAX_ATTRIBUTE_CHARS:
        return value.strip()
    raise PydanticCustomError("attribute_value", "must be a string of at most {max} characters, a finite "
                              "number, true or false", {"max": MAX_ATTRIBUTE_CHARS})


AttributeValue = Annotated[
    bool | int | float | str, PlainValidator(_attribute_value),
    WithJsonSchema({"anyOf": [{"type": "string", "maxLength": MAX_ATTRIBUTE_CHARS}, {"type": "number"},
                              {"type": "boolean"}]}),
]


class ProductUpsertedData(Payload):
    sku: Id = Field(description="Stock keeping unit")
    name: Name = Field(description="Display name")
    price: Money = Field(description="Unit price, >= 0 (a JSON number or numeric string)")
    supplier_id: Id | None = Field(default=None, description="Default supplier")
    lead_time_days: Count | None = Field(default=None, description="Overrides the supplier's lead time")
    reorder_point: Count = Field(default=0, description="Suggest a reorder at or below this on-hand count")
    substitutes: list[Id] = Field(
        default_factory=list, max_length=100, description="SKUs that may replace it"
    )
    category: Name | None = Field(default=None, description="Free-form category")
    attributes: dict[AttributeKey, AttributeValue] | None = Field(
        default=None, max_length=MAX_ATTRIBUTES,
        description="Product attributes (color, size, ...) that similar substitutes are matched on",
    )

    @field_validator("substitutes")
    @classmethod
    def _distinct_substitutes(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class Contacts(Payload):
    email: Email | None = Field(default=None, description="Email address")
    phone: Phone | None = Field(default=None, description="Phone for SMS, normalised to E.164")
    whatsapp: Phone | None = Field(default=None, description="WhatsApp number, normalised to E.164")


HHMM = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
CustomerChannel = Literal["whatsapp", "sms", "email", "console", "slack", "teams"]


class QuietHours(BaseModel):
    """A daily window, in the customer's time zone, when only urgent messages go out."""

    model_config = ConfigDict(extra="forbid")
    start: HHMM = Field(description="Local start, HH:MM (24 h)")
    end: HHMM = Field(description="Local end, HH:MM; before start means the window crosses midnight")


class Preferences(BaseModel):
    """How a customer wants to hear from us; every key optional (docs/notifications.md has the defaults)."""

    model_config = ConfigDict(extra="forbid")
    channels: list[CustomerChannel] | None = Field(
        default=None, min_length=1, description="Channels in order of preference"
    )
    delivery: Literal["instant", "digest"] | None = Field(default=None, description="Each change, or one digest")
    digest_at: HHMM | None = Field(default=None, description="Local time of the daily digest, HH:MM")
    quiet_hours: QuietHours | None = Field(default=None, description="Non-urgent messages wait out this window")
    routing: Literal["first", "all"] | None = Field(
        default=None, description="first: first usable channel, falling back; all: every chosen channel"
    )
    opt_out: list[CustomerChannel | Literal["all"]] = Field(
        default_factory=list, description="Channels never to use; 'all' stops every message"
    )
    max_per_order_per_day: int | None = Field(
        default=None, ge=1, le=1000, description="More messages about one order in a local day go to the digest"
    )

    @field_validator("channels")
    @classmethod
    def _distinct_channels(cls, value: list[str] | None) -> list[str] | None:
        return _unique(value, "channel") if value is not None else None


class CustomerUpsertedData(Payload):
    customer_id: Id = Field(description="Customer identifier")
    name: Name = Field(description="Display name")
    tier: Literal["standard", "gold", "platinum"] = Field(default="standard", description="Service tier")
    region: Id | None = Field(default=None, description="Region, matched against warehouse regions")
    timezone: TimeZoneName = Field(default="UTC", description="IANA time zone, for quiet hours and dates")
    locale: Locale = Field(default="en", description="Language for messages, e.g. en, en-GB, fr")
    contacts: Contacts = Field(default_factory=Contacts, description="How to reach the customer")
    preferences: Preferences = Field(default_factory=Preferences, description="Notification preferences")
    tags: list[Id] = Field(default_factory=list, max_length=100, description="Segments, e.g. vip, wholesale")

    @field_serializer("preferences")
    def _only_chosen(self, value: Preferences) -> dict[str, Any]:
        # Keep what the customer chose, not our defaults: defaults come from configuration when sending.
        return value.model_dump(mode="json", exclude_unset=True)


class OrderLine(Payload):
    line_id: Id = Field(description="Line identifier, unique within the order")
    sku: Id = Field(description="Ordered SKU")
    qty: Qty = Field(description="Units ordered, 1..1,000,000,000")
    unit_price: Money = Field(default=Decimal(0), description="Price per unit, >= 0")


class OrderPlacedData(Payload):
    order_id: Id = Field(description="Order identifier")
    customer_id: Id = Field(description="Who ordered")
    placed_at: Timestamp | None = Field(default=None, description="When ordered; defaults to occurred_at")
    promised_date: Day | None = Field(default=None, description="Delivery date promised to the customer")
    rush: bool = Field(default=False, description="Expedite: allocated ahead of non-rush lines")
    ship_complete: bool = Field(default=False, description="Ship only when every line can ship")
    channel: Id | None = Field(default=None, description="Order source channel, e.g. web, shopify, erp")
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_LINES, description="At least one line")

    @field_validator("lines")
    @classmethod
    def _unique_line_ids(cls, lines: list[OrderLine]) -> list[OrderLine]:
        _unique([line.line_id for line in lines], "line_id")
        return lines


class OrderCancelledData(Payload):
    order_id: Id = Field(description="Order identifier")
    line_ids: list[Id] | None = Field(
        default=None, min_length=1, max_length=MAX_LINES, description="Lines to cancel; absent = whole order"
    )
    reason: Text | None = Field(default=None, description="Why")


class InventoryReceivedData(Payload):
    sku: Id = Field(description="SKU received")
    warehouse_id: Id = Field(description="Where")
    qty: Qty = Field(description="Units received, added to on hand")
    po_id: Id | None = Field(default=None, description="Purchase order it arrived on")


class InventoryAdjustedData(Payload):
    sku: Id = Field(description="SKU counted")
    warehouse_id: Id = Field(description="Where")
    on_hand: Count = Field(description="Absolute on-hand count after the adjustment (not a delta)")
    reason: Text | None = Field(default=None, description="Why, e.g. cycle count")


class PoLine(Payload):
    sku: Id = Field(description="SKU on order")
    qty: Qty = Field(description="Units ordered")
    received: Count = Field(default=0, description="Units already received")


class PoUpdatedData(Payload):
    po_id: Id = Field(description="Purchase order identifier")
    supplier_id: Id = Field(description="Supplier")
    warehouse_id: Id = Field(description="Receiving warehouse")
    expected_at: Day = Field(description="Expected arrival date")
    status: Literal["open", "cancelled", "closed"] = Field(default="open", description="PO status")
    lines: list[PoLine] = Field(max_length=MAX_LINES, description="Lines on the PO (the full current set)")


class ShipmentUpdatedData(Payload):
    order_id: Id = Field(description="Order shipped")
    line_ids: list[Id] | None = Field(
        default=None, min_length=1, max_length=MAX_LINES, description="Lines in it; absent = all lines"
    )
    carrier: Name | None = Field(default=None, description="Carrier name")
    tracking: Name | None = Field(default=None, description="Tracking number")
    status: Literal["label_created", "shipped", "in_transit", "delivered", "exception"] = Field(
        default="shipped", description="Shipment status"
    )


__all__ = [
    "Contacts",
    "CustomerUpsertedData",
    "InventoryAdjustedData",
    "InventoryReceivedData",
    "OrderCancelledData",
    "OrderLine",
    "OrderPlacedData",
    "Payload",
    "PoLine",
    "PoUpdatedData",
    "ProductUpsertedData",
    "ShipmentUpdatedData",
    "SupplierUpsertedData",
    "WarehouseUpsertedData",
]
