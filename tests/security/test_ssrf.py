"""SSRF through the webhook channel, end to end on both stores: events in over HTTP, webhook rows in the outbox,
the worker's own senders (notifiers/senders/registry.py, as `backorder worker` builds them) sending them, and
what became of each row.

What it proves: a public-looking host name that resolves to loopback, private, link-local (the cloud metadata
address) or an IPv4-mapped IPv6 address is refused when the connection is made, no connection is even tried
and the row is dead-lettered `url_not_allowed` naming the address; a 302 to an internal address is not
followed (`redirect_refused`); http:// and private addresses are refused when the worker starts, naming the
setting (`webhook.endpoints[1].url: ...`). The URL checks themselves are unit-tested in
tests/unit/test_signing_urls.py, the sender alone in tests/integration/test_senders.py.

Name resolution is faked below the product's resolver, at socket.getaddrinfo, for names under .example.test
only: the path from the URL to the dialled address is the product's own. Every connect() the process makes
while a row is sent is recorded, and refused unless it is to loopback, so even a broken guard sends nothing to
a private or metadata address.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select

from backorder.config import load_settings
from bot.api import create_app
from services.context import Context
from services.worker import drain_outbox, make_dispatcher
from store import tables as t
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.security_kit import KETTLES, ev

SECRET = "whsec-ssrf"
HOST = "hooks.example.test"  # never a real name (RFC 2606): only the fake resolver below answers it
ORDER = ev("o1", "order.placed", {"order_id": "SO-1", "customer_id": "C1", "promised_date": "2026-03-05",
                                  "lines": [{"line_id": "1", "sku": "A", "qty": 2, "unit_price": 40}]})
EVENTS = [*KETTLES, ev("c1", "customer.upserted", {"customer_id": "C1", "name": "Ada", "region": "north"}), ORDER]


class Network:
    """A fake DNS for *.example.test and a record of every connect(): loopback goes through, anything else is
    refused here, before a packet leaves."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.dialled: list[Any] = []

    def install(self, mp: pytest.MonkeyPatch) -> None:
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

        def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                        flags: int = 0) -> list[Any]:
            name = host.decode() if isinstance(host, bytes) else host
            if isinstance(name, str) and name.rstrip(".").endswith(".example.test"):
                if name.rstrip(".") not in self.answers:
                    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
                ip = ipaddress.ip_address(self.answers[name.rstrip(".")])
                fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
                addr: tuple[Any, ...] = (str(ip), int(port or 0)) + ((0, 0) if ip.version == 6 else ())
                return [(fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", addr)]
            return real_getaddrinfo(host, port, family, type, proto, flags)

        def connect(sock: socket.socket, address: Any) -> None:
            self.dialled.append(address)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                ip = ipaddress.ip_address(address[0])
                mapped = getattr(ip, "ipv4_mapped", None)
                if not (ip.is_loopback and mapped is None):
                    raise ConnectionRefusedError(f"test network guard: {address[0]} is not loopback")
            real_connect(sock, address)

        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        mp.setattr(socket.socket, "connect", connect)


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    net = Network()
    net.install(monkeypatch)
    return net


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as rx:
        yield rx


def hooked(ctx: Context, url: str, **webhook: Any) -> Context:
    settings = load_settings(database_url=ctx.settings.database_url,
                             webhook={"url": url, "secret": SECRET, "allow_http": True, **webhook},
                             notify={"rules": {"ops_digest": {"enabled": False}}, "max_attempts": 1})
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


def post_and_send(ctx: Context) -> list[Any]:
    """The events through POST /events, the outbox through the worker; the webhook rows after."""
    client = TestClient(create_app(ctx, background_applier=False))
    assert client.post("/events", json=EVENTS).status_code == 200
    asyncio.run(drain_outbox(ctx, Console(file=io.StringIO())))  # the customers' messages go to the console
    with ctx.engine.connect() as conn:
        rows = list(conn.execute(select(t.outbox).where(t.outbox.c.channel == "webhook").order_by(t.outbox.c.id)))
    assert rows, "the events planned no webhook message"
    return rows


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"),
    ("10.0.0.7", "private"),
    ("169.254.169.254", "link-local"),  # the cloud metadata service
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4 embedded in IPv6"),
    ("::ffff:169.254.169.254", "IPv4 embedded in IPv6"),
])
def test_a_public_name_resolving_inside_is_refused_at_connect_time(
        ctx: Context, receiver: WebhookReceiver, network: Network, address: str, why: str) -> None:
    network.answers[HOST] = address
    rows = post_and_send(hooked(ctx, f"http://{HOST}:{receiver.port}/webhook"))
    print(f"{address}: {len(rows)} webhook row(s) -> {sorted({r.status for r in rows})}, {rows[0].error}")
    assert {(r.status, r.error_reason) for r in rows} == {("dead", "url_not_allowed")}
    spelled = {address, str(ipaddress.ip_address(address))}  # ::ffff:127.0.0.1 prints as ::ffff:7f00:1 on 3.11
    assert all(any(s in r.error for s in spelled) and why in r.error for r in rows), rows[0].error
    assert receiver.requests == [] and network.dialled == []  # refused before any connection was tried


