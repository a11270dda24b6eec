"""CSV files -> canonical event dicts, validated by the same models as POST /events.

Kinds and their columns are listed in KINDS / COLUMNS and documented in docs/events.md.
event_id is deterministic, f"csv:{kind}:{file stem}:{row number or group key}", so
importing the same file again yields the same ids (and the inbox reports duplicates).
Errors name the CSV row (1-based, the header is row 1) and column: loc "row 7.qty".
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from intake.envelope import MAX_BATCH, Event, Loc, validate_items
from intake.errors import ErrorDict, EventValidationError

KINDS = ("orders", "stock", "purchase_orders", "products", "customers")
SOURCE = "csv"
MAX_ID = 100


@dataclass(frozen=True)
class Layout:
    """Columns of one CSV kind. `header` columns describe the event, `line` columns one line of it."""

    event_type: str
    required: tuple[str, ...]
    header: tuple[str, ...]
    line: tuple[str, ...] = ()
    group_by: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return self.header + self.line


LAYOUTS: dict[str, Layout] = {
    "orders": Layout(
        "order.placed",
        required=("order_id", "customer_id", "line_id", "sku", "qty"),
        header=("order_id", "customer_id", "placed_at", "promised_date", "rush", "ship_complete", "channel"),
        line=("line_id", "sku", "qty", "unit_price"),
        group_by="order_id",
    ),
    "stock": Layout(
        "inventory.adjusted",
        required=("sku", "warehouse_id", "on_hand"),
        header=("sku", "warehouse_id", "on_hand", "reason"),
    ),
    "purchase_orders": Layout(
        "po.updated",
        required=("po_id", "supplier_id", "warehouse_id", "expected_at", "sku", "qty"),
        header=("po_id", "supplier_id", "warehouse_id", "expected_at", "status"),
        line=("sku", "qty", "received"),
        group_by="po_id",
    ),
    "products": Layout(
        "product.upserted",
        required=("sku", "name", "price"),
        header=(
            "sku",
            "name",
            "price",
            "supplier_id",
            "lead_time_days",
            "reorder_point",
            "substitutes",
            "category",
        ),
    ),
    "customers": Layout(
        "customer.upserted",
        required=("customer_id", "name"),
        header=("customer_id", "name", "tier", "region", "timezone", "locale", "email", "phone", "whatsapp"),
    ),
}
COLUMNS: dict[str, tuple[str, ...]] = {kind: layout.columns for kind, layout in LAYOUTS.items()}

_INT_COLUMNS = frozenset({"qty", "received", "on_hand", "lead_time_days", "reorder_point"})
_CONTACT_COLUMNS = ("email", "phone", "whatsapp")
_WHOLE = re.compile(r"^[+-]?\d+$")
_SPLIT = re.compile(r"[;|]")


@dataclass
class _Built:
    """One event under construction and the CSV rows its fields came from."""

    event: dict[str, Any]
    row: int
    field_rows: dict[str, int] = field(default_factory=dict)
    line_rows: list[int] = field(default_factory=list)
    line_keys: dict[str, int] = field(default_factory=dict)


def _convert(column: str, value: str) -> Any:
    if column in _INT_COLUMNS and _WHOLE.match(value):
        return int(value)
    if column == "substitutes":
        return [part.strip() for part in _SPLIT.split(value) if part.strip()]
    return value


def _event_id(kind: str, stem: str, key: str) -> str:
    event_id = f"csv:{kind}:{stem}:{key}"
    if len(event_id) <= MAX_ID:
        return event_id
    digest = hashlib.sha256(f"{stem}\x00{key}".encode()).hexdigest()[:40]
    return f"csv:{kind}:sha256:{digest}"


def _stem(src: str | os.PathLike[str] | TextIO) -> str:
    if isinstance(src, (str, os.PathLike)):
        return Path(src).stem
    name = getattr(src, "name", None)
    return Path(name).stem if isinstance(name, str) and name and not name.startswith("<") else "upload"


class _Importer:
    def __init__(self, kind: str, stem: str, now: datetime) -> None:
        self.kind = kind
        self.layout = LAYOUTS[kind]
        self.stem = stem
        self.now = now.isoformat()
        self.built: list[_Built] = []
        self.groups: dict[str, _Built] = {}
        self.errors: list[ErrorDict] = []

    def error(self, row: int, column: str | None, msg: str, kind: str) -> None:
        loc = f"row {row}.{column}" if column else f"row {row}"
        self.errors.append({"loc": loc, "msg": msg, "type": kind})

    def check_header(self, names: list[str]) -> list[str]:
        columns = [(name or "").strip().lstrip("\ufeff").lower() for name in names]
        for index, name in enumerate(columns):
            if name and name in columns[:index]:
                self.error(1, name, "column appears more than once", "duplicate_column")
        for name in self.layout.required:
            if name not in columns:
                self.error(1, name, f"missing required column {name}", "missing_column")
        return columns

    def add_row(self, row: int, cells: dict[str, str]) -> None:
        values = {
            col: _convert(col, text) for col, text in cells.items() if col in self.layout.columns and text
        }
        if self.layout.group_by is None:
            self._add_single(row, values)
        elif self.layout.group_by in values:
            self._add_to_group(row, values)
        else:
            self.error(row, self.layout.group_by, "required field is missing", "missing")

    def _add_single(self, row: int, values: dict[str, Any]) -> None:
        data = {
            col: values[col] for col in self.layout.header if col in values and col not in _CONTACT_COLUMNS
        }
        contacts = {col: values[col] for col in _CONTACT_COLUMNS if col in values}
        if self.kind == "customers" and contacts:
            data["contacts"] = contacts
        self.built.append(_Built(self._envelope(str(row), self.now, data), row))

    def _add_to_group(self, row: int, values: dict[str, Any]) -> None:
        key = str(values[self.layout.group_by])
        group = self.groups.get(key)
        header = {col: values[col] for col in self.layout.header if col in values}
        if group is None:
            occurred_at = values.get("placed_at", self.now) if self.kind == "orders" else self.now
            group = _Built(self._envelope(key, occurred_at, {**header, "lines": []}), row)
            group.field_rows = dict.fromkeys(header, row)
            self.groups[key] = group
            self.built.append(group)
        else:
            data = group.event["data"]
            for col, value in header.items():
                if col not in data:
                    data[col] = value
                    group.field_rows[col] = row
                elif data[col] != value:
                    first = group.field_rows[col]
                    msg = (
                        f"differs from row {first} ({data[col]!r}) for the same {self.layout.group_by} {key}"
                    )
                    self.error(row, col, msg, "group_conflict")
        line_key_col = "line_id" if self.kind == "orders" else None
        if line_key_col and line_key_col in values:
            line_key = str(values[line_key_col]).strip()
            if line_key in group.line_keys:
                first_row = group.line_keys[line_key]
                msg = f"duplicate line_id {line_key!r} in order {key} (first on row {first_row})"
                self.error(row, line_key_col, msg, "duplicate")
                return
            group.line_keys[line_key] = row
        group.event["data"]["lines"].append({col: values[col] for col in self.layout.line if col in values})
        group.line_rows.append(row)

    def _envelope(self, key: str, occurred_at: Any, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": _event_id(self.kind, self.stem, key),
            "type": self.layout.event_type,
            "occurred_at": occurred_at,
            "source": SOURCE,
            "data": data,
        }

    def locate(self, built: _Built, loc: Loc) -> tuple[int, str | None]:
        """Map an event error location to (CSV row, column)."""
        if loc[:1] == ("occurred_at",):
            return built.row, "placed_at"
        if loc[:1] == ("event_id",):
            return built.row, self.layout.group_by or self.layout.required[0]
        path = loc[1:] if loc[:1] == ("data",) else loc
        if (
            path[:1] == ("lines",)
            and len(path) >= 2
            and isinstance(path[1], int)
            and path[1] < len(built.line_rows)
        ):
            column = str(path[2]) if len(path) >= 3 else self.layout.line[0]
            return built.line_rows[path[1]], column
        if path[:1] == ("contacts",) and len(path) >= 2:
            return built.row, str(path[1])
        if path:
            column = str(path[0])
            return built.field_rows.get(column, built.row), column
        return built.row, None

    def validate(self) -> list[Event]:
        events: list[Event] = []
        for start in range(0, len(self.built), MAX_BATCH):
            chunk = self.built[start : start + MAX_BATCH]
            valid, errors = validate_items([b.event for b in chunk])
            events.extend(valid)
            for loc, msg, kind in errors:
                built = chunk[int(loc[0])]
                row, column = self.locate(built, loc[1:])
                self.error(row, column, msg, kind)
        return events


def parse_csv(
    kind: str,
    path_or_textio: str | os.PathLike[str] | TextIO,
    now: datetime | None = None,
    *,
    stem: str | None = None,
) -> list[Event]:
    """Read a CSV file of `kind` into validated Event models (see read_csv)."""
    if kind not in LAYOUTS:
        raise ValueError(f"unknown CSV kind {kind!r}: expected one of {', '.join(KINDS)}")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    importer = _Importer(kind, stem or _stem(path_or_textio), now)
    if isinstance(path_or_textio, (str, os.PathLike)):
        with open(path_or_textio, encoding="utf-8-sig", newline="") as handle:
            _read(importer, handle)
    else:
        _read(importer, path_or_textio)
    events = importer.validate()
    if not importer.errors and not events:
        raise EventValidationError(
            [{"loc": "row 2", "msg": "the file has no data rows", "type": "too_short"}]
        )
    if importer.errors:
        seen: set[tuple[str, str]] = set()
        unique = []
        for err in importer.errors:
            if (err["loc"], err["msg"]) not in seen:
                seen.add((err["loc"], err["msg"]))
                unique.append(err)
        unique.sort(key=_row_of)
        raise EventValidationError(unique)
    return events


def _row_of(error: ErrorDict) -> int:
    match = re.match(r"row (\d+)", str(error["loc"]))
    return int(match.group(1)) if match else 0


def _read(importer: _Importer, handle: TextIO | io.TextIOBase) -> None:
    reader = csv.reader(handle)  # type: ignore[arg-type]
    header: list[str] | None = None
    for row, cells in enumerate(reader, start=1):
        if header is None:
            header = importer.check_header(cells)
            if importer.errors:
                return
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            importer.error(
                row, None, f"{len(cells)} cells but the header has {len(header)} columns", "row_length"
            )
            continue
        importer.add_row(row, {header[i]: cells[i].strip() for i in range(len(cells))})
    if header is None:
        importer.error(1, None, "the file is empty: expected a header row", "missing")


def read_csv(
    kind: str,
    path_or_textio: str | os.PathLike[str] | TextIO,
    now: datetime | None = None,
    *,
    stem: str | None = None,
) -> list[dict[str, Any]]:
    """Read a CSV file of `kind` (one of KINDS) into canonical event dicts.

    Returns JSON-ready dicts (envelope + data, as Event.to_dict()), already validated by
    the same models as POST /events. `now` (timezone-aware; default: the current UTC
    time) is occurred_at for every kind except orders, whose occurred_at is placed_at.
    `stem` overrides the file stem used in event ids (default: the file name without
    extension; "upload" for a stream without a name). Raises ValueError for an unknown
    kind and EventValidationError (every error, loc "row N.column") for bad content.
    """
    return [event.to_dict() for event in parse_csv(kind, path_or_textio, now, stem=stem)]
