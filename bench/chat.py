"""Answer latency of the chat pipeline (rules, no LLM) on a store of ~100,000 orders.

    python bench/chat.py                       # PostgreSQL, 200,000 lines (~100,000 orders), 5,000 SKUs
    python bench/chat.py --lines 20000 --skus 500 --db sqlite     # quick

Loads bench/allocation.py's synthetic data set (customers, products, orders, stock, POs), then
times services.chat.reply() end to end (understand + store reads + template) for customer and
staff questions, in process, after one warm-up round. Prints p50/p95/p99 per kind and overall.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _db import drop_database, new_database  # noqa: E402  (bench/ is the script's directory)
from sqlalchemy import select  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_allocation", ROOT / "bench" / "allocation.py")
assert _spec is not None and _spec.loader is not None
alloc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(alloc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--skus", type=int, default=5_000)
    ap.add_argument("--questions", type=int, default=400, help="per kind")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from backorder.config import load_settings
    from services.chat import ChatUser, reply
    from services.context import Context
    from store import tables as t
    from store.db import make_engine

    work = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    url = new_database(args.db, work)
    try:
        t0 = time.perf_counter()
        loaded = alloc.load_dataset(url, alloc.Dataset(args.lines, args.skus, 5, 42))
        load_s = time.perf_counter() - t0
        ctx = Context(engine=make_engine(url), settings=load_settings(database_url=url))
        with ctx.engine.connect() as conn:
            orders = conn.execute(select(t.orders.c.order_id, t.orders.c.customer_id)).all()
            names = conn.execute(select(t.products.c.sku, t.products.c.name)).all()
        rnd = random.Random(args.seed)
        picks = [rnd.choice(orders) for _ in range(args.questions)]
        products = [rnd.choice(names) for _ in range(args.questions)]
        kinds = {
            "customer: where is order N": [(ChatUser(customer_id=c), f"where is my order {o}?") for o, c in picks],
            "customer: someone else's order": [(ChatUser(customer_id=c), f"status of order {picks[-1 - i][0]}")
                                               for i, (_, c) in enumerate(picks)],
            "customer: what am I waiting for": [(ChatUser(customer_id=c), "what am I still waiting for?")
                                                for _, c in picks],
            "staff: what's waiting on SKU": [(ChatUser(staff_id="b", roles=frozenset({"ops"})),
                                             f"what's waiting on {s}") for s, _ in products],
            "staff: who waits on SKU": [(ChatUser(staff_id="b", roles=frozenset({"ops"})),
                                         f"who is waiting on {s}?") for s, _ in products],
        }
        for asks in kinds.values():  # warm-up: catalog cache, statement caches, templates
            for user, text in asks[:20]:
                reply(ctx, user, text)
        results = {}
        for kind, asks in kinds.items():
            times = []
            for user, text in asks:
                start = time.perf_counter()
                reply(ctx, user, text)
                times.append((time.perf_counter() - start) * 1000)
            results[kind] = sorted(times)
        print(f"# chat answer latency (bench/chat.py), {datetime.now(UTC).isoformat(timespec='seconds')}")
        print(f"{os.cpu_count()} cores, Python {platform.python_version()}, {args.db}; data: "
              f"{loaded.get('orders', 0):,} orders, {loaded.get('order_lines', 0):,} lines, "
              f"{loaded.get('customers', 0):,} customers, {loaded.get('products', 0):,} products "
              f"(loaded in {load_s:.1f} s); {args.questions} questions per kind, in process, after a warm-up")
        print(f"{'question':36} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
        every = []
        for kind, times in results.items():
            every += times
            print(f"{kind:36} {statistics.median(times):8.2f} {times[int(len(times) * .95)]:8.2f} "
                  f"{times[int(len(times) * .99)]:8.2f}")
        every.sort()
        print(f"{'all':36} {statistics.median(every):8.2f} {every[int(len(every) * .95)]:8.2f} "
              f"{every[int(len(every) * .99)]:8.2f}   (goal: p99 < 20 ms)")
        ctx.engine.dispose()
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
