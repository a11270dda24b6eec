"""Tasks with owners and deadlines (services/tasks.py, services/task_escalation.py) on SQLite and PostgreSQL:
due times from the per-kind SLA, take / finish / reassign with their role checks and errors, and the
escalation of an overdue task, once, to the lead of its role on the lead's channel."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from conftest import Clock
from sqlalchemy import select

from backorder.config import load_settings
from services import tasks
from services.channels import add_staff
from services.chat import ChatUser, act
from services.context import Context
from store import tables as t
from store.db import unit_of_work


def task_context(ctx: Context, **overrides: Any) -> Context:
    """The test context with [tasks] leads for procurement (lee) and e-mail configured (the leads' channel)."""
    settings = load_settings(database_url=ctx.settings.database_url,
                             email={"host": "127.0.0.1", "port": 2525, "starttls": False},
                             tasks={"leads": {"procurement": "lee"}, "sla_hours": {"handoff": 2}},
                             **overrides)
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


@pytest.fixture
def tctx(ctx: Context) -> Context:
    made = task_context(ctx)
    with unit_of_work(made.engine) as conn:
        add_staff(conn, "bob", ["procurement"], made.now(), email="bob@example.com", slack_user="U0BOB")
        add_staff(conn, "pat", ["procurement"], made.now(), email="pat@example.com")
        add_staff(conn, "cs-ann", ["customer_service"], made.now(), email="ann@example.com")
        add_staff(conn, "ops-carol", ["ops"], made.now())
        add_staff(conn, "lee", ["procurement", "lead"], made.now(), email="lee@example.com", phone="+447700900123")
    return made


def opened(ctx: Context, kind: str = "procurement_review", sku: str | None = "KTL-200",
           title: str = "Expedite KTL-200") -> int:
    with unit_of_work(ctx.engine) as conn:
        task_id = tasks.open_task(conn, ctx, kind, sku=sku, title=title, detail={"waiting_units": 4},
                                  cause=f"test:{kind}:{sku}")
    assert task_id is not None
    return task_id


def row(ctx: Context, task_id: int) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(t.tasks).where(t.tasks.c.id == task_id)).mappings().one())


def audit(ctx: Context, task_id: int) -> list[tuple[str, str]]:
    a = t.audit_log
    with ctx.engine.connect() as conn:
        return [(r.action, r.actor) for r in conn.execute(
            select(a.c.action, a.c.actor).where(a.c.entity == "task", a.c.entity_id == str(task_id)).order_by(a.c.id))]


def events(ctx: Context, etype: str) -> list[dict[str, Any]]:
    d = t.domain_events
    with ctx.engine.connect() as conn:
        return [r.data for r in conn.execute(select(d.c.data).where(d.c.type == etype).order_by(d.c.id))]


def overdue_notices(ctx: Context) -> list[Any]:
    o = t.outbox
    with ctx.engine.connect() as conn:
        return conn.execute(select(o).where(o.c.kind == "task_overdue").order_by(o.c.id)).all()


def test_a_task_gets_its_owner_role_and_due_time_from_its_kinds_sla(tctx: Context) -> None:
    review = row(tctx, opened(tctx))
    assert review["owner_role"] == "procurement" and review["owner"] is None
    assert review["due_at"] == tctx.now() + timedelta(hours=24)
    handoff = row(tctx, opened(tctx, "handoff", sku=None, title="Call Ada"))
    assert handoff["owner_role"] == "customer_service"
    assert handoff["due_at"] == tctx.now() + timedelta(hours=2)  # [tasks.sla_hours] handoff = 2
    count = row(tctx, opened(tctx, "inventory_check"))
    assert (count["owner_role"], count["due_at"]) == ("warehouse_manager", tctx.now() + timedelta(hours=8))
    [event] = [e for e in events(tctx, "task_opened") if e["task_id"] == review["id"]]
    assert event["owner_role"] == "procurement" and event["due_at"] == review["due_at"].isoformat()


