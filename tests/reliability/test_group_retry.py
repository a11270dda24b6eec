"""A group of events that keeps failing is retried in halves until it commits (services.inbox.apply_group).

PostgreSQL only: a trigger on the inbox refuses, as a serialization failure (40001, a transient error), any
statement that marks more than LIMIT events applied, and logs the size of the groups it lets through. Only
halving gets anything applied: 32, 16 and 8 are refused, 4 commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from backorder.config import load_settings
from services.context import Context
from services.inbox import GROUP_SIZE, drain, store_events
from store import tables as t
from store.db import make_engine

pytestmark = pytest.mark.postgres

LIMIT = 4
EVENTS = 40

REFUSE_BIG_GROUPS = [
    "CREATE TABLE committed_groups (size integer NOT NULL)",
    f"""CREATE FUNCTION refuse_big_groups() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE n integer;
        BEGIN
          SELECT count(*) INTO n FROM marked WHERE status = 'applied';
          IF n > {LIMIT} THEN
            RAISE EXCEPTION 'group of %% events refused', n USING ERRCODE = '40001';
          END IF;
          IF n > 0 THEN
            INSERT INTO committed_groups (size) VALUES (n);
          END IF;
          RETURN NULL;
        END $$""",
    "CREATE TRIGGER refuse_big_groups AFTER UPDATE ON inbox REFERENCING NEW TABLE AS marked "
    "FOR EACH STATEMENT EXECUTE FUNCTION refuse_big_groups()",
]


@pytest.fixture
def refusing_ctx(pg_url: str) -> Iterator[Context]:
    engine: Engine = make_engine(pg_url)
    with engine.begin() as conn:
        for ddl in REFUSE_BIG_GROUPS:
            conn.exec_driver_sql(ddl)
    yield Context(engine=engine, settings=load_settings(database_url=pg_url))
    engine.dispose()


def warehouse(k: int) -> dict[str, Any]:
    return {"event_id": f"w{k}", "type": "warehouse.upserted", "occurred_at": "2026-03-01T10:00:00+00:00",
            "source": "erp", "data": {"warehouse_id": f"W{k}", "name": f"Warehouse {k}", "region": "north"}}


def test_a_failing_group_is_halved_until_it_commits(refusing_ctx: Context) -> None:
    assert GROUP_SIZE // 8 == LIMIT, "32 -> 16 -> 8 -> 4: the test counts on three refusals"
    store_events(refusing_ctx, [warehouse(k) for k in range(EVENTS)])
    assert drain(refusing_ctx) == EVENTS
    with refusing_ctx.engine.connect() as conn:
        statuses = dict(conn.execute(select(t.inbox.c.status, func.count()).group_by(t.inbox.c.status)).tuples().all())
        sizes = conn.execute(text("SELECT size FROM committed_groups")).scalars().all()
        warehouses = conn.execute(select(func.count()).select_from(t.warehouses)).scalar_one()
    assert statuses == {"applied": EVENTS}
    assert sizes == [LIMIT] * (EVENTS // LIMIT), sizes
    assert warehouses == EVENTS
