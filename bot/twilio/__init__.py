"""SMS and WhatsApp front doors (Twilio): POST /twilio/sms, /twilio/whatsapp and /twilio/status.

Twilio is answered at once with empty TwiML; answers go out through the outbox like every other
message (rate limits, retries, delivery status), so a slow answer never makes Twilio retry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from bot.twilio.inbound import BadForm, answer
from bot.twilio.signature import signed_form
from services.context import Context
from services.delivery import record_status

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

Handler = Callable[[Request], Awaitable[Response]]


def twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="text/xml")


def mount(app: FastAPI, ctx: Context, kick: Callable[[], None]) -> None:
    s = ctx.settings.twilio
    if s.auth_token is None or not s.public_base_url:  # the settings refuse this already; say so if bypassed
        raise ValueError("twilio.auth_token and twilio.public_base_url are needed to check Twilio's signatures")
    validator = RequestValidator(s.auth_token.get_secret_value())
    base = s.public_base_url

    def inbound(channel: str) -> Handler:
        async def receive(request: Request) -> Response:
            form = await signed_form(request, base, validator)
            try:
                queued = await run_in_threadpool(answer, ctx, channel, form)
            except BadForm as exc:
                raise HTTPException(400, str(exc)) from exc
            if queued:
                kick()
            return twiml()

        return receive

    async def status(request: Request) -> Response:
        form = await signed_form(request, base, validator)
        missing = [k for k in ("MessageSid", "MessageStatus") if not form.get(k)]
        if missing:
            raise HTTPException(400, f"{missing[0]}: missing from the status callback")
        try:
            outcome = await run_in_threadpool(record_status, ctx, form["MessageSid"], form["MessageStatus"],
                                              form.get("ErrorCode"))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        if outcome.startswith("dead:"):
            kick()  # a fallback row may be waiting
        return Response(status_code=200)

    for channel in ("sms", "whatsapp"):
        if getattr(s, channel):
            app.add_api_route(f"/twilio/{channel}", inbound(channel), methods=["POST"], include_in_schema=False,
                              name=f"twilio_{channel}")
    app.add_api_route("/twilio/status", status, methods=["POST"], include_in_schema=False, name="twilio_status")
