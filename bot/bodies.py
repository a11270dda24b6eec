"""Request bodies of the chat front doors, read at most `limit` bytes before anything parses or checks them.

The vendors' payloads are a few KiB; without a bound a caller could make us hold any size in memory
before its signature or token says who it is. Content-Length is refused up front when it is over the
bound (or not a number), and a chunked body (none declared) is counted as it arrives.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from starlette.types import Message


def refuse_declared(request: Request, limit: int) -> None:
    """413 (400 when it is not a number) for a declared Content-Length over `limit`, before reading."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.strip().isdigit():
        raise HTTPException(400, "Content-Length: not a number of bytes")
    if int(declared) > limit:
        raise HTTPException(413, f"body: over {limit} bytes")


async def bounded_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as more than `limit` bytes are declared or arrive."""
    refuse_declared(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"body: over {limit} bytes")
    return bytes(body)


def replayable(request: Request, body: bytes) -> Request:
    """The request again, for a framework that reads the body itself (Bolt, the Agents SDK)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await request.receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, replay)
