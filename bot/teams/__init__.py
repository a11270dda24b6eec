"""Microsoft Teams front door: POST /api/messages, through the Microsoft 365 Agents SDK (Bot Framework protocol).

The JWT check is this route's alone (the REST API keeps its own bearer token): the SDK's validator runs
on the Authorization header before the adapter sees the activity. In production a single-tenant bot
also refuses activities from another tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core.http import HttpResponse
from microsoft_agents.hosting.fastapi import CloudAdapter, start_agent_process
from pydantic import ValidationError

from bot.teams.agent import build_agent
from notifiers.teams_auth import auth_configuration, authorize, connections, reraise
from services.context import Context

__all__ = ["mount"]


def _tenant_of(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    tenant = ((body.get("channelData") or {}).get("tenant") or {}).get("id")
    return tenant or (body.get("conversation") or {}).get("tenantId")


def mount(app: FastAPI, ctx: Context, kick: Callable[[], None]) -> None:
    settings = ctx.settings.teams
    config = auth_configuration(settings)
    manager = connections(settings)
    adapter = CloudAdapter(connection_manager=manager)
    adapter.on_turn_error = reraise
    agent = build_agent(ctx, manager)
    own_tenant = settings.tenant_id if not settings.anonymous else None

    @app.post("/api/messages", include_in_schema=False)
    async def teams_messages(request: Request) -> Response:
        claims = await authorize(config, request.headers.get("Authorization"))
        if isinstance(claims, HttpResponse):
            return JSONResponse(claims.body, status_code=claims.status_code,
                                headers={"WWW-Authenticate": "Bearer"} if claims.status_code == 401 else None)
        request.state.claims_identity = claims
        try:
            body = await request.json()
            Activity.model_validate(body)
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "body"
            return JSONResponse({"error": f"{where}: {exc.errors()[0]['msg']}"}, status_code=400)
        except ValueError:
            return JSONResponse({"error": "body: not JSON"}, status_code=400)
        if own_tenant is not None:
            tenant = _tenant_of(body)
            if tenant is not None and tenant.lower() != own_tenant.lower():
                return JSONResponse({"error": "channelData.tenant.id: not this bot's tenant"}, status_code=403)
        response = await start_agent_process(request, agent, adapter)
        kick()  # an answer may have planned notices (a task closed, a hand-off): wake the worker
        return response if response is not None else Response(status_code=202)
