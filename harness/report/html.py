"""report.html: one self-contained page (inline CSS and SVG; no script, no network) for people who would
rather look than read.

From a results.json's contents, and optionally a ``Drift`` against an earlier run:

* the summary: status counts per option family and compute dtype;
* a heatmap of the worst ULP difference among the passing records, by compute dtype and value regime, with
  that record's absolute difference beside it (near zero a ULP is minute; the failures have their own section);
* the error distribution per compute dtype: how many passing records landed 0, 1, 2-3, 4-7, ... ULP away;
* with a drift: cases that changed between the two versions per option family, and how far the values moved;
* the divergences, each with its mismatch message.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.families import group_of
from harness.jsonio import atomic_write_text
from harness.report.drift import Drift
from harness.run.runner import STATUSES

__all__ = ["BIN_STARTS", "Sections", "render_html", "write_html"]

_STATUSES = STATUSES
_BINS = ((0, 0), (1, 1), (2, 3), (4, 7), (8, 15), (16, 63), (64, 1023), (1024, None))
_MAX_DIVERGENCES = 400
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child,td.l{text-align:left}
.fail,.error,.xpass{color:#b00020;font-weight:bold}.xfail{color:#8a6d00}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:12px}details{margin:.2em 0}
svg text{font:11px system-ui,sans-serif}svg text.abs{fill:#444}.note{color:#666}svg.plot{display:block;margin:.5em 0}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            cls = f' class="{classes[i]}"' if classes and classes[i] and v else ""
            cells.append(f"<td{cls}>{_e(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _color(level: float) -> str:
    """White (0) to dark red (1)."""
    level = min(max(level, 0.0), 1.0)
    g = int(255 - 200 * level)
    return f"rgb(255,{g},{int(255 - 230 * level)})"


def _compact(v: float) -> str:
    """A count or distance short enough for a cell: 3, 1200, 4.2e+08."""
    return f"{v:.0f}" if abs(v) < 1e4 else f"{v:.1e}"


def _text_width(text: str, size: float = 11) -> float:
    """The width a label takes in the page's sans-serif at ``size`` px (0.62 em a character, generous)."""
    return 0.62 * size * len(text)


def _heatmap_add(worst: dict[tuple[str, str], tuple[int, float]], r: Mapping[str, Any]) -> None:
    if r["status"] == "pass" and r.get("max_ulp") is not None:
        key = (r.get("compute_dtype") or "?", r.get("tags", {}).get("regime", "?"))
        ulp, diff = int(r["max_ulp"]), r.get("max_abs")
        diff = float(diff) if isinstance(diff, (int, float)) else 0.0
        if key not in worst or ulp > worst[key][0]:
            worst[key] = (ulp, diff)


def _heatmap(worst: dict[tuple[str, str], tuple[int, float]]) -> str:
    if not worst:
        return "<p class=note>No passing records.</p>"
    dtypes = sorted({d for d, _ in worst})
    regimes = sorted({g for _, g in worst})
    top = max(math.log2(1 + v) for v, _ in worst.values()) or 1.0
    # column labels stand vertically, one per column, so none can run into its neighbour or off the plot
    cw, ch = 78, 34
    left = 10 + max(_text_width(d) for d in dtypes)
    head = 14 + max(_text_width(g) for g in regimes)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{left + cw * len(regimes) + 10:.0f}" height="{head + ch * len(dtypes) + 10:.0f}" role="img" aria-label="worst ULP by dtype and regime">']
    for j, g in enumerate(regimes):
        x = left + j * cw + cw / 2 + 4
        parts.append(f'<text x="{x:.1f}" y="{head - 6:.1f}" text-anchor="start" transform="rotate(-90 {x:.1f} {head - 6:.1f})">{_e(g)}</text>')
    for i, d in enumerate(dtypes):
        y = head + i * ch
        parts.append(f'<text x="{left - 6:.1f}" y="{y + ch / 2 + 4:.1f}" text-anchor="end">{_e(d)}</text>')
        for j, g in enumerate(regimes):
            x = left + j * cw
            if (d, g) in worst:
                v, diff = worst[(d, g)]
                tip = f"{d} / {g}: worst {v} ULP, |diff| {diff:.3g}"
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{cw - 2}" height="{ch - 2}" fill="{_color(math.log2(1 + v) / top)}"><title>{_e(tip)}</title></rect>')
                parts.append(f'<text x="{x + cw / 2:.1f}" y="{y + 13}" text-anchor="middle">{_compact(v)} ULP</text>')
                parts.append(f'<text x="{x + cw / 2:.1f}" y="{y + 26}" text-anchor="middle" class="abs">{diff:.2g}</text>')
            else:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{cw - 2}" height="{ch - 2}" fill="#eee"/>')
    parts.append("</svg>")
    note = ("<p class=note>Each cell: the largest distance, in ULPs of the compute dtype at the expected value, between "
            "TensorFlow and the reference among the passing records of that dtype and regime, and below it that "
            "record's absolute difference.  The records pass because the absolute difference is within the error "
            "bound; near zero (tiny, subnormal or underflowing results) a ULP is minute, so a passing record can be "
            "10<sup>8</sup> ULP away while its absolute difference is far below the bound.</p>")  # fmt: skip
    return "".join(parts) + note