def test_the_same_name_is_delivered_when_private_addresses_are_allowed(
        ctx: Context, receiver: WebhookReceiver, network: Network) -> None:
    # The control: the fake resolver and the receiver work, so the refusals above are the guard's.
    network.answers[HOST] = "127.0.0.1"
    rows = post_and_send(hooked(ctx, f"http://{HOST}:{receiver.port}/webhook", allow_private=True))
    assert {r.status for r in rows} == {"delivered"}
    assert len(receiver.requests) == len(rows) and all(r.signature_ok for r in receiver.requests)
    assert {r.headers["Host"] for r in receiver.requests} == {f"{HOST}:{receiver.port}"}
    assert {a[0] for a in network.dialled} == {"127.0.0.1"}


def test_a_redirect_to_an_internal_address_is_not_followed(ctx: Context, network: Network) -> None:
    with WebhookReceiver(secret=SECRET) as endpoint, WebhookReceiver(secret=SECRET) as internal:
        inside = f"http://127.0.0.1:{internal.port}/admin/flush"
        endpoint.redirect_to(inside)
        endpoint.fail_rate(1.0, "redirect")
        # allow_private: the endpoint itself is on loopback here; only the redirect is under test.
        rows = post_and_send(hooked(ctx, endpoint.url, allow_private=True))
        print(f"redirect: {len(rows)} row(s) -> {rows[0].error_reason}: {rows[0].error}")
        assert {(r.status, r.error_reason) for r in rows} == {("dead", "redirect_refused")}
        assert all(inside in r.error for r in rows)
        assert len(endpoint.requests) == len(rows)  # one attempt each
        assert internal.requests == []  # never followed
        assert {a[1] for a in network.dialled} == {endpoint.port}


@pytest.mark.parametrize(("webhook", "named"), [
    ({"url": "https://hooks.example.com/a", "endpoints": [{"url": "https://ok.example.com/b"},
                                                          {"url": "http://erp.example.com/c"}]},
     "webhook.endpoints[1].url: scheme must be https"),
    ({"url": "https://169.254.169.254/latest/meta-data/"}, "webhook.url: address 169.254.169.254 is link-local"),
    ({"endpoints": [{"url": "https://[::ffff:10.0.0.1]/hook"}]}, "webhook.endpoints[0].url: address"),
    ({"endpoints": [{"url": "https://localhost./hook"}]}, "webhook.endpoints[0].url: host 'localhost.' is loopback"),
])
def test_the_worker_refuses_to_start_with_a_refused_url_naming_the_setting(
        ctx: Context, webhook: dict[str, Any], named: str) -> None:
    settings = load_settings(database_url=ctx.settings.database_url, webhook=webhook)
    with pytest.raises(ValueError) as err:
        make_dispatcher(Context(engine=ctx.engine, settings=settings, clock=ctx.clock))  # `backorder worker`'s start
    assert str(err.value).startswith(named), str(err.value)
