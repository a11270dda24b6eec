"""Which warehouse a line draws from first: region, then policy order, then id."""

from __future__ import annotations

from collections.abc import Iterable

from allocation.model import Stock
from allocation.policy import AllocationPolicy


class StockIndex:
    """Stocks by (sku, warehouse) plus a per (sku, region) preference list, built lazily.

    Preference lists are cached because 1M lines share a handful of (sku, region) pairs.
    """

    def __init__(self, stocks: Iterable[Stock], policy: AllocationPolicy | None = None) -> None:
        self.by_key: dict[tuple[str, str], Stock] = {}
        self.by_sku: dict[str, list[Stock]] = {}
        for stock in stocks:
            self.by_key[(stock.sku, stock.warehouse_id)] = stock
            self.by_sku.setdefault(stock.sku, []).append(stock)
        policy = policy or AllocationPolicy()
        self._regions = policy.warehouse_regions
        named = policy.warehouse_order
        self._rank = {wh: i for i, wh in enumerate(named)}
        self._unranked = len(named)
        self._prefs: dict[tuple[str, str | None], list[Stock]] = {}

    def get(self, sku: str, warehouse_id: str) -> Stock:
        """The stock row; a missing one is a caller bug (it must load every row it touches)."""
        try:
            return self.by_key[(sku, warehouse_id)]
        except KeyError:
            raise ValueError(f"allocation: no stock row given for sku {sku!r} in {warehouse_id!r}") from None

    def preferred(self, sku: str, region: str | None) -> list[Stock]:
        """The SKU's stocks in the order a line from `region` should draw from them."""
        key = (sku, region)
        prefs = self._prefs.get(key)
        if prefs is None:
            regions, rank, unranked = self._regions, self._rank, self._unranked
            prefs = sorted(
                self.by_sku.get(sku, ()),
                key=lambda s: (
                    region is None or regions.get(s.warehouse_id) != region,
                    rank.get(s.warehouse_id, unranked),
                    s.warehouse_id,
                ),
            )
            self._prefs[key] = prefs
        return prefs
