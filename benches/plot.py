#!/usr/bin/env python3
"""Draws ops/s per workload per engine from `strata-bench --json` files as an SVG bar chart:
the median of each over the runs given (one run is fine).

    python3 benches/plot.py chart.svg run1.json [run2.json ...]

Standard library only, so that it runs wherever the driver does.
"""
import sys
from xml.sax.saxutils import escape

from results import Runs

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]


def bar_chart(dst, title, rows, series):
    """Writes an SVG of horizontal bars: `rows` is [(label, [value per series])], each row's
    bars scaled to its largest value, with a legend of the `series` names."""
    bar, gap, left = 14, 18, 170
    group = bar * len(series) + gap
    plot_h = group * len(rows)
    width, height = 980, plot_h + 90
    span = width - left - 120
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14">{escape(title)}</text>',
        f'<text x="{left}" y="36" font-size="11">bars scaled to the best of each row; '
        f'numbers are ops/sec</text>',
    ]
    for i, (label, values) in enumerate(rows):
        y0 = 50 + i * group
        out.append(f'<text x="{left - 8}" y="{y0 + group / 2}" text-anchor="end">{escape(label)}</text>')
        scale = span / (max(values, default=0) or 1.0)
        for j, v in enumerate(values):
            y = y0 + j * bar
            out.append(f'<rect x="{left}" y="{y}" width="{v * scale:.1f}" height="{bar - 2}" '
                       f'fill="{COLORS[j % len(COLORS)]}"/>')
            out.append(f'<text x="{left + v * scale + 4:.1f}" y="{y + bar - 4}" font-size="10">{v:,.0f}</text>')
    ly = 50 + plot_h + 15
    for j, name in enumerate(series):
        x = left + j * 120
        out.append(f'<rect x="{x}" y="{ly}" width="12" height="12" fill="{COLORS[j % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 16}" y="{ly + 11}">{escape(name)}</text>')
    out.append("</svg>")
    open(dst, "w").write("\n".join(out) + "\n")


def main(dst, srcs):
    runs = Runs(srcs)
    run = runs.run
    title = (f'ops/sec per workload ({run["num"]} keys, {run["key_size"]} B keys, '
             f'{run["value_size"]} B values, {run["threads"]} thread(s)'
             f'{", median of %d runs" % len(srcs) if len(srcs) > 1 else ""})')
    rows = [(w, [runs.ops(e, w) or 0 for e in runs.engines]) for w in runs.workloads]
    bar_chart(dst, title, rows, runs.engines)


if __name__ == "__main__":
    if len(sys.argv) < 3 or not sys.argv[1].endswith(".svg"):
        sys.exit("usage: plot.py CHART.svg RUN.json [RUN.json ...]")
    main(sys.argv[1], sys.argv[2:])
