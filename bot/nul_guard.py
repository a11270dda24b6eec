"""Refuse a NUL character (%00) in a request's path or query with a 422 naming where it was.

It is valid in a URL, but PostgreSQL text cannot hold it: the first query that carried it would fail
with a database error (a 500) instead of telling the caller which parameter is wrong. Bodies are checked
where they are parsed (intake.envelope for events; bot/api.py answers any other that reaches the store).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

MSG = "contains a NUL character (%00), which is not allowed"


def nul_location(scope: Scope) -> list[str] | None:
    """["path"] or ["query", name] where a NUL is, else None."""
    if "\x00" in scope.get("path", ""):
        return ["path"]
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return ["query", name.replace("\x00", "%00")]
    return None


class NulGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = nul_location(scope) if scope["type"] == "http" else None
        if where is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": [{"loc": where, "msg": MSG, "type": "string_nul"}]}).encode()
        await send({"type": "http.response.start", "status": 422,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def mount(app: FastAPI) -> None:
    app.add_middleware(NulGuard)
