"""The dashboard in a real headless Chromium, on SQLite and PostgreSQL: sign in with the API token and a staff
id, read the figures the page shows against the store's snapshot, post an event and see the page update
without a reload, take a task with its button. Screenshots (laptop and phone width) go to build/test-artifacts/.
"""

from __future__ import annotations

from typing import Any

import requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from backorder.config import load_settings
from bot.api import create_app
from services import ops_figures
from services.context import Context
from services.workflow import check_overdue
from store import tables as t
from tests.browser import LiveServer, screenshot

TOKEN = "browser-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
WAIT = 20  # seconds at most for the page to follow the store (it checks every 0.3 s)


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "erp", "data": data}


def order(order_id: str, customer: str, sku: str, qty: int, price: float, placed: str, promised: str) -> dict[str, Any]:
    return ev(f"o-{order_id}", "order.placed", {
        "order_id": order_id, "customer_id": customer, "placed_at": placed, "promised_date": promised,
        "lines": [{"line_id": "1", "sku": sku, "qty": qty, "unit_price": price}]}, at=placed)


SEED = [
    ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
    ev("w2", "warehouse.upserted", {"warehouse_id": "BRS", "name": "Bristol", "region": "south"}),
    ev("s1", "supplier.upserted", {"supplier_id": "ACME", "name": "Acme", "lead_time_days": 10}),
    ev("s2", "supplier.upserted", {"supplier_id": "GLOBEX", "name": "Globex", "lead_time_days": 20}),
    ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40, "supplier_id": "ACME"}),
    ev("p2", "product.upserted", {"sku": "MUG-1", "name": "Mug", "price": 8, "supplier_id": "GLOBEX"}),
    ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "tier": "gold", "region": "north",
                                   "contacts": {"email": "ada@example.com"}}),
    ev("c2", "customer.upserted", {"customer_id": "C2", "name": "Bo", "tier": "standard", "region": "south",
                                   "contacts": {"email": "bo@example.com"}}),
    ev("po7", "po.updated", {"po_id": "PO-7", "supplier_id": "ACME", "warehouse_id": "LDS",
                             "expected_at": "2026-03-06", "lines": [{"sku": "KTL-200", "qty": 6}]}),
    order("1042", "C1", "KTL-200", 5, 40, "2026-02-20T10:00:00Z", "2026-02-27"),
    order("1043", "C2", "MUG-1", 12, 8, "2026-02-27T10:00:00Z", "2026-03-09"),
    order("1044", "C2", "KTL-200", 2, 40, "2026-03-01T10:00:00Z", "2026-03-10"),
]


def settle(driver: WebDriver) -> WebDriverWait[WebDriver]:
    """A bounded wait that reads again when a live update swapped the element it was reading."""
    return WebDriverWait(driver, WAIT, poll_frequency=0.3, ignored_exceptions=(StaleElementReferenceException,))


def owned_by(driver: WebDriver, ctx: Context, task_id: int, staff_id: str, flash: str) -> None:
    """The page said the press worked, the store has the owner, and the task's row shows them."""
    settle(driver).until(lambda d: flash in d.find_element(By.ID, "flash").text)
    with ctx.engine.connect() as conn:
        owner = conn.execute(t.tasks.select().where(t.tasks.c.id == task_id)).mappings().one()["owner"]
    assert owner == staff_id
    settle(driver).until(
        lambda d: staff_id in d.find_element(By.CSS_SELECTOR, f'tr[data-task-row="{task_id}"]').text)


def shown(driver: WebDriver, fig: str) -> str:
    return str(settle(driver).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'[data-fig="{fig}"]').get_attribute("data-value")))


def press(driver: WebDriver, css: str) -> None:
    """Click the button, again if a live update replaced it under the click."""
    settle(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True)


