"""A NUL character in a request: valid in URLs and JSON, unstorable in PostgreSQL text. Every door answers a 4xx
naming where it was (never a 500 from the database), on both stores; nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.api import create_app
from services.context import Context
from store import tables as t


def client(ctx: Context) -> TestClient:
    return TestClient(create_app(ctx, background_applier=False), raise_server_exceptions=False)


@pytest.mark.parametrize(("path", "where"), [
    ("/orders/A%00B", ["path"]),
    ("/skus/KTL%00", ["path"]),
    ("/backorders?sku=KTL%00", ["query", "sku"]),
    ("/backorders?customer_id=%00", ["query", "customer_id"]),
    ("/tasks?status=open%00", ["query", "status"]),
    ("/subscriptions?customer_id=C%001", ["query", "customer_id"]),
    ("/backorders?a%00b=1", ["query", "a%00b"]),
])
def test_a_nul_in_the_path_or_query_is_a_422_naming_it(ctx: Context, path: str, where: list[str]) -> None:
    r = client(ctx).get(path)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": where, "msg": "contains a NUL character (%00), which is not allowed",
                                   "type": "string_nul"}]


def test_events_with_a_nul_are_refused_naming_each_field_and_none_is_stored(ctx: Context) -> None:
    good = {"event_id": "p1", "type": "product.upserted", "source": "erp", "occurred_at": "2026-03-01T11:00:00Z",
            "data": {"sku": "KTL-1", "name": "Kettle", "price": "40.00"}}
    bad = {**good, "event_id": "p\x002", "data": {**good["data"], "name": "Ket\x00tle",
                                                   "attributes": {"co\x00lour": "blue"}}}
    r = client(ctx).post("/events", json=[good, bad])
    assert r.status_code == 422, r.text
    nul = [e["loc"] for e in r.json()["detail"] if e["type"] == "string_nul"]
    assert nul == ["[1].event_id", "[1].data.name", "[1].data.attributes.co\\u0000lour"]
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.inbox)).scalar_one() == 0  # all or nothing


@pytest.mark.parametrize(("path", "body"), [
    ("/chat", {"user": {"customer_id": "C1"}, "text": "where is my order\x00?"}),
    ("/subscriptions", {"customer_id": "C\x001", "sku": "KTL-1"}),
])
def test_other_bodies_with_a_nul_are_answered_not_a_database_error(ctx: Context, path: str,
                                                                   body: dict[str, Any]) -> None:
    r = client(ctx).post(path, json=body)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:  # refused: saying why
        assert r.json()["detail"], r.text
    else:  # answered: the chat reads the question with the NUL in it, and stores nothing of it
        assert r.json()["reply"], r.text
