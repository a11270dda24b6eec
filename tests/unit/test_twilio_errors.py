"""Twilio error codes -> what the sender and the status callbacks do; the keywords SMS and WhatsApp share;
where the sender's requests go for a given twilio.api_base_url."""

from __future__ import annotations

import pytest

from notifiers.senders.twilio import RoutedHttpClient
from notifiers.twilio_errors import classify
from services.keywords import keyword


@pytest.mark.parametrize(("code", "status", "action", "reason"), [
    (21610, 400, "opted_out", "opted_out"),  # the recipient replied STOP: never retry
    ("21610", None, "opted_out", "opted_out"),  # status callbacks send ErrorCode as text
    (21211, 400, "invalid_number", "invalid_number"),
    (21614, 400, "invalid_number", "invalid_number"),
    (63003, None, "invalid_number", "invalid_number"),
    (30006, None, "invalid_number", "invalid_number"),  # landline or unreachable carrier
    (63016, 400, "permanent", "outside_whatsapp_window"),
    (20429, 429, "retry", "rate_limited"),
    (None, 429, "retry", "rate_limited"),
    (30001, None, "retry", "provider_busy"),  # queue overflow
    (20500, 500, "retry", "provider_busy"),
    (None, 502, "retry", "server_error"),  # a proxy's answer, no Twilio code
    (500, 500, "retry", "server_error"),  # the SDK uses the status as the code when the body has none
    (21408, 400, "permanent", "twilio_21408"),
    (30007, None, "permanent", "twilio_30007"),  # carrier filtering: sending again will not help
    ("not-a-code", 400, "permanent", "http_400"),
    (None, None, "permanent", "twilio_unknown"),
])
def test_error_classification(code: int | str | None, status: int | None, action: str, reason: str) -> None:
    verdict = classify(code, status)
    assert (verdict.action, verdict.reason, verdict.retryable) == (action, reason, action == "retry")


@pytest.mark.parametrize(("text", "expected"), [
    ("STOP", "stop"), (" stop ", "stop"), ("Stop.", "stop"), ("STOPALL", "stop"), ("unsubscribe", "stop"),
    ("Cancel", "stop"), ("END", "stop"), ("quit", "stop"), ("REVOKE", "stop"), ("optout", "stop"),
    ("parar", "stop"), ("BAJA", "stop"),
    ("START", "start"), ("unstop", "start"), ("Yes", "start"),
    ("HELP", "help"), ("info", "help"), ("ayuda", "help"),
    ("please stop sending me these", None), ("stop order 1042", None), ("where is my order?", None), ("", None),
])
def test_keywords_match_the_whole_message_only(text: str, expected: str | None) -> None:
    assert keyword(text) == expected


@pytest.mark.parametrize("url", [
    "https://content.twilio.com/v1/Content?PageSize=50",
    "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
    "https://messaging.twilio.com/v1/Services",
])
def test_with_twilios_own_api_base_every_api_keeps_its_host(url: str) -> None:
    assert RoutedHttpClient("https://api.twilio.com").route(url) == url
    assert RoutedHttpClient("https://api.twilio.com/").route(url) == url


@pytest.mark.parametrize(("url", "expected"), [
    ("https://content.twilio.com/v1/Content?PageSize=50", "http://127.0.0.1:8765/v1/Content?PageSize=50"),
    ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
     "http://127.0.0.1:8765/2010-04-01/Accounts/AC1/Messages.json"),
])
def test_with_a_local_api_base_every_twilio_host_goes_there(url: str, expected: str) -> None:
    local = RoutedHttpClient("http://127.0.0.1:8765")
    assert local.route(url) == expected
    assert local.route("https://example.com/x") == "https://example.com/x"  # not Twilio's: left alone
    # a proxy under a path keeps it in front of the API's own path
    proxied = RoutedHttpClient("https://proxy.internal/twilio/").route(url)
    assert proxied == expected.replace("http://127.0.0.1:8765", "https://proxy.internal/twilio")
