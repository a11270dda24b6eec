"""X-Twilio-Signature: HMAC-SHA1 (auth token) over the URL Twilio called and the sorted form parameters."""

from __future__ import annotations

from fastapi import HTTPException, Request
from twilio.request_validator import RequestValidator


async def signed_form(request: Request, public_base_url: str, validator: RequestValidator) -> dict[str, str]:
    """The form Twilio posted, once its signature is checked; 403 (Twilio's convention) otherwise.

    The URL is the configured public one plus the path and query we were called at, never request.url:
    behind a proxy or a tunnel the URL we see is not the one Twilio signed.
    """
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise HTTPException(403, "missing X-Twilio-Signature")
    form = await request.form()
    url = public_base_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not validator.validate(url, form, signature):  # FormData's getlist covers repeated keys
        raise HTTPException(403, "X-Twilio-Signature does not match this request")
    return {key: value for key, value in form.items() if isinstance(value, str)}
