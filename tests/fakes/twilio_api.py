"""A fake Twilio REST API on 127.0.0.1 that speaks the wire format and records what it got, plus builders
of the webhooks Twilio sends us (inbound SMS and WhatsApp, status callbacks), signed like Twilio signs them.

    with FakeTwilio(account_sid="AC...", auth_token="...") as fake:
        settings: twilio.api_base_url = fake.url   (every *.twilio.com host is routed here by the sender)
        fake.messages            # [Captured]: the form of each POST .../Messages.json
        fake.contents            # [Captured]: the JSON of each POST /v1/Content
        fake.content_lists       # [Captured]: each GET /v1/Content (the account's templates, paged like Twilio)
        fake.add_content("name") # a template the account already has (made by an earlier process, say)
        fake.fail_next(1, 21610) # the next request gets Twilio's error JSON for code 21610 (HTTP 400)
        fake.fail_next(1, "429") # ... a 429 with code 20429 and Retry-After (fake.retry_after)
        fake.fail_next(1, "500") # ... a 500
        fake.fail_rate(0.3, ["500", "429", "slow", "reset"], seed=7)  # seeded random faults (fakes/faults.py)

    path, form, headers = inbound_sms(TOKEN, PUBLIC, frm="+447911123456", body="where is 1042?")
    client.post(path, data=form, headers=headers)
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.fakes._server import LoopbackServer
from tests.fakes.faults import FaultPlan, abort_with_rst

# Twilio's messages for the codes tests use (https://www.twilio.com/docs/api/errors).
ERRORS = {
    21211: "The 'To' number is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    63016: "Failed to send freeform message because you are outside the allowed window.",
    20429: "Too Many Requests",
}


@dataclass(frozen=True, slots=True)
class Captured:
    path: str
    form: dict[str, str]  # Messages.json: the form body
    json: dict[str, Any] | None  # Content API: the JSON body
    auth_ok: bool
    monotonic: float
    answered: int  # the HTTP status the fake answered (0: the connection was reset instead)
    sid: str | None = None  # the SM... or HX... it answered with (accepted requests only)
    headers: dict[str, str] = field(default_factory=dict)
    outcome: str = "ok"  # the fail_rate fault drawn for it: "ok", "500", "429", "slow" or "reset"


class FakeTwilio(LoopbackServer):
    name = "fake-twilio"

    def __init__(self, account_sid: str, auth_token: str, *, retry_after: str = "2") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._requests: list[Captured] = []
        self._queued: deque[str | int] = deque()
        self._ids = itertools.count(1)
        self._templates: list[dict[str, Any]] = []  # every Content template of the account, oldest first
        self.faults = FaultPlan()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- control and inspection -------------------------------------------------------------------
    def fail_next(self, count: int, mode: str | int) -> None:
        """The next `count` API requests fail: a Twilio error code (int), "429" or "500"."""
        with self._lock:
            self._queued.extend([mode] * count)

    def fail_rate(self, fraction: float, modes: list[str], *, seed: int = 0, slow_seconds: float | None = None) -> None:
        """From now on a `fraction` of API requests (after any fail_next) fail with one of `modes`, drawn by `seed`;
        a 429 carries Retry-After: `retry_after`."""
        self.faults.set(fraction, modes, seed=seed, slow_seconds=slow_seconds, retry_after=self.retry_after)

    @property
    def requests(self) -> list[Captured]:
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[Captured]:
        """Messages.json requests the fake accepted (201)."""
        return [r for r in self.requests if r.path.endswith("/Messages.json") and r.answered == 201]

    @property
    def contents(self) -> list[Captured]:
        return [r for r in self.requests if r.path == "/v1/Content" and r.answered == 201]

    @property
    def content_lists(self) -> list[Captured]:
        return [r for r in self.requests if r.path == "/v1/Content" and r.json is None and r.answered == 200]

    def add_content(self, friendly_name: str, types: dict[str, Any] | None = None) -> str:
        """A template the account has already; returns its ContentSid."""
        sid = f"HX{next(self._ids):032x}"
        with self._lock:
            self._templates.append(self._content_json(sid, {"friendly_name": friendly_name, "language": "en",
                                                            "types": types or {"twilio/text": {"body": "{{1}}"}}}))
        return sid

    # -- the API ---------------------------------------------------------------------------------
    def _auth_ok(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return secrets.compare_digest(request.headers.get("Authorization", ""), f"Basic {expected}")

    def _take(self, request: web.Request, form: dict[str, str], body: dict[str, Any] | None,
              ok_status: int, sid: str | None = None) -> tuple[int, str | int | None]:
        auth_ok = self._auth_ok(request)
        with self._lock:
            mode = self._queued.popleft() if auth_ok and self._queued else None
            fault = self.faults.draw() if auth_ok and mode is None else "ok"
            if fault != "ok":
                mode = fault
            status = 401 if not auth_ok else ok_status if mode in (None, "slow") else 429 if mode in ("429", 20429) \
                else 500 if mode == "500" else 0 if mode == "reset" else 400
            self._requests.append(Captured(request.path, form, body, auth_ok, time.monotonic(), status,
                                           sid if status == ok_status else None, dict(request.headers), fault))
        return status, mode

    async def _stall(self, request: web.Request, mode: str | int | None) -> None:
        """A drawn "slow" answers late (the request is carried out), a "reset" never answers."""
        if mode == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
        elif mode == "reset":
            abort_with_rst(request)
            raise asyncio.CancelledError  # nothing can be written on an aborted transport

    def _error(self, status: int, mode: str | int | None) -> web.Response:
        if status == 401:
            code, text = 20003, "Authenticate"
        elif status == 500:
            return web.Response(status=500, text="Internal Server Error")
        else:
            code = 20429 if status == 429 else int(mode or 0)
            text = ERRORS.get(code, f"Error {code}")
        headers = {"Retry-After": self.retry_after} if status == 429 else {}
        return web.json_response({"code": code, "message": text, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                                  "status": status}, status=status, headers=headers)

    async def _messages(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        sid = f"SM{next(self._ids):032x}"
        status, mode = self._take(request, form, None, 201, sid)
        await self._stall(request, mode)
        if status != 201:
            return self._error(status, mode)
        now = format_datetime(datetime.now(UTC), usegmt=True)
        body = form.get("Body", "")
        return web.json_response({
            "account_sid": request.match_info["sid"], "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"), "num_media": "0",
            "num_segments": "1" if len(body) <= 160 else str(-(-len(body) // 153)), "price": None,
            "price_unit": "USD", "sid": sid, "status": "queued", "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{request.match_info['sid']}/Messages/{sid}/Media.json"},
            "to": form.get("To"), "uri": f"/2010-04-01/Accounts/{request.match_info['sid']}/Messages/{sid}.json",
        }, status=201)

    async def _content(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._take(request, {}, None, 400)
            return web.json_response({"code": 20001, "message": "Invalid JSON", "status": 400}, status=400)
        sid = f"HX{next(self._ids):032x}"
        status, mode = self._take(request, {}, body, 201, sid)
        await self._stall(request, mode)
        if status != 201:
            return self._error(status, mode)
        made = self._content_json(sid, body)
        with self._lock:
            self._templates.append(made)
        return web.json_response(made, status=201)

    async def _content_list(self, request: web.Request) -> web.Response:
        """GET /v1/Content: Twilio's page shape, `meta.next_page_url` an absolute content.twilio.com URL."""
        status, mode = self._take(request, dict(request.query), None, 200)
        await self._stall(request, mode)
        if status != 200:
            return self._error(status, mode)
        try:
            size = min(max(int(request.query.get("PageSize", "50")), 1), 1000)
            page = max(int(request.query.get("Page", "0")), 0)
        except ValueError:
            return web.json_response({"code": 20001, "message": "Invalid paging parameter", "status": 400},
                                     status=400)
        start = int(request.query.get("PageToken", "PT0").removeprefix("PT") or 0)
        with self._lock:
            listed = self._templates[start:start + size]
            more = start + size < len(self._templates)
        base = "https://content.twilio.com/v1/Content"
        this = f"{base}?PageSize={size}&Page={page}" + (f"&PageToken=PT{start}" if start else "")
        return web.json_response({"contents": listed, "meta": {
            "page": page, "page_size": size, "first_page_url": f"{base}?PageSize={size}&Page=0",
            "previous_page_url": None if page == 0 else f"{base}?PageSize={size}&Page={page - 1}"
                                                        f"&PageToken=PT{max(start - size, 0)}",
            "url": this, "next_page_url": f"{base}?PageSize={size}&Page={page + 1}&PageToken=PT{start + size}"
            if more else None, "key": "contents"}})

    def _content_json(self, sid: str, body: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        return {
            "sid": sid, "account_sid": self.account_sid, "friendly_name": body.get("friendly_name"),
            "language": body.get("language"), "variables": body.get("variables") or {}, "types": body.get("types"),
            "date_created": now, "date_updated": now, "url": f"https://content.twilio.com/v1/Content/{sid}",
            "links": {"approval_create": f"https://content.twilio.com/v1/Content/{sid}/ApprovalRequests/whatsapp",
                      "approval_fetch": f"https://content.twilio.com/v1/Content/{sid}/ApprovalRequests"},
        }

    # -- lifecycle -------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._messages)
        app.router.add_post("/v1/Content", self._content)
        app.router.add_get("/v1/Content", self._content_list)
        return app


# -- webhooks as Twilio sends them ------------------------------------------------------------------
_sids = itertools.count(1)


def new_sid(prefix: str = "SM") -> str:
    return f"{prefix}{next(_sids):032x}"


def signed(auth_token: str, public_base_url: str, path: str, form: dict[str, str]) -> dict[str, str]:
    """The headers of Twilio's POST: the signature over the public URL and every form parameter."""
    signature = RequestValidator(auth_token).compute_signature(public_base_url + path, form)
    return {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": new_sid("")}


def inbound_sms(auth_token: str, public_base_url: str, *, frm: str, body: str, to: str = "+15005550006",
                account_sid: str = "AC" + "0" * 32, sid: str | None = None,
                extra: dict[str, str] | None = None) -> tuple[str, dict[str, str], dict[str, str]]:
    sid = sid or new_sid()
    form = {"ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
            "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": body,
            "FromCountry": "GB", "To": to, "MessagingServiceSid": "", "ToZip": "", "NumSegments": "1",
            "MessageSid": sid, "AccountSid": account_sid, "From": frm, "ApiVersion": "2010-04-01", **(extra or {})}
    return "/twilio/sms", form, signed(auth_token, public_base_url, "/twilio/sms", form)


def inbound_whatsapp(auth_token: str, public_base_url: str, *, frm: str, body: str, to: str = "+14155238886",
                     account_sid: str = "AC" + "0" * 32, sid: str | None = None, profile_name: str = "Ada",
                     button_payload: str | None = None,
                     button_text: str | None = None) -> tuple[str, dict[str, str], dict[str, str]]:
    sid = sid or new_sid()
    form = {"SmsMessageSid": sid, "NumMedia": "0", "ProfileName": profile_name, "MessageType": "text",
            "SmsSid": sid, "WaId": frm.lstrip("+"), "SmsStatus": "received", "Body": body,
            "To": f"whatsapp:{to}", "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid,
            "AccountSid": account_sid, "From": f"whatsapp:{frm}", "ApiVersion": "2010-04-01"}
    if button_payload is not None:
        form.update(MessageType="button", ButtonPayload=button_payload, ButtonText=button_text or body)
    return "/twilio/whatsapp", form, signed(auth_token, public_base_url, "/twilio/whatsapp", form)


def status_callback(auth_token: str, public_base_url: str, *, sid: str, status: str, to: str,
                    error_code: str | None = None, frm: str = "+15005550006", account_sid: str = "AC" + "0" * 32,
                    channel: str = "sms") -> tuple[str, dict[str, str], dict[str, str]]:
    prefix = "whatsapp:" if channel == "whatsapp" else ""
    form = {"SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": prefix + to, "MessageSid": sid,
            "AccountSid": account_sid, "From": prefix + frm, "ApiVersion": "2010-04-01"}
    if error_code is not None:
        form["ErrorCode"] = error_code
    if channel == "whatsapp":
        form["ChannelPrefix"] = "whatsapp"
    return "/twilio/status", form, signed(auth_token, public_base_url, "/twilio/status", form)
