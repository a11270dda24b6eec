"""The App Home view: the user's view of open backorders and tasks, as Block Kit, texts from templates.

A staff member linked to a warehouse (`backorder staff add … --warehouse`) sees that warehouse's
backorders, everyone else all of them; the tasks shown are those of their roles (each task's owner role,
[tasks] owner_roles: procurement reviews for procurement, inventory checks for the warehouse manager, hand-offs
for customer service; ops and admin see every task). Each task they may work (chat_staff.may_close) gets a
"Mark done" button, and under it "Take" (while nobody has taken it) and "Reassign" (docs/tasks.md). A Slack
account linked to no staff member sees only how to get linked, unless
[staff] unlinked_read lets it read (every task, no buttons).
"""

from __future__ import annotations

from typing import Any

from backorder.config import DEFAULT_TASK_OWNERS
from notifiers.slack_blocks import HEADER_MAX, SECTION_MAX, button, clip, escape, mrkdwn, plain
from prompts import render
from services import reads
from services.chat import ChatUser
from services.chat_staff import ACTING_ROLES, may_close
from services.context import Context

TOP = 10  # lines and tasks shown; the rest is counted
TASK_ROLES = frozenset(DEFAULT_TASK_OWNERS.values())  # roles that work some kind of task
MAX_BLOCKS = 100  # Slack's limit for a Home tab view


def their_tasks(tasks: list[dict[str, Any]], roles: frozenset[str]) -> list[dict[str, Any]]:
    """The tasks of their roles (each task's owner role, [tasks] owner_roles); everything for ops, admin and
    anyone whose roles work no task."""
    mine = [tk for tk in tasks if may_close(roles, tk["kind"], tk.get("owner_role"))]
    works = TASK_ROLES | {tk.get("owner_role") for tk in tasks}
    if roles & ACTING_ROLES or not roles & works:
        return tasks
    return mine


def unlinked_view(user_id: str) -> dict[str, Any]:
    text = render("slack/en/home_unlinked.md.j2", account=user_id)
    return {"type": "home", "blocks": [
        {"type": "header", "text": plain(render("slack/en/home_title.txt.j2"), HEADER_MAX)},
        {"type": "section", "text": mrkdwn(escape(text), SECTION_MAX)}]}


def home_view(ctx: Context, user: ChatUser) -> dict[str, Any]:
    if not user.linked and not ctx.settings.staff.unlinked_read:
        return unlinked_view((user.staff_id or "").partition(":")[2])
    with ctx.engine.connect() as conn:
        lines = reads.list_backorders(conn, reads.BackorderFilter(warehouse_id=user.warehouse_id, limit=100_000),
                                      ctx.today())
        tasks = their_tasks(reads.list_tasks(conn, "open", now=ctx.now()), user.roles)
    facts = {"warehouse_id": user.warehouse_id, "lines": lines[:TOP], "count": len(lines),
             "units": sum(r["qty_waiting"] for r in lines),
             "value": round(sum(r["value"] for r in lines), 2), "tasks": tasks[:TOP], "tasks_count": len(tasks),
             "now": ctx.now().strftime("%Y-%m-%d %H:%M UTC")}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(render("slack/en/home_title.txt.j2", **facts), HEADER_MAX)},
        {"type": "section", "text": mrkdwn(escape(render("slack/en/home_backorders.md.j2", **facts)), SECTION_MAX)},
        {"type": "divider"},
        {"type": "section", "text": mrkdwn(escape(render("slack/en/home_tasks.md.j2", **facts)), SECTION_MAX)},
    ]
    closable = [tk for tk in tasks[:TOP] if may_close(user.roles, tk["kind"], tk.get("owner_role"))]
    if closable:
        label = render("slack/en/home_task_done.txt.j2")
        take, reassign = render("slack/en/home_task_take.txt.j2"), render("slack/en/home_task_reassign.txt.j2")
        for tk in closable:  # Mark done beside the task; Take (while nobody has it) and Reassign under it
            blocks.append({"type": "section", "text": mrkdwn(clip(escape(f"#{tk['id']} {tk['title']}"), 300), 300),
                           "accessory": button("complete_task", label, str(tk["id"]))})
            more = [] if tk.get("owner") else [button("task_take", take, str(tk["id"]))]
            blocks.append({"type": "actions", "elements": [*more, button("task_reassign", reassign, str(tk["id"]))]})
    blocks.append({"type": "context", "elements": [mrkdwn(escape(render("slack/en/home_footer.txt.j2", **facts)),
                                                           300)]})
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}
