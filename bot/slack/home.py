"""The App Home view: the user's view of open backorders and tasks, as Block Kit, texts from templates.

A staff member linked to a warehouse (`backorder staff add … --warehouse`) sees that warehouse's
backorders, everyone else all of them; the tasks shown are those of their roles (procurement reviews for
procurement, inventory checks for the warehouse manager, hand-offs for customer service; ops, admin and
unlinked users see every task). Someone who may act (ops, admin) also gets a "Mark done" button on each task.
"""

from __future__ import annotations

from typing import Any

from notifiers.slack_blocks import HEADER_MAX, SECTION_MAX, button, clip, escape, mrkdwn, plain
from prompts import render
from services import reads
from services.chat import ChatUser
from services.chat_staff import ACTING_ROLES
from services.context import Context

TOP = 10  # lines and tasks shown; the rest is counted
MAX_BLOCKS = 100  # Slack's limit for a Home tab view


# Which task kinds a role works on; roles not named here (ops, admin, none) see every task.
TASKS_OF_ROLE = {"procurement": "procurement_review", "warehouse_manager": "inventory_check",
                 "customer_service": "handoff"}


def their_tasks(tasks: list[dict[str, Any]], roles: frozenset[str]) -> list[dict[str, Any]]:
    kinds = {TASKS_OF_ROLE[r] for r in roles if r in TASKS_OF_ROLE}
    if not kinds or roles & ACTING_ROLES:
        return tasks
    return [tk for tk in tasks if tk["kind"] in kinds]


def home_view(ctx: Context, user: ChatUser) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        lines = reads.list_backorders(conn, reads.BackorderFilter(warehouse_id=user.warehouse_id, limit=100_000),
                                      ctx.today())
        tasks = their_tasks(reads.list_tasks(conn, "open"), user.roles)
    facts = {"warehouse_id": user.warehouse_id, "lines": lines[:TOP], "count": len(lines),
             "units": sum(r["qty_waiting"] for r in lines),
             "value": round(sum(r["value"] for r in lines), 2), "tasks": tasks[:TOP], "tasks_count": len(tasks),
             "may_act": bool(user.roles & ACTING_ROLES), "now": ctx.now().strftime("%Y-%m-%d %H:%M UTC")}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(render("slack/en/home_title.txt.j2", **facts), HEADER_MAX)},
        {"type": "section", "text": mrkdwn(escape(render("slack/en/home_backorders.md.j2", **facts)), SECTION_MAX)},
        {"type": "divider"},
        {"type": "section", "text": mrkdwn(escape(render("slack/en/home_tasks.md.j2", **facts)), SECTION_MAX)},
    ]
    if facts["may_act"]:
        label = render("slack/en/home_task_done.txt.j2")
        blocks += [{"type": "section", "text": mrkdwn(clip(escape(f"#{tk['id']} {tk['title']}"), 300), 300),
                    "accessory": button("complete_task", label, str(tk["id"]))} for tk in tasks[:TOP]]
    blocks.append({"type": "context", "elements": [mrkdwn(escape(render("slack/en/home_footer.txt.j2", **facts)),
                                                           300)]})
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}
