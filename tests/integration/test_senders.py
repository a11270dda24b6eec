"""The channel senders against real servers on 127.0.0.1 (aiosmtpd, aiohttp.web): what arrives, and
how every failure is classified (RetryableError vs PermanentError and the reason string)."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import SecretStr
from rich.console import Console

from backorder.config import EmailSettings, Settings, WebhookEndpoint, WebhookSettings
from notifiers.senders.base import Outgoing, PermanentError, RetryableError, SendError, Sent
from notifiers.senders.console import ConsoleSender
from notifiers.senders.email import EmailSender, message_id_for
from notifiers.senders.registry import build_senders, configured_channels
from notifiers.senders.webhook import USER_AGENT, WebhookSender
from notifiers.signing import verify
from tests.fakes.smtp_server import FakeSMTP
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.senders import failure_of, send_once

T = TypeVar("T")
SECRET = "whsec-test"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def email_msg(recipient: str = "ada@example.com", *, key: str = "k-1", id: int = 1, **kw: Any) -> Outgoing:
    fields: dict[str, Any] = {
        "kind": "backorder_created",
        "body": "Your order SO-1 is on backorder; we expect it on 2026-03-02.",
        "subject": "SO-1 is on backorder",
    }
    fields.update(kw)
    return Outgoing(id=id, channel="email", recipient=recipient, idempotency_key=key, **fields)


def hook_msg(url: str, *, key: str = "dk-1", id: int = 1, payload: dict[str, Any] | None = None) -> Outgoing:
    return Outgoing(
        id=id,
        channel="webhook",
        recipient=url,
        kind="decision.allocated",
        body="",
        idempotency_key=key,
        payload=payload if payload is not None else {"order_id": "SO-1", "lines": [{"sku": "A", "qty": 2}]},
    )


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---------------------------------------------------------------- console


def test_console_prints_a_panel_and_counts_as_delivered() -> None:
    buf = io.StringIO()
    sender = ConsoleSender(Console(file=buf, width=100, force_terminal=False, color_system=None))
    msg = email_msg("ops", id=7, body="Stock [red]arrives[/] Monday")
    sent = run(send_once(sender, msg))
    out = buf.getvalue()
    assert sent == Sent(provider_id="console-7", delivered=True)
    assert sender.channel == "console"
    for text in ("backorder_created", "ops", "SO-1 is on backorder", "Stock [red]arrives[/] Monday"):
        assert text in out  # the body is printed as written, never read as rich markup


# ---------------------------------------------------------------- e-mail


def smtp_settings(smtp: FakeSMTP, **kw: Any) -> EmailSettings:
    fields: dict[str, Any] = {
        "host": smtp.host,
        "port": smtp.port,
        "starttls": False,
        "from_address": "Backorders <backorders@shop.example>",
        "timeout_seconds": 3.0,
    }
    fields.update(kw)
    return EmailSettings(**fields)


@pytest.fixture
def smtp() -> Iterator[FakeSMTP]:
    with FakeSMTP() as server:
        yield server


def test_email_plain(smtp: FakeSMTP) -> None:
    sent = run(send_once(EmailSender(smtp_settings(smtp)), email_msg()))
    [mail] = smtp.messages
    m = mail.message
    assert mail.mail_from == "backorders@shop.example"
    assert mail.rcpt_tos == ("ada@example.com",)
    assert m["From"] == "Backorders <backorders@shop.example>"
    assert m["To"] == "ada@example.com"
    assert m["Subject"] == "SO-1 is on backorder"
    assert m["X-Backorder-Idempotency-Key"] == "k-1"
    assert m.get_content_type() == "text/plain"
    assert "we expect it on 2026-03-02" in m.get_content()
    assert sent.provider_id == m["Message-ID"] == message_id_for("k-1", "backorders@shop.example")
    assert m["Message-ID"].endswith("@shop.example>")
    assert not mail.tls and mail.authenticated_as is None


def test_email_without_subject_gets_a_fallback(smtp: FakeSMTP) -> None:
    run(send_once(EmailSender(smtp_settings(smtp)), email_msg(subject=None)))
    assert smtp.messages[0].message["Subject"]


def test_email_html_goes_as_an_alternative(smtp: FakeSMTP) -> None:
    run(send_once(EmailSender(smtp_settings(smtp)), email_msg(html="<p>Your order <b>SO-1</b></p>")))
    m = smtp.messages[0].message
    assert m.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content() for part in m.iter_parts()}
    assert "we expect it on 2026-03-02" in parts["text/plain"]
    assert "<b>SO-1</b>" in parts["text/html"]


def test_email_message_id_is_stable_per_idempotency_key(smtp: FakeSMTP) -> None:
    async def go() -> list[Sent]:
        sender = EmailSender(smtp_settings(smtp))
        try:
            return [
                await sender.send(email_msg(key="k-retry", id=1)),
                await sender.send(email_msg(key="k-retry", id=1)),  # the retry of the same message
                await sender.send(email_msg(key="k-other", id=2)),
            ]
        finally:
            await sender.aclose()

    first, retry, other = run(go())
    ids = [m.message["Message-ID"] for m in smtp.messages]
    assert ids[0] == ids[1] == first.provider_id == retry.provider_id
    assert ids[2] == other.provider_id != ids[0]


def test_email_reuses_one_connection_and_survives_an_idle_hangup() -> None:
    with FakeSMTP(idle_timeout=0.3) as smtp:

        async def go() -> None:
            sender = EmailSender(smtp_settings(smtp))
            try:
                for i in range(3):
                    await sender.send(email_msg(key=f"k-{i}", id=i))
                assert smtp.connections == 1
                await asyncio.sleep(0.6)  # the server hangs up on the pooled connection
                await sender.send(email_msg(key="k-late", id=9))
            finally:
                await sender.aclose()

        run(go())
        assert len(smtp.messages) == 4
        assert smtp.connections == 2


def test_email_starttls_and_auth() -> None:
    with FakeSMTP(tls=True, auth=("mailer", "pw")) as smtp:
        settings = smtp_settings(
            smtp, starttls=True, ca_file=smtp.ca_pem_path, username="mailer", password=SecretStr("pw")
        )
        run(send_once(EmailSender(settings), email_msg()))
        [mail] = smtp.messages
        assert mail.tls
        assert mail.authenticated_as == "mailer"


def test_email_wrong_password_is_permanent() -> None:
    # A 535 is the operator's configuration, not this message's: permanent, so the engine can fall
    # back to another channel instead of retrying for hours.
    with FakeSMTP(tls=True, auth=("mailer", "pw")) as smtp:
        settings = smtp_settings(
            smtp, starttls=True, ca_file=smtp.ca_pem_path, username="mailer", password=SecretStr("nope")
        )
        err = run(failure_of(EmailSender(settings), email_msg()))
        assert isinstance(err, PermanentError)
        assert err.reason == "auth_failed"
        assert "535" in err.detail
        assert smtp.messages == []


def test_email_untrusted_certificate_is_permanent() -> None:
    with FakeSMTP(tls=True) as smtp:
        err = run(failure_of(EmailSender(smtp_settings(smtp, starttls=True)), email_msg()))  # no ca_file
        assert isinstance(err, PermanentError)
        assert err.reason == "tls_failed"


def test_email_implicit_tls() -> None:
    with FakeSMTP(implicit_tls=True) as smtp:
        settings = smtp_settings(smtp, use_tls=True, ca_file=smtp.ca_pem_path)
        run(send_once(EmailSender(settings), email_msg()))
        assert smtp.messages[0].tls


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        (550, PermanentError, "invalid_address"),
        (553, PermanentError, "invalid_address"),
        (554, PermanentError, "rejected"),
        (451, RetryableError, "smtp_4xx"),
        (452, RetryableError, "smtp_4xx"),
    ],
)
def test_email_recipient_refusals(smtp: FakeSMTP, code: int, error: type[SendError], reason: str) -> None:
    smtp.fail_recipient("bad@example.com", code)
    err = run(failure_of(EmailSender(smtp_settings(smtp)), email_msg("bad@example.com")))
    assert type(err) is error
    assert err.reason == reason
    assert str(code) in err.detail


@pytest.mark.parametrize(
    ("code", "error", "reason"), [(554, PermanentError, "rejected"), (451, RetryableError, "smtp_4xx")]
)
def test_email_data_refusals(smtp: FakeSMTP, code: int, error: type[SendError], reason: str) -> None:
    smtp.fail_data(code)
    err = run(failure_of(EmailSender(smtp_settings(smtp)), email_msg()))
    assert type(err) is error
    assert err.reason == reason


def test_email_failed_recipient_does_not_spoil_the_next_send(smtp: FakeSMTP) -> None:
    smtp.fail_recipient("bad@example.com", 550)

    async def go() -> None:
        sender = EmailSender(smtp_settings(smtp))
        try:
            with pytest.raises(PermanentError):
                await sender.send(email_msg("bad@example.com", key="k-bad"))
            await sender.send(email_msg("ok@example.com", key="k-ok"))
        finally:
            await sender.aclose()

    run(go())
    assert [m.rcpt_tos for m in smtp.messages] == [("ok@example.com",)]


def test_email_header_injection_is_refused(smtp: FakeSMTP) -> None:
    err = run(failure_of(EmailSender(smtp_settings(smtp)), email_msg("ada@example.com\nBcc: all@example.com")))
    assert isinstance(err, PermanentError)
    assert err.reason == "invalid_address"
    assert smtp.messages == []


def test_email_server_down_is_retryable() -> None:
    settings = EmailSettings(host="127.0.0.1", port=free_port(), starttls=False, timeout_seconds=2.0)
    err = run(failure_of(EmailSender(settings), email_msg()))
    assert isinstance(err, RetryableError)
    assert err.reason == "connection"


def test_email_not_configured() -> None:
    err = run(failure_of(EmailSender(EmailSettings()), email_msg()))
    assert isinstance(err, PermanentError)
    assert err.reason == "channel_not_configured"


def test_email_unreadable_ca_file_fails_at_build_time(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"email\.ca_file"):
        EmailSender(EmailSettings(host="127.0.0.1", ca_file=str(tmp_path / "missing.pem")))


# ---------------------------------------------------------------- webhook


@pytest.fixture(scope="module")
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET, slow_seconds=1.0) as receiver:
        yield receiver


@pytest.fixture(autouse=True)
def _fresh_receiver(request: pytest.FixtureRequest) -> None:
    if "rx" in request.fixturenames:
        receiver: WebhookReceiver = request.getfixturevalue("rx")
        receiver.clear_failures()
        receiver.reset()


def hook_settings(url: str, *, secret: str | None = SECRET, **kw: Any) -> WebhookSettings:
    fields: dict[str, Any] = {"allow_http": True, "allow_private": True, "timeout_seconds": 2.0}
    fields.update(kw)
    return WebhookSettings(url=url, secret=SecretStr(secret) if secret else None, **fields)


def test_webhook_body_headers_and_signature(rx: WebhookReceiver) -> None:
    payload = {"order_id": "SO-1", "lines": [{"sku": "A", "qty": 2}], "amount": 12.5}
    sent = run(send_once(WebhookSender(hook_settings(rx.url)), hook_msg(rx.url, payload=payload)))
    [req] = rx.requests
    assert sent == Sent(provider_id="rx-1", delivered=True)
    assert req.method == "POST" and req.path == "/webhook"
    assert req.body == b'{"amount":12.5,"lines":[{"qty":2,"sku":"A"}],"order_id":"SO-1"}'  # compact, sorted keys
    assert req.json() == payload
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["User-Agent"] == USER_AGENT
    assert req.headers["X-Backorder-Event"] == "decision.allocated"
    assert req.headers["X-Backorder-Delivery"] == req.key == "dk-1"
    assert req.signature_ok is True
    assert verify(SECRET, req.headers["X-Backorder-Timestamp"], req.body, req.headers["X-Backorder-Signature"])


def test_webhook_secret_comes_from_the_matching_endpoint(rx: WebhookReceiver) -> None:
    other = rx.url_for("/other")
    settings = WebhookSettings(
        url=rx.url,
        secret=SecretStr("not-this-one"),
        endpoints=[WebhookEndpoint(url=other, secret=SecretStr(SECRET)), WebhookEndpoint(url=rx.url_for("/plain"))],
        allow_http=True,
        allow_private=True,
    )

    async def go() -> None:
        sender = WebhookSender(settings)
        try:
            await sender.send(hook_msg(rx.url, key="a"))
            await sender.send(hook_msg(other.replace("http://", "HTTP://"), key="b"))  # matched normalised
            await sender.send(hook_msg(rx.url_for("/plain"), key="c"))
        finally:
            await sender.aclose()

    run(go())
    by_key = {r.key: r for r in rx.requests}
    assert by_key["a"].signature_ok is False  # signed with its own (different) secret
    assert by_key["b"].signature_ok is True
    assert "X-Backorder-Signature" not in by_key["c"].headers  # no secret: unsigned


def test_webhook_enforcing_receiver_refuses_a_wrong_signature() -> None:
    with WebhookReceiver(secret=SECRET, enforce_signature=True) as receiver:
        err = run(failure_of(WebhookSender(hook_settings(receiver.url, secret="wrong")), hook_msg(receiver.url)))
    assert isinstance(err, PermanentError)
    assert err.reason == "http_401"


@pytest.mark.parametrize(
    ("mode", "error", "reason"),
    [
        ("500", RetryableError, "http_5xx"),
        ("503", RetryableError, "http_5xx"),
        ("408", RetryableError, "http_408"),
        ("429", RetryableError, "rate_limited"),
        ("slow", RetryableError, "timeout"),
        ("reset", RetryableError, "connection"),
        ("redirect", PermanentError, "redirect_refused"),
        ("404", PermanentError, "http_404"),
        ("410", PermanentError, "http_410"),
    ],
)
def test_webhook_failure_modes(rx: WebhookReceiver, mode: str, error: type[SendError], reason: str) -> None:
    rx.fail_next(1, mode)
    settings = hook_settings(rx.url, timeout_seconds=0.3)
    err = run(failure_of(WebhookSender(settings), hook_msg(rx.url)))
    assert type(err) is error, err
    assert err.reason == reason
    if mode == "429":
        assert err.retry_after == 1
    assert len(rx.requests) == 1  # one attempt: never followed a redirect, never retried by itself


def test_webhook_recovers_after_failures_on_the_same_session(rx: WebhookReceiver) -> None:
    rx.fail_next(1, "reset")
    rx.fail_next(1, "500")

    async def go() -> list[str]:
        sender = WebhookSender(hook_settings(rx.url))
        reasons: list[str] = []
        try:
            for _ in range(3):
                try:
                    await sender.send(hook_msg(rx.url, key="same"))
                    reasons.append("ok")
                except SendError as exc:
                    reasons.append(exc.reason)
        finally:
            await sender.aclose()
        return reasons

    assert run(go()) == ["connection", "http_5xx", "ok"]
    assert rx.stats()["arrivals"]["same"] == [r.monotonic for r in rx.requests]


def test_webhook_server_down_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhook"
    err = run(failure_of(WebhookSender(hook_settings(url)), hook_msg(url)))
    assert isinstance(err, RetryableError)
    assert err.reason == "connection"


def test_webhook_private_address_refused_at_send_time(rx: WebhookReceiver) -> None:
    err = run(failure_of(WebhookSender(hook_settings(rx.url, allow_private=False)), hook_msg(rx.url)))
    assert isinstance(err, PermanentError)
    assert err.reason == "url_not_allowed"
    assert "loopback" in err.detail
    assert rx.requests == []


def test_webhook_http_refused_unless_allowed(rx: WebhookReceiver) -> None:
    err = run(failure_of(WebhookSender(hook_settings(rx.url, allow_http=False)), hook_msg(rx.url)))
    assert isinstance(err, PermanentError)
    assert err.reason == "url_not_allowed"
    assert rx.requests == []


def test_webhook_unconfigured_url_is_refused_every_time(rx: WebhookReceiver) -> None:
    async def go() -> list[SendError]:
        sender = WebhookSender(hook_settings(rx.url))
        errors: list[SendError] = []
        try:
            for _ in range(2):  # the second answer comes from the per-URL cache
                with pytest.raises(PermanentError) as info:
                    await sender.send(hook_msg(rx.url_for("/elsewhere")))
                errors.append(info.value)
        finally:
            await sender.aclose()
        return errors

    first, second = run(go())
    assert first.reason == second.reason == "url_not_allowed"
    assert first.detail == second.detail and "not a configured webhook endpoint" in first.detail
    assert first is not second
    assert rx.requests == []


def test_webhook_unserialisable_payload_is_permanent(rx: WebhookReceiver) -> None:
    err = run(failure_of(WebhookSender(hook_settings(rx.url)), hook_msg(rx.url, payload={"x": object()})))
    assert isinstance(err, PermanentError)
    assert err.reason == "invalid_payload"


class StaticResolver(AbstractResolver):
    """DNS for tests: a public-looking name that resolves to loopback (a DNS-rebinding stand-in)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        ip = self.table[host]
        return [ResolveResult(hostname=host, host=ip, port=port, family=socket.AF_INET, proto=0, flags=0)]

    async def close(self) -> None:
        return None


