"""GET /reports, /reports/{id} and /reports/{id}/chart.png: the weekly reports recorded by the scheduler.

The list and the figures are behind the API token like the rest of the API. A chart is also served to a
signed URL (HMAC of the report id and chart name with [links] secret), because Teams fetches the image of
a card itself and cannot send our token; the chart is drawn again from the stored figures.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from sqlalchemy import select

from bot.scopes import Needs
from reporting import charts
from services.context import Context
from services.weekly_report import chart_signature, stored
from store import tables as t

MAX_PK = 2**63 - 1
ReportId = Annotated[int, Path(ge=1, le=MAX_PK, description="the report's id")]


def _summary(row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "week": (row.figures or {}).get("week"),
            "period_start": row.period_start.isoformat(), "period_end": row.period_end.isoformat(),
            "created_at": row.created_at.isoformat(),
            "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None}


def mount(app: FastAPI, ctx: Context, needs: Needs) -> None:
    def signed_link(request: Request) -> bool:
        """A link the bot sent carries its own proof: then no token is asked for."""
        q, report_id = request.query_params, request.path_params.get("report_id", "")
        return str(report_id).isdigit() and _signed(ctx, int(report_id), q.get("chart", "trend"), q.get("sig"))

    @app.get("/reports", dependencies=[needs("read")])
    def list_reports(limit: Annotated[int, Query(ge=1, le=500)] = 52) -> list[dict[str, Any]]:
        """Recorded reports, newest first."""
        r = t.reports
        with ctx.engine.connect() as conn:
            rows = conn.execute(select(r).order_by(r.c.period_start.desc(), r.c.id.desc()).limit(limit)).all()
        return [_summary(x) for x in rows]

    @app.get("/reports/{report_id}", dependencies=[needs("read")])
    def get_report(report_id: ReportId) -> dict[str, Any]:
        """One report with all its figures."""
        found = stored(ctx, report_id)
        if found is None:
            raise HTTPException(404, f"no report {report_id}")
        return {"id": found["id"], "kind": found["kind"], "figures": found["figures"]}

    @app.get("/reports/{report_id}/chart.png", response_class=Response,
             responses={200: {"content": {"image/png": {}}}}, dependencies=[needs("read", allow=signed_link)])
    async def chart(report_id: ReportId,
                    name: Annotated[str, Query(alias="chart", pattern="^(trend|aging|top_skus)$")] = "trend",
                    sig: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        """A chart of a report as PNG: with a token of the read scope, or the signature of a link the bot sent."""
        del sig  # checked by signed_link before the route runs; declared here for the schema
        found = await asyncio.to_thread(stored, ctx, report_id)
        if found is None:
            raise HTTPException(404, f"no report {report_id}")
        png = await asyncio.to_thread(charts.chart, found["figures"], name)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


def _signed(ctx: Context, report_id: int, name: str, sig: str | None) -> bool:
    secret = ctx.settings.links.secret
    if not sig or secret is None:
        return False
    return secrets.compare_digest(sig.encode(), chart_signature(secret.get_secret_value(), report_id, name).encode())

