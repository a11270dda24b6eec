"""A customer's notification preferences with their defaults, and the clock arithmetic they need.

Times of day are local to the recipient; every instant in and out is an aware UTC datetime.
zoneinfo does the DST work: a window end that falls in a spring-forward gap or an autumn
repeat resolves to the real instant the local clock shows it (fold=0, the first occurrence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True, slots=True)
class Window:
    """A daily local window [start, end); end <= start crosses midnight; start == end is empty."""

    start: time
    end: time

    def contains(self, t: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


@dataclass(frozen=True, slots=True)
class Prefs:
    channels: tuple[str, ...]
    delivery: str  # instant | digest
    digest_at: time
    quiet_hours: Window | None
    routing: str  # first | all
    opt_out: frozenset[str]
    max_per_order_per_day: int | None

    @property
    def stopped(self) -> bool:
        return "all" in self.opt_out


def hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def window(raw: Mapping[str, Any] | None) -> Window | None:
    if not raw:
        return None
    return Window(hhmm(raw["start"]), hhmm(raw["end"]))


def resolve(raw: Mapping[str, Any] | None, *, default_channel: str, default_digest_at: str) -> Prefs:
    """The preferences as stored (only what the customer chose), completed with the defaults."""
    raw = raw or {}
    return Prefs(
        channels=tuple(raw.get("channels") or (default_channel,)),
        delivery=raw.get("delivery") or "instant",
        digest_at=hhmm(raw.get("digest_at") or default_digest_at),
        quiet_hours=window(raw.get("quiet_hours")),
        routing=raw.get("routing") or "first",
        opt_out=frozenset(raw.get("opt_out") or ()),
        max_per_order_per_day=raw.get("max_per_order_per_day"),
    )


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")  # intake validates zones; an old row with a retired name still gets mail


def _at(day: date, t: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, t, tzinfo=tz).astimezone(UTC)


def after_window(now: datetime, tz: ZoneInfo, w: Window | None) -> datetime:
    """`now` if it is outside the quiet window, else the instant the window ends."""
    if w is None:
        return now
    local = now.astimezone(tz)
    if not w.contains(local.time().replace(tzinfo=None)):
        return now
    day = local.date()
    if local.time() >= w.end:  # in the evening part of a window that crosses midnight
        day += timedelta(days=1)
    end = _at(day, w.end, tz)
    return end if end > now else now


def inside_window(now: datetime, tz: ZoneInfo, w: Window | None) -> datetime:
    """`now` if it is inside the allowed window, else the instant it next opens."""
    if w is None:
        return now
    local = now.astimezone(tz)
    if w.contains(local.time().replace(tzinfo=None)):
        return now
    day = local.date()
    if local.time() >= w.start:
        day += timedelta(days=1)
    return _at(day, w.start, tz)


def next_local(after: datetime, tz: ZoneInfo, t: time) -> datetime:
    """The first instant strictly after `after` at which the local clock shows `t`."""
    local = after.astimezone(tz)
    candidate = _at(local.date(), t, tz)
    if candidate <= after:
        candidate = _at(local.date() + timedelta(days=1), t, tz)
    return candidate


def local_day_start(now: datetime, tz: ZoneInfo) -> datetime:
    return _at(now.astimezone(tz).date(), time(0, 0), tz)
