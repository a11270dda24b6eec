"""A fake OpenAI-compatible server on 127.0.0.1 speaking the chat completions wire format.

    with FakeOpenAI() as llm:
        llm.reply_with_tool({"intent": "order_status", "order_id": "1042"})   # or a raw string of arguments
        ... openai.OpenAI(base_url=llm.base_url, api_key="k") ...
        llm.requests[0]["messages"]   # what the client sent
"""

from __future__ import annotations

import asyncio
import json
import threading
from types import TracebackType
from typing import Any

from aiohttp import web


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self._message: dict[str, Any] = {"role": "assistant", "content": "Hello."}
        self._stop = threading.Event()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply_with_tool(self, arguments: dict[str, Any] | str, name: str = "choose_intent") -> None:
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        self._message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}]}

    def reply_with_text(self, text: str) -> None:
        self._message = {"role": "assistant", "content": text}

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.status != 200:
            return web.json_response({"error": {"message": "failure on command", "type": "server_error"}},
                                     status=self.status)
        finish = "tool_calls" if self._message.get("tool_calls") else "stop"
        return web.json_response({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 1_770_000_000,
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": self._message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        })

    def _serve(self) -> None:
        async def main() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._completions)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
            await self._runner.cleanup()

        asyncio.run(main())

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)
