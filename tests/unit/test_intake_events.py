"""Canonical event envelope: models, parse_events errors and limits, JSON Schema in sync."""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from intake.events import (
    EVENT_TYPES,
    MAX_BATCH,
    Event,
    EventValidationError,
    OrderPlacedEvent,
    event_json_schema,
    parse_events,
    render_json_schema,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = "2024-05-01T09:30:00Z"

EXAMPLES: dict[str, dict[str, Any]] = {
    "warehouse.upserted": {"warehouse_id": "W1", "name": "Leeds DC", "region": "uk"},
    "supplier.upserted": {
        "supplier_id": "SUP1",
        "name": "Acme",
        "lead_time_days": 14,
        "email": "po@acme.test",
    },
    "product.upserted": {
        "sku": "SKU-1",
        "name": "Widget",
        "price": 19.99,
        "supplier_id": "SUP1",
        "substitutes": ["SKU-2"],
        "category": "widgets",
    },
    "customer.upserted": {
        "customer_id": "C1",
        "name": "Ada",
        "tier": "gold",
        "timezone": "Europe/London",
        "contacts": {"email": "ada@example.com", "whatsapp": "+44 7911 123456"},
    },
    "order.placed": {
        "order_id": "1042",
        "customer_id": "C1",
        "promised_date": "2024-05-10",
        "lines": [
            {"line_id": "1", "sku": "SKU-1", "qty": 2, "unit_price": "19.99"},
            {"line_id": "2", "sku": "SKU-2", "qty": 1},
        ],
    },
    "order.cancelled": {"order_id": "1042", "line_ids": ["2"], "reason": "customer request"},
    "inventory.received": {"sku": "SKU-1", "warehouse_id": "W1", "qty": 10, "po_id": "PO-7"},
    "inventory.adjusted": {"sku": "SKU-1", "warehouse_id": "W1", "on_hand": 0, "reason": "cycle count"},
    "po.updated": {
        "po_id": "PO-7",
        "supplier_id": "SUP1",
        "warehouse_id": "W1",
        "expected_at": "2024-05-20",
        "lines": [{"sku": "SKU-1", "qty": 100, "received": 10}],
    },
    "shipment.updated": {"order_id": "1042", "carrier": "DHL", "tracking": "JD0001", "status": "in_transit"},
}


def event(type_: str = "order.placed", **data: Any) -> dict[str, Any]:
    payload = copy.deepcopy(EXAMPLES[type_])
    payload.update(data)
    return {"event_id": f"e-{type_}", "type": type_, "occurred_at": T0, "data": payload}


def errors_of(body: Any) -> list[dict[str, Any]]:
    with pytest.raises(EventValidationError) as info:
        parse_events(body)
    for error in info.value.errors:
        assert set(error) == {"loc", "msg", "type"} and error["msg"]
    return info.value.errors


def locs(body: Any) -> list[str]:
    return [error["loc"] for error in errors_of(body)]


# ---- valid events -------------------------------------------------------------------


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_every_type_has_a_valid_example(type_: str) -> None:
    [parsed] = parse_events(event(type_))
    assert isinstance(parsed, Event)
    assert parsed.type == type_
    assert parsed.source == "api"
    assert parsed.occurred_at == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert isinstance(parsed.data_dict(), dict)
    # to_dict() is JSON-ready and parses back to the same event
    again = parse_events(json.loads(json.dumps(parsed.to_dict())))
    assert again[0] == parsed


def test_event_types_cover_the_design() -> None:
    assert set(EVENT_TYPES) >= {
        "order.placed",
        "order.cancelled",
        "inventory.received",
        "inventory.adjusted",
        "po.updated",
        "shipment.updated",
        "customer.upserted",
        "product.upserted",
        "warehouse.upserted",
        "supplier.upserted",
    }


def test_order_placed_values_and_defaults() -> None:
    [parsed] = parse_events(event(order_id="  1042 "))
    assert isinstance(parsed, OrderPlacedEvent)
    data = parsed.data
    assert data.order_id == "1042"  # ids are stripped
    assert data.placed_at == parsed.occurred_at  # defaults to occurred_at
    assert data.promised_date == date(2024, 5, 10)
    assert (data.rush, data.ship_complete, data.channel) == (False, False, None)
    assert data.lines[0].unit_price == Decimal("19.99")
    assert data.lines[1].unit_price == Decimal(0)
    plain = parsed.data_dict()
    assert plain["lines"][0] == {"line_id": "1", "sku": "SKU-1", "qty": 2, "unit_price": Decimal("19.99")}
    assert parsed.to_dict()["data"]["lines"][0]["unit_price"] == "19.99"


def test_placed_at_keeps_its_own_value_and_offset() -> None:
    [parsed] = parse_events(event(placed_at="2024-04-30T18:00:00+02:00"))
    assert parsed.data.placed_at.isoformat() == "2024-04-30T18:00:00+02:00"


def test_extra_data_fields_are_kept() -> None:
    body = event(note="gift wrap")
    body["data"]["lines"][0]["colour"] = "red"
    [parsed] = parse_events(body)
    assert parsed.data_dict()["note"] == "gift wrap"
    assert parsed.data_dict()["lines"][0]["colour"] == "red"


def test_product_defaults_and_float_price() -> None:
    [parsed] = parse_events(event("product.upserted", substitutes=["A", "B", "A"]))
    assert parsed.data.price == Decimal("19.99")
    assert parsed.data.reorder_point == 0
    assert parsed.data.substitutes == ["A", "B"]
    body = {"event_id": "p", "type": "product.upserted", "occurred_at": T0}
    [bare] = parse_events(body | {"data": {"sku": "S", "name": "N", "price": 0}})
    assert bare.data.substitutes == [] and bare.data.lead_time_days is None


def test_customer_defaults() -> None:
    body = {
        "event_id": "c",
        "type": "customer.upserted",
        "occurred_at": T0,
        "data": {"customer_id": "C", "name": "N"},
    }
    [parsed] = parse_events(body)
    assert parsed.data_dict() == {
        "customer_id": "C",
        "name": "N",
        "tier": "standard",
        "region": None,
        "timezone": "UTC",
        "locale": "en",
        "contacts": {"email": None, "phone": None, "whatsapp": None},
        "preferences": {},
        "tags": [],
    }


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+44 7911 123456", "+447911123456"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("whatsapp:+14155550123", "+14155550123"),
        ("0033 6 12 34 56 78", "+33612345678"),
    ],
)
def test_phone_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    [parsed] = parse_events(event("customer.upserted", contacts={"phone": raw, "whatsapp": raw}))
    assert parsed.data.contacts.phone == e164
    assert parsed.data.contacts.whatsapp == e164


