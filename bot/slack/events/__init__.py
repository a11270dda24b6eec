"""Event listeners; EVENTS is what the manifest's bot_events must subscribe to (tests check both ways)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.events import app_home_opened, app_mention, message

# Events API type listened to -> the manifest's bot_events entry that delivers it.
EVENTS = {app_mention.EVENT: "app_mention", message.EVENT: "message.im", app_home_opened.EVENT: "app_home_opened"}


def register(app: AsyncApp) -> None:
    app_mention.register(app)
    message.register(app)
    app_home_opened.register(app)
