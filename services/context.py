"""What every service call needs: the engine, the settings and a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from backorder.config import Settings
from store.db import make_engine


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    engine: Engine
    settings: Settings
    clock: Callable[[], datetime] = field(default=utcnow)
    # Read-mostly data a process may keep for a short while (the chat catalog), per context.
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        return cls(engine=make_engine(settings.database_url), settings=settings)

    @cached_property
    def channels(self) -> frozenset[str]:
        """The channels that have a sender configured (read once: settings do not change under a context)."""
        from notifiers.senders.registry import configured_channels

        return frozenset(configured_channels(self.settings))

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        return self.clock().date()