def test_invalid_phone_names_the_field() -> None:
    errors = errors_of(event("customer.upserted", contacts={"phone": "12345", "whatsapp": "07911 123456"}))
    assert [e["loc"] for e in errors] == ["[0].data.contacts.phone", "[0].data.contacts.whatsapp"]
    assert "phone number" in errors[0]["msg"]


def test_timezone_is_checked_against_iana() -> None:
    errors = errors_of(event("customer.upserted", timezone="Mars/Olympus"))
    assert errors[0]["loc"] == "[0].data.timezone"
    assert "Mars/Olympus" in errors[0]["msg"]


def test_shipment_and_po_defaults() -> None:
    [ship] = parse_events(event("shipment.updated") | {"data": {"order_id": "1"}})
    assert ship.data.status == "shipped" and ship.data.line_ids is None
    [po] = parse_events(event("po.updated", lines=[{"sku": "S", "qty": 1}]))
    assert po.data.status == "open" and po.data.lines[0].received == 0
    assert po.data.expected_at == date(2024, 5, 20)


def test_parse_accepts_json_text_and_arrays() -> None:
    batch = [event(t) for t in EVENT_TYPES]
    assert [e.type for e in parse_events(batch)] == list(EVENT_TYPES)
    assert [e.type for e in parse_events(json.dumps(batch).encode())] == list(EVENT_TYPES)


