"""Microsoft Teams front door: POST /api/messages, through the Microsoft 365 Agents SDK (Bot Framework protocol).

The JWT check is this route's alone (the REST API keeps its own bearer token): the SDK's validator runs
on the Authorization header before the adapter sees the activity. In production the activity must then
name our tenant, and its serviceUrl (where the reply, with our bot token, goes) must be the one Microsoft
signed into the token and one of Microsoft's service hosts: a valid token replayed with another
serviceUrl must not make us post our token elsewhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core.http import HttpResponse
from microsoft_agents.hosting.fastapi import CloudAdapter, start_agent_process
from pydantic import ValidationError

from bot.bodies import bounded_body, refuse_declared, replayable
from bot.teams.agent import build_agent
from notifiers.teams_auth import auth_configuration, authorize, connections, reraise, same_service_url, service_hosts
from services.context import Context

MAX_BODY = 256 * 1024  # activities are a few KiB, an Adaptive Card invoke included

__all__ = ["mount"]

log = logging.getLogger(__name__)


def tenants_of(body: dict[str, Any]) -> list[str]:
    """Every tenant id the activity names (Teams puts it in channelData and in the conversation)."""
    found = [((body.get("channelData") or {}).get("tenant") or {}).get("id"),
             (body.get("conversation") or {}).get("tenantId")]
    return [str(t) for t in found if t]


def _refused(status: int, error: str) -> Response:
    return JSONResponse({"error": error}, status_code=status)


def mount(app: FastAPI, ctx: Context, kick: Callable[[], None]) -> None:
    settings = ctx.settings.teams
    config = auth_configuration(settings)
    manager = connections(settings)
    adapter = CloudAdapter(connection_manager=manager, host_validator=service_hosts(settings))
    adapter.on_turn_error = reraise
    agent = build_agent(ctx, manager)
    production = not settings.anonymous
    own_tenant = (settings.tenant_id or "").lower()

    def production_refusal(body: dict[str, Any], claimed_service_url: str | None) -> Response | None:
        tenants = tenants_of(body)
        if not tenants:
            return _refused(403, "channelData.tenant.id: missing (this bot answers its own tenant only)")
        if any(t.lower() != own_tenant for t in tenants):
            return _refused(403, "channelData.tenant.id: not this bot's tenant")
        if not same_service_url(claimed_service_url, body.get("serviceUrl")):
            return _refused(401, "serviceUrl: not the service URL the token was issued for")
        return None

    @app.post("/api/messages", include_in_schema=False)
    async def teams_messages(request: Request) -> Response:
        refuse_declared(request, MAX_BODY)  # before the token check: no work for a body we will not read
        claims = await authorize(config, request.headers.get("Authorization"))
        if isinstance(claims, HttpResponse):
            return JSONResponse(claims.body, status_code=claims.status_code,
                                headers={"WWW-Authenticate": "Bearer"} if claims.status_code == 401 else None)
        raw = await bounded_body(request, MAX_BODY)
        request = replayable(request, raw)
        request.state.claims_identity = claims
        try:
            body = json.loads(raw)
            Activity.model_validate(body)
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "body"
            return _refused(400, f"{where}: {exc.errors()[0]['msg']}")
        except ValueError:
            return _refused(400, "body: not JSON")
        if not isinstance(body, dict):
            return _refused(400, "body: not an activity object")
        if production:
            refused = production_refusal(body, claims.get_claim_value("serviceurl"))
            if refused is not None:
                return refused
        try:
            response = await start_agent_process(request, agent, adapter)
        except Exception:
            # Teams redelivers an activity it got no 2xx for; the turn left it answerable again (bot.teams.agent).
            log.exception("teams: the turn of activity %s failed", body.get("id"))
            return _refused(500, "the turn failed; a redelivery is answered afresh")
        kick()  # an answer may have planned notices (a task closed, a hand-off): wake the worker
        return response if response is not None else Response(status_code=202)
