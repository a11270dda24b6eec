"""Socket Mode: Slack pushes events over a WebSocket the app opens (apps.connections.open with the xapp- token),
for workspaces that cannot give Slack a public URL. The same Bolt app answers; no signature is involved
because the connection itself is authenticated. It runs for as long as the FastAPI app does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp


def attach_socket_mode(app: FastAPI, bolt: AsyncApp, app_token: str) -> None:
    """Wrap the app's lifespan: connect after it starts, disconnect before it stops."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            handler = AsyncSocketModeHandler(bolt, app_token)
            await handler.connect_async()
            try:
                yield state
            finally:
                await handler.close_async()

    app.router.lifespan_context = lifespan