# ---- errors -------------------------------------------------------------------------


def test_error_points_into_the_line() -> None:
    body = event()
    body["data"]["lines"][1]["qty"] = 0
    [error] = errors_of([event(), body])
    assert error == {
        "loc": "[1].data.lines.1.qty",
        "msg": "must be a whole number greater than 0",
        "type": "whole_number",
    }


@pytest.mark.parametrize("qty", [1.5, 2.0, True, "3", None, -1, 0])
def test_qty_must_be_a_positive_whole_number(qty: Any) -> None:
    errors = errors_of(event("inventory.received", qty=qty))
    assert [(e["loc"], e["msg"]) for e in errors] == [
        ("[0].data.qty", "must be a whole number greater than 0")
    ]


def test_qty_has_a_ceiling() -> None:
    [error] = errors_of(event("inventory.received", qty=1_000_000_001))
    assert error["loc"] == "[0].data.qty" and "1000000000" in error["msg"]


def test_on_hand_may_be_zero_but_not_negative() -> None:
    assert parse_events(event("inventory.adjusted", on_hand=0))[0].data.on_hand == 0
    [error] = errors_of(event("inventory.adjusted", on_hand=-1))
    assert error["loc"] == "[0].data.on_hand" and "0 or more" in error["msg"]


def test_naive_datetime_is_rejected() -> None:
    body = event(placed_at="2024-05-01T09:30:00")
    body["occurred_at"] = "2024-05-01T09:30:00"
    errors = errors_of(body)
    assert [e["loc"] for e in errors] == ["[0].occurred_at", "[0].data.placed_at"]
    assert all("timezone" in e["msg"] for e in errors)


def test_timestamps_must_be_strings() -> None:
    body = event()
    body["occurred_at"] = 1714555800
    [error] = errors_of(body)
    assert error["loc"] == "[0].occurred_at" and "RFC 3339" in error["msg"]


def test_unknown_type_names_type_and_lists_the_allowed_ones() -> None:
    body = event()
    body["type"] = "order.exploded"
    [error] = errors_of(body)
    assert error["loc"] == "[0].type"
    assert "order.exploded" in error["msg"]
    assert all(t in error["msg"] for t in EVENT_TYPES)


def test_unknown_type_still_reports_envelope_problems() -> None:
    assert locs({"type": "nope", "event_id": "", "occurred_at": T0, "data": {}}) == [
        "[0].type",
        "[0].event_id",
    ]
    assert locs({"event_id": "x", "occurred_at": T0, "data": {}}) == ["[0].type"]


def test_every_error_in_every_event_is_collected() -> None:
    bad_line = event()
    bad_line["data"]["lines"][0]["qty"] = 1.5
    bad_line["data"]["lines"][1]["sku"] = ""
    bad_envelope = event("inventory.adjusted")
    bad_envelope["event_id"] = " "
    del bad_envelope["occurred_at"]
    bad_envelope["extra"] = 1
    assert locs([event(), bad_line, event("po.updated"), bad_envelope, "not an event"]) == [
        "[1].data.lines.0.qty",
        "[1].data.lines.1.sku",
        "[3].event_id",
        "[3].occurred_at",
        "[3].extra",
        "[4]",
    ]


def test_required_fields_are_named() -> None:
    errors = errors_of({"event_id": "x", "type": "order.placed", "occurred_at": T0, "data": {"lines": []}})
    by_loc = {e["loc"]: e for e in errors}
    assert set(by_loc) == {"[0].data.order_id", "[0].data.customer_id", "[0].data.lines"}
    assert by_loc["[0].data.order_id"]["type"] == "missing"


def test_duplicate_line_ids_are_rejected() -> None:
    body = event()
    body["data"]["lines"][1]["line_id"] = "1"
    [error] = errors_of(body)
    assert error["loc"] == "[0].data.lines" and "duplicate line_id '1'" in error["msg"]


