"""X-Twilio-Signature: HMAC-SHA1 (auth token) over the URL Twilio called and the sorted form parameters."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from starlette.datastructures import FormData
from twilio.request_validator import RequestValidator

from bot.bodies import bounded_body, refuse_declared

# Twilio's webhooks are a few kilobytes (an SMS body is at most 1,600 characters); anything far larger is
# not Twilio, and it must not be read into memory before the signature says who sent it.
MAX_BODY = 64 * 1024
FORM = "application/x-www-form-urlencoded"


async def signed_form(request: Request, public_base_url: str, validator: RequestValidator) -> dict[str, str]:
    """The form Twilio posted, once its signature is checked; 403 (Twilio's convention) otherwise.

    The URL is the configured public one plus the path and query we were called at, never request.url:
    behind a proxy or a tunnel the URL we see is not the one Twilio signed.
    """
    refuse_declared(request, MAX_BODY)
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise HTTPException(403, "missing X-Twilio-Signature")
    content_type = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if content_type != FORM:
        raise HTTPException(415, f"Content-Type: Twilio posts {FORM}, not {content_type or 'nothing'!r}")
    raw = await bounded_body(request, MAX_BODY)
    form = FormData(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    url = public_base_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not validator.validate(url, form, signature):  # FormData's getlist covers repeated keys
        raise HTTPException(403, "X-Twilio-Signature does not match this request")
    return {key: value for key, value in form.items() if isinstance(value, str)}
