"""The report's charts as PNG bytes (matplotlib's object API on the Agg canvas: no pyplot, no display,
safe in a worker thread)."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reporting.text import labels

SIZE = (8.0, 3.6)  # inches: 800 x 360 px at DPI, wide enough for a chat preview and an e-mail
DPI = 100
BLUE, GREEN, GREY, ORANGE = "#3b7dd8", "#3aa76d", "#9aa5b1", "#e8833a"
NAMES = ("trend", "aging", "top_skus")


def _figure() -> Figure:
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e4e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def trend(figures: dict[str, Any]) -> bytes:
    """Grouped bars per week: backorders opened and resolved; the fill rate as a line on its own axis."""
    text = labels()
    weeks = figures["trend"]
    fig = _figure()
    ax = fig.add_subplot()
    xs = list(range(len(weeks)))
    ax.bar([x - 0.2 for x in xs], [w["opened"] for w in weeks], width=0.4, color=ORANGE, label=text["trend_opened"])
    ax.bar([x + 0.2 for x in xs], [w["resolved"] for w in weeks], width=0.4, color=GREEN,
           label=text["trend_resolved"])
    ax.set_xticks(xs, [w["week"] for w in weeks], fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(text["trend_y"])
    ax.set_title(text["trend_title"], fontsize=11, loc="left")
    _style(ax)
    rates = [(x, w["fill_rate"] * 100) for x, w in zip(xs, weeks, strict=True) if w["fill_rate"] is not None]
    handles, names = ax.get_legend_handles_labels()
    if rates:
        ax2 = ax.twinx()
        line = ax2.plot([r[0] for r in rates], [r[1] for r in rates], color=BLUE, marker="o", linewidth=1.5,
                        label=text["trend_fill"])
        ax2.set_ylim(0, 105)
        ax2.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0f}%")
        ax2.spines[["top"]].set_visible(False)
        handles += line
        names.append(text["trend_fill"])
    ax.legend(handles, names, loc="upper left", fontsize=8, frameon=False, ncols=3)
    return _png(fig)


def aging(figures: dict[str, Any]) -> bytes:
    """Lines waiting now per aging bucket, each bar labelled with the value waiting."""
    text = labels()
    buckets = figures["aging"]
    fig = _figure()
    ax = fig.add_subplot()
    bars = ax.bar([b["bucket"] for b in buckets], [b["lines"] for b in buckets],
                  color=[GREEN, BLUE, BLUE, ORANGE, "#d64545"][:len(buckets)])
    ax.bar_label(bars, labels=[f"{b['value']:,.0f}" if b["lines"] else "" for b in buckets], fontsize=8, padding=2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(text["aging_x"])
    ax.set_ylabel(text["aging_y"])
    ax.set_title(text["aging_title"], fontsize=11, loc="left")
    ax.margins(y=0.15)
    _style(ax)
    return _png(fig)


def top_skus(figures: dict[str, Any]) -> bytes:
    """Horizontal bars: days late summed per SKU, the worst at the top."""
    text = labels()
    rows = list(reversed(figures["top_skus"]))
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_title(text["top_title"], fontsize=11, loc="left")
    if not rows:
        ax.text(0.5, 0.5, text["empty"], ha="center", va="center", color=GREY, transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    bars = ax.barh([r["key"] for r in rows], [r["days_late"] for r in rows], color=ORANGE)
    ax.bar_label(bars, labels=[f"{r['days_late']:,.1f}" for r in rows], fontsize=8, padding=2)
    ax.set_xlabel(text["top_x"])
    ax.tick_params(axis="y", labelsize=8)
    ax.margins(x=0.12)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def all_charts(figures: dict[str, Any]) -> dict[str, bytes]:
    """Every chart by name (trend, aging, top_skus)."""
    return {"trend": trend(figures), "aging": aging(figures), "top_skus": top_skus(figures)}


def chart(figures: dict[str, Any], name: str) -> bytes:
    if name not in NAMES:
        raise KeyError(name)
    return {"trend": trend, "aging": aging, "top_skus": top_skus}[name](figures)
