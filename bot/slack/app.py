"""The Bolt app: middleware first (the door, retries dropped, who is asking), then one listener per file
(events, slash commands, buttons, modal submissions)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.channels import Kick
from bot.slack import actions, commands, events, middleware, views
from bot.slack.door import Door
from services.context import Context


def build_app(ctx: Context, kick: Kick) -> AsyncApp:
    s = ctx.settings.slack
    if s.bot_token is None:
        raise ValueError("slack.bot_token is needed to answer on Slack")
    client = AsyncWebClient(token=s.bot_token.get_secret_value(), base_url=s.api_base_url)
    bolt = AsyncApp(client=client, signing_secret=s.signing_secret.get_secret_value() if s.signing_secret else None,
                    request_verification_enabled=s.signing_secret is not None)
    middleware.register(bolt, Door(ctx, kick))
    events.register(bolt)
    commands.register(bolt)
    actions.register(bolt)
    views.register(bolt)
    return bolt
