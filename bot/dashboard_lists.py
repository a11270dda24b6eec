"""GET /dashboard/list/{name}: the rows behind a dashboard number, as an HTML table (or JSON with
?format=json). Filters are the figure's own (services.ops_lists), so counts and rows agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from bot import dashboard_view
from bot.dashboard_auth import COOKIE_PATH, Sessions
from services import ops_figures, ops_lists
from services.context import Context

Name = Literal["backorders", "tasks", "incidents", "notifications", "resolved", "opened", "dead_letters"]
Status = Literal["held", "pending", "sending", "sent", "delivered", "failed", "dead", "cancelled", "digested"]


def _bad(message: str) -> Response:
    return JSONResponse({"detail": message}, 422)


def mount(app: FastAPI, ctx: Context, sessions: Sessions, refused: Callable[[Request], Response]) -> None:
    @app.get(f"{COOKIE_PATH}/list/{{name}}")
    def dashboard_list(
        request: Request, name: Name, by: str | None = None, key: Annotated[str | None, Query(max_length=200)] = None,
        bucket: str | None = None, po: Annotated[str | None, Query(max_length=100)] = None,
        status: Status | None = None, overdue: bool = False, day: date | None = None,
        format: Literal["html", "json"] = "html",
    ) -> Response:
        if sessions.viewer(request) is None:
            return refused(request)
        if by is not None and by not in ops_figures.GROUPINGS:
            return _bad(f"by: {by!r} is not one of {', '.join(ops_figures.GROUPINGS)}")
        if bucket is not None and bucket not in dict(ops_figures.BUCKETS):
            return _bad(f"bucket: {bucket!r} is not one of {', '.join(dict(ops_figures.BUCKETS))}")
        if name in ("resolved", "opened") and day is None:
            return _bad("day: give the day, e.g. ?day=2026-03-02")
        now = ctx.now()
        with ctx.engine.connect() as conn:
            if name == "backorders":
                listing = ops_lists.backorders(conn, now.date(), by=by, key=key, bucket=bucket, po=po)
            elif name == "tasks":
                listing = ops_lists.tasks(conn, now, overdue=overdue)
            elif name == "incidents":
                listing = ops_lists.incidents(conn)
            elif name == "notifications":
                listing = ops_lists.notifications(conn, now, status=status, days=ctx.settings.dashboard.kpi_days)
            elif name == "resolved":
                assert day is not None
                listing = ops_lists.resolved(conn, day)
            elif name == "opened":
                assert day is not None
                listing = ops_lists.opened(conn, day)
            else:
                listing = ops_lists.dead_letters(conn)
        if format == "json":
            return JSONResponse({"title": listing.title, "total": listing.total, "columns": listing.columns,
                                 "rows": listing.rows}, headers={"Cache-Control": "no-store"})
        return dashboard_view.page("dashboard_list.html.j2", listing=listing, limit=ops_lists.LIMIT)
