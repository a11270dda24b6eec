"""A fake Bot Connector service (what Teams' serviceUrl answers) on 127.0.0.1, plus inbound activities as Teams
sends them and Bot Framework tokens signed with a test key.

    with BotConnector() as bc:
        body = bc.message("hi", conversation="a:1personal", user="29:1abc", aad="aad-1")
        ... POST body to our /api/messages ...
        bc.wait_for(1)[0].activity["text"]        # what the bot posted back
        bc.fail_next(1, 429, retry_after="3")     # the next post gets 429 + Retry-After: 3 (or 403, 404, 500)
        bc.updates                                # the PUTs that edited a posted activity in place
        bc.fail_rate(0.3, ["500", "429", "slow", "reset"], seed=7)  # seeded random faults on posts (fakes/faults.py)

Routes (the Bot Connector REST API v3, and the two Microsoft identity endpoints a bot uses):
    POST /v3/conversations/{id}/activities              send to a conversation (proactive)
    POST /v3/conversations/{id}/activities/{replyToId}  reply to an activity
    PUT  /v3/conversations/{id}/activities/{activityId} update an activity (404 unless this fake posted it there)
    POST /v3/conversations                              create a conversation
    POST /{tenant}/oauth2/v2.0/token                    client-credentials token (Entra ID)
    GET  /keys                                          the JWKS of the test signing key
Every POST and PUT to /v3 is recorded with its Authorization header (a PUT's activity id in reply_to_id); posts
answer {"id": "activity-N"}, updates {"id": <the activity id>}. A channel thread's id ("19:x;messageid=1")
names the channel's activities too.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes._server import LoopbackServer
from tests.fakes.faults import FaultPlan, abort_with_rst

BOT_ID = "28:bot-app-id"
BOT_NAME = "Backorder Bot"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BF_ISSUER = "https://api.botframework.com"


@dataclass(frozen=True, slots=True)
class Posted:
    method: str
    path: str
    conversation_id: str | None
    reply_to_id: str | None
    authorization: str | None
    activity: dict[str, Any]
    status: int
    monotonic: float = 0.0  # time.monotonic() at arrival, for rate checks
    outcome: str = "ok"  # the fail_rate fault drawn for it: "ok", "500", "429", "slow" or "reset" (status 0)


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    """An RSA key that signs tokens the way the Bot Framework does (RS256, kid in the header)."""

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        pub = self.private.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": _b64(pub.n),
                          "e": _b64(pub.e), "endorsements": ["msteams"]}]}

    def token(self, audience: str, *, service_url: str, issuer: str = BF_ISSUER, lifetime_s: int = 3600,
              issued_at: float | None = None) -> str:
        now = int(issued_at if issued_at is not None else time.time())
        claims = {"iss": issuer, "aud": audience, "serviceurl": service_url, "nbf": now - 5, "iat": now,
                  "exp": now + lifetime_s}
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.posts: list[Posted] = []
        self.tokens: list[dict[str, str]] = []
        self.failures: deque[tuple[int, str | None]] = deque()
        self.faults = FaultPlan()
        self.ids = itertools.count(1)
        self.activities: dict[tuple[str, str], dict[str, Any]] = {}  # (conversation, id) -> as last posted/put


class BotConnector(LoopbackServer):
    name = "fake-bot-connector"

    def __init__(self, *, key: SigningKey | None = None) -> None:
        super().__init__()
        self.key = key or SigningKey()
        self._state = _State()

    # -- addresses and control

    @property
    def url(self) -> str:
        """The serviceUrl Teams puts in activities (with its trailing slash)."""
        return f"http://{self.host}:{self.port}/"

    @property
    def jwks_url(self) -> str:
        return f"http://{self.host}:{self.port}/keys"

    def fail_next(self, count: int, status: int, *, retry_after: str | None = None) -> None:
        with self._state.lock:
            self._state.failures.extend([(status, retry_after)] * count)

    def fail_rate(self, fraction: float, modes: list[str], *, seed: int = 0, slow_seconds: float | None = None,
                  retry_after: str | None = None) -> None:
        """From now on a `fraction` of activity posts (after any fail_next) fail with one of `modes`, by `seed`."""
        self._state.faults.set(fraction, modes, seed=seed, slow_seconds=slow_seconds, retry_after=retry_after)

    @property
    def posts(self) -> list[Posted]:
        with self._state.lock:
            return list(self._state.posts)

    @property
    def updates(self) -> list[Posted]:
        """The PUTs (updates of an activity in place), in arrival order."""
        return [p for p in self.posts if p.method == "PUT"]

    def activity(self, conversation: str, activity_id: str) -> dict[str, Any] | None:
        """An activity as it stands now: as posted, or as last updated."""
        with self._state.lock:
            return self._state.activities.get((_base_conversation(conversation), activity_id))

    @property
    def tokens(self) -> list[dict[str, str]]:
        """The client-credentials forms the token endpoint got."""
        with self._state.lock:
            return list(self._state.tokens)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Posted]:
        deadline = time.monotonic() + timeout
        with self._state.arrived:
            while len(self._state.posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._state.posts)} of {count} activities arrived")
                self._state.arrived.wait(left)
            return list(self._state.posts)

    # -- inbound activities, as Teams sends them

    def _base(self, type_: str, *, conversation: str, conversation_type: str, user: str, aad: str | None,
              name: str, id: str | None, team: str | None) -> dict[str, Any]:
        channel_data: dict[str, Any] = {"tenant": {"id": TENANT}}
        if conversation_type == "channel":
            channel_data["team"] = {"id": team or "19:team@thread.tacv2", "name": "Ops"}
            channel_data["channel"] = {"id": conversation.split(";")[0]}
        sender: dict[str, Any] = {"id": user, "name": name}
        if aad is not None:
            sender["aadObjectId"] = aad
        return {
            "type": type_,
            "id": id or f"1{uuid.uuid4().int % 10**12:012d}",
            "timestamp": "2026-03-02T09:00:00.000Z",
            "localTimestamp": "2026-03-02T10:00:00.000+01:00",
            "serviceUrl": self.url,
            "channelId": "msteams",
            "from": sender,
            "conversation": {"id": conversation, "conversationType": conversation_type, "tenantId": TENANT,
                             **({"isGroup": True} if conversation_type != "personal" else {})},
            "recipient": {"id": BOT_ID, "name": BOT_NAME},
            "entities": [{"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web",
                          "timezone": "Europe/London"}],
            "channelData": channel_data,
            "locale": "en-US",
        }

    def message(self, text: str, *, conversation: str = "a:1personal-chat", conversation_type: str = "personal",
                user: str = "29:1user", aad: str | None = "aad-user-1", name: str = "Ada Ops",
                mention: bool = False, id: str | None = None, value: dict[str, Any] | None = None,
                team: str | None = None, reply_to: str | None = None) -> dict[str, Any]:
        """A message; `mention` puts "<at>Backorder Bot</at> " before the text with its mention entity;
        `reply_to`: the activity it answers (an Action.Submit names the card's message)."""
        body = self._base("message", conversation=conversation, conversation_type=conversation_type, user=user,
                          aad=aad, name=name, id=id, team=team)
        if reply_to is not None:
            body["replyToId"] = reply_to
        body["textFormat"] = "plain"
        if mention:
            at = f"<at>{BOT_NAME}</at>"
            text = f"{at} {text}"
            body["entities"].append({"type": "mention", "text": at,
                                     "mentioned": {"id": BOT_ID, "name": BOT_NAME}})
        if text:
            body["text"] = text
        if value is not None:  # Action.Submit: the button's data arrives as the message's value
            body["value"] = value
        return body

    def members_added(self, *, conversation: str = "19:ops@thread.tacv2", conversation_type: str = "channel",
                      user: str = "29:1installer", aad: str | None = "aad-installer", name: str = "Installer",
                      id: str | None = None) -> dict[str, Any]:
        """The conversationUpdate Teams sends when the bot is added to a team (the bot is the member added)."""
        body = self._base("conversationUpdate", conversation=conversation, conversation_type=conversation_type,
                          user=user, aad=aad, name=name, id=id, team=None)
        body["membersAdded"] = [{"id": BOT_ID}]
        body["channelData"]["eventType"] = "teamMemberAdded"
        return body

    def action_execute(self, verb: str, data: dict[str, Any], *, conversation: str = "a:1personal-chat",
                       conversation_type: str = "personal", user: str = "29:1user", aad: str | None = "aad-user-1",
                       name: str = "Ada Ops", id: str | None = None,
                       reply_to: str = "1699999999999") -> dict[str, Any]:
        """The invoke a press of an Action.Execute button sends (adaptiveCard/action); `reply_to` is the id of
        the message holding the card."""
        body = self._base("invoke", conversation=conversation, conversation_type=conversation_type, user=user,
                          aad=aad, name=name, id=id, team=None)
        body["name"] = "adaptiveCard/action"
        body["value"] = {"action": {"type": "Action.Execute", "id": f"btn-{verb}", "verb": verb, "data": data},
                         "trigger": "manual"}
        body["replyToId"] = reply_to
        return body

    # -- server

    def make_app(self) -> web.Application:
        state = self._state

        def record(request: web.Request, body: dict[str, Any], status: int, outcome: str = "ok") -> None:
            with state.lock:
                state.posts.append(Posted(request.method, request.path, request.match_info.get("conversation"),
                                          request.match_info.get("reply_to"), request.headers.get("Authorization"),
                                          body, status, time.monotonic(), outcome))
                state.arrived.notify_all()

        def failed(request: web.Request, body: dict[str, Any], failure: tuple[int, str | None]) -> web.Response:
            """Record the request as failed and answer with the Bot Connector's error (Retry-After when set)."""
            status, retry_after = failure
            record(request, body, status)
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return web.json_response({"error": {"code": "Failure", "message": f"status {status}"}},
                                     status=status, headers=headers)

        async def post_activity(request: web.Request) -> web.Response:
            body = await request.json()
            with state.lock:
                failure = state.failures.popleft() if state.failures else None
                fault = state.faults.draw() if failure is None else "ok"
                next_id = next(state.ids)
            if failure is not None:
                return failed(request, body, failure)
            if fault == "reset":
                record(request, body, 0, fault)
                abort_with_rst(request)
                raise asyncio.CancelledError  # nothing can be written on an aborted transport
            if fault in ("500", "429"):
                retry_after = state.faults.retry_after if fault == "429" else None
                record(request, body, int(fault), fault)
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return web.json_response({"error": {"code": "Failure", "message": f"status {fault}"}},
                                         status=int(fault), headers=headers)
            record(request, body, 200, fault)
            if fault == "slow":  # the activity is posted; the answer comes after the client's timeout
                await asyncio.sleep(state.faults.slow_seconds)
            with state.lock:
                state.activities[(_base_conversation(request.match_info["conversation"]), f"activity-{next_id}")] = body
            return web.json_response({"id": f"activity-{next_id}"})

        async def update_activity(request: web.Request) -> web.Response:
            body = await request.json()
            key = (_base_conversation(request.match_info["conversation"]), request.match_info["reply_to"])
            with state.lock:
                failure = state.failures.popleft() if state.failures else None
                known = key in state.activities
            if failure is None and not known:
                failure = (404, None)
            if failure is not None:
                return failed(request, body, failure)
            with state.lock:
                state.activities[key] = body
            record(request, body, 200)
            return web.json_response({"id": key[1]})

        async def create_conversation(request: web.Request) -> web.Response:
            body = await request.json()
            record(request, body, 200)
            with state.lock:
                n = next(state.ids)
            return web.json_response({"id": f"a:1created-{n}", "activityId": f"activity-{n}",
                                      "serviceUrl": self.url})

        async def token(request: web.Request) -> web.Response:
            form = {k: str(v) for k, v in (await request.post()).items()}
            with state.lock:
                state.tokens.append(form)
                n = len(state.tokens)
            return web.json_response({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                      "access_token": f"bot-token-{n}"})

        async def keys(request: web.Request) -> web.Response:
            return web.json_response(self.key.jwks())

        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", post_activity)
        app.router.add_post("/v3/conversations/{conversation}/activities/{reply_to}", post_activity)
        app.router.add_put("/v3/conversations/{conversation}/activities/{reply_to}", update_activity)
        app.router.add_post("/v3/conversations", create_conversation)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
        app.router.add_get("/keys", keys)
        return app


def _base_conversation(conversation: str) -> str:
    """A channel thread ("19:x@thread.tacv2;messageid=1") is in its channel: the activities are the channel's."""
    return conversation.split(";", 1)[0]


def dumps(activity: dict[str, Any]) -> bytes:
    return json.dumps(activity).encode()