@pytest.mark.parametrize(
    ("type_", "field", "value"),
    [
        ("customer.upserted", "tier", "bronze"),
        ("po.updated", "status", "lost"),
        ("shipment.updated", "status", "teleported"),
        ("product.upserted", "price", -1),
        ("product.upserted", "price", "NaN"),
        ("order.cancelled", "line_ids", []),
        ("supplier.upserted", "email", "not-an-email"),
        ("warehouse.upserted", "warehouse_id", "x" * 101),
    ],
)
def test_field_rules(type_: str, field: str, value: Any) -> None:
    [error] = errors_of(event(type_, **{field: value}))
    assert error["loc"] == f"[0].data.{field}"


def test_batch_limits() -> None:
    assert errors_of([]) == [
        {"loc": "body", "msg": "empty array: send at least one event", "type": "too_short"}
    ]
    [error] = errors_of([event()] * (MAX_BATCH + 1))
    assert error["loc"] == "body" and str(MAX_BATCH) in error["msg"]
    assert errors_of(42)[0]["loc"] == "body"
    assert errors_of("{not json")[0]["loc"] == "body"


def test_error_message_is_readable() -> None:
    with pytest.raises(EventValidationError) as info:
        parse_events(event("inventory.received", qty=0))
    assert "[0].data.qty: must be a whole number greater than 0" in str(info.value)


def test_ten_thousand_events_validate_fast() -> None:
    batch = []
    for i in range(MAX_BATCH):
        body = event(order_id=f"O{i}")
        body["event_id"] = f"e{i}"
        batch.append(body)
    started = time.perf_counter()
    parsed = parse_events(batch)
    elapsed = time.perf_counter() - started
    assert len(parsed) == MAX_BATCH
    assert elapsed < 1.0, f"{elapsed:.2f}s for {MAX_BATCH} events"


# ---- JSON Schema and docs ----------------------------------------------------------------


def test_committed_schema_matches_the_models() -> None:
    committed = (ROOT / "docs" / "events.schema.json").read_text(encoding="utf-8")
    assert json.loads(committed) == event_json_schema(), "run: python -m intake.events"
    assert committed == render_json_schema()


def test_examples_validate_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(event_json_schema())
    for type_ in EVENT_TYPES:
        validator.validate(event(type_))
    validator.validate([event(t) for t in EVENT_TYPES])
    assert not validator.is_valid(event() | {"type": "nope"})


def _doc_examples() -> list[Any]:
    text = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)]


def test_every_type_has_a_valid_example_in_the_docs() -> None:
    examples = [e for e in _doc_examples() if isinstance(e, dict) and e.get("type") in EVENT_TYPES]
    assert {e["type"] for e in examples} == set(EVENT_TYPES)
    assert len(parse_events(examples)) == len(examples)


@pytest.mark.parametrize(("prefs", "where", "says"), [
    ({"delivery": "weekly"}, "data.preferences.delivery", "'instant' or 'digest'"),
    ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "data.preferences.quiet_hours.start", "pattern"),
    ({"quiet_hour": {}}, "data.preferences.quiet_hour", "unknown field 'quiet_hour'"),
    ({"channels": ["sms", "sms"]}, "data.preferences.channels", "duplicate channel 'sms'"),
    ({"max_per_order_per_day": 0}, "data.preferences.max_per_order_per_day", "greater than or equal to 1"),
])
def test_bad_preferences_name_the_key(prefs: dict[str, Any], where: str, says: str) -> None:
    body = {"event_id": "c", "type": "customer.upserted", "occurred_at": T0,
            "data": {"customer_id": "C", "name": "N", "preferences": prefs}}
    with pytest.raises(EventValidationError) as caught:
        parse_events(body)
    [err] = caught.value.errors
    assert err["loc"] == f"[0].{where}" or err["loc"].endswith(where), err
    assert says in err["msg"], err
