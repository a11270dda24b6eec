"""The dashboard over HTTP, on SQLite and PostgreSQL: who may see it, its JSON and lists against the store,
change detection, and the task buttons' endpoint (session, CSRF, same origin, staff id)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from conftest import Clock
from fastapi.testclient import TestClient

from backorder.config import load_settings
from bot.api import create_app
from bot.dashboard_stream import Hub
from bot.dashboard_view import figures
from services import ops_figures
from services.context import Context
from services.workflow import check_overdue
from store import tables as t

TOKEN = "dash-token"
LOCAL = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.9", 50000)
HTML = {"accept": "text/html"}


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "erp", "data": data}


SEED = [
    ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
    ev("s1", "supplier.upserted", {"supplier_id": "ACME", "name": "Acme", "lead_time_days": 10}),
    ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "supplier_id": "ACME"}),
    ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "tier": "gold", "region": "north",
                                   "contacts": {"email": "ada@example.com"}}),
    ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1", "placed_at": "2026-02-20T10:00:00Z",
                              "promised_date": "2026-02-27",
                              "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 5, "unit_price": 40}]}),
]


def app_ctx(ctx: Context, **overrides: Any) -> Context:
    settings = load_settings(database_url=ctx.settings.database_url,
                             staff={"members": {"pat": {"roles": ["procurement"]}, "sam": {"roles": ["sales"]},
                                                "quinn": {"name": "Quinn", "roles": ["procurement"]}}},
                             **overrides)
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


def seeded(c: TestClient, headers: dict[str, str] | None = None) -> None:
    r = c.post("/events", json=SEED, headers=headers or {})
    assert r.status_code == 200, r.text


def test_without_a_token_only_loopback_clients_see_it(ctx: Context) -> None:
    actx = app_ctx(ctx)
    app = create_app(actx, background_applier=False)
    with TestClient(app, client=REMOTE) as remote:
        page = remote.get("/dashboard", headers=HTML)
        assert page.status_code == 403 and "only this machine" in page.text
        assert remote.get("/dashboard/data").status_code == 403
        assert remote.get("/dashboard/stream").status_code == 403
        assert remote.get("/dashboard/list/backorders").status_code == 403
    with TestClient(app, client=LOCAL) as local:
        seeded(local)
        page = local.get("/dashboard", headers=HTML)
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "http" not in csp
        assert 'data-fig="totals.lines" data-value="1"' in page.text
        assert 'src="http' not in page.text and "href=\"http" not in page.text  # nothing from outside the app
        data = local.get("/dashboard/data").json()
        with ctx.engine.connect() as conn:
            assert data == ops_figures.snapshot(conn, actx.now(), actx.settings)
        assert data["totals"] == {"lines": 1, "units": 5, "value": 200.0}
        assert data["by"]["sku"] == {"keys": 1, "rows": [{"key": "KTL-200", "lines": 1, "units": 5, "value": 200.0}]}
        assert local.get("/dashboard/app.js").headers["content-type"].startswith("text/javascript")


def test_with_a_token_sign_in_sets_a_strict_session(ctx: Context, clock: Clock) -> None:
    actx = app_ctx(ctx, api_token=TOKEN, dashboard={"session_hours": 2})
    with TestClient(create_app(actx, background_applier=False), client=REMOTE, follow_redirects=False) as c:
        seeded(c, {"Authorization": f"Bearer {TOKEN}"})
        r = c.get("/dashboard", headers=HTML)
        assert (r.status_code, r.headers["location"]) == (303, "/dashboard/login")
        assert c.get("/dashboard/data").status_code == 401
        assert c.get("/dashboard/data", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        wrong = c.post("/dashboard/login", data={"token": "nope", "staff_id": "pat"})
        assert wrong.status_code == 401 and "not the API token" in wrong.text
        unknown = c.post("/dashboard/login", data={"token": TOKEN, "staff_id": "nobody"})
        assert unknown.status_code == 422 and "No staff member" in unknown.text
        ok = c.post("/dashboard/login", data={"token": TOKEN, "staff_id": "pat"})
        assert (ok.status_code, ok.headers["location"]) == (303, "/dashboard")
        cookie = ok.headers["set-cookie"]
        for part in ("backorder_dashboard=", "HttpOnly", "SameSite=strict", "Path=/dashboard", "Max-Age=7200"):
            assert part.lower() in cookie.lower(), cookie
        assert TOKEN not in cookie
        page = c.get("/dashboard", headers=HTML)
        assert page.status_code == 200 and 'data-staff="pat"' in page.text
        listing = c.get("/dashboard/list/backorders", params={"by": "sku", "key": "KTL-200", "format": "json"})
        assert (listing.json()["total"], [r["order"] for r in listing.json()["rows"]]) == (1, ["1042"])
        assert c.get("/dashboard/list/backorders", params={"by": "region"}).status_code == 422
        # A forged cookie, then an expired one, are refused.
        value = c.cookies.get("backorder_dashboard")
        assert value is not None
        c.cookies.clear()
        c.cookies.set("backorder_dashboard", value[:-2] + "00", path="/dashboard")
        assert c.get("/dashboard/data").status_code == 401
        c.cookies.clear()
        c.cookies.set("backorder_dashboard", value, path="/dashboard")
        assert c.get("/dashboard/data").status_code == 200
        clock.now += timedelta(hours=2, minutes=1)
        assert c.get("/dashboard/data").status_code == 401


def test_task_buttons_act_as_the_signed_in_staff_member(ctx: Context) -> None:
    actx = app_ctx(ctx, api_token=TOKEN)
    with TestClient(create_app(actx, background_applier=False), client=REMOTE) as c:
        seeded(c, {"Authorization": f"Bearer {TOKEN}"})
        assert check_overdue(actx).tasks_opened == 1
        task_id = c.get("/tasks", headers={"Authorization": f"Bearer {TOKEN}"}).json()["tasks"][0]["id"]
        assert c.post(f"/dashboard/tasks/{task_id}/take").status_code == 401
        c.post("/dashboard/login", data={"token": TOKEN, "staff_id": "pat"})
        page = c.get("/dashboard", headers=HTML).text
        csrf = page.split('data-csrf="', 1)[1].split('"', 1)[0]
        assert f'data-task="{task_id}" data-action="take"' in page
        url = f"/dashboard/tasks/{task_id}/take"
        assert c.post(url).status_code == 403  # no CSRF header
        assert c.post(url, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert c.post(url, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}).status_code == 403
        took = c.post(url, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-origin"})
        assert took.status_code == 200, took.text
        assert took.json()["task"]["owner"] == "pat"
        # Reassign: the picker offers who can work it (not pat, the owner; not sam, who lacks the role).
        choices = c.get(f"/dashboard/tasks/{task_id}/choices", headers={"X-CSRF-Token": csrf})
        assert choices.status_code == 200, choices.text
        assert choices.json()["choices"] == [{"staff_id": "quinn", "name": "Quinn"}]
        give = f"/dashboard/tasks/{task_id}/reassign"
        missing = c.post(give, headers={"X-CSRF-Token": csrf})
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["query", "to"]
        assert c.post(give, params={"to": "nobody"}, headers={"X-CSRF-Token": csrf}).status_code == 422
        cannot = c.post(give, params={"to": "sam"}, headers={"X-CSRF-Token": csrf})
        assert cannot.status_code == 422 and cannot.json()["detail"][0]["loc"] == ["query", "to"]
        given = c.post(give, params={"to": "quinn"}, headers={"X-CSRF-Token": csrf})
        assert given.status_code == 200 and given.json()["task"]["owner"] == "quinn", given.text
        back = c.post(give, params={"to": "pat"}, headers={"X-CSRF-Token": csrf})
        assert back.status_code == 200 and back.json()["task"]["owner"] == "pat", back.text
        done = c.post(f"/dashboard/tasks/{task_id}/finish", headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200, done.text
        again = c.post(f"/dashboard/tasks/{task_id}/finish", headers={"X-CSRF-Token": csrf})
        assert again.status_code == 409
        with ctx.engine.connect() as conn:
            row = conn.execute(t.tasks.select().where(t.tasks.c.id == task_id)).mappings().one()
        assert (row["owner"], row["closed_by"], row["status"]) == ("pat", "pat", "done")
        assert c.post("/dashboard/tasks/999999/take", headers={"X-CSRF-Token": csrf}).status_code == 404
        # Signed in without a staff id: looking is fine, acting is not. A staff member without the role: 403.
        c.post("/dashboard/login", data={"token": TOKEN, "staff_id": ""})
        anon = c.get("/dashboard", headers=HTML).text.split('data-csrf="', 1)[1].split('"', 1)[0]
        r = c.post(f"/dashboard/tasks/{task_id}/take", headers={"X-CSRF-Token": anon})
        assert r.status_code == 403 and "staff id" in r.json()["detail"]
        check_overdue(actx)  # still late: a new review task opens
        new_id = c.get("/tasks", headers={"Authorization": f"Bearer {TOKEN}"}).json()["tasks"][0]["id"]
        c.post("/dashboard/login", data={"token": TOKEN, "staff_id": "sam"})
        sam = c.get("/dashboard", headers=HTML).text.split('data-csrf="', 1)[1].split('"', 1)[0]
        assert c.post(f"/dashboard/tasks/{new_id}/take", headers={"X-CSRF-Token": sam}).status_code == 403


def test_the_hub_pushes_only_when_figures_change(ctx: Context) -> None:
    actx = app_ctx(ctx, dashboard={"refresh_seconds": 0.01})
    hub = Hub(actx, figures)
    first, snap, html = hub.current()
    assert snap["totals"]["lines"] == 0 and 'data-fig="totals.lines" data-value="0"' in html
    assert hub.current(force=True)[0] == first  # nothing changed: same sequence, no event
    with TestClient(create_app(actx, background_applier=False), client=LOCAL) as c:
        seeded(c)
    seq, snap, html = hub.current()
    assert seq == first + 1 and snap["totals"]["lines"] == 1 and 'data-value="1"' in html
