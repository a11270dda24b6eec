"""The dashboard's session cookie and who may see the page (bot/dashboard_auth.py), without a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine
from starlette.requests import Request

from backorder.config import Settings
from bot.dashboard_auth import COOKIE, Sessions
from services.context import Context


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def sessions(token: str | None, clock: Clock, hours: float = 1.0) -> Sessions:
    settings = Settings(database_url="sqlite://", api_token=token, dashboard={"session_hours": hours})
    return Sessions(Context(engine=create_engine("sqlite://"), settings=settings, clock=clock))


def request(host: str, cookie: str | None = None, authorization: str | None = None) -> Request:
    headers = []
    if cookie is not None:
        headers.append((b"cookie", f"{COOKIE}={cookie}".encode()))
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return Request({"type": "http", "method": "GET", "path": "/dashboard", "headers": headers,
                    "client": (host, 40000), "query_string": b""})


def test_a_session_carries_the_staff_id_until_it_expires() -> None:
    clock = Clock()
    s = sessions("tok", clock)
    value = s.issue("pat ü")
    assert s.staff_of(value) == "pat ü" and "tok" not in value
    assert s.staff_of(s.issue("")) == ""
    issued, staff, sig = value.split(".")
    flipped = sig[:-1] + ("1" if sig[-1] == "0" else "0")
    assert s.staff_of(f"{issued}.{staff}.{flipped}") is None  # signature changed
    assert s.staff_of(f"{int(issued) + 60}.{staff}.{sig}") is None  # issue time changed
    assert s.staff_of("garbage") is None
    clock.now += timedelta(hours=1, seconds=1)
    assert s.staff_of(value) is None
    assert sessions("other", clock).staff_of(s.issue("pat")) is None  # a new token signs everyone out


def test_with_a_token_a_cookie_or_the_bearer_is_needed_from_anywhere() -> None:
    s = sessions("tok", Clock())
    assert s.viewer(request("127.0.0.1")) is None  # loopback is not enough once a token is set
    viewer = s.viewer(request("203.0.113.9", cookie=s.issue("pat")))
    assert viewer is not None and (viewer.staff_id, viewer.via) == ("pat", "session")
    bearer = s.viewer(request("203.0.113.9", authorization="Bearer tok"))
    assert bearer is not None and bearer.via == "bearer"
    assert s.viewer(request("203.0.113.9", authorization="Bearer nope")) is None
    assert s.csrf_ok(viewer, s.csrf(viewer)) and not s.csrf_ok(viewer, "") and not s.csrf_ok(viewer, "x" * 64)


@pytest.mark.parametrize(("host", "seen"), [("127.0.0.1", True), ("::1", True), ("127.8.0.1", True),
                                            ("10.0.0.2", False), ("203.0.113.9", False), ("testclient", False)])
def test_without_a_token_only_loopback_is_answered(host: str, seen: bool) -> None:
    s = sessions(None, Clock())
    assert (s.viewer(request(host)) is not None) is seen
