"""Which channels are configured, and their senders.

sms, whatsapp, slack and teams implement the same Sender interface in later work; until then
they are simply never configured, and the engine routes around them like any unconfigured channel.
"""

from __future__ import annotations

from rich.console import Console

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
    return channels


def build_senders(settings: Settings, *, console: Console | None = None) -> dict[str, Sender]:
    """One sender per configured channel; ValueError naming the key when a setting is unusable."""
    senders: dict[str, Sender] = {"console": ConsoleSender(console)}
    if settings.email.host:
        senders["email"] = EmailSender(settings.email)
    if settings.webhook.all_endpoints():
        validate_webhook_endpoints(settings)
        senders["webhook"] = WebhookSender(settings.webhook)
    return senders