def test_webhook_name_resolving_to_loopback_is_refused(rx: WebhookReceiver) -> None:
    url = f"http://hooks.example.test:{rx.port}/webhook"
    resolver = StaticResolver({"hooks.example.test": "127.0.0.1"})
    sender = WebhookSender(hook_settings(url, allow_private=False), resolver=resolver)
    err = run(failure_of(sender, hook_msg(url)))
    assert isinstance(err, PermanentError)
    assert err.reason == "url_not_allowed"
    assert "127.0.0.1" in err.detail
    assert rx.requests == []


def test_webhook_name_resolving_to_loopback_allowed_with_allow_private(rx: WebhookReceiver) -> None:
    url = f"http://hooks.example.test:{rx.port}/webhook"
    resolver = StaticResolver({"hooks.example.test": "127.0.0.1"})
    run(send_once(WebhookSender(hook_settings(url), resolver=resolver), hook_msg(url)))
    [req] = rx.requests
    assert req.headers["Host"] == f"hooks.example.test:{rx.port}"


def test_webhook_many_concurrent_sends_share_the_session(rx: WebhookReceiver) -> None:
    async def go() -> list[Sent]:
        sender = WebhookSender(hook_settings(rx.url, timeout_seconds=10.0))  # a loaded CI box is slow, not broken
        try:
            return await asyncio.gather(*(sender.send(hook_msg(rx.url, key=f"k{i}", id=i)) for i in range(300)))
        finally:
            await sender.aclose()

    sent = run(go())
    stats = rx.stats()
    assert len(sent) == stats["count"] == stats["unique_keys"] == 300
    assert stats["signature_failures"] == 0 and stats["duplicates_accepted"] == 0
    assert stats["max_rps_per_path"]["/webhook"] >= 1


