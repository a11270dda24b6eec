"""CSV import: layouts -> canonical events, grouping, deterministic ids, row/column errors."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from intake.csv_import import KINDS, parse_csv, read_csv
from intake.errors import EventValidationError
from intake.events import parse_events

NOW = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)

ORDERS = """\
order_id,customer_id,placed_at,promised_date,rush,ship_complete,line_id,sku,qty,unit_price
1042,C1,2024-05-01T09:00:00Z,2024-05-10,yes,,1,SKU-1,2,19.99
1043,C2,2024-05-01T10:00:00+02:00,,,,1,SKU-2,1,
1042,,,,,,2,SKU-3,3,5
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(kind: str, text: str) -> list[dict[str, Any]]:
    with pytest.raises(EventValidationError) as info:
        read_csv(kind, io.StringIO(text), NOW)
    return info.value.errors


def test_orders_are_grouped_per_order_id(tmp_path: Path) -> None:
    events = read_csv("orders", write(tmp_path, "orders-0501.csv", ORDERS), NOW)
    assert [e["event_id"] for e in events] == ["csv:orders:orders-0501:1042", "csv:orders:orders-0501:1043"]
    first = events[0]
    assert first["type"] == "order.placed" and first["source"] == "csv"
    assert first["occurred_at"] == "2024-05-01T09:00:00Z"  # from placed_at, not now
    assert first["data"]["rush"] is True and first["data"]["ship_complete"] is False
    assert first["data"]["promised_date"] == "2024-05-10"
    assert [(line["line_id"], line["sku"], line["qty"]) for line in first["data"]["lines"]] == [
        ("1", "SKU-1", 2),
        ("2", "SKU-3", 3),
    ]
    assert events[1]["occurred_at"] == "2024-05-01T10:00:00+02:00"
    assert events[1]["data"]["lines"][0]["unit_price"] == "0"
    assert [e.type for e in parse_events(events)] == ["order.placed", "order.placed"]  # round trip


def test_event_ids_are_deterministic(tmp_path: Path) -> None:
    path = write(tmp_path, "orders-0501.csv", ORDERS)
    assert read_csv("orders", path, NOW) == read_csv("orders", path, NOW)
    with path.open(encoding="utf-8") as handle:
        assert read_csv("orders", handle, NOW)[0]["event_id"] == "csv:orders:orders-0501:1042"
    stream = io.StringIO(ORDERS)
    assert read_csv("orders", stream, NOW, stem="feed")[0]["event_id"] == "csv:orders:feed:1042"


def test_order_without_placed_at_uses_now() -> None:
    [event] = read_csv("orders", io.StringIO("order_id,customer_id,line_id,sku,qty\nA,C,L,S,1\n"), NOW)
    assert event["occurred_at"] == event["data"]["placed_at"] == "2024-06-01T08:00:00Z"


def test_stock_rows_become_inventory_adjusted(tmp_path: Path) -> None:
    path = write(tmp_path, "stock.csv", "\ufeffSKU,warehouse_id,on_hand\nS1,W1,10\n\nS2,W1,0\n")
    events = read_csv("stock", path, NOW)
    assert [e["event_id"] for e in events] == ["csv:stock:stock:2", "csv:stock:stock:4"]
    assert events[0]["type"] == "inventory.adjusted"
    assert events[0]["occurred_at"] == "2024-06-01T08:00:00Z"
    assert events[1]["data"] == {"sku": "S2", "warehouse_id": "W1", "on_hand": 0, "reason": None}


def test_purchase_orders_are_grouped_per_po_id() -> None:
    text = (
        "po_id,supplier_id,warehouse_id,expected_at,sku,qty,received\n"
        "PO1,SUP,W1,2024-06-10,S1,10,\n"
        "PO2,SUP,W2,2024-06-12,S1,4,4\n"
        "PO1,SUP,W1,2024-06-10,S2,5,2\n"
    )
    events = read_csv("purchase_orders", io.StringIO(text), NOW, stem="pos")
    assert [e["event_id"] for e in events] == ["csv:purchase_orders:pos:PO1", "csv:purchase_orders:pos:PO2"]
    assert events[0]["type"] == "po.updated"
    assert events[0]["data"]["expected_at"] == "2024-06-10"
    assert events[0]["data"]["lines"] == [
        {"sku": "S1", "qty": 10, "received": 0},
        {"sku": "S2", "qty": 5, "received": 2},
    ]


def test_products_split_substitutes() -> None:
    text = (
        "sku,name,price,supplier_id,lead_time_days,reorder_point,substitutes,category\n"
        "S1,Widget,1.50,SUP,7,5,S2; S3|S4,tools\n"
    )
    [event] = read_csv("products", io.StringIO(text), NOW)
    assert event["type"] == "product.upserted"
    assert event["data"]["substitutes"] == ["S2", "S3", "S4"]
    assert (event["data"]["price"], event["data"]["lead_time_days"], event["data"]["reorder_point"]) == (
        "1.50",
        7,
        5,
    )


