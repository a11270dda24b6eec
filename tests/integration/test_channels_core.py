"""What every chat front door stands on, on both stores: staff linked to chat accounts, inbound
deduplication, suppressions, conversation references, threads, button actions through the scoped
handlers, two rate limits on one message, and channels that mount only when configured."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import insert, select

from backorder.config import load_settings
from bot.api import create_app
from notifiers.dispatch import Dispatcher
from notifiers.senders.console import ConsoleSender
from services import channels
from services.chat import ChatUser, act, reply
from services.context import Context
from services.inbox import drain, store_events
from services.worker import drain_outbox
from store import chat_state, outbox
from store import tables as t
from store.db import unit_of_work

REPO = Path(__file__).resolve().parents[2]


def ev(event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "occurred_at": "2026-03-02T08:00:00Z", "source": "t",
            "data": data}


@pytest.fixture
def shop(ctx: Context) -> Context:
    events = [
        ev("w", "warehouse.upserted", {"warehouse_id": "LDS", "name": "Leeds"}),
        ev("p", "product.upserted", {"sku": "KTL-200", "name": "Blue kettle", "price": 40}),
        ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada"}),
        ev("c2", "customer.upserted", {"customer_id": "C2", "name": "Bea"}),
        ev("o1", "order.placed", {"order_id": "1042", "customer_id": "C1",
                                  "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 2, "unit_price": 40}]}),
        ev("o2", "order.placed", {"order_id": "2001", "customer_id": "C2",
                                  "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 1, "unit_price": 40}]}),
    ]
    _, ids = store_events(ctx, events)
    drain(ctx, ids)
    return ctx


def test_staff_accounts_resolve_from_the_store_before_the_configuration(ctx: Context) -> None:
    settings = load_settings(database_url=ctx.settings.database_url,
                             staff={"members": {
                                 "cfg-1": {"roles": ["ops"], "slack_user": "UCFG", "phone": "+15005550006"},
                                 "ana": {"roles": ["viewer"], "slack_user": "UANA"}}})
    with unit_of_work(ctx.engine) as conn:
        row = channels.add_staff(conn, "ana", ["ops", "admin", "ops"], ctx.now(), slack_user="UANA",
                                 teams_user="aad-ana")
        assert row["roles"] == ["admin", "ops"]
        assert channels.staff_user(conn, settings, "slack_user", "UANA") == ChatUser(
            staff_id="ana", roles=frozenset({"ops", "admin"}))
        assert channels.staff_user(conn, settings, "teams_user", "aad-ana").staff_id == "ana"
        assert channels.staff_user(conn, settings, "slack_user", "UCFG") == ChatUser(
            staff_id="cfg-1", roles=frozenset({"ops"}))
        assert channels.staff_user(conn, settings, "phone", "+15005550006").staff_id == "cfg-1"
        assert channels.staff_user(conn, settings, "slack_user", "UNOBODY") is None
        with pytest.raises(ValueError, match="slack_user UANA is already linked to staff ana"):
            channels.add_staff(conn, "bob", ["ops"], ctx.now(), slack_user="UANA")
        # An update keeps the accounts it does not name.
        again = channels.add_staff(conn, "ana", ["viewer"], ctx.now(), phone="+447911123456")
        assert (again["roles"], again["slack_user"], again["phone"]) == (["viewer"], "UANA", "+447911123456")
        listed = channels.list_staff(conn, settings)
    assert [(r["staff_id"], r["source"]) for r in listed] == [("ana", "store"), ("cfg-1", "config")]
    with pytest.raises(ValueError, match="unknown account field"), ctx.engine.connect() as conn:
        channels.staff_user(conn, settings, "email", "x@example.com")


def test_an_inbound_message_is_seen_once_and_dates_the_senders_window(ctx: Context) -> None:
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        assert chat_state.first_delivery(conn, "whatsapp", "SM1", "+447911123456", now)
        assert not chat_state.first_delivery(conn, "whatsapp", "SM1", "+447911123456", now + timedelta(seconds=5))
        assert chat_state.first_delivery(conn, "sms", "SM1", "+447911123456", now)  # ids are per channel
        assert chat_state.first_delivery(conn, "whatsapp", "SM2", "+447911123456", now + timedelta(hours=2))
    with ctx.engine.connect() as conn:
        assert chat_state.last_inbound(conn, "whatsapp", "+447911123456") == now + timedelta(hours=2)
        assert chat_state.last_inbound(conn, "whatsapp", "+15005550006") is None


def test_the_worker_forgets_deliveries_older_than_a_week(ctx: Context) -> None:
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        chat_state.first_delivery(conn, "slack", "EvOld", "U1", now - timedelta(days=8))
        chat_state.first_delivery(conn, "whatsapp", "SMnew", "+447911123456", now - timedelta(hours=3))
    asyncio.run(drain_outbox(ctx))  # `backorder worker --once` runs the jobs too
    with ctx.engine.connect() as conn:
        kept = conn.execute(select(t.inbound_messages.c.message_id)).scalars().all()
        assert chat_state.last_inbound(conn, "whatsapp", "+447911123456") == now - timedelta(hours=3)
    assert kept == ["SMnew"]


def test_suppressions_references_and_threads(ctx: Context) -> None:
    now = ctx.now()
    with unit_of_work(ctx.engine) as conn:
        chat_state.suppress(conn, "sms", "+447911123456", "keyword:STOP", now)
        chat_state.suppress(conn, "sms", "+447911123456", "keyword:STOP", now)  # twice is once
        assert chat_state.is_suppressed(conn, "sms", "+447911123456")
        assert not chat_state.is_suppressed(conn, "whatsapp", "+447911123456")
        assert chat_state.unsuppress(conn, "sms", "+447911123456")
        assert not chat_state.unsuppress(conn, "sms", "+447911123456")
        assert not chat_state.is_suppressed(conn, "sms", "+447911123456")

        chat_state.save_ref(conn, "teams", "19:abc", {"serviceUrl": "https://a", "v": 1}, now)
        chat_state.save_ref(conn, "teams", "19:abc", {"serviceUrl": "https://b", "v": 2}, now + timedelta(minutes=1))
        assert chat_state.load_ref(conn, "teams", "19:abc") == {"serviceUrl": "https://b", "v": 2}
        assert chat_state.load_ref(conn, "teams", "19:none") is None

        chat_state.remember_thread(conn, "slack", "C123", "order:1042", "1700000000.000100", now)
        chat_state.remember_thread(conn, "slack", "C123", "order:1042", "1700000099.000100", now)
        assert chat_state.thread_of(conn, "slack", "C123", "order:1042") == "1700000000.000100"
        assert chat_state.thread_of(conn, "slack", "C999", "order:1042") is None


def test_buttons_answer_through_the_same_scoped_handlers(shop: Context) -> None:
    ctx = shop
    ops = ChatUser(staff_id="ana", roles=frozenset({"ops"}))
    waiting = act(ctx, ops, "show_waiting", "KTL-200", "slack")
    assert (waiting.intent, waiting.entities) == ("waiting_on_sku", {"sku": "KTL-200"})
    assert "1042" in waiting.reply and "2001" in waiting.reply

    # A button value comes back from the chat app: another customer's order stays hidden.
    mine = act(ctx, ChatUser(customer_id="C1"), "order_status", "1042", "whatsapp")
    theirs = act(ctx, ChatUser(customer_id="C1"), "order_status", "2001", "whatsapp")
    assert mine.template == "order" and theirs.template == "no_such_order"

    with unit_of_work(ctx.engine) as conn:
        task = conn.execute(insert(t.tasks).values(kind="procurement_review", sku="KTL-200", title="Review",
                                                   detail={}, status="open", created_at=ctx.now())
                            .returning(t.tasks.c.id)).scalar_one()
        handoff = conn.execute(insert(t.tasks).values(kind="handoff", sku=None, title="Call Ada", detail={},
                                                      status="open", created_at=ctx.now())
                               .returning(t.tasks.c.id)).scalar_one()
    opened = act(ctx, ops, "open_task", str(task), "slack")  # "Open task" shows that task, not the first ten
    assert [tk["id"] for tk in opened.data["tasks"]] == [task]
    refused = act(ctx, ChatUser(staff_id="slack:U1", roles=frozenset()), "complete_task", str(task), "slack")
    assert refused.template == "staff_forbidden"
    buyer = ChatUser(staff_id="pat", roles=frozenset({"procurement"}))
    assert act(ctx, buyer, "complete_task", str(handoff), "slack").template == "staff_forbidden"  # not theirs
    assert "procurement" in refused.reply and "ops" in refused.reply
    done = act(ctx, buyer, "complete_task", str(task), "slack")  # a procurement review is theirs to close
    assert done.template == "staff_task_done"
    assert act(ctx, ops, "complete_task", str(handoff), "slack").template == "staff_task_done"
    with pytest.raises(ValueError, match="unknown action 'drop_tables'"):
        act(ctx, ops, "drop_tables", "x", "slack")


def test_store_values_in_teams_answers_are_escaped_markdown(shop: Context) -> None:
    with unit_of_work(shop.engine) as conn:
        conn.execute(insert(t.tasks).values(kind="procurement_review", sku="KTL-200", detail={}, status="open",
                                            title="[Approve](https://evil.example) **now**", created_at=shop.now()))
    ops = ChatUser(staff_id="ana", roles=frozenset({"ops"}))
    teams = reply(shop, ops, "open tasks", "teams").reply
    assert "[Approve](https" not in teams and "\\[Approve\\]\\(https://evil.example\\)" in teams
    assert "**now**" not in teams
    web = reply(shop, ops, "open tasks", "web").reply  # plain text elsewhere: shown as written
    assert "[Approve](https://evil.example) **now**" in web


def test_an_unlinked_chat_account_is_told_how_to_get_linked_and_sees_nothing(shop: Context) -> None:
    stranger = ChatUser(staff_id="slack:U0EVE", roles=frozenset(), linked=False)
    for answer in (reply(shop, stranger, "who is waiting on KTL-200?", "slack"),
                   act(shop, stranger, "show_waiting", "KTL-200", "slack")):
        assert answer.template == "unlinked" and "1042" not in answer.reply and "KTL-200" not in answer.reply
        assert "backorder staff add" in answer.reply and "--slack-user U0EVE" in answer.reply
    with shop.engine.connect() as conn:  # nothing remembered for them
        assert conn.execute(select(t.conversations.c.key)).scalars().all() == []
    # A workspace that lets every member read: they read, and still may not act.
    settings = load_settings(database_url=shop.settings.database_url, staff={"unlinked_read": True})
    readers = Context(engine=shop.engine, settings=settings, clock=shop.clock)
    read = reply(readers, stranger, "who is waiting on KTL-200?", "slack")
    assert read.intent == "waiting_on_sku" and "1042" in read.reply
    with unit_of_work(shop.engine) as conn:
        task = conn.execute(insert(t.tasks).values(kind="procurement_review", sku="KTL-200", title="Review",
                                                   detail={}, status="open", created_at=shop.now())
                            .returning(t.tasks.c.id)).scalar_one()
    assert act(readers, stranger, "complete_task", str(task), "slack").template == "staff_forbidden"


def console_rows(ctx: Context, recipients: list[str]) -> None:
    now = ctx.now()
    rows = [{"idempotency_key": f"t:{i}", "kind": "procurement_task", "channel": "console", "recipient": r,
             "audience": "staff", "line_ids": [], "locale": "en", "body": "b", "payload": {}, "facts": {},
             "fallback": [], "urgent": False, "status": "pending", "due_at": now, "attempts": 0, "created_at": now,
             "occurred_at": now, "expires_at": now + timedelta(hours=1)} for i, r in enumerate(recipients)]
    with unit_of_work(ctx.engine) as conn:
        conn.execute(insert(t.outbox), rows)


def dispatcher(ctx: Context, per_destination: float | None, per_channel: float | None,
               hold_s: float = 2.0) -> Dispatcher:
    cfg = ctx.settings.notify.model_copy(update={
        "rate_per_destination": {"console": per_destination} if per_destination else {}, "lease_seconds": 600})
    console = ConsoleSender(Console(file=io.StringIO()))
    return Dispatcher(ctx.engine, cfg, {"console": console}, clock=ctx.clock,
                      channel_rates={"console": per_channel} if per_channel else {}, hold_s=hold_s)


def offsets(ctx: Context, claimed: list[Any]) -> dict[int, float | None]:
    return {c.row.id: None if c.slot is None else round((c.slot - ctx.now()).total_seconds(), 3) for c in claimed}


def free_at(ctx: Context) -> dict[str, float]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.rate_slots.c.key, t.rate_slots.c.next_free_at)).tuples().all()
    return {k: round((v - ctx.now()).total_seconds(), 3) for k, v in rows}


def test_a_message_under_two_limits_waits_for_the_stricter(ctx: Context) -> None:
    console_rows(ctx, ["@r0", "@r1", "@r0", "@r1"])
    # One a second per recipient (r0: rows 1 and 3, r1: rows 2 and 4), four a second over the channel:
    # each row takes the later of its two limits, and the channel's slots are never bunched.
    assert offsets(ctx, dispatcher(ctx, 1.0, 4.0).claim()) == {1: 0.0, 2: 0.25, 3: 1.0, 4: 1.25}
    # Beside each destination's reserved slots, when its last send lets the next one go ("|sent"): @r1's second
    # was pushed by the channel to 1.25, so @r1's next may not go before 2.25 whatever its reserved slots say.
    assert free_at(ctx) == {"console:@r0": 2.0, "console:@r1": 2.0, "console:*": 1.5,
                            "console:@r0|sent": 2.0, "console:@r1|sent": 2.25}


def test_one_busy_recipient_does_not_hold_up_the_channel(ctx: Context) -> None:
    console_rows(ctx, ["@busy"] * 10 + ["@other"])
    claimed = dispatcher(ctx, 1.0, 10.0).claim()
    slots = offsets(ctx, claimed)
    assert slots[11] == 0.1  # @other goes right after @busy's first, not behind its backlog
    assert [slots[i] for i in (1, 2, 3)] == [0.0, 1.0, 2.0]
    held = {c.row.id: c.hold for c in claimed if c.hold}
    assert held == dict.fromkeys(range(4, 11), outbox.DESTINATION_SLOT_HELD)  # 3 s and later: back to the outbox
    assert free_at(ctx)["console:*"] <= 2.1  # the channel's bucket was not stretched to @busy's backlog


def test_a_message_handed_back_keeps_its_slot_instead_of_queueing_again(ctx: Context) -> None:
    console_rows(ctx, ["@busy"] * 4 + ["@a", "@b", "@c", "@d"])
    d = dispatcher(ctx, 10.0, 20.0, hold_s=0.15)
    first = d.claim()
    # @busy's 3rd and 4th are 0.2 s and 0.3 s away by their destination: held there. The channel (one per
    # 0.05 s) then serves rows 1, 5, 6, 7 by 0.15 s; row 8 (0.2 s) and @busy's 2nd (0.25 s) hold channel slots.
    assert {c.row.id: c.hold for c in first if c.hold} == {
        3: outbox.DESTINATION_SLOT_HELD, 4: outbox.DESTINATION_SLOT_HELD, 8: outbox.SLOT_HELD, 2: outbox.SLOT_HELD}
    asyncio.run(d._process(first))  # sends the four due now, hands the other four back
    with ctx.engine.connect() as conn:
        back = {r.id: (r.status, outbox.held_slot(r.error_reason), r.attempts, r.due_at) for r in conn.execute(
            select(t.outbox).where(t.outbox.c.status != "delivered"))}
    at = {c.row.id: c.slot for c in first}
    dest, both = outbox.DESTINATION_SLOT_HELD, outbox.SLOT_HELD
    assert {k: v[:3] for k, v in back.items()} == {
        3: ("pending", (dest, at[3]), 0), 4: ("pending", (dest, at[4]), 0),
        2: ("pending", (both, at[2]), 0), 8: ("pending", (both, at[8]), 0)}
    # Each comes due early (hold + 1 s before its slot), so a busy worker still claims it before its slot.
    assert all(due == at[i] - timedelta(seconds=1.15) for i, (*_, due) in back.items())
    buckets = free_at(ctx)
    ctx.clock.now += timedelta(seconds=0.5)  # type: ignore[attr-defined]  # all four slots have come
    again = offsets(ctx, d.claim())
    # None reserved its destination again (which would queue it behind everything reserved meanwhile):
    # the fully held ones keep their own slots (passed now: sent at once), the destination-held ones take
    # channel slots, spaced by their destination's rate between themselves (both are @busy's: 0.1 s apart).
    assert again[2] == -0.25 and again[8] == -0.3
    assert again[3] is not None and again[4] is not None
    assert min(again[3], again[4]) <= 0.05 + 1e-9 and abs(again[3] - again[4]) == 0.1
    later = free_at(ctx)
    assert later["console:@busy"] == round(buckets["console:@busy"] - 0.5, 3)


def test_unconfigured_channels_answer_404_and_configured_ones_mount(ctx: Context) -> None:
    app = create_app(ctx, background_applier=False)
    assert app.state.channels == []
    client = TestClient(app)
    for path in ("/slack/events", "/api/messages", "/twilio/sms", "/twilio/whatsapp", "/twilio/status"):
        assert client.post(path, content=b"{}").status_code == 404, path


@pytest.mark.parametrize(("section", "values", "named"), [
    ("slack", {"bot_token": "xoxb-1"}, "slack.signing_secret"),
    ("slack", {"signing_secret": "s"}, "slack.bot_token"),
    ("teams", {"app_id": "00000000-0000-0000-0000-000000000001"}, "teams.app_password"),
    ("teams", {"app_id": "a", "app_password": "p"}, "teams.tenant_id"),
    ("twilio", {"account_sid": "AC1"}, "twilio.auth_token"),
    ("twilio", {"account_sid": "AC1", "auth_token": "t"}, "twilio.public_base_url"),
    ("twilio", {"account_sid": "AC1", "auth_token": "t", "public_base_url": "https://x"}, "twilio.sms_from"),
    ("twilio", {"account_sid": "AC1", "auth_token": "t", "public_base_url": "https://x", "sms_from": "12"},
     "sms_from"),
])
def test_a_misconfigured_channel_fails_at_start_naming_the_key(section: str, values: dict[str, Any],
                                                                named: str) -> None:
    with pytest.raises(ValueError, match=named):
        load_settings(**{section: values})


def test_the_slack_channel_setting_routes_team_alerts_to_slack() -> None:
    s = load_settings(slack={"bot_token": "xoxb-1", "signing_secret": "s", "channel": "C42"})
    assert (s.staff.team.channels[0], s.staff.team.slack_channel) == ("slack", "C42")
    own = load_settings(slack={"bot_token": "xoxb-1", "signing_secret": "s", "channel": "C42"},
                        staff={"team": {"channels": ["console"], "slack_channel": "C7"}})
    assert (own.staff.team.channels, own.staff.team.slack_channel) == (["console"], "C7")


def test_serve_refuses_a_misconfigured_channel_and_staff_cli_links_accounts(tmp_path: Path, database_url: str,
                                                                           ctx: Context) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_")}
    env.update(BACKORDER_DATABASE_URL=database_url, COLUMNS="160")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backorder", *args], cwd=tmp_path, env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    bad = run("serve", "--port", "1", BACKORDER_TWILIO__ACCOUNT_SID="AC1")
    assert bad.returncode == 2 and "twilio.auth_token" in bad.stdout, bad.stdout + bad.stderr

    done = run("staff", "add", "ana", "--role", "ops", "--slack-user", "U0ANA", "--phone", "+44 7911 123456")
    assert done.returncode == 0, done.stdout + done.stderr
    for args, field in ((("--role", "Bad Role"), "--role"), (("--role", "ops", "--phone", "12345"), "--phone"),
                        (("--role", "ops", "--slack-user", "bob"), "--slack-user")):
        refused = run("staff", "add", "x", *args)
        assert refused.returncode == 2 and field in refused.stdout, refused.stdout
    taken = run("staff", "add", "bob", "--role", "ops", "--slack-user", "U0ANA")
    assert taken.returncode == 2 and "already linked to staff ana" in taken.stdout
    listed = run("staff", "list")
    assert "ana" in listed.stdout and "+447911123456" in listed.stdout
    with ctx.engine.connect() as conn:
        assert channels.staff_user(conn, ctx.settings, "slack_user", "U0ANA") == ChatUser(
            staff_id="ana", roles=frozenset({"ops"}))
    assert run("staff", "remove", "ana").returncode == 0
    assert run("staff", "remove", "ana").returncode == 2
    assert json.dumps(listed.returncode) == "0"
