"""Substitute candidates: the filters (availability, region, price, category, similarity), the ranking,
and the similarity formula. Plain data, no store."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.substitutes import (
    Candidate,
    ProductInfo,
    SubstituteRules,
    Supply,
    candidates,
    price_diff_pct,
    similarity,
)

TODAY = date(2026, 3, 2)
LATER = date(2026, 3, 20)
RULES = SubstituteRules(max_price_diff_pct=15, min_similarity=0.5, max_candidates=5, same_region_only=False)

KETTLE = ProductInfo("K1", "Blue kettle 1.5L", 40.0, "kitchen", {"color": "blue", "volume": 1.5, "cordless": True},
                     ("K2",))


def p(sku: str, name: str = "Blue kettle 1.5L", price: float = 40.0, category: str | None = "kitchen",
      attrs: dict[str, object] | None = None, subs: tuple[str, ...] = ()) -> ProductInfo:
    return ProductInfo(sku, name, price, category,
                       {"color": "blue", "volume": 1.5, "cordless": True} if attrs is None else attrs, subs)


def now(sku: str, units: int, wh: str = "W1", region: str | None = "north") -> Supply:
    return Supply(sku, wh, region, units)


def run(original: ProductInfo, catalog: list[ProductInfo], supply: list[Supply], *, qty: int = 2,
        eta: date | None = LATER, region: str | None = "north", rules: SubstituteRules = RULES) -> list[Candidate]:
    by_sku: dict[str, list[Supply]] = {}
    for s in supply:
        by_sku.setdefault(s.sku, []).append(s)
    return candidates(original, qty, eta, TODAY, {x.sku: x for x in [original, *catalog]}, by_sku, region, rules)


# -- similarity ---------------------------------------------------------------------------------------


def test_similarity_is_the_share_of_matching_attributes_when_both_carry_the_same_keys() -> None:
    other = p("X", attrs={"color": "Blue ", "volume": "1.5", "cordless": False})
    # color matches case-insensitively, volume "1.5" == 1.5, cordless differs: 2 of 3.
    assert similarity(KETTLE, other) == pytest.approx(2 / 3, abs=1e-4)


def test_similarity_falls_back_to_the_name_without_attributes() -> None:
    a = ProductInfo("A", "Steel kettle blue", 10.0)
    b = ProductInfo("B", "blue steel KETTLE", 10.0)
    c = ProductInfo("C", "Garden hose", 10.0)
    assert similarity(a, b) == 1.0
    assert similarity(a, c) < 0.5


def test_keys_one_side_lacks_are_filled_in_by_the_name_similarity() -> None:
    a = ProductInfo("A", "Blue kettle", 10.0, attributes={"color": "blue", "volume": 1.5})
    same_name = ProductInfo("B", "Blue kettle", 10.0, attributes={"color": "blue"})
    other_name = ProductInfo("C", "Garden hose", 10.0, attributes={"color": "blue"})
    # color matches (1), volume unknown on B: the name (1.0) stands in -> (1 + 1) / 2.
    assert similarity(a, same_name) == 1.0
    assert similarity(a, other_name) < similarity(a, same_name)
    assert similarity(a, other_name) >= 0.5  # the matching color still counts


def test_true_is_not_one() -> None:
    a = ProductInfo("A", "x", 1.0, attributes={"flag": True})
    b = ProductInfo("B", "x", 1.0, attributes={"flag": 1})
    assert similarity(a, b) == 0.0


names = st.text(alphabet="abc xyz", min_size=0, max_size=12)
values = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from(["red", "Red", "blue", "1", "2.0"]))
attrs = st.dictionaries(st.sampled_from(["color", "size", "volume", "flag"]), values, max_size=4)
products = st.builds(ProductInfo, st.sampled_from(["A", "B", "C"]), names, st.just(10.0), st.just("cat"), attrs)


@settings(max_examples=200, deadline=None)
@given(products, products)
def test_similarity_is_symmetric_and_bounded(a: ProductInfo, b: ProductInfo) -> None:
    s = similarity(a, b)
    assert 0.0 <= s <= 1.0
    assert s == similarity(b, a)


@settings(max_examples=100, deadline=None)
@given(products)
def test_a_product_is_fully_similar_to_itself(a: ProductInfo) -> None:
    if a.attributes or a.name.strip():
        assert similarity(a, a) == 1.0


# -- filters ------------------------------------------------------------------------------------------


def test_configured_substitute_in_stock_now_is_offered_with_reasons() -> None:
    k2 = p("K2", "Red kettle", 42.0, attrs={"color": "red"})
    [c] = run(KETTLE, [k2], [now("K2", 5, "W2")])
    assert (c.sku, c.source, c.warehouse_id, c.available_on) == ("K2", "configured", "W2", TODAY)
    assert c.price_diff_pct == 5.0
    assert c.reasons[0] == "configured substitute"
    assert "in stock now at W2" in c.reasons
    assert "price +5.0%" in c.reasons
    assert f"original expected {LATER.isoformat()}" in c.reasons


def test_not_enough_units_in_one_warehouse_is_no_candidate() -> None:
    k2 = p("K2")
    assert run(KETTLE, [k2], [now("K2", 1, "W1"), now("K2", 1, "W2")], qty=2) == []


def test_inbound_po_counts_when_it_lands_before_the_original() -> None:
    k2 = p("K2")
    soon = Supply("K2", "W1", "north", 1, ((TODAY + timedelta(days=5), 4),))
    [c] = run(KETTLE, [k2], [soon], qty=3, eta=TODAY + timedelta(days=6))
    assert c.available_on == TODAY + timedelta(days=5)
    assert f"arrives {(TODAY + timedelta(days=5)).isoformat()} at W1" in c.reasons
    # Not strictly sooner than the original: no candidate.
    assert run(KETTLE, [k2], [soon], qty=3, eta=TODAY + timedelta(days=5)) == []


def test_unknown_original_date_is_later_than_any_known_date() -> None:
    k2 = p("K2")
    far = Supply("K2", "W1", "north", 0, ((TODAY + timedelta(days=300), 10),))
    [c] = run(KETTLE, [k2], [far], eta=None)
    assert "original has no date" in c.reasons
    assert run(KETTLE, [k2], [far], eta=TODAY + timedelta(days=300)) == []


def test_an_original_due_today_cannot_be_beaten() -> None:
    assert run(KETTLE, [p("K2")], [now("K2", 9)], eta=TODAY) == []


def test_price_limit_applies_both_ways_and_to_configured_ones() -> None:
    cheap, dear, ok = p("K2", price=33.9), p("K3", price=46.1), p("K4", price=46.0)
    original = ProductInfo(KETTLE.sku, KETTLE.name, KETTLE.price, KETTLE.category, KETTLE.attributes, ("K2", "K3"))
    got = run(original, [cheap, dear, ok], [now("K2", 9), now("K3", 9), now("K4", 9)])
    assert [c.sku for c in got] == ["K4"]


def test_same_region_only_keeps_other_regions_out() -> None:
    k2 = p("K2")
    south = now("K2", 9, "BRS", "south")
    strict = SubstituteRules(15, 0.5, 5, same_region_only=True)
    assert run(KETTLE, [k2], [south], rules=strict) == []
    assert [c.warehouse_id for c in run(KETTLE, [k2], [south], rules=RULES)] == ["BRS"]
    # A customer without a region can be served from anywhere, as the allocator does.
    assert [c.sku for c in run(KETTLE, [k2], [south], region=None, rules=strict)] == ["K2"]


def test_the_customers_region_wins_a_tie_between_warehouses() -> None:
    k2 = p("K2")
    [c] = run(KETTLE, [k2], [now("K2", 9, "A-SOUTH", "south"), now("K2", 9, "Z-NORTH", "north")])
    assert c.warehouse_id == "Z-NORTH"


def test_similar_products_need_the_same_category_and_enough_similarity() -> None:
    alike = p("K5", "Blue kettle 1.5L deluxe")
    other_cat = p("K6", category="garden")
    unlike = p("K7", "Toaster", attrs={"color": "white", "slots": 2})
    got = run(KETTLE, [alike, other_cat, unlike], [now(s, 9) for s in ("K5", "K6", "K7")])
    assert [(c.sku, c.source) for c in got] == [("K5", "similar")]
    assert got[0].similarity >= RULES.min_similarity
    assert got[0].reasons[0] == "same category kitchen"


def test_category_match_ignores_case_and_spaces() -> None:
    alike = p("K5", category=" Kitchen ")
    assert [c.sku for c in run(KETTLE, [alike], [now("K5", 9)])] == ["K5"]


def test_never_the_original_itself_even_when_configured_as_its_own_substitute() -> None:
    selfish = ProductInfo("K1", KETTLE.name, 40.0, "kitchen", KETTLE.attributes, ("K1",))
    assert run(selfish, [], [now("K1", 9)]) == []


def test_a_configured_substitute_outside_the_category_still_counts() -> None:
    k2 = p("K2", "Kettle descaler", category="cleaning", attrs={})
    [c] = run(KETTLE, [k2], [now("K2", 9)])
    assert c.source == "configured"


def test_no_price_on_the_original_only_free_ones_compare() -> None:
    assert price_diff_pct(0.0, 0.0) == 0.0
    assert price_diff_pct(0.0, 5.0) is None
    free = ProductInfo("F", "Blue kettle 1.5L", 0.0, "kitchen", KETTLE.attributes)
    got = run(free, [p("K2", price=0.0), p("K3", price=1.0)], [now("K2", 9), now("K3", 9)])
    assert [c.sku for c in got] == ["K2"]


# -- ranking ------------------------------------------------------------------------------------------


def test_ranking_configured_then_date_then_price_then_similarity_then_sku() -> None:
    original = ProductInfo("K1", KETTLE.name, 40.0, "kitchen", KETTLE.attributes, ("K9",))
    configured_late = p("K9")
    soon = TODAY + timedelta(days=3)
    early_dear = p("K2", price=44.0)
    early_cheap = p("K3", price=41.0)
    early_cheap_less_alike = p("K4", "Blue kettle", price=41.0, attrs={"color": "blue", "volume": 1.5,
                                                                        "cordless": False, "lid": "steel"})
    tie_b, tie_a = p("K6", price=39.0), p("K5", price=41.0)  # same |diff| and similarity: by SKU
    later = p("K7", price=40.0)
    supply = [Supply("K9", "W1", "north", 0, ((soon, 9),)), now("K2", 9), now("K3", 9), now("K4", 9),
              now("K5", 9), now("K6", 9), Supply("K7", "W1", "north", 0, ((soon, 9),))]
    rules = SubstituteRules(15, 0.5, 10, False)
    got = run(original, [configured_late, early_dear, early_cheap, early_cheap_less_alike, tie_b, tie_a, later],
              supply, rules=rules)
    assert [c.sku for c in got] == ["K9", "K3", "K5", "K6", "K4", "K2", "K7"]


def test_truncated_to_max_candidates() -> None:
    many = [p(f"K{i}") for i in range(2, 12)]
    got = run(KETTLE, many, [now(x.sku, 9) for x in many], rules=SubstituteRules(15, 0.5, 3, False))
    assert len(got) == 3


supplies = st.lists(
    st.tuples(st.sampled_from(["S1", "S2", "S3", "S4", "S5"]), st.sampled_from(["W1", "W2"]),
              st.sampled_from(["north", "south", None]), st.integers(0, 6),
              st.lists(st.tuples(st.integers(0, 40), st.integers(0, 6)), max_size=3)),
    max_size=12,
)
catalogs = st.lists(
    st.tuples(st.sampled_from(["S1", "S2", "S3", "S4", "S5"]), st.floats(20, 60, allow_nan=False),
              st.sampled_from(["kitchen", "garden"]), attrs),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(catalogs, supplies, st.integers(1, 8), st.one_of(st.none(), st.integers(0, 40)),
       st.sampled_from(["north", "south", None]), st.booleans(), st.integers(1, 4),
       st.lists(st.sampled_from(["S1", "S2", "S3", "S4", "S5", "K1"]), max_size=3))
def test_every_candidate_meets_every_rule_and_the_list_is_ranked(
    catalog_rows: list[tuple[str, float, str, dict[str, object]]],
    supply_rows: list[tuple[str, str, str | None, int, list[tuple[int, int]]]],
    qty: int, eta_days: int | None, region: str | None, same_region: bool, limit: int, configured: list[str],
) -> None:
    original = ProductInfo("K1", "kettle", 40.0, "kitchen", {"color": "red"}, tuple(configured))
    catalog = {"K1": original}
    for sku, price, category, a in catalog_rows:
        catalog[sku] = ProductInfo(sku, f"kettle {sku}", round(price, 2), category, a)
    by_sku: dict[str, list[Supply]] = {}
    for sku, wh, wh_region, free, inbound in supply_rows:
        if any(s.warehouse_id == wh for s in by_sku.get(sku, ())):
            continue
        by_sku.setdefault(sku, []).append(
            Supply(sku, wh, wh_region, free, tuple((TODAY + timedelta(days=d), q) for d, q in inbound)))
    eta = None if eta_days is None else TODAY + timedelta(days=eta_days)
    rules = SubstituteRules(15, 0.5, limit, same_region)
    got = candidates(original, qty, eta, TODAY, catalog, by_sku, region, rules)

    assert len(got) <= limit
    assert len({c.sku for c in got}) == len(got)
    assert [c.rank_key() for c in got] == sorted(c.rank_key() for c in got)
    for c in got:
        product = catalog[c.sku]
        assert c.sku != original.sku
        assert abs(c.price_diff_pct) <= rules.max_price_diff_pct
        assert eta is None or c.available_on < eta
        assert c.available_on >= TODAY
        if c.source == "configured":
            assert c.sku in configured
        else:
            assert product.category == "kitchen" and c.similarity >= rules.min_similarity
        # The named warehouse really has qty units by that day, and may serve this customer.
        where = next(s for s in by_sku[c.sku] if s.warehouse_id == c.warehouse_id)
        assert where.available_on(qty, TODAY) == c.available_on
        if same_region and region is not None:
            assert where.region == region
    # Nothing left out that qualifies and would rank ahead of the last one shown (when the list is full).
    full = candidates(original, qty, eta, TODAY, catalog, by_sku, region, SubstituteRules(15, 0.5, 99, same_region))
    assert full[:limit] == got
