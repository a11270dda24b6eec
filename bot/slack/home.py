"""The App Home view: the user's view of open backorders and tasks, as Block Kit, texts from templates.

A staff member linked to a warehouse (`backorder staff add … --warehouse`) sees that warehouse's
backorders, everyone else all of them; the tasks shown are those of their roles (services.chat_staff
TASKS_OF_ROLE: procurement reviews for procurement, inventory checks for the warehouse manager, hand-offs
for customer service; ops and admin see every task). Each task they may close (chat_staff.may_close) gets a
"Mark done" button. A Slack account linked to no staff member sees only how to get linked, unless
[staff] unlinked_read lets it read (every task, no buttons).
"""

from __future__ import annotations

from typing import Any

from notifiers.slack_blocks import HEADER_MAX, SECTION_MAX, button, clip, escape, mrkdwn, plain
from prompts import render
from services import reads
from services.chat import ChatUser
from services.chat_staff import ACTING_ROLES, TASKS_OF_ROLE, may_close
from services.context import Context

TOP = 10  # lines and tasks shown; the rest is counted
MAX_BLOCKS = 100  # Slack's limit for a Home tab view


def their_tasks(tasks: list[dict[str, Any]], roles: frozenset[str]) -> list[dict[str, Any]]:
    kinds = {TASKS_OF_ROLE[r] for r in roles if r in TASKS_OF_ROLE}
    if not kinds or roles & ACTING_ROLES:
        return tasks
    return [tk for tk in tasks if tk["kind"] in kinds]


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
        tasks = their_tasks(reads.list_tasks(conn, "open"), user.roles)
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
    closable = [tk for tk in tasks[:TOP] if may_close(user.roles, tk["kind"])]
    if closable:
        label = render("slack/en/home_task_done.txt.j2")
        blocks += [{"type": "section", "text": mrkdwn(clip(escape(f"#{tk['id']} {tk['title']}"), 300), 300),
                    "accessory": button("complete_task", label, str(tk["id"]))} for tk in closable]
    blocks.append({"type": "context", "elements": [mrkdwn(escape(render("slack/en/home_footer.txt.j2", **facts)),
                                                           300)]})
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}
