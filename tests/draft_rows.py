"""A draft, and what deciding it wrote, read back from the store as mappings: for the tests of the approval
round trips (tests/integration/test_approvals_page.py, test_teams_approvals.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, select

from services.context import Context
from store import tables as t


def draft_row(ctx: Context, draft_id: int) -> RowMapping:
    with ctx.engine.connect() as conn:
        return conn.execute(select(t.drafts).where(t.drafts.c.id == draft_id)).mappings().one()


def customer_rows(ctx: Context, draft_id: int) -> list[RowMapping]:
    """The outbox rows the draft queued for the customer (an approval queues them), oldest first."""
    o = t.outbox
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(o).where(o.c.cause == f"draft:{draft_id}", o.c.audience == "customer")
                                 .order_by(o.c.id)).mappings())


def audit_rows(ctx: Context, draft_id: int, action: str | None = None) -> list[RowMapping]:
    """The draft's audit entries (only `action`'s, when given), oldest first."""
    a = t.audit_log
    where: list[Any] = [a.c.entity == "draft", a.c.entity_id == str(draft_id)]
    if action is not None:
        where.append(a.c.action == action)
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(a).where(*where).order_by(a.c.id)).mappings())
