"""Which channels are configured, and their senders.

A channel is configured by its section: [email] host, [webhook] url or endpoints, [slack] bot_token,
[teams] app_id (or anonymous), [twilio] account_sid with sms_from / whatsapp_from. The engine routes
around a channel that is not, like around any unusable one. Chat senders read the store (opt-outs,
conversation references, threads, the WhatsApp window), so they are given the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.console import Console
from sqlalchemy import Engine

from backorder.config import Settings
from notifiers.senders.base import Sender
from notifiers.senders.console import ConsoleSender
from notifiers.senders.email import EmailSender
from notifiers.senders.webhook import WebhookSender
from notifiers.urls import check_webhook_url


def _webhook_key(settings: Settings, index: int) -> str:
    # all_endpoints() puts [webhook] url first when set; name each entry the way the file spells it.
    if settings.webhook.url:
        return "webhook.url" if index == 0 else f"webhook.endpoints[{index - 1}].url"
    return f"webhook.endpoints[{index}].url"


def validate_webhook_endpoints(settings: Settings) -> None:
    """ValueError naming the first endpoint URL the policy refuses (e.g. ``webhook.endpoints[1].url``)."""
    w = settings.webhook
    for i, endpoint in enumerate(w.all_endpoints()):
        try:
            check_webhook_url(endpoint.url, allow_http=w.allow_http, allow_private=w.allow_private)
        except ValueError as exc:
            raise ValueError(f"{_webhook_key(settings, i)}: {exc}") from None


def configured_channels(settings: Settings) -> set[str]:
    """The channels `build_senders` would build, without building (or validating) anything."""
    channels = {"console"}
    if settings.email.host:
        channels.add("email")
    if settings.webhook.all_endpoints():
        channels.add("webhook")
    if settings.slack.bot_token is not None:
        channels.add("slack")
    if settings.teams.enabled:
        channels.add("teams")
    if settings.twilio.sms:
        channels.add("sms")
    if settings.twilio.whatsapp:
        channels.add("whatsapp")
    return channels


def channel_rates(settings: Settings) -> dict[str, float]:
    """Whole-channel send limits: Twilio's per-sender MPS, unless [notify] rate_per_channel names the channel."""
    rates = {}
    if settings.twilio.sms:
        rates["sms"] = settings.twilio.sms_mps
    if settings.twilio.whatsapp:
        rates["whatsapp"] = settings.twilio.whatsapp_mps
    return {**rates, **settings.notify.rate_per_channel}


def build_senders(settings: Settings, *, console: Console | None = None, engine: Engine | None = None,
                  clock: Callable[[], datetime] | None = None) -> dict[str, Sender]:
    """One sender per configured channel; ValueError naming the key when a setting is unusable."""
    senders: dict[str, Sender] = {"console": ConsoleSender(console)}
    if settings.email.host:
        senders["email"] = EmailSender(settings.email)
    if settings.webhook.all_endpoints():
        validate_webhook_endpoints(settings)
        senders["webhook"] = WebhookSender(settings.webhook)
    chat = configured_channels(settings) & {"slack", "teams", "sms", "whatsapp"}
    if chat and engine is None:
        raise ValueError(f"the {', '.join(sorted(chat))} sender(s) need the store's engine")
    if "slack" in chat:
        from notifiers.senders.slack import SlackSender

        senders["slack"] = SlackSender(settings.slack, engine, **({"clock": clock} if clock else {}))
    if "teams" in chat:
        from notifiers.senders.teams import TeamsSender

        senders["teams"] = TeamsSender(settings.teams, engine, max_chars=settings.drafts.max_chars)
    for channel in ("sms", "whatsapp"):
        if channel in chat:
            from notifiers.senders.twilio import TwilioSender

            # WhatsApp's 24-hour window is measured on the worker's clock, the one inbound messages are dated by.
            senders[channel] = TwilioSender(channel, settings.twilio, engine, **({"clock": clock} if clock else {}))
    return senders
