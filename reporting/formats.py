"""A report's figures as Markdown, HTML, CSV and PDF (layouts in docs/reports.md)."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from markdown_it import MarkdownIt

from reporting import charts
from reporting.text import render, safe

FORMATS = ("md", "html", "csv", "pdf")
CONTENT_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8",
                 "csv": "text/csv; charset=utf-8", "pdf": "application/pdf", "png": "image/png"}
CHART_WIDTH = 800


def markdown(figures: Mapping[str, Any]) -> str:
    return render("report.md.j2", r=figures).strip() + "\n"


def title(figures: Mapping[str, Any]) -> str:
    return render("title.txt.j2", r=figures).strip()


def summary(figures: Mapping[str, Any]) -> str:
    return render("summary.txt.j2", r=figures).strip()


def html(figures: Mapping[str, Any], chart_src: Callable[[str, bytes], str] | None = None) -> str:
    """A standalone page: the Markdown report as HTML (raw HTML off: every value escaped) and the charts.

    `chart_src(name, png)` says where each chart's <img> points: a data: URI by default, a cid: in an
    e-mail, a file name beside the page.
    """
    src = chart_src or (lambda _name, png: "data:image/png;base64," + base64.b64encode(png).decode())
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown(figures))
    imgs = [{"src": src(name, png), "alt": name.replace("_", " "), "width": CHART_WIDTH}
            for name, png in charts.all_charts(dict(figures)).items()]
    return render("report.html.j2", title=title(figures), body=safe(body), charts=imgs)


# -- CSV: one table per section --------------------------------------------------------------------------
def _pairs(d: Mapping[str, Any]) -> list[list[Any]]:
    return [[k, v] for k, v in d.items() if not isinstance(v, dict | list)]


def _table(rows: Iterable[Mapping[str, Any]]) -> list[list[Any]]:
    rows = list(rows)
    if not rows:
        return []
    head = list(rows[0])
    return [head] + [[r.get(k) for k in head] for r in rows]


def csv_sections(figures: Mapping[str, Any]) -> list[tuple[str, list[list[Any]]]]:
    """(section, table) pairs; a table's first row is its header."""
    f = figures
    summary_rows = [["week", f["week"]], ["first_day", f["first_day"]], ["last_day", f["last_day"]],
                    ["timezone", f["timezone"]], ["generated_at", f["generated_at"]],
                    *[[f"this_week_{k}", v] for k, v in f["this_week"].items() if k not in ("week", "start")],
                    ["open_lines", f["open"]["lines"]], ["open_units", f["open"]["units"]],
                    ["open_value", f["open"]["value"]], ["revenue_at_risk", f["revenue_at_risk"]]]
    cycle = [{"stage": k.removesuffix("_h"), **{f"{m}_h" if m != "count" else m: v for m, v in x.items()}}
             for k, x in f["cycle_times"].items()]
    s2r = dict(f["shortage_to_request"])
    s2r_rows = [*_pairs(s2r), *[[f"hours_{k}", v] for k, v in s2r["hours"].items()],
                ["without_request", " ".join(s2r["without_request"])]]
    return [
        ("summary", [["figure", "value"], *summary_rows]),
        ("trend", _table(f["trend"])),
        ("aging", _table(f["aging"])),
        ("top_skus", _table(f["top_skus"])),
        ("top_suppliers", _table(f["top_suppliers"])),
        ("cycle_times", _table(cycle)),
        ("shortage_to_request", [["figure", "value"], *s2r_rows]),
        ("split_shipments", [["figure", "value"], *_pairs(f["split_shipments"])]),
        ("touches", [["figure", "value"], *_pairs(f["touches"])]),
        ("supplier_lead_times", _table(f["supplier_lead_times"])),
        ("customers", _table(f["customers"])),
    ]


def csv_text(figures: Mapping[str, Any]) -> str:
    """Blocks of `section,<name>`, a header row, the rows, and an empty row before the next section."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for name, table in csv_sections(figures):
        w.writerow(["section", name])
        w.writerows([["" if v is None else v for v in row] for row in table])
        w.writerow([])
    return out.getvalue()


def pdf(figures: Mapping[str, Any]) -> bytes:
    from reporting.pdf import build_pdf  # matplotlib's PDF backend, loaded only for a PDF

    return build_pdf(figures, markdown(figures), title(figures), summary(figures))


def render_format(figures: Mapping[str, Any], fmt: str) -> bytes:
    if fmt == "md":
        return markdown(figures).encode()
    if fmt == "html":
        return html(figures).encode()
    if fmt == "csv":
        return csv_text(figures).encode()
    if fmt == "pdf":
        return pdf(figures)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def file_name(figures: Mapping[str, Any], ext: str) -> str:
    return f"backorder-report-{figures['week']}.{ext}"