def test_customers_build_contacts() -> None:
    text = (
        "customer_id,name,tier,region,timezone,locale,email,phone,whatsapp\n"
        "C1,Ada,gold,uk,Europe/London,en-GB,ada@Example.com,+44 7911 123456,\n"
    )
    [event] = parse_csv("customers", io.StringIO(text), NOW)
    assert event.type == "customer.upserted"
    assert event.data_dict()["contacts"] == {
        "email": "ada@example.com",
        "phone": "+447911123456",
        "whatsapp": None,
    }
    assert (event.data.tier, event.data.timezone, event.data.locale) == ("gold", "Europe/London", "en-GB")


def test_errors_name_row_and_column() -> None:
    text = (
        ORDERS + "1044,C3,2024-05-02T09:00:00Z,,,,1,SKU-1,0,\n1045,C3,2024-05-02T09:00:00Z,,,,1,SKU-1,1.5,\n"
    )
    errors = errors_of("orders", text)
    assert [(e["loc"], e["msg"]) for e in errors] == [
        ("row 5.qty", "must be a whole number greater than 0"),
        ("row 6.qty", "must be a whole number greater than 0"),
    ]
    with pytest.raises(EventValidationError) as info:
        read_csv("orders", io.StringIO(text), NOW)
    assert "row 5, column qty: must be a whole number greater than 0" in str(info.value)


def test_all_errors_are_collected_in_row_order() -> None:
    text = (
        "order_id,customer_id,placed_at,promised_date,rush,ship_complete,line_id,sku,qty,unit_price\n"
        "1042,C1,2024-05-01T09:00:00,,,,1,SKU-1,2,\n"  # naive placed_at
        "1042,C9,,,,,2,SKU-2,1,\n"  # conflicting customer_id
        "1042,,,,,,2,SKU-3,1,\n"  # duplicate line_id
        ",C1,,,,,1,SKU-1,1,\n"  # no order_id
        "1050,,,2024-13-01,maybe,,1,,1,-1\n"  # several bad cells
    )
    locs = [e["loc"] for e in errors_of("orders", text)]
    assert locs == [
        "row 2.placed_at",
        "row 3.customer_id",
        "row 4.line_id",
        "row 5.order_id",
        "row 6.customer_id",
        "row 6.promised_date",
        "row 6.rush",
        "row 6.sku",
        "row 6.unit_price",
    ]


def test_customer_errors_point_at_contact_columns() -> None:
    text = "customer_id,name,timezone,phone\nC1,Ada,Mars/Base,\nC2,Bob,,12345\n"
    assert [e["loc"] for e in errors_of("customers", text)] == ["row 2.timezone", "row 3.phone"]


def test_missing_required_columns_are_named() -> None:
    errors = errors_of("orders", "order_id,sku\n1,S\n")
    assert [e["loc"] for e in errors] == ["row 1.customer_id", "row 1.line_id", "row 1.qty"]
    assert errors[0]["msg"] == "missing required column customer_id"


def test_empty_files_and_ragged_rows() -> None:
    assert errors_of("stock", "")[0]["loc"] == "row 1"
    assert errors_of("stock", "sku,warehouse_id,on_hand\n")[0]["msg"] == "the file has no data rows"
    assert [e["loc"] for e in errors_of("stock", "sku,warehouse_id,on_hand\nS,W,1,9\nS,W,-1\n")] == [
        "row 2",
        "row 3.on_hand",
    ]


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ValueError, match="orders, stock, purchase_orders, products, customers"):
        read_csv("invoices", io.StringIO("a\n1\n"), NOW)
    assert KINDS == ("orders", "stock", "purchase_orders", "products", "customers")


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        read_csv("stock", io.StringIO("sku,warehouse_id,on_hand\nS,W,1\n"), datetime(2024, 6, 1))


def test_long_keys_keep_ids_within_limits() -> None:
    stem = "x" * 120
    [event] = read_csv("stock", io.StringIO("sku,warehouse_id,on_hand\nS,W,1\n"), NOW, stem=stem)
    assert event["event_id"].startswith("csv:stock:sha256:") and len(event["event_id"]) <= 100


def test_large_files_are_validated_in_batches() -> None:
    rows = "".join(f"S{i},W1,{i}\n" for i in range(12_001))
    events = read_csv("stock", io.StringIO("sku,warehouse_id,on_hand\n" + rows), NOW)
    assert len(events) == 12_001 and events[-1]["event_id"] == "csv:stock:upload:12002"
