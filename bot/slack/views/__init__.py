"""Modal views (view_submission listeners by callback_id); CALLBACK_IDS lists every modal the app opens."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.views import draft_edit

CALLBACK_IDS = (draft_edit.CALLBACK_ID,)


def register(app: AsyncApp) -> None:
    draft_edit.register(app)