def test_dashboard_in_chromium(ctx: Context, browser: WebDriver) -> None:
    settings = load_settings(database_url=ctx.settings.database_url, api_token=TOKEN,
                             staff={"members": {"pat": {"name": "Pat", "roles": ["procurement"]},
                                                "quinn": {"name": "Quinn", "roles": ["procurement"]}}},
                             dashboard={"refresh_seconds": 0.3})
    app_ctx = Context(engine=ctx.engine, settings=settings, clock=ctx.clock)
    with LiveServer(create_app(app_ctx, background_applier=False)) as server:
        r = requests.post(f"{server.url}/events", json=SEED, headers=BEARER, timeout=30)
        assert r.status_code == 200 and r.json()["accepted"] == len(SEED), r.text
        assert check_overdue(app_ctx).tasks_opened == 1  # 1042 is late: a procurement review of KTL-200

        # Not signed in: the login form, which takes the token and the staff id.
        browser.get(f"{server.url}/dashboard")
        assert browser.current_url == f"{server.url}/dashboard/login"
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "staff_id").send_keys("pat")
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        settle(browser).until(lambda d: d.current_url == f"{server.url}/dashboard",
                                           message=f"not signed in: {browser.current_url}")
        cookie = browser.get_cookie("backorder_dashboard")
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/dashboard"

        with ctx.engine.connect() as conn:
            snap = ops_figures.snapshot(conn, app_ctx.now(), settings)
        # Waiting: 1042 (5 x 40), 1043 (12 x 8), 1044 (2 x 40): 3 lines, 19 units, 376.00.
        assert (snap["totals"], snap["revenue_at_risk"]) == ({"lines": 3, "units": 19, "value": 376.0}, 376.0)
        assert shown(browser, "totals.lines") == "3"
        assert shown(browser, "totals.units") == "19"
        assert browser.find_element(By.CSS_SELECTOR, '[data-fig="revenue_at_risk"]').text == "376.00"
        for row in snap["by"]["sku"]["rows"]:
            assert shown(browser, f"by.sku.{row['key']}.lines") == str(row["lines"])
        for bucket in snap["aging"]:
            assert shown(browser, f"aging.{bucket['bucket']}.lines") == str(bucket["lines"])
        assert shown(browser, "tasks.open") == str(snap["tasks"]["open"]) == "1"
        assert shown(browser, "incidents.open") == str(snap["incidents"]["open"]) == "1"
        # PO-7 brings 6 kettles on 6 March: all of 1042's 5 (first in line), not all of 1044's 2.
        assert [(p["po_id"], p["covers_lines"]) for p in snap["inbound"]] == [("PO-7", 1)]
        assert "PO-7" in browser.find_element(By.ID, "h-inbound").find_element(By.XPATH, "..").text

        # An event that backorders: the page follows without a reload (the marker survives).
        browser.execute_script("window.__same_page = true;")
        seq = int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-seq") or 0)
        r = requests.post(f"{server.url}/events", headers=BEARER, timeout=30,
                       json=[order("1045", "C1", "MUG-1", 3, 8, "2026-03-02T08:30:00Z", "2026-03-12")])
        assert r.status_code == 200, r.text
        settle(browser).until(lambda d: shown(d, "totals.lines") == "4")
        assert shown(browser, "totals.units") == "22"
        assert shown(browser, "by.sku.MUG-1.lines") == "2"
        assert browser.execute_script("return window.__same_page === true;")
        assert int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-seq") or 0) > seq

        # Take the review task as pat: the store records the owner and the page shows it.
        task_id = snap["tasks"]["items"][0]["id"]
        press(browser, f'button[data-task="{task_id}"][data-action="take"]')
        owned_by(browser, ctx, task_id, "pat", flash="is yours")
        # Reassign it to Quinn with the picker: the store records the new owner.
        press(browser, f'button[data-task="{task_id}"][data-action="reassign"]')
        picker = settle(browser).until(
            lambda d: d.find_element(By.CSS_SELECTOR, f'select[aria-label="Give task {task_id} to"]'))
        assert [o.text for o in picker.find_elements(By.TAG_NAME, "option")] == ["Quinn"]
        press(browser, f'button[data-give="{task_id}"]')
        owned_by(browser, ctx, task_id, "quinn", flash="is reassigned")

        dialect = ctx.engine.dialect.name
        desktop = screenshot(browser, f"dashboard-{dialect}.png" if dialect != "sqlite" else "dashboard.png", 1366)
        phone = screenshot(browser, f"dashboard-phone-{dialect}.png" if dialect != "sqlite" else "dashboard-phone.png",
                           390, mobile=True)
        assert desktop.stat().st_size > 10_000 and phone.stat().st_size > 10_000
        # On a phone the page does not scroll sideways: everything fits 390 CSS pixels.
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.get("about:blank")  # closes the event stream before the server stops
