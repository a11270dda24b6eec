"""Slack front door: Events API, interactivity and slash commands on POST /slack/events (slack-bolt AsyncApp).

Bolt verifies the signing secret (a missing, wrong, tampered or older-than-5-minutes signature gets 401),
acks at once and runs the listeners after the ack, so the 3-second limit holds however slow an answer is.
A body over 256 KiB gets 413 before Bolt reads it: Slack's own payloads are far smaller, and Bolt would
otherwise hold any size in memory to check its signature. With [slack] app_token set, Socket Mode runs
beside it for workspaces without a public URL.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler

from bot.bodies import bounded_body, replayable
from bot.channels import Kick
from bot.slack.app import build_app
from bot.slack.socket_mode import attach_socket_mode
from services.context import Context

EVENTS_PATH = "/slack/events"
MAX_BODY = 256 * 1024


def mount(app: FastAPI, ctx: Context, kick: Kick) -> None:
    s = ctx.settings.slack
    bolt = build_app(ctx, kick)
    if s.signing_secret is not None:  # without it no HTTP request could be trusted: Socket Mode only
        handler = AsyncSlackRequestHandler(bolt)

        @app.post(EVENTS_PATH, include_in_schema=False)
        async def slack_events(request: Request) -> Response:
            body = await bounded_body(request, MAX_BODY)
            return await handler.handle(replayable(request, body))

    if s.app_token is not None:
        attach_socket_mode(app, bolt, s.app_token.get_secret_value())
