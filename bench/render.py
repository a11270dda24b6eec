"""Benchmark of notice rendering (not a test): median microseconds per notifiers.render.render_notice call.

    python bench/render.py [--calls 3000] [--repeat 5]

Typical customer notices (1-3 lines, a date or the reason there is none), kinds `allocated`,
`eta_changed` and `backorder_created`, rendered for
  console  the text style (what every chat channel gets too)
  email    subject + text + HTML, three styles per call
  sms      the SMS style, shrunk until it fits two segments (a 12-line notice makes it list fewer items)
  slack    the text style plus the chat card (subject as title, fields, buttons), what Slack, Teams and
           WhatsApp rows carry
in English and Spanish. Every case is rendered once first (template loading and compiling are not part of
the figure), then --calls calls are timed one by one, --repeat times over; the median of all of them is
printed per channel, with p90 and the best run's mean. Prints the conditions it ran under.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import cpu_model  # noqa: E402
from notifiers.render import render_notice  # noqa: E402

KINDS = ("allocated", "eta_changed", "backorder_created")
LOCALES = ("en", "es")


def _item(n: int, kind: str, eta: str | None, name: str) -> dict[str, Any]:
    it = {"line_id": f"L{n}", "sku": f"SKU-{n:03d}", "name": name, "qty": 3, "qty_allocated": 1, "qty_shipped": 0,
          "waiting": 2, "status": "partially_allocated", "eta": eta,
          "eta_reason": "po:PO-7" if eta else "no_inbound_po_and_no_lead_time", "previous_eta": "2026-03-06"}
    if kind == "allocated":
        it.update(status="allocated", qty_allocated=3, waiting=0, eta=None, eta_reason=None)
    return it


def facts(kind: str, lines: int, locale: str) -> dict[str, Any]:
    names = ["Widget Pro", "Gadget", "Café Crème Espresso Beans, 1 kg"]
    items = [_item(n, kind, None if n == 2 else f"2026-03-{8 + n:02d}",
                   names[(n - 1) % 3] + ("" if n <= 3 else f" {n}")) for n in range(1, lines + 1)]
    return {"customer": {"id": "C-17", "name": "Ann Lee", "tier": "gold", "locale": locale,
                         "timezone": "America/Mexico_City"},
            "order": {"id": "SO-1001", "placed_at": "2026-03-01T15:30:00+00:00", "promised_date": "2026-03-05"},
            "items": items}


def cases(channel: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    sizes = (1, 2, 3, 12) if channel == "sms" else (1, 2, 3)
    return [(kind, channel, loc, facts(kind, n, loc)) for kind in KINDS for loc in LOCALES for n in sizes]


def measure(channel: str, calls: int, repeat: int) -> dict[str, float]:
    work = cases(channel)
    for kind, ch, loc, f in work:  # warm-up: load and compile every template once
        render_notice(kind, ch, loc, f)
    samples: list[float] = []
    means: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        run: list[float] = []
        for i in range(calls):
            kind, ch, loc, f = work[i % len(work)]
            t0 = clock()
            render_notice(kind, ch, loc, f)
            run.append((clock() - t0) / 1000)
        samples += run
        means.append(statistics.fmean(run))
    samples.sort()
    return {"median": statistics.median(samples), "p90": samples[int(len(samples) * 0.9)], "best_mean": min(means)}


def conditions() -> str:
    cpu = cpu_model()
    libs = ", ".join(f"{d} {version(d)}" for d in ("jinja2", "babel", "markupsafe"))
    return (f"{datetime.now(UTC).isoformat(timespec='seconds')}; {os.cpu_count()} CPU ({cpu}); "
            f"loadavg {os.getloadavg()[0]:.2f}; Python {platform.python_version()}; {libs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000, help="timed calls per run and channel")
    ap.add_argument("--repeat", type=int, default=5, help="runs per channel")
    ap.add_argument("--channels", default="console,email,sms,slack")
    args = ap.parse_args()
    print(f"conditions: {conditions()}")
    print(f"kinds {', '.join(KINDS)}; locales {', '.join(LOCALES)}; "
          f"{args.calls} calls x {args.repeat} runs per channel")
    print()
    print("| channel | styles per call | lines | median µs | p90 µs | best run mean µs |")
    print("|---|---|---|---:|---:|---:|")
    styles = {"console": "text", "email": "subject+text+html", "sms": "sms (shrinks)",
              "slack": "text+subject+card"}
    for channel in args.channels.split(","):
        r = measure(channel, args.calls, args.repeat)
        lines = "1-3, 12" if channel == "sms" else "1-3"
        print(f"| {channel} | {styles.get(channel, 'text')} | {lines} | {r['median']:.0f} | {r['p90']:.0f} "
              f"| {r['best_mean']:.0f} |")


if __name__ == "__main__":
    main()