def _bin_label(lo: int, hi: int | None) -> str:
    return f"{lo}+" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")


def _histograms_add(counts: dict[str, list[int]], r: Mapping[str, Any]) -> None:
    if r["status"] == "pass" and r.get("max_ulp") is not None:
        u = int(r["max_ulp"])
        k = next(i for i, (lo, hi) in enumerate(_BINS) if u >= lo and (hi is None or u <= hi))
        counts.setdefault(r.get("compute_dtype") or "?", [0] * len(_BINS))[k] += 1


def _histograms(counts: dict[str, list[int]]) -> str:
    if not counts:
        return "<p class=note>No passing records.</p>"
    charts = []
    labels = [_bin_label(*b) for b in _BINS]
    bw = max(40, 8 + max(_text_width(t) for t in labels))  # each bin as wide as its label, so labels never touch
    hgt, title_h, count_h = 110, 20, 16  # the count above the tallest bar stays below the title
    for dtype in sorted(counts):
        c = counts[dtype]
        top = max(c) or 1
        base = title_h + count_h + hgt
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{bw * len(_BINS) + 20:.0f}" height="{base + 24}" role="img" aria-label="ULP distribution {_e(dtype)}">']
        parts.append(f'<text x="4" y="14" font-weight="bold">{_e(dtype)} ({sum(c)} records)</text>')
        for k, n in enumerate(c):
            h = hgt * n / top
            x = 10 + k * bw
            parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bw - 6:.1f}" height="{h:.1f}" fill="#4a78b5"><title>{n} records at {labels[k]} ULP</title></rect>')
            parts.append(f'<text x="{x + (bw - 6) / 2:.1f}" y="{base - h - 3:.1f}" text-anchor="middle">{n}</text>')
            parts.append(f'<text x="{x + (bw - 6) / 2:.1f}" y="{base + 16}" text-anchor="middle">{labels[k]}</text>')
        parts.append("</svg>")
        charts.append("".join(parts))
    return ("<div>" + " ".join(charts) + "</div><p class=note>x: a passing record's largest distance from the reference "
            "in ULPs of its compute dtype; y: records.  Near zero a large ULP count can still be a tiny absolute error "
            "(see the heatmap).</p>")  # fmt: skip


def _summary_add(groups: dict[tuple[str, str], dict[str, int]], r: Mapping[str, Any]) -> None:
    key = (group_of(r), r.get("compute_dtype") or "?")
    if key not in groups:
        groups[key] = dict.fromkeys(_STATUSES, 0)
    groups[key][r["status"]] += 1


def _summary(groups: dict[tuple[str, str], dict[str, int]]) -> str:
    rows = [(g, d, *(v[s] for s in _STATUSES)) for (g, d), v in sorted(groups.items())]
    return _table(("option family", "compute dtype", *_STATUSES), rows, ("", "", "", "fail", "xfail", "xpass", "error", "", ""))


