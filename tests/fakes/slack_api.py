"""A fake Slack Web API on 127.0.0.1, and inbound requests built and signed the way Slack sends them.

    with FakeSlack(token="xoxb-test") as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)   # ".../api/", trailing slash
        ... slack.calls("chat.postMessage")[0].args["text"]
        slack.fail_next("chat.postMessage", "ratelimited", retry_after=3)   # 429 + Retry-After: 3 (or "soon")
        slack.fail_next("chat.postMessage", "channel_not_found")            # 200 {"ok": false, ...}
        slack.wait_for("chat.postMessage", 2)                               # block until 2 arrived
        slack.fail_rate(0.3, ["500", "429", "slow", "reset"], seed=7)      # seeded random faults (fakes/faults.py)
        slack.uploaded()           # files shared through files_upload_v2 (getUploadURLExternal, POST, complete)
        slack.response_url("T1")   # where a slash command's or a button's respond() posts; recorded too
        slack.push({"envelope_id": "e1", "type": "events_api", "payload": {...}})   # Socket Mode; acks recorded

Every call is recorded (method, arguments from a form or JSON body, headers, monotonic arrival time, and the
random fault it was answered with: `outcome`).
A wrong or missing bearer token gets {"ok": false, "error": "invalid_auth"} as Slack answers it.

    signer = SlackSigner("signing-secret")
    body, headers = signer.event({"type": "message", ...}, event_id="Ev1")     # event_callback envelope
    body, headers = signer.command("/backorder", "where is 1042", user_id="U1", response_url=...)
    body, headers = signer.interaction({"type": "block_actions", ...})        # payload=<json>, form-encoded
    body, headers = signer.block_actions(user_id="U1", action_id="bo:x", value="7", channel_id="C1", ...)
    body, headers = signer.view_submission(opened_view, user_id="U1", values={"block": {"input": "text"}})
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web

from tests.fakes._server import LoopbackServer
from tests.fakes.faults import FaultPlan, abort_with_rst

TEAM_ID = "T0BACKORD"
APP_ID = "A0BACKORD"
BOT_USER = "UBOT0001"
BOT_ID = "BBOT0001"


@dataclass(frozen=True, slots=True)
class Call:
    method: str  # "chat.postMessage", or "response_url" for a POST to a response URL
    args: dict[str, Any]
    headers: dict[str, str]
    monotonic: float
    outcome: str = "ok"  # the fail_rate fault drawn for it: "ok", "500", "429", "slow" or "reset"


@dataclass(frozen=True, slots=True)
class Failure:
    error: str  # Slack's error code; "ratelimited" answers 429, "http_500" answers HTTP 500
    retry_after: int | str  # a str is sent as is: a malformed header, as a proxy might send one


class _State:
    def __init__(self, token: str, app_token: str | None) -> None:
        self.token = token
        self.app_token = app_token
        self.port = 0
        self.socket: web.WebSocketResponse | None = None
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.calls: list[Call] = []
        self.failures: dict[str, deque[Failure]] = {}
        self.faults = FaultPlan()
        self.ts = itertools.count(1)
        self.files: dict[str, dict[str, Any]] = {}  # file id -> name, length, title, channel, and the uploaded data

    def next_ts(self) -> str:
        return f"1767225600.{next(self.ts):06d}"


def _answer(state: _State, method: str, args: dict[str, Any]) -> dict[str, Any]:
    """What Slack answers to a successful call, as much of it as the code reads."""
    if method == "auth.test":
        return {"ok": True, "url": "https://backorder.slack.com/", "team": "Backorders", "user": "backorder",
                "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}
    if method in ("chat.postMessage", "chat.update"):
        ts = state.next_ts() if method == "chat.postMessage" else str(args.get("ts"))
        channel = str(args.get("channel", ""))
        message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": args.get("text", ""), "ts": ts}
        if "blocks" in args:
            message["blocks"] = args["blocks"]
        if "thread_ts" in args:
            message["thread_ts"] = args["thread_ts"]
        return {"ok": True, "channel": channel, "ts": ts, "message": message}
    if method == "chat.postEphemeral":
        return {"ok": True, "message_ts": state.next_ts()}
    if method == "conversations.open":
        users = str(args.get("users", ""))
        return {"ok": True, "channel": {"id": "D" + users.split(",")[0].lstrip("UW")}}
    if method in ("views.publish", "views.open"):
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        return {"ok": True, "view": {"id": "V" + str(next(state.ts)), **(view or {})}}
    if method == "files.getUploadURLExternal":  # step 1 of files_upload_v2: a one-off upload URL per file
        file_id = f"F{next(state.ts):08d}"
        state.files[file_id] = {"id": file_id, "name": args.get("filename"), "length": int(args.get("length", 0))}
        return {"ok": True, "upload_url": f"http://127.0.0.1:{state.port}/upload/v1/{file_id}", "file_id": file_id}
    if method == "files.completeUploadExternal":  # step 3: share the uploaded files in a channel
        listed = args.get("files")
        listed = json.loads(listed) if isinstance(listed, str) else listed or []
        unknown = [f.get("id") for f in listed if f.get("id") not in state.files or "data" not in state.files[f["id"]]]
        if not listed or unknown:
            return {"ok": False, "error": "invalid_arguments" if not listed else "file_not_found"}
        files = []
        for f in listed:
            known = state.files[f["id"]]
            known.update(title=f.get("title") or known["name"], channel=args.get("channel_id"))
            mimetype = "image/png" if str(known["name"]).endswith(".png") else "application/octet-stream"
            files.append({"id": known["id"], "name": known["name"], "title": known["title"],
                          "size": len(known["data"]), "mimetype": mimetype})
        return {"ok": True, "files": files}
    if method == "users.info":
        user = str(args.get("user", ""))
        return {"ok": True, "user": {"id": user, "team_id": TEAM_ID, "name": user.lower(), "real_name": user,
                                     "tz": "Europe/London", "is_bot": False}}
    return {"ok": False, "error": "unknown_method"}


def _make_app(state: _State) -> web.Application:
    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        if request.content_type == "application/json" and raw:
            args: dict[str, Any] = json.loads(raw)
        else:
            args = dict(parse_qsl(raw.decode()))
        args.update(request.query)
        for key in ("blocks", "view"):  # a form body carries them as JSON text
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        with state.lock:
            queued = state.failures.get(method)
            failure = queued.popleft() if queued else None
            fault = state.faults.draw() if failure is None and method != "apps.connections.open" else "ok"
            state.calls.append(Call(method, args, dict(request.headers), time.monotonic(), fault))
            state.arrived.notify_all()
        if method == "apps.connections.open":  # Socket Mode: the app-level (xapp-) token, not the bot's
            if state.app_token is None or request.headers.get("Authorization") != f"Bearer {state.app_token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{state.port}/link/?ticket=t1"})
        if request.headers.get("Authorization") != f"Bearer {state.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if failure is not None:
            if failure.error == "ratelimited":
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(failure.retry_after)})
            if failure.error.startswith("http_"):
                return web.json_response({"ok": False, "error": failure.error}, status=int(failure.error[5:]))
            return web.json_response({"ok": False, "error": failure.error})
        if fault == "reset":
            abort_with_rst(request)
            raise asyncio.CancelledError  # nothing can be written on an aborted transport
        if fault == "500":
            return web.json_response({"ok": False, "error": "http_500"}, status=500)
        if fault == "429":
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": state.faults.retry_after})
        if fault == "slow":  # Slack does the work; the answer comes after the client's timeout
            await asyncio.sleep(state.faults.slow_seconds)
        return web.json_response(_answer(state, method, args))

    async def response_url(request: web.Request) -> web.Response:
        args = await request.json()
        with state.lock:
            state.calls.append(Call("response_url", {**args, "_path": request.path}, dict(request.headers),
                                    time.monotonic()))
            state.arrived.notify_all()
        return web.Response(text="ok")

    async def upload(request: web.Request) -> web.Response:
        """Step 2 of files_upload_v2: the file's bytes POSTed to the URL step 1 gave (Slack answers 200 "OK")."""
        file_id = request.match_info["file_id"]
        data = await request.read()
        with state.lock:
            known = state.files.get(file_id)
            state.calls.append(Call("upload", {"file_id": file_id, "size": len(data)}, dict(request.headers),
                                    time.monotonic()))
            if known is not None:
                known["data"] = data
            state.arrived.notify_all()
        if known is None:
            return web.Response(status=404, text="not found")
        return web.Response(text=f"OK - {len(data)}")

    async def link(request: web.Request) -> web.WebSocketResponse:
        """Socket Mode's WebSocket: hello first, then envelopes pushed by the test; acks are recorded."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake-slack"},
                            "connection_info": {"app_id": APP_ID}})
        with state.lock:
            state.socket = ws
            state.arrived.notify_all()
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                with state.lock:
                    state.calls.append(Call("socket_ack", json.loads(frame.data), {}, time.monotonic()))
                    state.arrived.notify_all()
        with state.lock:
            state.socket = None
        return ws

    app = web.Application()
    app.router.add_get("/link/", link)
    app.router.add_post("/api/{method}", api)
    app.router.add_post("/response/{key}", response_url)
    app.router.add_post("/upload/v1/{file_id}", upload)
    return app


class FakeSlack(LoopbackServer):
    """The Slack Web API on 127.0.0.1, served from its own thread and event loop."""

    name = "fake-slack"

    def __init__(self, token: str = "xoxb-test-token", host: str = "127.0.0.1", *,
                 app_token: str | None = None) -> None:
        super().__init__(host)
        self._state = _State(token, app_token)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    def response_url(self, key: str) -> str:
        return f"{self.base_url}/response/{key}"

    # -- control
    def fail_next(self, method: str, error: str, *, count: int = 1, retry_after: int | str = 1) -> None:
        with self._state.lock:
            self._state.failures.setdefault(method, deque()).extend([Failure(error, retry_after)] * count)

    def fail_rate(self, fraction: float, modes: list[str], *, seed: int = 0, slow_seconds: float | None = None,
                  retry_after: str | None = None) -> None:
        """From now on a `fraction` of API calls (after any fail_next) fail with one of `modes`, drawn by `seed`."""
        self._state.faults.set(fraction, modes, seed=seed, slow_seconds=slow_seconds, retry_after=retry_after)

    # -- what arrived
    def calls(self, method: str | None = None) -> list[Call]:
        with self._state.lock:
            return [c for c in self._state.calls if method is None or c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        """Block until `count` calls of `method` arrived (TimeoutError naming what did arrive)."""
        deadline = time.monotonic() + timeout
        with self._state.arrived:
            while True:
                got = [c for c in self._state.calls if c.method == method]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self._state.calls]
                    raise TimeoutError(f"{len(got)} of {count} {method} call(s) arrived; all calls: {seen}")
                self._state.arrived.wait(left)

    def uploaded(self) -> list[dict[str, Any]]:
        """Files uploaded through files_upload_v2 and shared (id, name, title, channel, data)."""
        with self._state.lock:
            return [dict(f) for f in self._state.files.values() if "channel" in f]

    # -- Socket Mode
    def push(self, envelope: dict[str, Any], timeout: float = 10.0) -> None:
        """Send one Socket Mode envelope to the connected app (waits for it to connect)."""
        deadline = time.monotonic() + timeout
        with self._state.arrived:
            while self._state.socket is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no Socket Mode connection")
                self._state.arrived.wait(left)
            ws = self._state.socket
        self.run_in_loop(ws.send_json(envelope), timeout)

    # -- lifecycle
    def make_app(self) -> web.Application:
        return _make_app(self._state)

    def on_started(self) -> None:
        self._state.port = self.port


class SlackSigner:
    """Inbound requests as Slack sends them: the raw body and headers, signed with the signing secret."""

    def __init__(self, secret: str, team_id: str = TEAM_ID, app_id: str = APP_ID) -> None:
        self.secret = secret
        self.team_id = team_id
        self.app_id = app_id

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + ts.encode() + b":" + body
        digest = hmac.new(self.secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}

    def event(self, event: dict[str, Any], *, event_id: str, retry_num: int | None = None,
              timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        now = int(time.time()) if timestamp is None else timestamp
        envelope = {"token": "legacy-verification-token", "team_id": self.team_id, "api_app_id": self.app_id,
                    "event": event, "type": "event_callback", "event_id": event_id, "event_time": now,
                    "authorizations": [{"enterprise_id": None, "team_id": self.team_id, "user_id": BOT_USER,
                                        "is_bot": True, "is_enterprise_install": False}],
                    "is_ext_shared_channel": False, "event_context": f"4-{event_id}"}
        body = json.dumps(envelope).encode()
        headers = {"Content-Type": "application/json", **self.sign(body, timestamp)}
        if retry_num is not None:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return body, headers

    def url_verification(self, challenge: str) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"token": "legacy-verification-token", "challenge": challenge,
                           "type": "url_verification"}).encode()
        return body, {"Content-Type": "application/json", **self.sign(body)}

    def command(self, command: str, text: str, *, user_id: str, channel_id: str = "C0GENERAL",
                response_url: str, trigger_id: str = "13345224609.738474920.8088930838d88f008e0") -> tuple[
                    bytes, dict[str, str]]:
        form = {"token": "legacy-verification-token", "team_id": self.team_id, "team_domain": "backorders",
                "channel_id": channel_id, "channel_name": "general", "user_id": user_id,
                "user_name": user_id.lower(), "command": command, "text": text, "api_app_id": self.app_id,
                "is_enterprise_install": "false", "response_url": response_url, "trigger_id": trigger_id}
        body = urlencode(form).encode()
        return body, {"Content-Type": "application/x-www-form-urlencoded", **self.sign(body)}

    def interaction(self, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return body, {"Content-Type": "application/x-www-form-urlencoded", **self.sign(body)}

    def block_actions(self, *, user_id: str, action_id: str, value: str, channel_id: str, message_ts: str,
                      response_url: str, thread_ts: str | None = None,
                      trigger_id: str = "13345224609.738474920.8088930838d88f008e0") -> tuple[bytes, dict[str, str]]:
        """A button press on a message the bot posted (the payload Slack sends for block_actions)."""
        message: dict[str, Any] = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": message_ts,
                                   "text": "card"}
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        return self.interaction({
            "type": "block_actions",
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": self.team_id},
            "api_app_id": self.app_id, "token": "legacy-verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id,
                          "is_ephemeral": False},
            "trigger_id": trigger_id,
            "team": {"id": self.team_id, "domain": "backorders"},
            "channel": {"id": channel_id, "name": "backorders"},
            "message": message, "response_url": response_url,
            "actions": [{"action_id": action_id, "block_id": "b1", "text": {"type": "plain_text", "text": "x"},
                         "value": value, "type": "button", "action_ts": f"{int(time.time())}.000100"}],
        })

    def view_submission(self, view: dict[str, Any], *, user_id: str, values: dict[str, dict[str, str | None]],
                        view_id: str = "V0MODAL01") -> tuple[bytes, dict[str, str]]:
        """The submission of a modal the app opened (`view`: the views.open argument) with the inputs typed:
        values = {block_id: {action_id: text}} for plain_text_input elements, as Slack sends view_submission."""
        state = {block: {action: {"type": "plain_text_input", "value": text} for action, text in inputs.items()}
                 for block, inputs in values.items()}
        return self.interaction({
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "backorders"},
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": self.team_id},
            "api_app_id": self.app_id, "token": "legacy-verification-token",
            "trigger_id": "13345224610.738474920.8088930838d88f008e1",
            "view": {"id": view_id, "team_id": self.team_id, "type": "modal", "blocks": view.get("blocks", []),
                     "private_metadata": view.get("private_metadata", ""), "callback_id": view.get("callback_id", ""),
                     "state": {"values": state}, "hash": "1767225600.AbCdEf12", "title": view.get("title"),
                     "clear_on_close": False, "notify_on_close": False, "close": view.get("close"),
                     "submit": view.get("submit"), "previous_view_id": None, "root_view_id": view_id,
                     "app_id": self.app_id, "external_id": "", "app_installed_team_id": self.team_id,
                     "bot_id": BOT_ID},
            "response_urls": [], "is_enterprise_install": False, "enterprise": None,
        })
