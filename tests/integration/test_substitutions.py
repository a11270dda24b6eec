"""Substitutions through the store and the API: GET /substitutes, offers, accept (the line switched in one
transaction, the substitute allocated, the original's demand released, audit and confirmation written),
decline (remembered), the wrong customer, a second decision.

Every test runs on SQLite and on PostgreSQL (the `ctx` fixture).
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, text

from allocation.substitutes import Candidate
from backorder.config import load_settings
from bot.api import create_app
from services import substitutions as subs
from services.context import Context
from store import tables as t
from store.db import unit_of_work
from tests.invariants import invariants_hold, post_events

T = "2026-03-01T08:00:00Z"
TODAY = date(2026, 3, 2)  # the ctx fixture's clock


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": T, "source": "test", "data": data}


def product(sku: str, name: str, price: float, attributes: dict[str, Any] | None = None,
            substitutes: list[str] | None = None, category: str = "kitchen", lead: int | None = 30) -> dict[str, Any]:
    data: dict[str, Any] = {"sku": sku, "name": name, "price": price, "category": category, "lead_time_days": lead,
                            "substitutes": substitutes or []}
    if attributes is not None:
        data["attributes"] = attributes
    return ev(f"p-{sku}", "product.upserted", data)


def order(order_id: str, cid: str, sku: str, qty: int, placed: str = "2026-03-01T09:00:00Z") -> dict[str, Any]:
    return ev(f"o-{order_id}", "order.placed", {
        "order_id": order_id, "customer_id": cid, "placed_at": placed,
        "lines": [{"line_id": "1", "sku": sku, "qty": qty, "unit_price": 40}]})


def stock(sku: str, wh: str, on_hand: int) -> dict[str, Any]:
    return ev(f"s-{sku}-{wh}-{on_hand}", "inventory.adjusted", {"sku": sku, "warehouse_id": wh, "on_hand": on_hand})


def catalog() -> list[dict[str, Any]]:
    """K1 waits (30 days' lead time); K2 is its configured substitute, K3 a similar kettle, K4 too dear,
    H1 a similar name in another category."""
    blue = {"color": "blue", "volume": 1.5, "cordless": True}
    return [
        ev("wh-LDS", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("wh-BRS", "warehouse.upserted", {"warehouse_id": "BRS", "name": "Bristol", "region": "south"}),
        ev("c-C1", "customer.upserted", {"customer_id": "C1", "name": "Ana", "region": "north"}),
        ev("c-C2", "customer.upserted", {"customer_id": "C2", "name": "Ben", "region": "north"}),
        product("K1", "Blue kettle 1.5L", 40, blue, ["K2"]),
        product("K2", "Red kettle 1.5L", 42, {"color": "red", "volume": 1.5, "cordless": True}),
        product("K3", "Blue kettle 1.5L deluxe", 44, blue),
        product("K4", "Blue kettle 1.5L premium", 80, blue),
        product("H1", "Blue kettle 1.5L garden", 40, blue, category="garden"),
        stock("K2", "LDS", 5), stock("K3", "BRS", 5), stock("K4", "LDS", 5), stock("H1", "LDS", 5),
    ]


def with_substitutes(ctx: Context, **values: Any) -> Context:
    settings = load_settings(database_url=ctx.settings.database_url, substitutes=values)
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


class Api:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # Events go in with offers off, so each test makes the offers it is about (the planner would
        # otherwise offer the best substitute as soon as a line waits).
        self.intake = TestClient(create_app(with_substitutes(ctx, enabled=False), background_applier=False))
        self.client = TestClient(create_app(ctx, background_applier=False))

    def post(self, *events: dict[str, Any]) -> None:
        post_events(self.intake, list(events), self.ctx.engine)

    def check(self) -> None:
        invariants_hold(self.ctx.engine)

    def line(self, order_id: str, line_id: str = "1") -> Any:
        l = t.order_lines
        with self.ctx.engine.connect() as conn:
            return conn.execute(select(l).where(l.c.order_id == order_id, l.c.line_id == line_id)).one()

    def offer(self, offer_id: int) -> Any:
        with self.ctx.engine.connect() as conn:
            return conn.execute(select(t.substitution_offers).where(t.substitution_offers.c.id == offer_id)).one()

    def best(self, *line_pks: int) -> dict[int, Any]:
        with self.ctx.engine.connect() as conn:
            return subs.best_offers(conn, self.ctx, line_pks)

    def offer_best(self, line_pk: int) -> int:
        with unit_of_work(self.ctx.engine) as conn:
            cand = subs.best_offers(conn, self.ctx, [line_pk])[line_pk]
            offer_id = subs.record_offer(conn, line_pk, cand, self.ctx.now())
        assert offer_id is not None
        return offer_id

    def outbox(self, kind: str) -> list[Any]:
        o = t.outbox
        with self.ctx.engine.connect() as conn:
            return conn.execute(select(o).where(o.c.kind == kind).order_by(o.c.id)).all()


@pytest.fixture
def api(ctx: Context) -> Api:
    a = Api(ctx)
    a.post(*catalog())
    return a


# -- intake -------------------------------------------------------------------------------------------


def test_product_attributes_are_validated_and_kept(api: Api) -> None:
    with api.ctx.engine.connect() as conn:
        extra = conn.execute(select(t.products.c.extra).where(t.products.c.sku == "K1")).scalar_one()
    assert extra["attributes"] == {"color": "blue", "volume": 1.5, "cordless": True}
    bad = product("K9", "x", 1, {"": "x", "size": [1], **{f"k{i}": i for i in range(49)}})
    r = api.intake.post("/events", json=bad)
    assert r.status_code == 422
    locs = {tuple(e["loc"]) if isinstance(e["loc"], list) else e["loc"] for e in r.json()["detail"]}
    assert any("attributes" in str(loc) and "size" in str(loc) for loc in locs), r.text
    assert any("attributes" in str(loc) for loc in locs)
    too_many = product("K9", "x", 1, {f"k{i}": i for i in range(51)})
    r = api.intake.post("/events", json=too_many)
    assert r.status_code == 422 and "attributes" in r.text


# -- GET /substitutes ---------------------------------------------------------------------------------


def test_get_substitutes_ranks_candidates_with_reasons(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 3))
    line = api.line("O1")
    assert line.status == "backordered" and line.eta == TODAY + timedelta(days=30)
    r = api.client.get("/substitutes", params={"line_id": str(line.id)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["line"] == {"id": line.id, "order_id": "O1", "line_id": "1", "sku": "K1", "name": "Blue kettle 1.5L",
                            "status": "backordered", "qty_waiting": 3, "eta": line.eta.isoformat(),
                            "customer_id": "C1"}
    # K2 configured first; K3 similar (BRS, another region: allowed by default); K4 too dear; H1 another category.
    assert [(c["sku"], c["source"], c["warehouse_id"]) for c in body["candidates"]] == [
        ("K2", "configured", "LDS"), ("K3", "similar", "BRS")]
    k2, k3 = body["candidates"]
    assert k2["available_on"] == TODAY.isoformat() and k2["price"] == 42.0 and k2["price_diff_pct"] == 5.0
    assert k2["reasons"][:2] == ["configured substitute", "in stock now at LDS"]
    assert "price +5.0%" in k2["reasons"]
    assert k3["similarity"] == 1.0 and "same category kitchen" in k3["reasons"]
    # The other spellings of the same line give the same answer.
    assert api.client.get("/substitutes", params={"line_id": "O1/1"}).json() == body
    assert api.client.get("/substitutes", params={"order_id": "O1", "line_id": "1"}).json() == body


def test_get_substitutes_honours_same_region_only(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 3))
    strict = with_substitutes(api.ctx, same_region_only=True)
    with strict.engine.connect() as conn:
        got = subs.candidates_for_line(conn, strict, api.line("O1").id)
    assert [c["sku"] for c in got["candidates"]] == ["K2"]  # K3 sits in the south


def test_get_substitutes_errors_name_the_line_or_the_field(api: Api) -> None:
    r = api.client.get("/substitutes", params={"line_id": "424242"})
    assert r.status_code == 404 and "424242" in r.json()["detail"]
    r = api.client.get("/substitutes", params={"line_id": "NOPE/7"})
    assert r.status_code == 404 and "NOPE/7" in r.json()["detail"]
    for params, field in [({}, "line_id"), ({"line_id": "abc"}, "line_id"), ({"order_id": "O1"}, "line_id"),
                          ({"line_id": "/1"}, "line_id"), ({"line_id": "9" * 30}, "line_id"),
                          ({"order_id": " ", "line_id": "1"}, "order_id")]:
        r = api.client.get("/substitutes", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"][0]["loc"] == ["query", field], (params, r.text)


def test_every_route_sits_behind_the_api_token_and_its_scope(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 2))
    guarded = Context(engine=api.ctx.engine, clock=api.ctx.clock, settings=load_settings(
        database_url=api.ctx.settings.database_url,
        api_tokens=[{"name": "reader", "token": "read-only-token", "scopes": ["read"]}]))
    client = TestClient(create_app(guarded, background_applier=False))
    assert client.get("/substitutes", params={"line_id": "O1/1"}).status_code == 401
    assert client.post("/substitutions/1/accept").status_code == 401
    assert client.post("/substitutions/1/decline").status_code == 401
    reader = {"Authorization": "Bearer read-only-token"}
    assert client.get("/substitutes", params={"line_id": "O1/1"}, headers=reader).status_code == 200
    refused = client.post("/substitutions/1/accept", headers=reader)
    assert refused.status_code == 403 and "'write'" in refused.json()["detail"]


def test_a_line_that_does_not_wait_has_no_candidates(api: Api) -> None:
    api.post(order("O1", "C1", "K2", 1))
    body = api.client.get("/substitutes", params={"line_id": "O1/1"}).json()
    assert body["line"]["status"] == "allocated" and body["line"]["qty_waiting"] == 0
    assert body["candidates"] == []
    pk = api.line("O1").id
    assert api.best(pk) == {}
    k3 = Candidate("K3", "Blue kettle 1.5L deluxe", "similar", "BRS", TODAY, 44.0, 10.0, 1.0, ())
    with unit_of_work(api.ctx.engine) as conn:
        assert subs.record_offer(conn, pk, k3, api.ctx.now()) is None
        assert subs.record_offer(conn, 424242, k3, api.ctx.now()) is None


# -- offers -------------------------------------------------------------------------------------------


def test_best_offers_is_set_based_and_skips_what_was_offered_on_the_line(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 3), order("O2", "C2", "K1", 2), order("O3", "C2", "K2", 1))
    pks = [api.line(o).id for o in ("O1", "O2", "O3")]
    best = api.best(*pks)
    assert {pk: c.sku for pk, c in best.items()} == {pks[0]: "K2", pks[1]: "K2"}  # O3 does not wait
    first = api.offer_best(pks[0])
    with unit_of_work(api.ctx.engine) as conn:  # idempotent per line and substitute
        assert subs.record_offer(conn, pks[0], best[pks[0]], api.ctx.now()) == first
    row = api.offer(first)
    assert (row.status, row.sku, row.substitute_sku, row.qty, row.customer_id) == ("offered", "K1", "K2", 3, "C1")
    assert "configured substitute" in row.reasons
    assert api.best(pks[0])[pks[0]].sku == "K3"  # K2 was offered on this line already
    off = with_substitutes(api.ctx, enabled=False)
    with off.engine.connect() as conn:
        assert subs.best_offers(conn, off, pks) == {}


def test_offers_on_lines_that_stopped_waiting_are_withdrawn(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 3))
    pk = api.line("O1").id
    offer_id = api.offer_best(pk)
    with unit_of_work(api.ctx.engine) as conn:
        assert subs.withdraw_stale(conn, [pk], api.ctx.now()) == 0  # still waits
    api.post(stock("K1", "LDS", 3))
    assert api.line("O1").status == "allocated"
    # The planner calls withdraw_stale in the pass that allocated the line; call it here too, on an
    # offer put back to open, so this test holds whether or not the planner does.
    o = t.substitution_offers
    with unit_of_work(api.ctx.engine) as conn:
        conn.execute(o.update().where(o.c.id == offer_id).values(status="offered", decided_at=None))
        assert subs.withdraw_stale(conn, [pk], api.ctx.now()) == 1
        assert subs.withdraw_stale(conn, [pk], api.ctx.now()) == 0
    row = api.offer(offer_id)
    assert (row.status, row.decided_at) == ("withdrawn", api.ctx.now())


# -- accept -------------------------------------------------------------------------------------------


def test_accept_switches_the_line_allocates_the_substitute_and_releases_the_original(api: Api) -> None:
    # A K1 purchase order covers 3 units: O1's line (first in line) takes them, O2's waits for the lead time.
    api.post(ev("po-1", "po.updated", {
        "po_id": "PO1", "supplier_id": "S1", "warehouse_id": "LDS", "expected_at": "2026-03-10",
        "lines": [{"sku": "K1", "qty": 3}]}))
    api.post(stock("K1", "LDS", 1), order("O1", "C1", "K1", 4), order("O2", "C2", "K1", 3, "2026-03-01T10:00:00Z"))
    o1, o2 = api.line("O1"), api.line("O2")
    assert (o1.status, o1.qty_allocated, o1.eta) == ("partially_allocated", 1, date(2026, 3, 11))
    assert o2.eta == TODAY + timedelta(days=30)
    offer_id = api.offer_best(o1.id)

    r = api.client.post(f"/substitutions/{offer_id}/accept", json={"customer_id": "C1", "actor": "ana@shop"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["substitute_sku"], out["qty"]) == ("accepted", "K2", 3)
    api.check()

    original, new = api.line("O1"), api.line("O1", "1-S1")
    # The original keeps the unit it holds and waits for nothing; the waiting 3 moved to K2, allocated now.
    assert (original.qty, original.qty_allocated, original.status, original.eta) == (1, 1, "allocated", None)
    assert (new.sku, new.qty, new.qty_allocated, new.status, new.unit_price) == ("K2", 3, 3, "allocated", 40)
    assert out["new_line"]["line_id"] == "1-S1" and out["available_on"] == TODAY.isoformat()
    with api.ctx.engine.connect() as conn:
        k2 = conn.execute(select(t.stock.c.allocated).where(t.stock.c.sku == "K2", t.stock.c.warehouse_id == "LDS"))
        assert k2.scalar_one() == 3
        held = conn.execute(select(t.allocations.c.qty).where(t.allocations.c.line_pk == new.id,
                                                              t.allocations.c.status == "allocated")).scalars().all()
        assert held == [3]
    # The original's demand is released: O2 now gets the PO's units, so its date moves up.
    assert api.line("O2").eta == date(2026, 3, 11)

    row = api.offer(offer_id)
    assert (row.status, row.new_line_pk) == ("accepted", new.id) and row.decided_at is not None
    au = t.audit_log
    with api.ctx.engine.connect() as conn:
        audit = conn.execute(select(au).where(au.c.action == "substitution_accepted").order_by(au.c.id)).all()
        substituted = conn.execute(select(t.domain_events.c.data).where(
            t.domain_events.c.type == "line_substituted")).scalars().all()
    assert [(a.entity, a.entity_id, a.actor) for a in audit] == [
        ("order_line", "O1/1", "ana@shop"), ("order_line", "O1/1-S1", "ana@shop")]
    assert audit[0].before["qty"] == 4 and audit[0].after == {
        "sku": "K1", "qty": 1, "status": "allocated", "substituted_by": "O1/1-S1", "offer_id": offer_id, "via": "api"}
    assert audit[1].after["sku"] == "K2" and audit[1].after["replaces"] == "O1/1"
    assert substituted and substituted[0]["new_line_id"] == "1-S1"

    [confirmation] = api.outbox("substitution_confirmed")
    assert (confirmation.customer_id, confirmation.order_id) == ("C1", "O1")
    assert confirmation.line_ids == ["1", "1-S1"]
    assert confirmation.facts["offer"] == {"id": offer_id, "sku": "K1", "name": "Blue kettle 1.5L",
                                           "substitute_sku": "K2", "substitute_name": "Red kettle 1.5L", "qty": 3,
                                           "available_on": TODAY.isoformat()}
    assert confirmation.facts["order"] == {"id": "O1"} and confirmation.facts["customer"]["id"] == "C1"
    assert (confirmation.status, confirmation.channel) == ("pending", "console")
    assert "K2" in confirmation.body and "O1" in confirmation.body


def test_a_line_holding_nothing_becomes_substituted_and_other_offers_are_withdrawn(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 2))
    pk = api.line("O1").id
    first = api.offer_best(pk)  # K2
    second = api.offer_best(pk)  # K3
    assert (api.offer(first).substitute_sku, api.offer(second).substitute_sku) == ("K2", "K3")
    out = subs.accept(api.ctx, second, customer_id=None, via="whatsapp", actor="customer:C1")
    api.check()
    original = api.line("O1")
    assert (original.qty, original.qty_allocated, original.status) == (0, 0, "substituted")
    assert out["original_line"]["status"] == "substituted"
    new = api.line("O1", "1-S1")
    assert (new.sku, new.qty, new.status) == ("K3", 2, "allocated")
    assert api.offer(first).status == "withdrawn"
    # The pending "on backorder" notice about the original no longer applies.
    assert all(r.status == "cancelled" for r in api.outbox("backorder_created") if r.order_id == "O1")


def test_a_long_line_id_is_clipped_to_fit_the_substitution_suffix(api: Api) -> None:
    long_id = "L" * 100
    api.post(ev("o-long", "order.placed", {"order_id": "O9", "customer_id": "C1", "placed_at": T,
                                           "lines": [{"line_id": long_id, "sku": "K1", "qty": 1}]}))
    offer_id = api.offer_best(api.line("O9", long_id).id)
    out = subs.accept(api.ctx, offer_id, customer_id="C1", via="sms", actor="customer:C1")
    assert out["new_line"]["line_id"] == "L" * 97 + "-S1"
    assert api.line("O9", "L" * 97 + "-S1").sku == "K2"


def test_accept_is_one_transaction(api: Api, ctx: Context) -> None:
    """A failure at the last write (the confirmation) leaves no trace of the switch."""
    api.post(order("O1", "C1", "K1", 2))
    pk = api.line("O1").id
    offer_id = api.offer_best(pk)
    with ctx.engine.begin() as conn:
        _fail_outbox_inserts(conn, "substitution_confirmed")
    try:
        with pytest.raises(Exception, match="boom"):
            subs.accept(ctx, offer_id, customer_id="C1", via="sms", actor="customer:C1")
    finally:
        with ctx.engine.begin() as conn:
            _drop_failure(conn)
    line = api.line("O1")
    assert (line.qty, line.status) == (2, "backordered")
    assert api.offer(offer_id).status == "offered"
    with ctx.engine.connect() as conn:
        assert conn.execute(select(t.order_lines.c.id).where(t.order_lines.c.order_id == "O1")).all() == [(pk,)]
        assert conn.execute(select(t.stock.c.allocated).where(t.stock.c.sku == "K2")).scalar_one() == 0
        assert not conn.execute(select(t.audit_log.c.id).where(
            t.audit_log.c.action == "substitution_accepted")).all()
    # And it goes through once the fault is gone.
    assert subs.accept(ctx, offer_id, customer_id="C1", via="sms", actor="customer:C1")["status"] == "accepted"


def _fail_outbox_inserts(conn: Connection, kind: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("CREATE FUNCTION test_boom() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$ "
                          "LANGUAGE plpgsql"))
        conn.execute(text(f"CREATE TRIGGER test_boom BEFORE INSERT ON outbox FOR EACH ROW "
                          f"WHEN (NEW.kind = '{kind}') EXECUTE FUNCTION test_boom()"))
    else:
        conn.execute(text(f"CREATE TRIGGER test_boom BEFORE INSERT ON outbox WHEN NEW.kind = '{kind}' "
                          "BEGIN SELECT RAISE(ABORT, 'boom'); END"))


def _drop_failure(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("DROP TRIGGER IF EXISTS test_boom ON outbox"))
        conn.execute(text("DROP FUNCTION IF EXISTS test_boom()"))
    else:
        conn.execute(text("DROP TRIGGER IF EXISTS test_boom"))


def test_accept_by_another_customer_is_refused_like_an_unknown_offer(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 2))
    offer_id = api.offer_best(api.line("O1").id)
    with pytest.raises(subs.UnknownOffer) as wrong:
        subs.accept(api.ctx, offer_id, customer_id="C2", via="sms", actor="customer:C2")
    with pytest.raises(subs.UnknownOffer) as missing:
        subs.accept(api.ctx, 999_999, customer_id="C2", via="sms", actor="customer:C2")
    assert str(wrong.value).replace(str(offer_id), "N") == str(missing.value).replace("999999", "N")
    r = api.client.post(f"/substitutions/{offer_id}/decline", json={"customer_id": "C2"})
    assert r.status_code == 404
    assert api.offer(offer_id).status == "offered" and api.line("O1").status == "backordered"


def test_a_second_decision_is_refused_with_the_first(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 2))
    offer_id = api.offer_best(api.line("O1").id)
    subs.accept(api.ctx, offer_id, customer_id="C1", via="whatsapp", actor="customer:C1")
    with pytest.raises(subs.OfferClosed) as closed:
        subs.accept(api.ctx, offer_id, customer_id="C1", via="whatsapp", actor="customer:C1")
    assert closed.value.status == "accepted" and closed.value.decided_at is not None
    r = api.client.post(f"/substitutions/{offer_id}/decline")
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert detail["status"] == "accepted" and detail["decided_at"] == api.offer(offer_id).decided_at.isoformat()
    with api.ctx.engine.connect() as conn:
        lines = conn.execute(select(t.order_lines.c.line_id).where(t.order_lines.c.order_id == "O1")).scalars()
        assert sorted(lines) == ["1", "1-S1"]  # switched once


def test_two_accepts_at_once_switch_the_line_once(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 2))
    offer_id = api.offer_best(api.line("O1").id)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def go() -> None:
        barrier.wait()
        try:
            subs.accept(api.ctx, offer_id, customer_id="C1", via="whatsapp", actor="customer:C1")
            outcomes.append("accepted")
        except subs.OfferClosed as exc:
            outcomes.append(f"closed:{exc.status}")

    threads = [threading.Thread(target=go) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["accepted", "closed:accepted"]
    api.check()
    with api.ctx.engine.connect() as conn:
        assert conn.execute(select(t.stock.c.allocated).where(t.stock.c.sku == "K2")).scalar_one() == 2
    assert len(api.outbox("substitution_confirmed")) == 1


def test_accepting_a_stale_offer_withdraws_it(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 2))
    offer_id = api.offer_best(api.line("O1").id)
    api.post(stock("K2", "LDS", 0))  # the substitute is gone, and no PO brings it before the original
    with pytest.raises(subs.OfferClosed) as closed:
        subs.accept(api.ctx, offer_id, customer_id="C1", via="sms", actor="customer:C1")
    assert closed.value.status == "withdrawn"
    assert api.offer(offer_id).status == "withdrawn"
    assert api.line("O1").status == "backordered"


# -- decline ------------------------------------------------------------------------------------------


def test_decline_keeps_the_line_waiting_and_is_remembered(api: Api) -> None:
    api.post(order("O1", "C1", "K1", 2), order("O2", "C1", "K1", 1), order("O3", "C2", "K1", 1))
    o1, o2, o3 = (api.line(o).id for o in ("O1", "O2", "O3"))
    offer_id = api.offer_best(o1)
    r = api.client.post(f"/substitutions/{offer_id}/decline", json={"customer_id": "C1", "actor": "customer:C1"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "declined"
    assert api.offer(offer_id).status == "declined"
    assert api.line("O1").status == "backordered"
    # Never K2 again for K1 to C1, on this line or another; C2 may still be offered it.
    best = api.best(o1, o2, o3)
    assert (best[o1].sku, best[o2].sku, best[o3].sku) == ("K3", "K3", "K2")
    listed = api.client.get("/substitutes", params={"line_id": str(o2)}).json()["candidates"]
    assert [c["sku"] for c in listed] == ["K3"]
    with api.ctx.engine.connect() as conn:
        audit = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "substitution_declined")).one()
    assert (audit.entity_id, audit.actor, audit.after["substitute_sku"]) == ("O1/1", "customer:C1", "K2")
    [ack] = api.outbox("substitution_declined")
    assert (ack.customer_id, ack.order_id, ack.facts["offer"]["substitute_sku"]) == ("C1", "O1", "K2")
    assert ack.status == "pending" and "K1" in ack.body
    r = api.client.post(f"/substitutions/{offer_id}/accept")
    assert r.status_code == 409 and r.json()["detail"]["status"] == "declined"
