"""API tokens with scopes (bot/scopes.py, docs/api-tokens.md): each scope allowed and refused on routes of
each kind, on both stores; the legacy `api_token` has every scope; every route declares exactly one scope
(but the documented public ones) and docs/api-tokens.md lists each; the dashboard and /approvals sign-in
follow the scopes; bad `api_tokens` entries are refused naming the field, without echoing a secret."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import create_engine

from backorder.config import Settings, load_settings
from bot.api import create_app
from bot.scopes import declared_scopes
from services.context import Context
from services.weekly_report import chart_signature

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api-tokens.md"
LEGACY = "legacy-all-scopes-token"
LINK_SECRET = "link-secret-" + "k" * 20
TOKENS = {  # name -> (secret, scopes)
    "reader": ("reader-secret-1", ["read"]),
    "writer": ("writer-secret-2", ["write"]),
    "operator": ("operator-secret-3", ["admin"]),
    "staffer": ("staffer-secret-4", ["read", "write"]),
}
EVENT = {"event_id": "w1", "type": "warehouse.upserted", "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
         "data": {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}}
STAFF = {"members": {"pat": {"roles": ["procurement", "approver"]}}}

# Representative routes of each kind: (method, path, JSON body, the scope it needs). Ids that do not exist:
# getting past the token check shows as a 404/409/422, never as a 401/403.
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/backorders", None, "read"),
    ("GET", "/orders/404", None, "read"),
    ("GET", "/tasks", None, "read"),
    ("GET", "/notifications", None, "read"),
    ("GET", "/drafts", None, "read"),
    ("GET", "/subscriptions", None, "read"),
    ("GET", "/reports", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/openapi.json", None, "read"),
    ("POST", "/events", EVENT, "write"),
    ("POST", "/subscriptions", {"customer_id": "nobody", "sku": "nothing"}, "write"),
    ("DELETE", "/subscriptions/999999", None, "write"),
    ("POST", "/tasks/999999/take", {"staff_id": "pat"}, "write"),
    ("POST", "/tasks/999999/approve", {"staff_id": "pat"}, "write"),
    ("POST", "/drafts/999999/approve", {}, "write"),
    ("POST", "/substitutions/999999/decline", None, "write"),
    ("POST", "/notifications/999999/retry", None, "admin"),
    ("POST", "/notifications/999999/cancel", None, "admin"),
]

# Routes with no declared scope, each with why: the test fails when a route joins or leaves this list.
PUBLIC = {
    ("GET", "/healthz"): "liveness probe",
    ("GET", "/readyz"): "public only with [health] readyz_public (else read)",
    ("GET", "/offers/{offer_id}/{verb}"): "signed e-mail link",
    ("POST", "/offers/{offer_id}/{verb}"): "signed e-mail link",
    ("POST", "/slack/events"): "Slack signature",
    ("POST", "/api/messages"): "Bot Framework token",
    ("POST", "/twilio/sms"): "Twilio signature",
    ("POST", "/twilio/whatsapp"): "Twilio signature",
    ("POST", "/twilio/status"): "Twilio signature",
    **{(m, f"/dashboard{p}"): "dashboard sign-in (read; acting: write)" for m, p in [
        ("GET", ""), ("GET", "/data"), ("GET", "/stream"), ("GET", "/app.js"), ("GET", "/login"),
        ("POST", "/login"), ("POST", "/logout"), ("POST", "/tasks/{task_id}/{action}"),
        ("GET", "/tasks/{task_id}/choices"), ("GET", "/list/{name}")]},
    **{(m, f"/approvals{p}"): "approvals sign-in (read; deciding: write)" for m, p in [
        ("GET", ""), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"),
        ("POST", "/{draft_id}/approve"), ("POST", "/{draft_id}/reject")]},
}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def scoped(ctx: Context, **overrides: Any) -> Context:
    settings = load_settings(
        database_url=ctx.settings.database_url, staff=STAFF, links={"public_base_url": "https://bot.example.com",
                                                                    "secret": LINK_SECRET},
        api_tokens=[{"name": n, "token": s, "scopes": sc} for n, (s, sc) in TOKENS.items()], **overrides)
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


def call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return client.request(method, path, headers=headers, **({"json": body} if body is not None else {}))


def test_each_scope_is_allowed_and_refused_on_routes_of_its_kind(ctx: Context) -> None:
    client = TestClient(create_app(scoped(ctx), background_applier=False))
    for method, path, body, scope in ROUTES:
        missing = call(client, method, path, body, {})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer", (path, missing.text)
        unknown = call(client, method, path, body, bearer("not-a-token"))
        assert unknown.status_code == 401, (path, unknown.text)
        for name, (secret, scopes) in TOKENS.items():
            r = call(client, method, path, body, bearer(secret))
            if scope in scopes:
                assert r.status_code not in (401, 403), (name, method, path, r.status_code, r.text)
            else:
                assert r.status_code == 403, (name, method, path, r.status_code, r.text)
                detail = r.json()["detail"]
                assert f"'{scope}' scope" in detail and repr(name) in detail and secret not in r.text


def test_the_legacy_api_token_has_every_scope(ctx: Context) -> None:
    client = TestClient(create_app(scoped(ctx, api_token=LEGACY), background_applier=False))
    for method, path, body, _scope in ROUTES:
        r = call(client, method, path, body, bearer(LEGACY))
        assert r.status_code not in (401, 403), (method, path, r.status_code, r.text)
    # The named tokens still hold only their own scopes beside it.
    assert client.post("/events", json=EVENT, headers=bearer(TOKENS["reader"][0])).status_code == 403
    # Alone, it guards as it always did: 401 without it, /healthz open.
    alone = TestClient(create_app(Context(engine=ctx.engine, clock=ctx.clock, settings=load_settings(
        database_url=ctx.settings.database_url, api_token=LEGACY)), background_applier=False))
    assert alone.get("/backorders").status_code == 401 and alone.get("/healthz").status_code == 200
    assert alone.post("/notifications/999999/retry", headers=bearer(LEGACY)).status_code == 409


def test_no_token_configured_leaves_the_api_open(ctx: Context) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    assert client.get("/backorders").status_code == 200
    assert client.post("/events", json=EVENT).status_code == 200
    assert client.post("/notifications/999999/retry").status_code == 409


def test_a_chart_answers_a_signed_link_or_a_read_token(ctx: Context) -> None:
    client = TestClient(create_app(scoped(ctx), background_applier=False))
    sig = chart_signature(LINK_SECRET, 404, "trend")
    assert client.get("/reports/404/chart.png", params={"sig": sig}).status_code == 404  # in; no such report
    assert client.get("/reports/404/chart.png", params={"sig": "0" * 32}).status_code == 401
    assert client.get("/reports/404/chart.png", params={"chart": "aging", "sig": sig}).status_code == 401
    assert client.get("/reports/404/chart.png", headers=bearer(TOKENS["reader"][0])).status_code == 404
    assert client.get("/reports/404/chart.png", headers=bearer(TOKENS["writer"][0])).status_code == 403


def _every_route_app(**overrides: Any) -> Any:
    """The app with every optional door mounted: channels, signed links, a public /readyz."""
    values: dict[str, Any] = dict(
        database_url="sqlite://", api_token=LEGACY, health={"readyz_public": True},
        slack={"bot_token": "xoxb-1", "signing_secret": "s"}, teams={"anonymous": True},
        twilio={"account_sid": "AC" + "0" * 32, "auth_token": "x", "public_base_url": "https://bot.example.com",
                "sms_from": "+15550000000", "whatsapp_from": "+15550000001"},
        links={"public_base_url": "https://bot.example.com", "secret": LINK_SECRET})
    settings = Settings(**{**values, **overrides})
    return create_app(Context(engine=create_engine("sqlite://"), settings=settings), background_applier=False)


def _routes(app: Any) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for route in app.routes:
        assert isinstance(route, APIRoute), f"{route!r}: not an APIRoute, so it cannot declare a scope"
        for method in route.methods:
            found[(method, route.path)] = declared_scopes(route.dependencies)
    return found


@pytest.mark.usefixtures("bare_config")
def test_every_route_declares_exactly_one_scope_but_the_documented_public_ones() -> None:
    routes = _routes(_every_route_app())
    unscoped = {key for key, declared in routes.items() if not declared}
    assert unscoped == set(PUBLIC), f"routes without a scope: {sorted(unscoped - set(PUBLIC))}; " \
                                    f"listed as public but gone or scoped: {sorted(set(PUBLIC) - unscoped)}"
    several = {key: declared for key, declared in routes.items() if len(declared) > 1}
    assert several == {}
    assert routes[("GET", "/openapi.json")] == ["read"]  # served behind the token when one is set
    # /readyz joins the read routes unless made public.
    private = _routes(_every_route_app(health={"readyz_public": False}))
    assert private[("GET", "/readyz")] == ["read"]


@pytest.mark.usefixtures("bare_config")
def test_the_docs_table_gives_every_route_its_scope() -> None:
    documented = {(m, p): s for m, p, s in re.findall(r"^\| (GET|POST|DELETE|PUT|PATCH) \| `([^`]+)` \| ([\w-]+) \|",
                                                       DOCS.read_text(), re.M)}
    routes = _routes(_every_route_app(health={"readyz_public": False}))
    expected = {key: declared[0] if declared else "public" for key, declared in routes.items()}
    expected |= {("GET", "/readyz"): "read"}
    signed_in = {key for key in PUBLIC if key[1].startswith(("/dashboard", "/approvals"))}
    expected |= {key: "sign-in" for key in signed_in}
    assert documented == expected


def test_dashboard_sign_in_needs_read_and_acting_needs_write(ctx: Context) -> None:
    client = TestClient(create_app(scoped(ctx), background_applier=False), client=("203.0.113.9", 50000),
                        follow_redirects=False)
    writer = client.post("/dashboard/login", data={"token": TOKENS["writer"][0], "staff_id": "pat"})
    assert writer.status_code == 403 and "'read' scope" in unescape(writer.text) and "set-cookie" not in writer.headers
    assert client.get("/dashboard/data", headers=bearer(TOKENS["writer"][0])).status_code == 403
    assert client.get("/dashboard/data", headers=bearer(TOKENS["reader"][0])).status_code == 200

    reader = client.post("/dashboard/login", data={"token": TOKENS["reader"][0], "staff_id": "pat"})
    assert reader.status_code == 303 and TOKENS["reader"][0] not in reader.headers["set-cookie"]
    page = client.get("/dashboard", headers={"accept": "text/html"})
    assert page.status_code == 200 and 'data-staff="pat"' in page.text
    csrf = page.text.split('data-csrf="', 1)[1].split('"', 1)[0]
    looked = client.post("/dashboard/tasks/1/take", headers={"X-CSRF-Token": csrf})
    assert looked.status_code == 403 and "'write' scope" in looked.json()["detail"]

    client.post("/dashboard/login", data={"token": TOKENS["staffer"][0], "staff_id": "pat"})
    page = client.get("/dashboard", headers={"accept": "text/html"})
    csrf = page.text.split('data-csrf="', 1)[1].split('"', 1)[0]
    acted = client.post("/dashboard/tasks/999999/take", headers={"X-CSRF-Token": csrf})
    assert acted.status_code == 404, acted.text  # past the sign-in: no such task

    # Taking the token out of the settings ends its sessions.
    fewer = scoped(ctx)
    fewer.settings.api_tokens = [t for t in fewer.settings.api_tokens if t.name != "staffer"]
    later = TestClient(create_app(fewer, background_applier=False), client=("203.0.113.9", 50000),
                       cookies=dict(client.cookies.items()))
    assert later.get("/dashboard/data").status_code == 401


def test_without_any_token_the_dashboard_stays_loopback_only(ctx: Context) -> None:
    app = create_app(ctx, background_applier=False)
    assert TestClient(app, client=("203.0.113.9", 50000)).get("/dashboard/data").status_code == 403
    assert TestClient(app, client=("127.0.0.1", 50000)).get("/dashboard/data").status_code == 200


def _approvals_session(client: TestClient, secret: str) -> str:
    ok = client.post("/approvals/login", data={"token": secret}, follow_redirects=False)
    assert ok.status_code == 303 and secret not in ok.headers["set-cookie"]
    page = client.get("/approvals")
    assert page.status_code == 200
    return page.text


def test_approvals_page_shows_with_read_and_decides_with_write_and_a_staff_id(ctx: Context) -> None:
    client = TestClient(create_app(scoped(ctx), background_applier=False))
    refused = client.post("/approvals/login", data={"token": TOKENS["writer"][0]}, follow_redirects=False)
    assert refused.status_code == 403 and "'read' scope" in unescape(refused.text)
    assert client.get("/approvals", headers=bearer(TOKENS["writer"][0])).status_code == 403

    html = _approvals_session(client, TOKENS["reader"][0])
    logout = re.search(r'name="csrf" value="([^"]+)"', html)
    assert logout is not None
    denied = client.post("/approvals/999999/reject", data={"csrf": "x"}, follow_redirects=False)
    assert denied.status_code == 403 and "'write' scope" in unescape(denied.text)

    # A named token decides only with a staff id, so the decision names a person.
    client.cookies.clear()
    no_staff = client.post("/approvals/999999/reject", data={"reason": "dup"}, headers=bearer(TOKENS["staffer"][0]),
                           follow_redirects=False)
    assert no_staff.status_code == 303 and "staff_id" in no_staff.headers["location"]
    named = client.post("/approvals/999999/reject", data={"reason": "dup", "staff_id": "pat"},
                        headers=bearer(TOKENS["staffer"][0]), follow_redirects=False)
    where = unquote_plus(named.headers["location"])
    assert named.status_code == 303 and "error=" in where and "staff_id" not in where, where  # past the checks


@pytest.mark.usefixtures("bare_config")
@pytest.mark.parametrize(("entries", "named"), [
    ([{"name": "a", "token": "s1", "scopes": ["read", "root"]}], "api_tokens.0.scopes"),
    ([{"name": "a", "token": "", "scopes": ["read"]}], "api_tokens.0.token"),
    ([{"name": "a", "token": "   ", "scopes": ["read"]}], "api_tokens.0.token"),
    ([{"name": "a", "token": "s1", "scopes": []}], "api_tokens.0.scopes"),
    ([{"name": "a", "token": "dup-secret-1"}, ], "api_tokens.0.scopes"),
    ([{"name": "a", "token": "dup-secret-1", "scopes": ["read"]},
      {"name": "b", "token": "dup-secret-1", "scopes": ["write"]}], "api_tokens[1].token"),
    ([{"name": "a", "token": "s1", "scopes": ["read"]}, {"name": "a", "token": "s2", "scopes": ["read"]}],
     "api_tokens[1].name"),
    ([{"name": "api_token", "token": "s1", "scopes": ["read"]}], "api_tokens[0].name"),
    ([{"name": "has.dot", "token": "s1", "scopes": ["read"]}], "api_tokens.0.name"),
])
def test_bad_api_tokens_are_refused_naming_the_field(entries: list[dict[str, Any]], named: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(named)) as err:
        load_settings(api_tokens=entries)
    for entry in entries:
        if len(entry.get("token", "")) > 3:
            assert entry["token"] not in str(err.value)


@pytest.mark.usefixtures("bare_config")
def test_api_tokens_come_from_the_environment_or_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "backorder.toml").write_text(
        '[[api_tokens]]\nname = "erp"\ntoken = "from-file-secret"\nscopes = ["write", "read", "write"]\n')
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert [(t.name, t.token.get_secret_value(), t.scopes) for t in s.api_tokens] == [
        ("erp", "from-file-secret", ["read", "write"])]
    assert "from-file-secret" not in repr(s) and "from-file-secret" not in str(s.model_dump())
    monkeypatch.setenv("BACKORDER_API_TOKENS", json.dumps([{"name": "scraper", "token": "env-secret",
                                                            "scopes": ["read"]}]))
    assert [(t.name, t.scopes) for t in load_settings().api_tokens] == [("scraper", ["read"])]
    monkeypatch.setenv("BACKORDER_API_TOKENS", json.dumps([{"name": "x", "token": "env-secret", "scopes": ["god"]}]))
    with pytest.raises(ValidationError) as err:
        load_settings()
    assert "unknown scope 'god'" in str(err.value) and "env-secret" not in str(err.value)