def _drift_section(d: Drift) -> str:
    # each case once, under the first list that has it: a new divergence whose value also moved is not drift too
    names = ("new divergence", "unexplained", "fixed", "drift")
    per_group: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(names, 0))
    counted: set[str] = set()
    for name, changes in zip(names, (d.new_divergences, d.unexplained, d.fixed, d.drift), strict=True):
        for c in changes:
            if c.id not in counted:
                counted.add(c.id)
                per_group[c.group][name] += 1
    out = [
        f"<p>BASE: TensorFlow {_e(d.base.get('tensorflow'))}, Keras {_e(d.base.get('keras'))}, profile {_e(d.base.get('profile'))}; "
        f"NEW: TensorFlow {_e(d.new.get('tensorflow'))}, Keras {_e(d.new.get('keras'))}, profile {_e(d.new.get('profile'))}. "
        f"{d.compared} cases compared; drift counts a move beyond {'nothing (exact)' if d.exact else 'the larger error bound'}.</p>"
    ]
    if per_group:
        groups = sorted(per_group)
        top = max(sum(v.values()) for v in per_group.values()) or 1
        colors = {"new divergence": "#b00020", "unexplained": "#7b1fa2", "fixed": "#2e7d32", "drift": "#e0a100"}
        width, rowh = 420, 22
        left = 10 + max(_text_width(g) for g in groups)
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{max(left + width + 80, left + 4 * 130):.0f}" height="{rowh * len(groups) + 40}" role="img" aria-label="changes per option family">']
        for i, g in enumerate(groups):
            y = 10 + i * rowh
            x = left
            parts.append(f'<text x="{left - 6:.1f}" y="{y + 14}" text-anchor="end">{_e(g)}</text>')
            for name, n in per_group[g].items():
                w = width * n / top
                if n:
                    parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{rowh - 4}" fill="{colors[name]}"><title>{_e(g)}: {n} {name}</title></rect>')
                x += w
            parts.append(f'<text x="{x + 4:.1f}" y="{y + 14}">{sum(per_group[g].values())}</text>')
        legend_y = 10 + len(groups) * rowh + 14
        for k, (name, color) in enumerate(colors.items()):
            parts.append(f'<rect x="{left + k * 130:.1f}" y="{legend_y - 10}" width="10" height="10" fill="{color}"/><text x="{left + k * 130 + 14:.1f}" y="{legend_y}">{name}</text>')
        parts.append("</svg>")
        out.append("".join(parts))
    out.append("<p class=note>Each case is counted once, under the first of these lists that holds it.  "
               "|moved| is the largest absolute change of TensorFlow's value between the versions, ULP moved the "
               "same change in ULPs of the coarser compute dtype of the two (near zero a large ULP count can be a "
               "tiny change).</p>")
    sections = (("New divergences (passed in BASE)", d.new_divergences),
                ("Unexplained (a known divergence in BASE, an unexpected failure in NEW)", d.unexplained),
                ("Fixed", d.fixed), ("Value drift", d.drift))  # fmt: skip
    for title, changes in sections:
        out.append(f"<h3>{title} ({len(changes)})</h3>")
        rows = []
        for c in changes[:_MAX_DIVERGENCES]:
            before = c.before.get("actual_error") or _short(c.before)
            after = c.after.get("actual_error") or _short(c.after)
            moved = "" if c.max_abs is None else f"{c.max_abs:.3g}"
            rows.append((c.group, c.id, c.what, before, after, moved, "" if c.max_ulp is None else c.max_ulp))
        if rows:
            head = ("option family", "case", "what", "before", "after", "max |moved|", "max ULP moved")
            out.append(_table(head, rows, ("", "l", "l", "l", "l", "", "")))
        if len(changes) > _MAX_DIVERGENCES:
            out.append(f"<p class=note>{len(changes) - _MAX_DIVERGENCES} more in drift.json</p>")
    return "".join(out)


def _short(r: Mapping[str, Any]) -> str:
    a = r.get("actual")
    if isinstance(a, dict):
        data = a.get("data", [])
        text = ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in data[:3])
        return f"[{text}{', ...' if len(data) > 3 else ''}] {r.get('actual_dtype')}"
    if a is None:  # a passing record of format 6 is a summary: its output's digest, not its values
        return f"(summary, digest {str(r['digest'])[:8]})" if r.get("digest") else "(none)"
    return f"{a:.9g} {r.get('actual_dtype')}" if isinstance(a, float) else f"{a} {r.get('actual_dtype')}"


_ORDER = {"error": 0, "fail": 1, "xpass": 2, "xfail": 3, "unsupported": 4, "outside": 5}


def _divergences(found: list[Mapping[str, Any]]) -> str:
    bad = sorted(found, key=lambda r: (_ORDER[r["status"]], r["id"]))
    if not bad:
        return "<p>None.</p>"
    out = []
    for r in bad[:_MAX_DIVERGENCES]:
        label = f"{r['status']} {r.get('kind') or ''} {r['id']}" + (f" ({r['divergence']})" if r.get("divergence") else "")
        out.append(f'<details><summary class="{r["status"]}">{_e(label)}</summary><pre>{_e(r.get("message", r.get("note", "")))}</pre></details>')
    if len(bad) > _MAX_DIVERGENCES:
        out.append(f"<p class=note>{len(bad) - _MAX_DIVERGENCES} more in results.json</p>")
    return "".join(out)