def test_receiver_random_failures_are_seeded(rx: WebhookReceiver) -> None:
    async def outcomes() -> list[str]:
        rx.reset()
        rx.fail_rate(0.5, ["500", "429"], seed=42)
        sender = WebhookSender(hook_settings(rx.url))
        got: list[str] = []
        try:
            for i in range(20):
                try:
                    await sender.send(hook_msg(rx.url, key=f"r{i}"))
                    got.append("ok")
                except SendError as exc:
                    got.append(exc.reason)
        finally:
            await sender.aclose()
        return got

    first, second = run(outcomes()), run(outcomes())
    assert first == second
    assert {"ok", "http_5xx", "rate_limited"} <= set(first)


# ---------------------------------------------------------------- registry


def test_registry_console_only_by_default() -> None:
    settings = Settings(email=EmailSettings(), webhook=WebhookSettings())
    assert configured_channels(settings) == {"console"}
    assert set(build_senders(settings)) == {"console"}


def test_registry_builds_configured_channels() -> None:
    buf = io.StringIO()
    settings = Settings(
        email=EmailSettings(host="smtp.example.com", starttls=False),
        webhook=WebhookSettings(url="https://hooks.example.com/bo", secret=SecretStr("s")),
    )
    senders = build_senders(settings, console=Console(file=buf))
    assert configured_channels(settings) == set(senders) == {"console", "email", "webhook"}
    assert all(s.channel == name for name, s in senders.items())
    assert isinstance(senders["console"], ConsoleSender) and senders["console"].console.file is buf


@pytest.mark.parametrize(
    ("webhook", "key"),
    [
        (WebhookSettings(url="http://hooks.example.com/"), "webhook.url"),
        (
            WebhookSettings(
                url="https://hooks.example.com/",
                endpoints=[WebhookEndpoint(url="https://ok.example.com/"), WebhookEndpoint(url="https://10.0.0.5/")],
            ),
            r"webhook\.endpoints\[1\]\.url",
        ),
        (
            WebhookSettings(endpoints=[WebhookEndpoint(url="https://u:p@ok.example.com/")]),
            r"webhook\.endpoints\[0\]\.url",
        ),
    ],
)
def test_registry_refuses_bad_webhook_urls_naming_the_key(webhook: WebhookSettings, key: str) -> None:
    settings = Settings(webhook=webhook)
    assert "webhook" in configured_channels(settings)
    with pytest.raises(ValueError, match=key):
        build_senders(settings)
