"""Driving one channel sender in a test: send once, or get the SendError a send raises; the sender is closed."""

from __future__ import annotations

from typing import Any

from notifiers.senders.base import Outgoing, SendError, Sent


async def send_once(sender: Any, msg: Outgoing) -> Sent:
    try:
        return await sender.send(msg)
    finally:
        await sender.aclose()


async def failure_of(sender: Any, msg: Outgoing) -> SendError:
    try:
        await sender.send(msg)
    except SendError as exc:
        return exc
    finally:
        await sender.aclose()
    raise AssertionError("the send went through")
