"""Which products may stand in for a backordered one, and in what order they are offered.

Plain data in, plain data out: the service layer (services/substitutions.py) loads the catalog and
the supply of the candidate SKUs, this module filters and ranks, and nothing here touches a store.

A candidate must
- be a configured substitute of the original, or share its category with similarity >= min_similarity;
- cost within max_price_diff_pct of the original (either way);
- have the whole waiting quantity free now, or arriving by an open PO, in one warehouse that can serve
  the customer (any warehouse, or only the customer's region with same_region_only);
- be there strictly sooner than the original line's ETA (a line without an ETA is later than any date).

Ranking: configured before similar, then sooner, then closer in price, then more similar, then SKU.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from rapidfuzz import fuzz, utils

# The status of an order line whose waiting units moved to a substitute line and which holds nothing
# itself: terminal, like shipped and cancelled (a line still holding units keeps allocated/shipped).
SUBSTITUTED = "substituted"

Source = Literal["configured", "similar"]
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")


@dataclass(frozen=True, slots=True)
class ProductInfo:
    sku: str
    name: str
    price: float
    category: str | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)
    substitutes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Supply:
    """What one warehouse can give of one SKU: free units now, and open PO units by the date they arrive.

    The service nets the SKU's own waiting demand out of `inbound` before it gets here: those units
    are spoken for.
    """

    sku: str
    warehouse_id: str
    region: str | None
    free_now: int
    inbound: tuple[tuple[date, int], ...] = ()

    def available_on(self, qty: int, today: date) -> date | None:
        """The first day `qty` units are here (today if they are now), or None if never by open POs."""
        have = max(self.free_now, 0)
        if have >= qty:
            return today
        for day, units in sorted(self.inbound):
            have += max(units, 0)
            if have >= qty:
                return max(day, today)
        return None


@dataclass(frozen=True, slots=True)
class Candidate:
    sku: str
    name: str
    source: Source
    warehouse_id: str
    available_on: date
    price: float
    price_diff_pct: float
    similarity: float
    reasons: tuple[str, ...]

    def rank_key(self) -> tuple[bool, date, float, float, str]:
        return (self.source != "configured", self.available_on, abs(self.price_diff_pct), -self.similarity,
                self.sku)


@dataclass(frozen=True, slots=True)
class SubstituteRules:
    max_price_diff_pct: float = 15.0
    min_similarity: float = 0.5
    max_candidates: int = 5
    same_region_only: bool = False


def _norm(value: object) -> object:
    """Attribute values compare case- and type-loosely: "Blue" == "blue", "1.5" == 1.5, but True != 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", float(value))
    text = str(value).strip().casefold()
    if _NUMBER.match(text):
        return ("num", float(text))
    return ("str", text)


def name_similarity(a: str, b: str) -> float:
    """rapidfuzz token_set_ratio / 100, on lower-cased words without punctuation."""
    return fuzz.token_set_ratio(a, b, processor=utils.default_process) / 100.0


def similarity(a: ProductInfo, b: ProductInfo) -> float:
    """How alike two products are, in [0, 1].

    Over the union U of both products' attribute keys, a key both carry scores 1 when the values
    match and 0 when not; a key only one of them carries is unknown, so the name similarity N
    (rapidfuzz token_set_ratio / 100) stands in for it:

        similarity = (matching keys + (|U| - |shared keys|) * N) / |U|,   or N when U is empty.

    With the same keys on both sides this is the share of matching key/value pairs; with no
    attributes at all it is the name similarity.
    """
    keys = set(a.attributes) | set(b.attributes)
    if not keys:
        return round(name_similarity(a.name, b.name), 4)
    shared = set(a.attributes) & set(b.attributes)
    matching = sum(1 for k in shared if _norm(a.attributes[k]) == _norm(b.attributes[k]))
    unknown = len(keys) - len(shared)
    score = matching + (unknown * name_similarity(a.name, b.name) if unknown else 0.0)
    return round(min(max(score / len(keys), 0.0), 1.0), 4)


def price_diff_pct(original: float, other: float) -> float | None:
    """(other - original) / original in percent; None when the original has no price to compare with."""
    if original <= 0:
        return 0.0 if other == original else None
    return round((other - original) / original * 100.0, 2)


def _serving(supplies: Iterable[Supply], customer_region: str | None, same_region_only: bool) -> list[Supply]:
    if same_region_only and customer_region is not None:
        return [s for s in supplies if s.region == customer_region]
    # No region to match: every warehouse can serve them, as the allocator would.
    return list(supplies)


def earliest(supplies: Sequence[Supply], qty: int, today: date, customer_region: str | None,
             same_region_only: bool) -> tuple[Supply, date] | None:
    """The warehouse that has `qty` units first (the customer's region, then warehouse id, on a tie)."""
    best: tuple[tuple[date, bool, str], Supply, date] | None = None
    for s in _serving(supplies, customer_region, same_region_only):
        day = s.available_on(qty, today)
        if day is None:
            continue
        key = (day, customer_region is None or s.region != customer_region, s.warehouse_id)
        if best is None or key < best[0]:
            best = (key, s, day)
    return (best[1], best[2]) if best is not None else None


def _pool(original: ProductInfo, catalog: Mapping[str, ProductInfo],
          rules: SubstituteRules) -> list[tuple[ProductInfo, Source, float]]:
    seen = {original.sku}
    pool: list[tuple[ProductInfo, Source, float]] = []
    for sku in original.substitutes:
        p = catalog.get(sku)
        if p is None or sku in seen:
            continue
        seen.add(sku)
        pool.append((p, "configured", similarity(original, p)))
    category = (original.category or "").strip().casefold()
    if not category:
        return pool
    for p in catalog.values():
        if p.sku in seen or (p.category or "").strip().casefold() != category:
            continue
        score = similarity(original, p)
        if score >= rules.min_similarity:
            seen.add(p.sku)
            pool.append((p, "similar", score))
    return pool


def candidates(
    original: ProductInfo,
    qty: int,
    original_available_on: date | None,
    today: date,
    catalog: Mapping[str, ProductInfo],
    supply: Mapping[str, Sequence[Supply]],
    customer_region: str | None,
    rules: SubstituteRules,
) -> list[Candidate]:
    """The products that could replace `qty` units of `original` sooner, best first (see the module doc)."""
    if qty <= 0 or rules.max_candidates <= 0:
        return []
    out: list[Candidate] = []
    for product, source, score in _pool(original, catalog, rules):
        diff = price_diff_pct(original.price, product.price)
        if diff is None or not math.isfinite(diff) or abs(diff) > rules.max_price_diff_pct:
            continue
        found = earliest(supply.get(product.sku, ()), qty, today, customer_region, rules.same_region_only)
        if found is None:
            continue
        where, day = found
        if original_available_on is not None and not day < original_available_on:
            continue
        reasons = (
            "configured substitute" if source == "configured" else f"same category {product.category}",
            f"in stock now at {where.warehouse_id}" if day == today
            else f"arrives {day.isoformat()} at {where.warehouse_id}",
            f"original expected {original_available_on.isoformat()}" if original_available_on is not None
            else "original has no date",
            f"price {diff:+.1f}%",
            f"similarity {score:.2f}",
        )
        out.append(Candidate(product.sku, product.name, source, where.warehouse_id, day, product.price, diff,
                             score, reasons))
    out.sort(key=Candidate.rank_key)
    return out[:rules.max_candidates]
