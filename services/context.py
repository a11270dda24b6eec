"""What every service call needs: the engine, the settings and a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

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

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        return cls(engine=make_engine(settings.database_url), settings=settings)

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        return self.clock().date()
