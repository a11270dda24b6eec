"""The web approval queue (/approvals): listing, approve with an edit, reject, login and CSRF, on both stores.

A pending draft is made the way production makes one: a gold customer's order line is backordered
(POST /events, no stock) and, with no LLM configured, the delay notice waits as a template draft.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from conftest import Clock
from fastapi.testclient import TestClient
from markupsafe import escape

from backorder.config import load_settings
from bot.api import create_app
from services.context import Context
from tests.draft_rows import audit_rows, customer_rows, draft_row

EVIL = "<script>alert('x')</script> & Co"
TOKEN = "s3cret-token-for-tests"


def ev(event_id: str, type_: str, data: dict[str, Any], at: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": at, "source": "test", "data": data}


def with_settings(ctx: Context, **overrides: Any) -> Context:
    return Context(engine=ctx.engine, clock=ctx.clock,
                   settings=load_settings(database_url=ctx.settings.database_url, **overrides))


def pending_draft(client: TestClient, headers: dict[str, str] | None = None) -> int:
    """A gold customer's order with nothing in stock: its delay notice waits as a draft."""
    events = [
        ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("s1", "supplier.upserted", {"supplier_id": "ACME", "name": "Acme", "lead_time_days": 10}),
        ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40,
                                      "supplier_id": "ACME", "lead_time_days": 14}),
        ev("c1", "customer.upserted", {"customer_id": "C1", "name": EVIL, "tier": "gold", "region": "north",
                                       "timezone": "Europe/London", "locale": "en",
                                       "contacts": {"email": "ada@example.com"}}),
        ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1", "placed_at": "2026-03-01T11:00:00Z",
                                  "promised_date": "2026-03-05",
                                  "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 5, "unit_price": 40}]}),
    ]
    r = client.post("/events", json=events, headers=headers or {})
    assert r.status_code == 200, r.text
    drafts = client.get("/drafts", params={"status": "pending"}, headers=headers or {}).json()
    assert [(d["kind"], d["order_id"], d["customer_id"]) for d in drafts] == [("delay_notice", "1042", "C1")]
    return int(drafts[0]["id"])


def form_of(page: str, draft_id: int) -> dict[str, str]:
    """The hidden and prefilled fields of the draft's decision form, as a browser would send them."""
    m = re.search(rf'<form method="post" action="/approvals/{draft_id}/approve">(.*?)</form>', page, re.S)
    assert m, f"no decision form for draft {draft_id}"
    form = m.group(1)
    inputs = re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form)
    fields = {html.unescape(n): html.unescape(v) for n, v in inputs}
    text = re.search(r"<textarea[^>]*>(.*?)</textarea>", form, re.S)
    assert text
    fields["text"] = html.unescape(text.group(1))
    return fields


def test_page_lists_the_pending_draft_escaped_with_a_strict_csp(ctx: Context) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    draft_id = pending_draft(client)
    r = client.get("/approvals")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert f'id="draft-{draft_id}"' in page
    # The name, and the draft text that greets by it, show as text.
    assert "<script>" not in page and f"<dd>{escape(EVIL)} " in page and f"Hello {escape(EVIL)}," in page
    assert "delay_notice" in page and "1042" in page and "template" in page and "no_llm" in page
    created = client.get(f"/drafts/{draft_id}").json()["created_at"]
    assert created in page
    form = form_of(page, draft_id)
    assert form["text"] == client.get(f"/drafts/{draft_id}").json()["text"]
    assert form["csrf"] and form["status"] == "pending"
    assert f'formaction="/approvals/{draft_id}/reject"' in page
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "form-action 'self'" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'<style nonce="{nonce.group(1)}">' in page
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
    # An open page still binds its forms to a session cookie of its own.
    cookie = r.headers["set-cookie"]
    assert "backorder_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace(
        "SameSite=Strict", "SameSite=strict") and "Path=/approvals" in cookie
    # The other statuses are one link away; an unknown one says so, escaped.
    assert 'href="/approvals?status=approved"' in page
    bad = client.get("/approvals", params={"status": "<b>x</b>"}).text
    assert "is not one of" in bad and "<b>x</b>" not in bad and f'id="draft-{draft_id}"' in bad