def test_take_finish_and_the_audit_and_events_they_leave(tctx: Context, clock: Clock) -> None:
    task_id = opened(tctx)
    taken = tasks.take(tctx, task_id, "bob")
    assert (taken["owner"], taken["changed"], taken["taken_at"]) == ("bob", True, tctx.now().isoformat())
    again = tasks.take(tctx, task_id, "bob")  # the second press of Take: one outcome
    assert again["changed"] is False and again["owner"] == "bob"
    clock.now += timedelta(hours=1)
    done = tasks.finish(tctx, task_id, "bob", via="slack")
    assert (done["status"], done["outcome"], done["closed_by"]) == ("done", "done", "bob")
    assert done["closed_at"] == tctx.now().isoformat() and done["overdue"] is False
    with pytest.raises(tasks.TaskClosed, match=rf"Task #{task_id} is already done by bob \(2026-03-02 10:00 UTC\)"):
        tasks.finish(tctx, task_id, "pat")
    assert audit(tctx, task_id) == [("opened", "workflow"), ("taken", "api:bob"), ("done", "slack:bob")]
    assert [e["task_id"] for e in events(tctx, "task_taken")] == [task_id]
    [closed] = events(tctx, "task_closed")
    assert (closed["by"], closed["outcome"], closed["via"]) == ("bob", "done", "slack")
    # Once finished, the SKU may get a new task of the kind (the one-open-task index holds).
    assert opened(tctx) != task_id


def test_errors_say_what_is_wrong(tctx: Context) -> None:
    task_id = opened(tctx)
    with pytest.raises(tasks.TaskNotFound, match="Task #999 not found"):
        tasks.take(tctx, 999, "bob")
    with pytest.raises(tasks.UnknownStaff, match="No staff member nobody") as unknown:
        tasks.take(tctx, task_id, "nobody")
    assert unknown.value.field == "staff_id"
    with pytest.raises(tasks.NotAllowed, match="Only admin or ops or procurement may take procurement review tasks"):
        tasks.take(tctx, task_id, "cs-ann")
    with pytest.raises(tasks.NotAllowed, match="may finish procurement review"):
        tasks.finish(tctx, task_id, "cs-ann")
    tasks.take(tctx, task_id, "bob")
    with pytest.raises(tasks.TaskTaken, match="already taken by bob; reassign it instead") as taken:
        tasks.take(tctx, task_id, "pat")
    assert taken.value.task["owner"] == "bob"
    with pytest.raises(tasks.UnknownStaff) as unknown_to:
        tasks.reassign(tctx, task_id, "bob", "ghost")
    assert unknown_to.value.field == "to"
    with pytest.raises(tasks.UnknownStaff) as unknown_by:
        tasks.reassign(tctx, task_id, "ghost", "pat")
    assert unknown_by.value.field == "by"
    with pytest.raises(tasks.CannotOwn, match="cs-ann cannot work procurement review tasks"):
        tasks.reassign(tctx, task_id, "bob", "cs-ann")
    with pytest.raises(tasks.NotAllowed, match="may reassign"):
        tasks.reassign(tctx, task_id, "cs-ann", "pat")
    assert row(tctx, task_id)["owner"] == "bob"
    assert audit(tctx, task_id) == [("opened", "workflow"), ("taken", "api:bob")]  # refusals leave no trace


def test_reassign_moves_the_owner_and_ops_may_work_any_task(tctx: Context) -> None:
    task_id = opened(tctx)
    moved = tasks.reassign(tctx, task_id, "ops-carol", "pat")  # not taken yet: it goes straight to pat
    assert (moved["owner"], moved["changed"]) == ("pat", True)
    assert tasks.reassign(tctx, task_id, "bob", "pat")["changed"] is False  # pressed twice: one outcome
    back = tasks.reassign(tctx, task_id, "pat", "ops-carol")
    assert back["owner"] == "ops-carol"
    assert [(e["by"], e["owner"]) for e in events(tctx, "task_reassigned")] == [("ops-carol", "pat"),
                                                                                ("pat", "ops-carol")]
    handoff = opened(tctx, "handoff", sku=None, title="Call Ada")
    assert tasks.finish(tctx, handoff, "ops-carol")["closed_by"] == "ops-carol"


def test_an_overdue_task_is_escalated_once_to_its_roles_lead_on_their_channel(tctx: Context, clock: Clock) -> None:
    task_id = opened(tctx)
    tasks.take(tctx, task_id, "bob")
    clock.now += timedelta(hours=23, minutes=59)
    assert tasks.escalate_due(tctx) == 0 and overdue_notices(tctx) == []  # not due yet
    clock.now += timedelta(minutes=1)
    assert tasks.escalate_due(tctx) == 1
    [notice] = overdue_notices(tctx)
    # lee leads procurement; lead_channels is slack, teams, email, sms: only e-mail is configured here.
    assert (notice.channel, notice.recipient, notice.role) == ("email", "lee@example.com", "procurement")
    assert notice.subject == f"Overdue: task #{task_id} Expedite KTL-200"
    assert "bob took it" in notice.body and "You hear of it as the lead of procurement." in notice.body
    assert row(tctx, task_id)["escalated_at"] == tctx.now()
    clock.now += timedelta(hours=5)
    assert tasks.escalate_due(tctx) == 0 and len(overdue_notices(tctx)) == 1  # once
    [escalated] = events(tctx, "task_escalated")
    assert (escalated["task_id"], escalated["lead"]) == (task_id, "lee")
    assert audit(tctx, task_id)[-1] == ("escalated", "escalation")
    listed = tasks.get_task(tctx, task_id)
    assert listed["overdue"] is True and listed["escalated_at"] is not None


