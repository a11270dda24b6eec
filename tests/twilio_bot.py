"""The app with Twilio pointed at a fake Twilio API on 127.0.0.1 (tests/fakes/twilio_api.py), driven as Twilio
drives it: inbound SMS and WhatsApp webhooks signed for our public URL, the outbox sent by the official client
to the fake. The Twilio tests (tests/integration/test_twilio.py) and the offers answered by SMS and WhatsApp
(test_offer_answers.py) build their bots on TwilioBot; tests/conftest.py registers the `fake` fixture.

Those modules run under @pytest.mark.wall_clock: the WhatsApp sender measures its 24-hour window against
real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Table, select

from backorder.config import load_settings
from bot.api import create_app
from services.context import Context
from services.worker import drain_outbox
from store import tables as t
from tests.fakes.twilio_api import Captured, FakeTwilio, inbound_sms, inbound_whatsapp

ACCOUNT = "AC" + "a1" * 16
TOKEN = "twilio-auth-token-test"
PUBLIC = "https://bot.example.com"
SMS_FROM, WA_FROM = "+15005550006", "+14155238886"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """The fake Twilio API of account ACCOUNT (auth token TOKEN)."""
    with FakeTwilio(ACCOUNT, TOKEN) as api:
        yield api


class TwilioBot:
    """The app with [twilio] pointed at the fake (SMS and WhatsApp numbers, 100 messages a second each; `twilio`
    adds to or overrides that table, `settings` are the other tables), its outbox and the fake behind the senders."""

    def __init__(self, ctx: Context, fake: FakeTwilio, twilio: dict[str, Any] | None = None,
                 **settings: Any) -> None:
        loaded = load_settings(
            database_url=ctx.settings.database_url,
            twilio={"account_sid": ACCOUNT, "auth_token": TOKEN, "api_base_url": fake.url, "public_base_url": PUBLIC,
                    "sms_from": SMS_FROM, "whatsapp_from": WA_FROM, "sms_mps": 100, "whatsapp_mps": 100,
                    **(twilio or {})},
            **settings,
        )
        self.ctx = Context(engine=ctx.engine, settings=loaded, clock=ctx.clock)
        self.fake = fake
        self.client = TestClient(create_app(self.ctx, background_applier=False))

    def events(self, events: list[dict[str, Any]]) -> None:
        r = self.client.post("/events", json=events)
        assert r.status_code == 200, r.text

    def post(self, built: tuple[str, dict[str, str], dict[str, str]]) -> Response:
        """POST a webhook built by tests/fakes/twilio_api.py: (path, form, headers)."""
        path, form, headers = built
        return self.client.post(path, data=form, headers=headers)

    def sms(self, frm: str, body: str, **kw: Any) -> Response:
        """An inbound SMS from `frm`; answered 200 with empty TwiML (the answer goes through the outbox)."""
        return self._answered(self.post(inbound_sms(TOKEN, PUBLIC, frm=frm, body=body, account_sid=ACCOUNT, **kw)))

    def wa(self, frm: str, body: str, **kw: Any) -> Response:
        """An inbound WhatsApp message (or quick-reply button press, with button_payload=...) from `frm`."""
        return self._answered(self.post(inbound_whatsapp(TOKEN, PUBLIC, frm=frm, body=body, account_sid=ACCOUNT,
                                                         **kw)))

    @staticmethod
    def _answered(r: Response) -> Response:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/xml") and r.text.endswith("<Response/>")
        return r

    def drain(self) -> int:
        return asyncio.run(drain_outbox(self.ctx))

    def rows(self, **where: Any) -> list[Any]:
        """Outbox rows, oldest first, where each column equals its value."""
        return self.table_rows(t.outbox, **where)

    def table_rows(self, table: Table, **where: Any) -> list[Any]:
        """The rows of `table`, oldest (lowest id) first, where each column equals its value."""
        q = select(table).order_by(table.c.id)
        for column, value in where.items():
            q = q.where(table.c[column] == value)
        with self.ctx.engine.connect() as conn:
            return list(conn.execute(q).all())

    def sent_to(self, to: str) -> list[Captured]:
        """The messages the fake got for `to`, in arrival order."""
        return [m for m in self.fake.messages if m.form["To"] == to]