def test_approve_with_an_edit_queues_the_edited_text_and_audits_the_diff(ctx: Context) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    draft_id = pending_draft(client)
    original = client.get(f"/drafts/{draft_id}").json()["text"]
    form = form_of(client.get("/approvals").text, draft_id)
    edited = "Dear Ada,\r\nyour kettles <b>ship</b> on 16 March.\r\nSorry for the wait."
    r = client.post(f"/approvals/{draft_id}/approve", data={**form, "text": edited}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/approvals?done=approved%3A{draft_id}"
    want = edited.replace("\r\n", "\n")
    d = draft_row(ctx, draft_id)
    assert (d["status"], d["decided_by"], d["decided_via"], d["text"], d["edited"]) == (
        "approved", "web", "web", want, True)
    rows = customer_rows(ctx, draft_id)
    assert rows and all(want in row["body"] for row in rows)  # the person's words, as they are
    assert {row["customer_id"] for row in rows} == {"C1"}
    [audit] = audit_rows(ctx, draft_id, "draft_approved")
    assert audit["actor"] == "web" and audit["after"]["via"] == "web" and audit["after"]["edited"] is True
    assert audit["before"]["text"] == original
    assert "+your kettles <b>ship</b> on 16 March." in audit["after"]["diff"]
    done = client.get(r.headers["location"]).text
    assert f"Draft {draft_id} approved." in done and f'id="draft-{draft_id}"' not in done  # left the pending list
    approved = client.get("/approvals", params={"status": "approved"}).text
    assert str(escape(want.splitlines()[1])) in approved and "<b>ship</b>" not in approved
    assert "approved by web at" in approved

    # A second click (a stale page): one outcome, and who had it.
    again = client.post(f"/approvals/{draft_id}/approve", data={**form, "text": "something else"},
                        follow_redirects=False)
    assert again.status_code == 303
    shown = client.get(again.headers["location"]).text
    decided_at = draft_row(ctx, draft_id)["decided_at"]
    assert f"already approved by web at {decided_at.isoformat()}" in html.unescape(shown)
    assert draft_row(ctx, draft_id)["text"] == want and len(customer_rows(ctx, draft_id)) == len(rows)


def test_approve_untouched_is_not_an_edit(ctx: Context) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    draft_id = pending_draft(client)
    original = client.get(f"/drafts/{draft_id}").json()["text"]
    form = form_of(client.get("/approvals").text, draft_id)
    # What a browser sends back for an untouched textarea: CRLF line breaks.
    r = client.post(f"/approvals/{draft_id}/approve", data={**form, "text": original.replace("\n", "\r\n")},
                    follow_redirects=False)
    assert r.status_code == 303 and "done=approved" in r.headers["location"]
    d = draft_row(ctx, draft_id)
    assert (d["status"], d["text"], d["edited"]) == ("approved", original, False)
    assert audit_rows(ctx, draft_id, "draft_approved")[0]["after"]["diff"] == ""


def test_reject_sends_nothing_and_a_bad_edit_names_the_field(ctx: Context) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    draft_id = pending_draft(client)
    form = form_of(client.get("/approvals").text, draft_id)
    empty = client.post(f"/approvals/{draft_id}/approve", data={**form, "text": "  \r\n "}, follow_redirects=False)
    assert empty.status_code == 303 and "error=" in empty.headers["location"]
    assert "text: the edited message is empty" in client.get(empty.headers["location"]).text
    assert draft_row(ctx, draft_id)["status"] == "pending"

    r = client.post(f"/approvals/{draft_id}/reject", data={**form, "reason": "tone is off"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/approvals?done=rejected%3A{draft_id}"
    d = draft_row(ctx, draft_id)
    assert (d["status"], d["decided_by"], d["decided_via"]) == ("rejected", "web", "web")
    assert customer_rows(ctx, draft_id) == []
    [audit] = audit_rows(ctx, draft_id, "draft_rejected")
    assert audit["reason"] == "tone is off" and audit["actor"] == "web"
    late = client.post(f"/approvals/{draft_id}/approve", data=form, follow_redirects=False)
    assert "already rejected by web at" in html.unescape(client.get(late.headers["location"]).text)
    assert draft_row(ctx, draft_id)["status"] == "rejected"


def test_staff_id_must_hold_an_approver_role_and_is_remembered(ctx: Context) -> None:
    ctx = with_settings(ctx, staff={"members": {"ana": {"roles": ["approver"]}, "bob": {"roles": ["picker"]}}})
    client = TestClient(create_app(ctx, background_applier=False))
    draft_id = pending_draft(client)
    form = form_of(client.get("/approvals").text, draft_id)

    bob = client.post(f"/approvals/{draft_id}/approve", data={**form, "staff_id": "bob"}, follow_redirects=False)
    page = client.get(bob.headers["location"]).text
    assert "bob may not decide" in page and "approver role" in page
    nobody = client.post(f"/approvals/{draft_id}/approve", data={**form, "staff_id": "zed"}, follow_redirects=False)
    assert "no staff member" in html.unescape(client.get(nobody.headers["location"]).text)
    assert draft_row(ctx, draft_id)["status"] == "pending"

    ana = client.post(f"/approvals/{draft_id}/approve", data={**form, "staff_id": "ana"}, follow_redirects=False)
    assert ana.status_code == 303 and "done=approved" in ana.headers["location"]
    assert (draft_row(ctx, draft_id)["decided_by"], draft_row(ctx, draft_id)["decided_via"]) == ("ana", "web")
    assert "backorder_staff=ana" in ana.headers["set-cookie"] and "HttpOnly" in ana.headers["set-cookie"]


def test_csrf_token_is_required_and_checked(ctx: Context) -> None:
    client = TestClient(create_app(ctx, background_applier=False))
    draft_id = pending_draft(client)
    form = form_of(client.get("/approvals").text, draft_id)
    for csrf in ("", "0" * 64, form["csrf"][:-1] + ("0" if form["csrf"][-1] != "0" else "1")):
        r = client.post(f"/approvals/{draft_id}/approve", data={**form, "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 403 and "security token" in r.text
        r = client.post(f"/approvals/{draft_id}/reject", data={**form, "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 403
    # A token is bound to its draft and to the session it was issued for.
    other = client.post(f"/approvals/{draft_id}/approve", data={k: v for k, v in form.items() if k != "csrf"},
                        follow_redirects=False)
    assert other.status_code == 403
    stranger = TestClient(create_app(ctx, background_applier=False))  # no session cookie of its own
    assert stranger.post(f"/approvals/{draft_id}/approve", data=form, follow_redirects=False).status_code == 403
    d = draft_row(ctx, draft_id)
    assert (d["status"], d["decided_by"]) == ("pending", None) and customer_rows(ctx, draft_id) == []
    assert audit_rows(ctx, draft_id, "draft_approved") == [] and audit_rows(ctx, draft_id, "draft_rejected") == []


@pytest.fixture
def guarded(ctx: Context) -> Context:
    return with_settings(ctx, api_token=TOKEN)


def test_guarded_page_needs_the_login_and_keeps_the_token_out_of_the_cookie(guarded: Context) -> None:
    app = create_app(guarded, background_applier=False)
    client = TestClient(app)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    draft_id = pending_draft(client, bearer)
    text = client.get(f"/drafts/{draft_id}", headers=bearer).json()["text"]

    r = client.get("/approvals")
    assert r.status_code == 401 and 'action="/approvals/login"' in r.text and 'type="password"' in r.text
    assert f'id="draft-{draft_id}"' not in r.text and text.splitlines()[0] not in html.unescape(r.text)
    assert "set-cookie" not in r.headers and "content-security-policy" in r.headers
    forged = TestClient(app, cookies={"backorder_session": f"{int(guarded.now().timestamp())}.abc.{'0' * 64}"}).get(
        "/approvals")
    assert forged.status_code == 401 and f'id="draft-{draft_id}"' not in forged.text

    wrong = client.post("/approvals/login", data={"token": "nope"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not the API token" in wrong.text and "set-cookie" not in wrong.headers
    odd = client.post("/approvals/login", data={"token": "tökén"}, follow_redirects=False)
    assert odd.status_code == 401

    ok = client.post("/approvals/login", data={"token": TOKEN}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/approvals"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("backorder_session=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "Path=/approvals" in cookie and "samesite=strict" in cookie.lower()
    page = client.get("/approvals")
    assert page.status_code == 200 and f'id="draft-{draft_id}"' in page.text
    assert str(escape(EVIL)) in page.text and "<script>" not in page.text
    assert client.get("/approvals/login", follow_redirects=False).status_code == 303  # signed in already

    # The cookie opens the page only, not the API: the API still wants the bearer token.
    assert client.get("/drafts").status_code == 401
    # Decisions need the form's CSRF token even with the session cookie.
    form = form_of(page.text, draft_id)
    assert client.post(f"/approvals/{draft_id}/approve", data={**form, "csrf": ""},
                       follow_redirects=False).status_code == 403
    assert draft_row(guarded, draft_id)["status"] == "pending"
    r = client.post(f"/approvals/{draft_id}/approve", data=form, follow_redirects=False)
    assert r.status_code == 303 and "done=approved" in r.headers["location"]
    assert draft_row(guarded, draft_id)["decided_by"] == "web"


def test_guarded_page_refuses_posts_without_a_session_and_takes_the_bearer_header(guarded: Context) -> None:
    client = TestClient(create_app(guarded, background_applier=False))
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    draft_id = pending_draft(client, bearer)
    page = client.get("/approvals", headers=bearer)
    assert page.status_code == 200 and f'id="draft-{draft_id}"' in page.text
    form = form_of(page.text, draft_id)
    client.cookies.clear()
    anon = client.post(f"/approvals/{draft_id}/reject", data=form, follow_redirects=False)
    assert anon.status_code == 401 and draft_row(guarded, draft_id)["status"] == "pending"
    bad_bearer = client.post(f"/approvals/{draft_id}/reject", data=form, follow_redirects=False,
                             headers={"Authorization": "Bearer wrong"})
    assert bad_bearer.status_code == 401 and draft_row(guarded, draft_id)["status"] == "pending"
    # A script holding the token needs no CSRF token: a browser cannot add that header to a forged form.
    r = client.post(f"/approvals/{draft_id}/reject", data={"reason": "dup"}, headers=bearer, follow_redirects=False)
    assert r.status_code == 303 and draft_row(guarded, draft_id)["status"] == "rejected"


def test_sign_out_clears_the_session(guarded: Context) -> None:
    client = TestClient(create_app(guarded, background_applier=False))
    client.post("/approvals/login", data={"token": TOKEN})
    page = client.get("/approvals").text
    csrf = re.search(r'action="/approvals/logout">\s*<input type="hidden" name="csrf" value="([^"]+)"', page)
    assert csrf
    assert client.post("/approvals/logout", data={"csrf": "x"}, follow_redirects=False).status_code == 403
    out = client.post("/approvals/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert out.status_code == 303 and 'backorder_session=""' in out.headers["set-cookie"]
    assert client.get("/approvals").status_code == 401


def test_a_session_lasts_twelve_hours(guarded: Context, clock: Clock) -> None:
    client = TestClient(create_app(guarded, background_applier=False))
    client.post("/approvals/login", data={"token": TOKEN})
    clock.now += timedelta(hours=11)
    assert client.get("/approvals").status_code == 200
    clock.now += timedelta(hours=2)
    late = client.get("/approvals")
    assert late.status_code == 401 and 'action="/approvals/login"' in late.text