class Sections:
    """What the page's sections show of a run's records, gathered a record at a time (``add``), or, where
    the records are columns (results.parquet), many passing records with the same keys at a time
    (``add_passes``, ``add_worst``, ``add_bins``): the page is the same either way."""

    def __init__(self) -> None:
        self.records = 0
        self.groups: dict[tuple[str, str], dict[str, int]] = {}  # the summary's status counts
        self.worst: dict[tuple[str, str], tuple[int, float]] = {}  # the heatmap's cells
        self.counts: dict[str, list[int]] = {}  # the histograms' bins
        self.bad: list[Mapping[str, Any]] = []  # the divergences

    def add(self, r: Mapping[str, Any]) -> None:
        self.records += 1
        _summary_add(self.groups, r)
        _heatmap_add(self.worst, r)
        _histograms_add(self.counts, r)
        if r["status"] != "pass":
            self.bad.append(r)

    def add_passes(self, group: str, compute_dtype: str, n: int) -> None:
        """``n`` passing records of option family ``group`` and compute dtype ``compute_dtype`` (``"?"`` for none)."""
        self.records += n
        key = (group, compute_dtype)
        if key not in self.groups:
            self.groups[key] = dict.fromkeys(_STATUSES, 0)
        self.groups[key]["pass"] += n

    def add_worst(self, compute_dtype: str, regime: str, ulp: int, diff: float) -> None:
        """A passing record of the heatmap cell (``compute_dtype``, ``regime``), ``diff`` its absolute
        difference (0.0 for none).  The cell keeps the first record with its largest ULP, so they come in
        the records' order; of a batch, its first record with its largest ULP is enough."""
        key = (compute_dtype, regime)
        if key not in self.worst or ulp > self.worst[key][0]:
            self.worst[key] = (ulp, diff)

    def add_bins(self, compute_dtype: str, bins: Sequence[int]) -> None:
        """Passing records of ``compute_dtype`` with a ULP, counted per histogram bin (``_BINS``)."""
        counts = self.counts.setdefault(compute_dtype, [0] * len(_BINS))
        for k, n in enumerate(bins):
            counts[k] += n


BIN_STARTS = tuple(lo for lo, _ in _BINS)  # a ULP's bin is the last whose start it reaches


def render_html(results: Mapping[str, Any], *, drift: Drift | None = None, sections: Sections | None = None) -> str:
    """The page for ``results`` (the dict written as results.json), with a drift section when given;
    ``sections`` where its records are gathered already (compare --out of results.parquet gathers them in
    the pass over the columns that writes junit.xml), else one pass over the records gathers them."""
    meta, totals = results["meta"], results.get("totals", {})
    if sections is None:
        # one pass over the records (a million summaries read from results.parquet are read once), each
        # section accumulating what it shows
        sections = Sections()
        for r in results["records"]:
            sections.add(r)
    title = f"bce-harness: TensorFlow {meta.get('tensorflow')}, Keras {meta.get('keras')}, profile {meta.get('profile')}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p>Seed {_e(meta.get('seed'))}, {_e(meta.get('created_utc'))}, {_e(meta.get('platform'))}, Python {_e(meta.get('python'))}, NumPy {_e(meta.get('numpy'))}.</p>",
        "<p><b>" + ", ".join(f"{totals.get(s, 0)} {s}" for s in _STATUSES) + f" of {totals.get('total', sections.records)} records.</b></p>",
        "<h2>Summary</h2>",
        _summary(sections.groups),
        "<h2>Worst ULP (and its absolute difference) among passing records, by compute dtype and value regime</h2>",
        _heatmap(sections.worst),
        "<h2>Error distribution per compute dtype (passing records)</h2>",
        _histograms(sections.counts),
    ]
    if drift is not None:
        body += ["<h2>Drift between the two versions</h2>", _drift_section(drift)]
    body += ["<h2>Divergences</h2>", _divergences(sections.bad)]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_html(results: Mapping[str, Any], path: str | Path, *, drift: Drift | None = None, sections: Sections | None = None) -> Path:
    return atomic_write_text(path, render_html(results, drift=drift, sections=sections))
