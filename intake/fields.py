"""Reusable field types for event payloads: ids, quantities, money, times, contacts.

Each type validates and normalises one kind of value and says why it failed in plain
words (the message ends up in API 422 bodies and CSV import errors).
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

try:  # optional: E.164 normalisation with Google's libphonenumber rules
    import phonenumbers
except ImportError:  # pragma: no cover - exercised only without the package
    phonenumbers = None  # type: ignore[assignment]

MAX_QTY = 1_000_000_000
MAX_PRICE = Decimal(1_000_000_000)

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
"""An identifier: a string of 1..100 characters, surrounding whitespace stripped."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


def _whole_number(value: Any, minimum: int, reason: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("whole_number", reason)
    if value < minimum:
        raise PydanticCustomError("whole_number", reason)
    if value > MAX_QTY:
        raise PydanticCustomError("too_large", "must be at most {max}", {"max": MAX_QTY})
    return value


def _positive(value: Any) -> int:
    return _whole_number(value, 1, "must be a whole number greater than 0")


def _non_negative(value: Any) -> int:
    return _whole_number(value, 0, "must be a whole number, 0 or more")


Qty = Annotated[int, Field(gt=0, le=MAX_QTY), BeforeValidator(_positive)]
"""A whole number 1..1,000,000,000; floats (even 2.0), strings and booleans are refused."""

Count = Annotated[int, Field(ge=0, le=MAX_QTY), BeforeValidator(_non_negative)]
"""A whole number 0..1,000,000,000; floats, strings and booleans are refused."""


def _money(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("decimal_type", "must be a number, 0 or more")
    return value


# The schema is spelled out rather than left to pydantic, whose rendering of Decimal changes
# between releases (the committed docs/events.schema.json must not depend on which one is installed).
_MONEY_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": int(MAX_PRICE)},
        {"type": "string", "pattern": r"^\+?\d*\.?\d+$"},
    ],
}

Money = Annotated[
    Decimal,
    Field(ge=0, le=MAX_PRICE, allow_inf_nan=False),
    BeforeValidator(_money),
    WithJsonSchema(_MONEY_SCHEMA),
]
"""A non-negative amount, kept exactly as a Decimal (JSON numbers and numeric strings)."""


def _no_numbers(kind: str) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, (bool, int, float, Decimal)):
            raise PydanticCustomError(f"{kind}_type", f"must be an RFC 3339 {kind} string")
        return value

    return check


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError(
            "timezone_aware", "must include a timezone offset, e.g. 2024-05-01T09:30:00Z or +02:00"
        )
    return value


Timestamp = Annotated[datetime, BeforeValidator(_no_numbers("date-time")), AfterValidator(_aware)]
"""An RFC 3339 date-time with a timezone (naive times are refused)."""

Day = Annotated[date, BeforeValidator(_no_numbers("date"))]
"""An ISO 8601 calendar date, YYYY-MM-DD."""


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise PydanticCustomError(
            "timezone_name", "unknown time zone '{tz}': use an IANA name such as Europe/Paris", {"tz": value}
        ) from None
    return value


TimeZoneName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_timezone),
    Field(examples=["UTC", "Europe/Paris", "America/New_York"]),
]

Locale = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", max_length=35
    ),
    Field(examples=["en", "en-GB", "fr"]),
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise PydanticCustomError("email", "not a valid email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    AfterValidator(_email),
    Field(json_schema_extra={"format": "email"}),
]

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_PHONE_NOISE = re.compile(r"[\s().\-/]")


def e164(value: str, *, strict: bool = True) -> str | None:
    """A phone number in E.164, or None when it is not one. The one normaliser for every front door.

    Accepts Twilio's "whatsapp:" form and a 00 international prefix. `strict`: the number must exist
    (phonenumbers' metadata); otherwise a possible number is enough (a sender Twilio vouches for, a
    lookup key), since metadata lags behind new number ranges.
    """
    raw = value.strip()
    if raw.lower().startswith("whatsapp:"):  # Twilio's WhatsApp address form
        raw = raw[len("whatsapp:") :].strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if phonenumbers is None:
        compact = _PHONE_NOISE.sub("", raw)
        return compact if _E164.match(compact) else None
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    if not (phonenumbers.is_valid_number(number) if strict else phonenumbers.is_possible_number(number)):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone(value: str) -> str:
    number = e164(value)
    if number is None:
        raise PydanticCustomError(
            "phone_number", "not a valid phone number: use international format with country code, e.g. +14155550123")
    return number


Phone = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_phone),
    Field(description="Phone number, normalised to E.164 (e.g. +14155550123)", examples=["+14155550123"]),
]
