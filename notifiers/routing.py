"""Recipients and routing: which channels, in which order, reach whom."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from notifiers.preferences import Prefs

# Where each channel finds its address in a customer's contacts.
CONTACT_FIELDS = {"email": ("email",), "sms": ("phone",), "whatsapp": ("whatsapp", "phone")}
STAFF_FIELDS = {"email": "email", "sms": "phone", "whatsapp": "whatsapp", "slack": "slack_channel",
                "teams": "teams_conversation"}


@dataclass(frozen=True, slots=True)
class Route:
    channel: str
    address: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The first route(s) to send on now, and for `first` routing the fallbacks after them."""

    send: tuple[Route, ...]
    fallback: tuple[Route, ...]
    unusable: tuple[tuple[str, str], ...]  # (channel, why) for each chosen channel left out


def customer_address(channel: str, contacts: Mapping[str, Any], customer_id: str) -> str | None:
    if channel == "console":
        return customer_id
    for name in CONTACT_FIELDS.get(channel, ()):
        if contacts.get(name):
            return str(contacts[name])
    return None


def staff_address(channel: str, contact: Mapping[str, Any], role: str) -> str | None:
    if channel == "console":
        return f"@{role}"
    name = STAFF_FIELDS.get(channel)
    value = contact.get(name) if name else None
    return str(value) if value else None


def route(channels: Collection[str], routing: str, address_of: Mapping[str, str | None],
          configured: Collection[str], opt_out: Collection[str] = ()) -> Plan:
    """Keep the channels that can be used now, in order; say why each other one cannot."""
    usable: list[Route] = []
    unusable: list[tuple[str, str]] = []
    for channel in channels:
        address = address_of.get(channel)
        if channel in opt_out:
            unusable.append((channel, "opted_out"))
        elif channel not in configured:
            unusable.append((channel, "channel_not_configured"))
        elif not address:
            unusable.append((channel, "no_address"))
        else:
            usable.append(Route(channel, address))
    if routing == "all":
        return Plan(tuple(usable), (), tuple(unusable))
    return Plan(tuple(usable[:1]), tuple(usable[1:]), tuple(unusable))


def customer_plan(prefs: Prefs, contacts: Mapping[str, Any], customer_id: str,
                  configured: Collection[str]) -> Plan:
    addresses = {c: customer_address(c, contacts, customer_id) for c in prefs.channels}
    return route(prefs.channels, prefs.routing, addresses, configured, prefs.opt_out)
