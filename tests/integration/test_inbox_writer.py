"""Group commit for POST /events (services.inbox_writer): requests queued together share one transaction.

Each test first holds the inbox (a transaction of its own that inserts the first request's key: SQLite's
write lock, PostgreSQL's unique-key lock) and waits until the writer is storing its first request, stuck
behind that lock; the requests submitted meanwhile are queued when it gets going again, and form a group.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select

from services.context import Context
from services.inbox_writer import ALONE_FROM, InboxWriter
from store import tables as t

AT = "2026-03-01T10:00:00+00:00"


def ev(event_id: str, at: str = AT) -> dict[str, Any]:
    return {"event_id": event_id, "type": "inventory.adjusted", "occurred_at": at, "source": "erp",
            "data": {"sku": "S1", "warehouse_id": "W1", "on_hand": 1}}


@contextmanager
def inbox_held(ctx: Context, first: dict[str, Any]) -> Iterator[None]:
    with ctx.engine.connect() as holder:
        holder.begin()
        holder.execute(t.inbox.insert().values(source=first["source"], event_id=first["event_id"], type=first["type"],
                                               occurred_at=ctx.now(), received_at=ctx.now(), payload=first,
                                               status="pending"))
        yield
        holder.rollback()  # the held row goes: the writer's insert of that key goes through


@contextmanager
def counted_commits(ctx: Context) -> Iterator[list[int]]:
    commits: list[int] = []

    def on_commit(_conn: Connection) -> None:
        commits.append(1)

    event.listen(ctx.engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(ctx.engine, "commit", on_commit)


def taken(writer: InboxWriter, events: list[dict[str, Any]]) -> concurrent.futures.Future[Any]:
    """Submit `events` and wait until the writer has taken them (it is then stuck on the held inbox)."""
    future = writer.submit(events)
    deadline = time.monotonic() + 30
    while not future.running():
        assert time.monotonic() < deadline, "the writer never took the first request"
        time.sleep(0.01)
    return future


def stored(ctx: Context) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(t.inbox.c.event_id, t.inbox.c.id)).tuples().all())


def result(f: concurrent.futures.Future[Any]) -> Any:
    return f.result(timeout=60)


def test_queued_requests_share_a_commit_and_get_the_outcomes_of_one_by_one(ctx: Context) -> None:
    writer = InboxWriter(ctx)
    # Request k carries event k and repeats event k-1: each event is new in one request, a duplicate in the next.
    requests = [[ev("e0")]] + [[ev(f"e{k}"), ev(f"e{k - 1}")] for k in range(1, 40)]
    try:
        with counted_commits(ctx) as commits:
            with inbox_held(ctx, requests[0][0]):
                futures = [taken(writer, requests[0])] + [writer.submit(r) for r in requests[1:]]
            answers = [result(f) for f in futures]
    finally:
        writer.close()
    ids = stored(ctx)
    assert answers[0] == (["accepted"], [ids["e0"]])
    for k in range(1, 40):
        assert answers[k] == (["accepted", "duplicate"], [ids[f"e{k}"]]), k
    assert len(ids) == 40
    assert len(commits) == 2, f"1 + 39 queued requests took {len(commits)} commits"


def test_a_bad_request_in_a_group_fails_alone(ctx: Context) -> None:
    writer = InboxWriter(ctx)
    try:
        with inbox_held(ctx, ev("g0")):
            good0 = taken(writer, [ev("g0")])
            bad = writer.submit([ev("g1"), ev("b1", at="yesterday")])
            good2 = writer.submit([ev("g2")])
        assert result(good0)[0] == ["accepted"]
        assert result(good2)[0] == ["accepted"]
        with pytest.raises(ValueError, match="yesterday"):
            result(bad)
    finally:
        writer.close()
    assert set(stored(ctx)) == {"g0", "g2"}  # nothing of the failed request, all of the others


def test_a_request_whose_caller_has_gone_is_not_stored(ctx: Context) -> None:
    writer = InboxWriter(ctx)
    try:
        with inbox_held(ctx, ev("k0")):
            kept = taken(writer, [ev("k0")])
            gone = writer.submit([ev("gone")])
            assert gone.cancel()
        assert result(kept)[0] == ["accepted"]
    finally:
        writer.close()
    assert set(stored(ctx)) == {"k0"}


def test_close_stores_what_is_queued_first(ctx: Context) -> None:
    writer = InboxWriter(ctx)
    futures = [writer.submit([ev(f"c{k}")]) for k in range(25)]
    writer.close()
    assert all(f.done() and f.result()[0] == ["accepted"] for f in futures)
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.inbox)).scalar_one() == 25


# PostgreSQL only: on SQLite every writer waits for the one write lock the test holds, so there is nothing to show.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_bulk_request_is_stored_beside_the_writer_not_queued_behind_it(ctx: Context) -> None:
    writer = InboxWriter(ctx)
    bulk = [ev(f"b{k}") for k in range(ALONE_FROM + 1)]
    try:
        with inbox_held(ctx, ev("h0")):
            small = taken(writer, [ev("h0")])
            # Answered while the writer is stuck (queued behind it, it would time out here).
            outcomes, ids = asyncio.run(asyncio.wait_for(writer.store(bulk), 30))
            assert outcomes == ["accepted"] * len(bulk) and len(ids) == len(bulk)
            assert not small.done()
        assert result(small)[0] == ["accepted"]
    finally:
        writer.close()
    assert len(stored(ctx)) == len(bulk) + 1
