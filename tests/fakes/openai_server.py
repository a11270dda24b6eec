"""A fake OpenAI-compatible server on 127.0.0.1 speaking the chat completions wire format.

    with FakeOpenAI() as llm:
        llm.reply_with_tool({"intent": "order_status", "order_id": "1042"})   # or a raw string of arguments
        llm.reply_with_json({"text": "...", "channel": "sms", "facts_used": []})  # structured output
        llm.script([{"text": "..."}, FakeOpenAI.error(500), FakeOpenAI.delay(3.0), "not json"])
        ... openai.OpenAI(base_url=llm.base_url, api_key="k") ...
        llm.requests[0]["messages"]   # what the client sent

Each request takes the next scripted reply while the script lasts, then the standing reply (the last
reply_with_*; `status` other than 200 turns every unscripted request into that error).

A request with a strict `json_schema` response format is refused with 400, as OpenAI refuses it, when
the schema breaks strict mode's rules (every object closed and every property required), so a client
that passes here is not rejected by the real API for its schema.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes._server import LoopbackServer


@dataclass(frozen=True)
class HTTPFailure:
    """A scripted error response: the status and OpenAI's error body."""

    status: int
    message: str = "failure on command"


@dataclass(frozen=True)
class Stall:
    """A scripted reply that arrives only after `seconds` (longer than the client's timeout, to time it out)."""

    seconds: float
    then: str = '{"text": "too late", "channel": "sms", "facts_used": []}'


Scripted = str | dict[str, Any] | HTTPFailure | Stall


class FakeOpenAI(LoopbackServer):
    name = "fake-openai"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self._message: dict[str, Any] = {"role": "assistant", "content": "Hello.", "refusal": None}
        self._script: deque[Scripted] = deque()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- what to answer --------------------------------------------------------------------------------------

    def reply_with_tool(self, arguments: dict[str, Any] | str, name: str = "choose_intent") -> None:
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        self._message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}]}

    def reply_with_text(self, text: str) -> None:
        self._message = {"role": "assistant", "content": text, "refusal": None}

    def reply_with_json(self, obj: Any) -> None:
        """Structured output: the model's JSON travels as the message content, a string."""
        self.reply_with_text(json.dumps(obj, ensure_ascii=False))

    def script(self, replies: list[Scripted]) -> None:
        """Queue replies for the next requests, in order: a content string, a dict (sent as JSON content),
        FakeOpenAI.error(status) or FakeOpenAI.delay(seconds)."""
        self._script.extend(replies)

    @staticmethod
    def error(status: int, message: str = "failure on command") -> HTTPFailure:
        return HTTPFailure(status, message)

    @staticmethod
    def delay(seconds: float) -> Stall:
        return Stall(seconds)

    @property
    def pending(self) -> int:
        """Scripted replies not served yet: a test can check the client asked exactly as often as expected."""
        return len(self._script)

    # -- the wire --------------------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        return app

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        problem = _strict_schema_problem(body.get("response_format"))
        if problem:
            return _error(400, problem, "invalid_request_error", param="response_format")
        if self._script:
            return await self._scripted(body, self._script.popleft())
        if self.status != 200:
            return _error(self.status, "failure on command", "server_error")
        return self._completion(body, self._message)

    async def _scripted(self, body: dict[str, Any], reply: Scripted) -> web.Response:
        if isinstance(reply, HTTPFailure):
            kind = "server_error" if reply.status >= 500 else "invalid_request_error"
            return _error(reply.status, reply.message, kind)
        if isinstance(reply, Stall):
            await asyncio.sleep(reply.seconds)  # the client has given up by then; stop() cancels the wait
            reply = reply.then
        content = reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)
        return self._completion(body, {"role": "assistant", "content": content, "refusal": None})

    def _completion(self, body: dict[str, Any], message: dict[str, Any]) -> web.Response:
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return web.json_response({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 1_770_000_000,
            "model": body.get("model", "fake"), "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        })


def _error(status: int, message: str, kind: str, param: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": param, "code": None}},
                             status=status)


def _strict_schema_problem(response_format: Any) -> str | None:
    """What OpenAI would refuse in a strict json_schema response format, or None."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    if not spec.get("name") or not isinstance(spec.get("schema"), dict):
        return "json_schema needs a name and a schema"
    return _closed(spec["schema"], "schema") if spec.get("strict") else None


def _closed(node: dict[str, Any], where: str) -> str | None:
    if node.get("type") == "object":
        props = node.get("properties") or {}
        if node.get("additionalProperties") is not False:
            return f"{where}: additionalProperties must be false in strict mode"
        if sorted(node.get("required") or []) != sorted(props):
            return f"{where}: every property must be required in strict mode"
        for key, sub in props.items():
            problem = _closed(sub, f"{where}.{key}")
            if problem:
                return problem
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return _closed(node["items"], f"{where}[]")
    return None
