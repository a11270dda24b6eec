"""Rate limits (bot/limits.py) and request size limits on every public POST endpoint, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select

from backorder.config import LimitSettings, load_settings
from bot.api import create_app
from bot.limits import TokenBuckets, route_group
from services.context import Context
from store import tables as t
from tests.fakes.slack_api import FakeSlack
from tests.security_kit import SettableClock, every_door

TOKEN = "limits-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVENT = {"event_id": "w1", "type": "warehouse.upserted", "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
         "data": {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}}


# -- the token buckets ------------------------------------------------------------------------------------

def test_a_client_gets_its_burst_then_waits_for_the_rate() -> None:
    clock = SettableClock()
    buckets = TokenBuckets(LimitSettings(rate_per_second=2, burst=3), clock)
    assert [buckets.take("10.0.0.1", "events") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("10.0.0.1", "events") == pytest.approx(0.5)  # one token every half second
    clock.advance(0.5)
    assert buckets.take("10.0.0.1", "events") == 0.0
    assert buckets.take("10.0.0.1", "events") > 0
    clock.advance(3600)  # a quiet hour refills to the burst, no more
    assert [buckets.take("10.0.0.1", "events") for _ in range(4)][-1] > 0


def test_clients_and_route_groups_have_buckets_of_their_own() -> None:
    buckets = TokenBuckets(LimitSettings(rate_per_second=1, burst=1, groups={"slack": {"rate_per_second": 5,
                                                                                       "burst": 2}}),
                           SettableClock())
    assert buckets.take("a", "events") == 0.0 and buckets.take("a", "events") > 0
    assert buckets.take("b", "events") == 0.0  # another client
    assert buckets.take("a", "chat") == 0.0  # another door
    assert [buckets.take("a", "slack") for _ in range(3)] == [0.0, 0.0, pytest.approx(0.2)]  # its own rule


def test_the_table_of_buckets_is_bounded_and_drops_the_idlest() -> None:
    clock = SettableClock()
    buckets = TokenBuckets(LimitSettings(rate_per_second=0.001, burst=1, max_clients=100), clock)
    assert buckets.take("busy", "events") == 0.0
    for n in range(150):
        buckets.take("busy", "events")  # kept the most recently used
        buckets.take(f"10.1.0.{n}", "events")
    assert len(buckets) == 100
    assert buckets.take("busy", "events") > 0  # still remembered, still empty


def test_route_groups_are_first_path_segments() -> None:
    assert [route_group(p) for p in ("/events", "/slack/events", "/twilio/sms", "/api/messages",
                                     "/offers/3/accept", "/")] == ["events", "slack", "twilio", "api", "offers",
                                                                   "root"]


@pytest.mark.parametrize(("limits", "field"), [({"rate_per_second": 0}, "rate_per_second"), ({"burst": 0}, "burst"),
                                               ({"max_body_bytes": 10}, "max_body_bytes"),
                                               ({"groups": {"events": {"burst": 5}}}, "rate_per_second")])
def test_bad_limits_are_refused_naming_the_field(limits: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        load_settings(limits=limits)
    assert field in str(err.value) and "limits" in str(err.value)


# -- through the app ------------------------------------------------------------------------------------------

def _client(ctx: Context, **limits: Any) -> TestClient:
    settings = load_settings(database_url=ctx.settings.database_url, api_token=TOKEN, limits=limits)
    made = Context(engine=ctx.engine, settings=settings, clock=ctx.clock)
    return TestClient(create_app(made, background_applier=False), headers=AUTH)


def test_over_the_rate_a_client_gets_429_with_retry_after_and_probes_never_do(ctx: Context) -> None:
    client = _client(ctx, rate_per_second=0.001, burst=2)  # no token comes back during the test
    assert [client.post("/events", json=EVENT).status_code for _ in range(2)] == [200, 200]
    refused = client.post("/events", json=EVENT)
    assert refused.status_code == 429
    assert 990 <= int(refused.headers["Retry-After"]) <= 1000
    assert refused.json()["detail"].startswith("too many requests to /events from this client: retry in")
    assert client.get("/backorders").status_code == 200  # another route group has its own bucket
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))
    assert all(client.get("/readyz").status_code != 429 for _ in range(5))
    other = TestClient(client.app, headers=AUTH, client=("203.0.113.9", 40000))
    assert other.post("/events", json=EVENT).status_code == 200  # another client address
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.inbox)).scalar_one() == 1  # the 429 stored nothing


def test_the_defaults_let_a_burst_of_a_thousand_requests_through(ctx: Context) -> None:
    client = _client(ctx)
    assert all(client.get("/no-such-page").status_code == 404 for _ in range(1000))  # cheap, yet counted
    assert client.get("/no-such-page").status_code == 404  # the 1,001st: within the burst of 2,000


def test_disabled_rate_limits_still_bound_the_body(ctx: Context) -> None:
    client = _client(ctx, enabled=False, burst=1, max_body_bytes=2048)
    assert all(client.get("/backorders?limit=1").status_code == 200 for _ in range(5))
    assert client.post("/chat", content=b"x" * 4096).status_code == 413


# -- request size limits on every public POST endpoint ------------------------------------------------------

@pytest.fixture
def doors(ctx: Context, slack: FakeSlack) -> Iterator[TestClient]:
    """Every door mounted (Slack, Teams, Twilio, signed links), bodies bounded at 4 KiB (8 KiB for /events)."""
    made = every_door(ctx, slack, api_token=TOKEN, limits={"max_body_bytes": 4096, "events_max_body_bytes": 8192})
    yield TestClient(create_app(made, background_applier=False), headers=AUTH)


def _post_paths(client: TestClient) -> list[str]:
    paths = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if "POST" in (getattr(route, "methods", None) or ()):
            path = route.path.replace("{verb}", "accept")  # type: ignore[attr-defined]
            while "{" in path:
                start = path.index("{")
                path = path[:start] + "1" + path[path.index("}", start) + 1:]
            paths.append(path)
    return paths


def _stored(ctx: Context) -> tuple[int, ...]:
    with ctx.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(table)).scalar_one()
                     for table in (t.inbox, t.outbox, t.inbound_messages, t.audit_log))


def test_every_public_post_endpoint_refuses_a_declared_oversized_body(doors: TestClient, ctx: Context) -> None:
    paths = _post_paths(doors)
    assert {"/events", "/chat", "/subscriptions", "/slack/events", "/api/messages", "/twilio/sms",
            "/twilio/whatsapp", "/twilio/status", "/offers/1/accept"} <= set(paths)
    before = _stored(ctx)
    for path in paths:
        bound = 8192 if path == "/events" else 4096
        r = doors.post(path, content=b"{" + b" " * bound + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.status_code, r.text)
        assert f"over {bound} bytes" in r.text, path
    assert _stored(ctx) == before


def test_a_chunked_body_is_cut_off_once_it_passes_the_bound(doors: TestClient, ctx: Context) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(40):
            yield b" " * 1024
        yield b"]"

    before = _stored(ctx)
    for path in ("/events", "/chat", "/subscriptions"):
        r = doors.post(path, content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "bytes" in r.json()["detail"], (path, r.text)
    assert _stored(ctx) == before
    assert doors.post("/events", json=EVENT).status_code == 200  # a body within the bound goes through
