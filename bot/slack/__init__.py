"""Slack front door: Events API, interactivity and slash commands on POST /slack/events (slack-bolt AsyncApp).

Bolt verifies the signing secret (a missing, wrong, tampered or older-than-5-minutes signature gets 401),
acks at once and runs the listeners after the ack, so the 3-second limit holds however slow an answer is.
With [slack] app_token set, Socket Mode runs beside it for workspaces without a public URL.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler

from bot.slack.app import Kick, build_app
from bot.slack.socket_mode import attach_socket_mode
from services.context import Context

EVENTS_PATH = "/slack/events"


def mount(app: FastAPI, ctx: Context, kick: Kick) -> None:
    s = ctx.settings.slack
    bolt = build_app(ctx, kick)
    if s.signing_secret is not None:  # without it no HTTP request could be trusted: Socket Mode only
        handler = AsyncSlackRequestHandler(bolt)

        @app.post(EVENTS_PATH, include_in_schema=False)
        async def slack_events(request: Request) -> Response:
            return await handler.handle(request)

    if s.app_token is not None:
        attach_socket_mode(app, bolt, s.app_token.get_secret_value())
