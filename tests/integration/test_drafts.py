"""Drafts end to end on both stores: the policy that makes them, the queue API, decisions, expiry, escalation.

No LLM here (drafts are the template's words, ready at once); the model's path is in test_drafting_llm.py
and test_drafts_llm_flow below.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from fakes.openai_server import FakeOpenAI, Stall
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select

from backorder.config import load_settings
from bot.api import create_app
from services import approvals, chat, drafts
from services.context import Context
from services.inbox import drain, store_events
from services.worker import WorkerThread, drain_outbox, jobs
from store import tables as t

APPROVER = approvals.Approver("ana", frozenset({"approver"}))


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-02T08:59:00Z", "source": "test",
            "data": data}


def setup_events(tier: str, price: float = 40) -> list[dict[str, Any]]:
    return [
        ev("w1", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}),
        ev("p1", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": price, "lead_time_days": 14}),
        ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "tier": tier,
                                       "contacts": {"email": "ada@example.com"}}),
        ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1", "promised_date": "2026-03-05",
                                  "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 2, "unit_price": price}]}),
    ]


def configured(ctx: Context, **overrides: Any) -> Context:
    settings = load_settings(database_url=ctx.settings.database_url,
                             notify={"rules": {"ops_digest": {"enabled": False}}},
                             staff={"members": {"ana": {"roles": ["approver"]}, "bo": {"roles": ["ops"]}}},
                             **overrides)
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


@pytest.fixture
def ctx(ctx: Context) -> Context:
    return configured(ctx)


def apply(ctx: Context, events: list[dict[str, Any]]) -> None:
    _, ids = store_events(ctx, events)
    drain(ctx, ids)


def rows(ctx: Context, table: Any, **where: Any) -> list[Any]:
    q = select(table)
    for column, value in where.items():
        q = q.where(table.c[column] == value)
    with ctx.engine.connect() as conn:
        return list(conn.execute(q.order_by(table.c[next(iter(table.primary_key.columns)).name])).mappings())


def customer_rows(ctx: Context) -> list[Any]:
    return [r for r in rows(ctx, t.outbox, audience="customer") if r["status"] != "dead"]


def test_a_gold_customers_delay_notice_waits_for_approval(ctx: Context) -> None:
    apply(ctx, setup_events("gold"))
    [draft] = rows(ctx, t.drafts)
    assert (draft["kind"], draft["notice_kind"], draft["status"], draft["mode"]) == (
        "delay_notice", "backorder_created", "pending", "approve")
    assert draft["customer_id"] == "C1" and draft["order_id"] == "1042" and draft["line_ids"] == ["1"]
    assert "1042" in draft["text"] and draft["text"] == draft["template_text"] and draft["source"] == "template"
    assert "gold customers" in draft["text"]  # the apology suits the tier
    assert draft["facts"]["items"][0]["sku"] == "KTL-200" and draft["facts"]["customer"]["tier"] == "gold"
    assert not customer_rows(ctx), "nothing reaches the customer before an approval"
    [card] = rows(ctx, t.outbox, kind="approval_request")
    assert card["role"] == "approver" and card["cause"] == f"draft:{draft['id']}" and card["audience"] == "staff"
    assert f"#{draft['id']}" in card["body"] and draft["text"].splitlines()[0] in card["body"]


def test_a_standard_customer_gets_the_template_and_a_big_order_a_draft(ctx: Context) -> None:
    apply(ctx, setup_events("standard"))
    assert not rows(ctx, t.drafts)
    assert [r["kind"] for r in customer_rows(ctx)] == ["backorder_created"]
    big = setup_events("standard", price=900)  # 2 x 900 > approval_above_value (1000)
    big = [e for e in big if e["type"] in ("product.upserted", "order.placed")]
    big[0]["event_id"], big[1]["event_id"] = "p-big", "o-big"
    big[1]["data"]["order_id"] = "2000"
    apply(ctx, big)
    [draft] = rows(ctx, t.drafts)
    assert draft["order_id"] == "2000" and draft["status"] == "pending"


def test_policy_can_auto_send_or_keep_templates_per_tier(ctx: Context) -> None:
    auto = configured(ctx, drafts={"policy": {"delay_notice": {"gold": "auto"}}})
    apply(auto, setup_events("gold"))
    [draft] = rows(ctx, t.drafts)
    assert draft["status"] == "approved" and draft["decided_by"] == "policy" and draft["decided_via"] == "policy"
    [sent] = customer_rows(ctx)
    assert sent["body"] == draft["text"] and sent["cause"] == f"draft:{draft['id']}"
    assert not rows(ctx, t.outbox, kind="approval_request")


def test_approve_through_the_api_sends_the_edited_text_once(ctx: Context) -> None:
    apply(ctx, setup_events("gold"))
    client = TestClient(create_app(ctx, background_applier=False))
    [listed] = client.get("/drafts", params={"status": "pending"}).json()
    assert set(listed) >= {"id", "kind", "order_id", "customer_id", "text", "status", "created_at", "decided_by"}
    assert listed["status"] == "pending" and listed["decided_by"] is None
    edited = "Hello Ada, your kettle for order 1042 is late; we are sorry."
    got = client.post(f"/drafts/{listed['id']}/approve", json={"text": edited, "staff_id": "ana"})
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "approved" and got.json()["decided_by"] == "ana" and got.json()["edited"]
    [sent] = customer_rows(ctx)
    assert sent["body"] == edited and sent["channel"] == "console" and sent["kind"] == "backorder_created"
    [audit] = rows(ctx, t.audit_log, action="draft_approved")
    assert audit["actor"] == "ana" and audit["after"]["text"] == edited and audit["before"]["text"] == listed["text"]
    assert "+Hello Ada, your kettle" in audit["after"]["diff"] and audit["after"]["via"] == "api"
    again = client.post(f"/drafts/{listed['id']}/approve")
    assert again.status_code == 409
    body = again.json()
    assert body["decided_by"] == "ana" and body["status"] == "approved"
    assert body["detail"].startswith("already approved by ana at ")
    assert len(customer_rows(ctx)) == 1
    asyncio.run(drain_outbox(ctx))
    assert client.get(f"/drafts/{listed['id']}").json()["status"] == "sent"
    assert [d["id"] for d in client.get("/drafts", params={"status": "sent"}).json()] == [listed["id"]]
    assert client.get("/drafts", params={"status": "approved"}).json() == []


def test_reject_sends_nothing_and_bad_requests_name_the_field(ctx: Context) -> None:
    apply(ctx, setup_events("gold"))
    client = TestClient(create_app(ctx, background_applier=False))
    [draft] = client.get("/drafts").json()
    forbidden = client.post(f"/drafts/{draft['id']}/approve", json={"staff_id": "bo"})
    assert forbidden.status_code == 403 and "approver" in forbidden.json()["detail"]
    unknown = client.post(f"/drafts/{draft['id']}/approve", json={"staff_id": "nobody"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "staff_id"]
    empty = client.post(f"/drafts/{draft['id']}/approve", json={"text": "   "})
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "text"]
    assert client.post("/drafts/999999/approve").status_code == 404
    assert client.get("/drafts", params={"status": "bogus"}).status_code == 422
    got = client.post(f"/drafts/{draft['id']}/reject", json={"reason": "tone"})
    assert got.status_code == 200 and got.json()["status"] == "rejected" and got.json()["decided_by"] == "api"
    assert not customer_rows(ctx)
    late = client.post(f"/drafts/{draft['id']}/approve")
    assert late.status_code == 409 and late.json()["detail"].startswith("already rejected by api at ")
    [audit] = rows(ctx, t.audit_log, action="draft_rejected")
    assert audit["reason"] == "tone"


def test_two_approvers_at_once_send_once(ctx: Context) -> None:
    apply(ctx, setup_events("gold"))
    [draft] = rows(ctx, t.drafts)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def click(n: int) -> None:
        barrier.wait()
        try:
            approvals.approve(ctx, draft["id"], approvals.Approver(f"ap{n}", frozenset({"approver"})), via="slack")
            outcomes.append("won")
        except approvals.AlreadyDecided as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=click, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert outcomes.count("won") == 1, outcomes
    winner = rows(ctx, t.drafts)[0]["decided_by"]
    assert all(o == "won" or o.startswith(f"already approved by {winner} at ") for o in outcomes)
    assert len(customer_rows(ctx)) == 1 and len(rows(ctx, t.audit_log, action="draft_approved")) == 1


def test_undecided_drafts_escalate_then_expire_and_the_template_goes_out(ctx: Context, clock: Any) -> None:
    apply(ctx, setup_events("gold"))
    [draft] = rows(ctx, t.drafts)
    jobs(ctx)  # the worker's scheduler meets its jobs: each first runs at its next slot
    clock.now += timedelta(minutes=ctx.settings.drafts.approval_sla_minutes + 1)
    jobs(ctx)  # the worker's periodic jobs
    jobs(ctx)  # once only
    [lead] = rows(ctx, t.outbox, kind="approval_escalation")
    assert lead["role"] == "lead" and f"#{draft['id']}" in lead["body"]
    assert rows(ctx, t.drafts)[0]["escalated_at"] is not None and rows(ctx, t.drafts)[0]["status"] == "pending"
    clock.now += timedelta(hours=ctx.settings.drafts.expire_hours)
    jobs(ctx)
    expired = rows(ctx, t.drafts)[0]
    assert expired["status"] == "expired" and expired["decided_via"] == "expiry"
    [sent] = customer_rows(ctx)
    assert sent["body"] == draft["template_text"]
    with pytest.raises(approvals.AlreadyDecided, match="already expired by expiry"):
        approvals.approve(ctx, draft["id"], APPROVER, via="api")


def test_a_draft_about_a_line_that_stopped_waiting_is_cancelled(ctx: Context) -> None:
    apply(ctx, setup_events("gold"))
    apply(ctx, [ev("r1", "inventory.received", {"sku": "KTL-200", "warehouse_id": "LDS", "qty": 5})])
    [draft] = rows(ctx, t.drafts)
    assert draft["status"] == "cancelled" and draft["decided_via"] == "system"
    assert [r["kind"] for r in customer_rows(ctx)] == ["allocated"]


def test_only_approvers_may_decide(ctx: Context) -> None:
    apply(ctx, setup_events("gold"))
    [draft] = rows(ctx, t.drafts)
    with pytest.raises(approvals.NotAllowed, match="approver"):
        approvals.approve(ctx, draft["id"], approvals.Approver("bo", frozenset({"ops"})), via="slack")
    with pytest.raises(approvals.BadEdit, match=r"^text: "):
        approvals.approve(ctx, draft["id"], APPROVER, via="slack", text="x" * 5000)
    assert rows(ctx, t.drafts)[0]["status"] == "pending"


def test_a_question_the_intents_cannot_answer_goes_to_a_person_with_a_drafted_reply(ctx: Context) -> None:
    apply(ctx, setup_events("standard"))
    question = "Can you gift wrap the kettle and add a card for my mum please?"
    answer = chat.reply(ctx, chat.ChatUser(customer_id="C1"), question, "web")
    assert answer.intent == "unknown" and "passed your message to a colleague" in answer.reply
    [task] = rows(ctx, t.tasks, kind="handoff")
    assert task["detail"]["message"] == question
    [draft] = rows(ctx, t.drafts, kind="question_reply")
    assert draft["status"] == "pending" and draft["question"] == question
    assert question not in str(draft["facts"]), "the customer's words are not facts"
    assert rows(ctx, t.outbox, kind="approval_request")
    short = chat.reply(ctx, chat.ChatUser(customer_id="C1"), "blorp", "web")
    assert "passed" not in short.reply and len(rows(ctx, t.drafts)) == 1


def test_with_a_model_the_draft_is_written_by_the_worker_and_checked(ctx: Context) -> None:
    with FakeOpenAI() as llm:
        model = configured(ctx, llm={"base_url": llm.base_url, "model": "fake-1", "api_key": "k"})
        apply(model, setup_events("gold"))
        [draft] = rows(ctx, t.drafts)
        assert draft["status"] == "drafting" and not rows(ctx, t.outbox, kind="approval_request")
        good = ("Dear Ada, we are sorry: the 2 Blue kettle (KTL-200) in order 1042 are on backorder. "
                "We will write again as soon as they ship.")
        llm.reply_with_json({"text": good, "channel": "email", "facts_used": ["order.id", "items[0].qty"]})
        assert drafts.compose_due(model) == 1
        composed = rows(ctx, t.drafts)[0]
        assert composed["status"] == "pending" and composed["source"] == "llm" and composed["model"] == "fake-1"
        assert composed["text"] == good and composed["prompt_version"]
        assert rows(ctx, t.outbox, kind="approval_request")
        [audit] = rows(ctx, t.audit_log, action="draft_composed")
        assert audit["after"]["model"] == "fake-1" and audit["after"]["text"] == good
        approvals.approve(model, composed["id"], APPROVER, via="api")
        [sent] = customer_rows(ctx)
        assert sent["body"] == good
        [approved] = rows(ctx, t.audit_log, action="draft_approved")
        assert approved["after"]["model"] == "fake-1" and approved["after"]["prompt_version"] == composed[
            "prompt_version"] and approved["after"]["approver"] == "ana"


def test_a_browser_on_another_site_cannot_decide(ctx: Context) -> None:
    apply(ctx, setup_events("gold"))
    client = TestClient(create_app(ctx, background_applier=False))
    [draft] = client.get("/drafts").json()
    forged = client.post(f"/drafts/{draft['id']}/approve", data={},
                         headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403 and "another site" in forged.json()["detail"]
    no_cors = client.post(f"/drafts/{draft['id']}/reject", headers={"Origin": "https://evil.example"})
    assert no_cors.status_code == 403
    assert client.get(f"/drafts/{draft['id']}").json()["status"] == "pending"
    assert client.post(f"/drafts/{draft['id']}/approve").status_code == 200  # an API client: no Origin


def _wait_for(what: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def test_the_worker_keeps_sending_while_the_model_writes_a_draft(ctx: Context) -> None:
    with FakeOpenAI() as llm:
        model = configured(ctx, llm={"base_url": llm.base_url, "model": "fake-1", "api_key": "k",
                                     "timeout_seconds": 10})
        good = "Dear Ada, the 2 Blue kettle (KTL-200) in order 1042 are on backorder; we are sorry."
        llm.script([Stall(3.0, then=json.dumps({"text": good, "channel": "console", "facts_used": ["order.id"]}))])
        apply(model, setup_events("gold"))
        apply(model, [ev("c2", "customer.upserted", {"customer_id": "C2", "name": "Bo"}),
                      ev("o2", "order.placed", {"order_id": "2001", "customer_id": "C2",
                                                "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 1,
                                                           "unit_price": 40}]})])
        worker = WorkerThread(model, Console(file=io.StringIO()))
        worker.start()
        try:
            # The standard customer's notice goes out while the model is still writing the gold one's draft.
            _wait_for(lambda: [r for r in customer_rows(ctx) if r["status"] in ("sent", "delivered")])
            assert rows(ctx, t.drafts)[0]["status"] == "drafting"
            _wait_for(lambda: rows(ctx, t.drafts)[0]["status"] == "pending")
            card = _wait_for(lambda: [r for r in rows(ctx, t.outbox, kind="approval_request")
                                      if r["status"] in ("sent", "delivered")])
            assert good in card[0]["body"]
        finally:
            worker.stop()
        assert rows(ctx, t.drafts)[0]["text"] == good and rows(ctx, t.drafts)[0]["source"] == "llm"


def test_the_reply_to_a_question_goes_back_where_it_was_asked(ctx: Context) -> None:
    twilio = {"account_sid": "AC" + "d4" * 16, "auth_token": "tok", "api_base_url": "http://127.0.0.1:9",
              "public_base_url": "https://bot.example.com", "sms_from": "+15005550006",
              "whatsapp_from": "+14155238886"}
    wa = configured(ctx, twilio=twilio)
    apply(wa, setup_events("standard"))
    apply(wa, [ev("c1b", "customer.upserted", {"customer_id": "C1", "name": "Ada", "contacts": {
        "email": "ada@example.com", "whatsapp": "+447911123456"}, "preferences": {"channels": ["sms", "whatsapp"]}})])
    question = "Is the blue kettle dishwasher safe and does it come with a warranty?"
    chat.reply(wa, chat.ChatUser(customer_id="C1"), question, "whatsapp")
    [draft] = rows(ctx, t.drafts, kind="question_reply")
    assert draft["channel"] == "whatsapp"
    approvals.approve(wa, draft["id"], APPROVER, via="api", text="Yes to both: it is dishwasher safe, with 2 years.")
    [reply] = rows(ctx, t.outbox, kind="question_reply")
    assert (reply["channel"], reply["recipient"]) == ("whatsapp", "+447911123456")
    assert reply["body"] == "Yes to both: it is dishwasher safe, with 2 years."
