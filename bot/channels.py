"""The chat front doors on the one FastAPI app: each channel mounts its routes when its section is configured.

A channel that is not configured mounts nothing, so its routes answer 404. A configured one that
cannot work (a missing secret, say) has already failed at start: the settings refuse it, naming the key.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from services.context import Context

Kick = Callable[[], None]  # tells the in-process worker that new outbox rows are waiting


def mount_channels(app: FastAPI, ctx: Context, kick: Kick) -> list[str]:
    """Mount every configured channel's routes; returns the channels mounted, in order."""
    s = ctx.settings
    mounted: list[str] = []
    if s.slack.enabled:
        from bot.slack import mount as mount_slack

        mount_slack(app, ctx, kick)
        mounted.append("slack")
    if s.teams.enabled:
        from bot.teams import mount as mount_teams

        mount_teams(app, ctx, kick)
        mounted.append("teams")
    if s.twilio.enabled:
        from bot.twilio import mount as mount_twilio

        mount_twilio(app, ctx, kick)
        mounted += [c for c in ("sms", "whatsapp") if getattr(s.twilio, c)]
    return mounted
