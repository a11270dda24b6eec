"""The PDF: a cover page (title, summary, the trend and aging charts), then the top SKUs chart above the report
as fixed-width text running on over more pages, drawn with matplotlib's PdfPages (no extra dependency)."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.image import imread

from reporting import charts

A4 = (8.27, 11.69)
LINES_PER_PAGE = 78
UNDER_CHART = 46  # text lines that fit below the chart on page 2
FONT = 7.4
CELL_MAX = 26  # a long name is cut in the PDF's columns (the other formats keep it whole)
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]<>()#+!|])")


def _cells(line: str) -> list[str]:
    # Split on the pipes Markdown reads as column breaks, not on escaped ones inside a value.
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [_ESCAPED.sub(r"\1", p.strip()) for p in parts]


def plain_lines(md: str) -> list[str]:
    """The Markdown report as fixed-width text: headings underlined, tables in aligned columns."""
    out: list[str] = []
    table: list[list[str]] = []
    right: list[bool] = []  # per column: right-aligned (`---:` in the Markdown)

    def flush() -> None:
        if not table:
            return
        rows = [[c if len(c) <= CELL_MAX else c[:CELL_MAX - 1] + "…" for c in r] for r in table]
        widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(rows[0]))]
        for n, r in enumerate(rows):
            out.append("  ".join(c.rjust(w) if i < len(right) and right[i] else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(r, widths, strict=False))).rstrip())
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        table.clear()
        right.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            if re.fullmatch(r"\|[\s:|-]+\|?", line.strip()):
                right.extend(c.endswith(":") for c in _cells(line))
            else:
                table.append(_cells(line))
            continue
        flush()
        if line.startswith("#"):
            text = line.lstrip("#").strip()
            out += [text.upper() if line.startswith("# ") else text, "=" * len(text)]
        else:
            out.append(_ESCAPED.sub(r"\1", line))
    flush()
    return out


def _text(fig: Figure, lines: list[str], top: float) -> None:
    fig.text(0.06, top, "\n".join(lines), family="DejaVu Sans Mono", fontsize=FONT, va="top", linespacing=1.25)


def _image(fig: Figure, png: bytes, rect: tuple[float, float, float, float]) -> None:
    ax = fig.add_axes(rect)
    ax.imshow(imread(io.BytesIO(png), format="png"))
    ax.set_axis_off()


def build_pdf(figures: Mapping[str, Any], md: str, title: str, summary: str) -> bytes:
    pngs = charts.all_charts(dict(figures))
    out = io.BytesIO()
    created = datetime.fromisoformat(str(figures["generated_at"]))
    with PdfPages(out, metadata={"Title": title, "Creator": "backorder-bot", "CreationDate": created}) as pdf:
        cover = Figure(figsize=A4)
        cover.text(0.06, 0.95, title, fontsize=18, weight="bold", va="top")
        cover.text(0.06, 0.90, summary, fontsize=9.5, va="top", linespacing=1.6)
        _image(cover, pngs["trend"], (0.04, 0.37, 0.92, 0.36))
        _image(cover, pngs["aging"], (0.04, 0.02, 0.92, 0.36))
        pdf.savefig(cover)
        # The top SKUs fill the upper part of page 2; the report's text starts below them and runs on.
        page = Figure(figsize=A4)
        _image(page, pngs["top_skus"], (0.04, 0.62, 0.92, 0.34))
        lines = plain_lines(md)
        _text(page, lines[:UNDER_CHART], 0.58)
        pdf.savefig(page)
        for start in range(UNDER_CHART, len(lines), LINES_PER_PAGE):
            page = Figure(figsize=A4)
            _text(page, lines[start:start + LINES_PER_PAGE], 0.96)
            pdf.savefig(page)
    return out.getvalue()


def page_count(data: bytes) -> int:
    """Pages of a PDF, read from its page objects (tests and the CLI check it without a PDF library)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