def test_a_finished_task_is_never_escalated_and_a_role_without_a_lead_goes_to_the_staff_lead(
        tctx: Context, clock: Clock) -> None:
    done = opened(tctx)
    tasks.finish(tctx, done, "bob")
    handoff = opened(tctx, "handoff", sku=None, title="Call Ada")  # customer_service has no [tasks] lead
    clock.now += timedelta(hours=25)
    assert tasks.escalate_due(tctx) == 1
    [notice] = overdue_notices(tctx)
    # [staff] lead is unset: the team's contact (console by default) hears it.
    assert (notice.channel, notice.recipient, notice.role) == ("console", "@lead", "lead")
    assert f"Task #{handoff} (handoff) is overdue: Call Ada." in notice.body and "nobody has taken it" in notice.body


def test_a_lead_on_slack_is_told_in_their_dm(ctx: Context, clock: Clock) -> None:
    made = task_context(ctx, slack={"bot_token": "xoxb-1", "signing_secret": "s", "api_base_url": "http://127.0.0.1:9/"})
    with unit_of_work(made.engine) as conn:
        add_staff(conn, "lee", ["procurement"], made.now(), slack_user="U0LEE", email="lee@example.com")
    task_id = opened(made)
    clock.now += timedelta(days=2)
    assert tasks.escalate_due(made) == 1
    [notice] = overdue_notices(made)
    assert (notice.channel, notice.recipient) == ("slack", "U0LEE")
    assert notice.fallback == [["email", "lee@example.com"]]
    assert [a["id"] for a in notice.payload["actions"]] == ["task_take", "task_finish", "task_reassign"]
    assert {"label": "Owner", "value": "procurement"} in notice.payload["fields"]
    assert notice.payload["fields"][0] == {"label": "Task", "value": f"#{task_id}"}


def test_the_task_list_shows_owner_due_time_and_overdue(tctx: Context, clock: Clock) -> None:
    from services.reads import list_tasks

    first = opened(tctx)
    second = opened(tctx, "handoff", sku=None, title="Call Ada")
    tasks.take(tctx, first, "bob")
    clock.now += timedelta(hours=3)
    with tctx.engine.connect() as conn:
        listed = {tk["id"]: tk for tk in list_tasks(conn, "open", now=tctx.now())}
    assert (listed[first]["owner"], listed[first]["owner_role"], listed[first]["overdue"]) == ("bob", "procurement",
                                                                                               False)
    assert listed[second]["owner"] is None and listed[second]["overdue"] is True
    assert listed[second]["due_at"] == (clock.now - timedelta(hours=1)).isoformat()


def test_mark_done_in_chat_goes_through_finish(tctx: Context) -> None:
    task_id = opened(tctx)
    refused = act(tctx, ChatUser(staff_id="cs-ann", roles=frozenset({"customer_service"})), "complete_task",
                  str(task_id), "slack")
    assert refused.reply == "Only admin or ops or procurement may close procurement review tasks."
    done = act(tctx, ChatUser(staff_id="bob", roles=frozenset({"procurement"})), "complete_task", str(task_id),
               "slack")
    assert done.reply == f"Task #{task_id} (Expedite KTL-200) is done."
    assert (row(tctx, task_id)["closed_by"], row(tctx, task_id)["outcome"]) == ("bob", "done")
    assert audit(tctx, task_id)[-1] == ("done", "chat:bob")


def test_two_people_taking_at_once_make_one_owner(tctx: Context) -> None:
    task_id = opened(tctx)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def take(staff_id: str) -> None:
        barrier.wait()
        try:
            tasks.take(tctx, task_id, staff_id)
            outcomes[staff_id] = "took"
        except tasks.TaskTaken:
            outcomes[staff_id] = "refused"

    threads = [threading.Thread(target=take, args=(who,)) for who in ("bob", "pat")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes.values()) == ["refused", "took"]
    winner = next(who for who, what in outcomes.items() if what == "took")
    assert row(tctx, task_id)["owner"] == winner
    assert [a for a in audit(tctx, task_id) if a[0] == "taken"] == [("taken", f"api:{winner}")]
