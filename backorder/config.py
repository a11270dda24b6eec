"""Configuration: defaults < backorder.toml (or $BACKORDER_CONFIG) < BACKORDER_* environment.

Every key is documented in docs/configuration.md; a test keeps that page and these models in step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from allocation.policy import DEFAULT_PRIORITY_KEY, AllocationPolicy, SeverityThresholds

DEFAULT_DATABASE_URL = "sqlite:///backorder.db"


class AllocationSettings(BaseModel):
    policy: str = Field("fifo", description="fifo or priority")
    priority_key: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PRIORITY_KEY),
        description="priority policy: order of keys among tier, rush, promised_date, order_value, "
        "line_value, fifo",
    )
    warehouse_order: list[str] = Field(
        default_factory=list, description="warehouses tried after the customer's region, in this order"
    )
    allow_split: bool = Field(True, description="a line may draw from several warehouses")
    receiving_buffer_days: int = Field(1, ge=0, description="days from PO arrival to a line's ETA")


class SeveritySettings(BaseModel):
    medium_days: int = Field(3, ge=0, description="days late from which a backorder is medium")
    high_days: int = Field(7, ge=0, description="days late from which it is high")
    critical_days: int = Field(14, ge=0, description="days late from which it is critical")
    high_value: float = Field(1000.0, ge=0, description="waiting value from which it is high")
    critical_value: float = Field(5000.0, ge=0, description="waiting value from which it is critical")


def _config_file() -> Path:
    return Path(os.environ.get("BACKORDER_CONFIG", "backorder.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BACKORDER_", env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the store")
    api_token: str | None = Field(None, description="when set, every endpoint but /healthz needs it")
    allocation: AllocationSettings = Field(default_factory=AllocationSettings)
    severity: SeveritySettings = Field(default_factory=SeveritySettings)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite", "postgresql")):
            raise ValueError("database_url must be a sqlite:/// or postgresql+psycopg:// URL")
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # psycopg 3 is the driver we ship; a bare postgresql:// URL would ask for psycopg2.
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_config_file()))

    def allocation_policy(self, warehouse_regions: dict[str, str] | None = None) -> AllocationPolicy:
        a, s = self.allocation, self.severity
        return AllocationPolicy(
            name=a.policy,
            priority_key=tuple(a.priority_key),
            warehouse_order=tuple(a.warehouse_order),
            warehouse_regions=dict(warehouse_regions or {}),
            allow_split=a.allow_split,
            receiving_buffer_days=a.receiving_buffer_days,
            severity=SeverityThresholds(
                medium_days=s.medium_days,
                high_days=s.high_days,
                critical_days=s.critical_days,
                high_value=s.high_value,
                critical_value=s.critical_value,
            ),
        )


def load_settings(**overrides: Any) -> Settings:
    """Read the settings now (tests and the CLI call this; nothing is cached)."""
    settings = Settings(**overrides)
    settings.allocation_policy()  # fail at start, naming the key, not at the first order
    return settings


