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


def main(dst, srcs):
    runs = Runs(srcs)
    doc = {"run": runs.run}
    engines = [{"engine": e} for e in runs.engines]
    workloads = runs.workloads
    ops = {e: [runs.ops(e, w) or 0 for w in workloads] for e in runs.engines}
    bar, gap, left, height, plot_h = 14, 18, 170, 0, 0
    group = bar * len(engines) + gap
    plot_h = group * len(workloads)
    width, height = 980, plot_h + 90
    span = width - left - 120
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14">ops/sec per workload '
        f'({doc["run"]["num"]} keys, {doc["run"]["key_size"]} B keys, '
        f'{doc["run"]["value_size"]} B values, {doc["run"]["threads"]} thread(s)'
        f'{", median of %d runs" % len(srcs) if len(srcs) > 1 else ""})</text>',
        f'<text x="{left}" y="36" font-size="11">bars scaled to the best engine of each '
        f'workload; numbers are ops/sec</text>',
    ]
    for i, name in enumerate(workloads):
        y0 = 50 + i * group
        out.append(f'<text x="{left - 8}" y="{y0 + group / 2}" text-anchor="end">{escape(name)}</text>')
        best = max((ops[e["engine"]][i] for e in engines if i < len(ops[e["engine"]])), default=0) or 1.0
        scale = span / best
        for j, e in enumerate(engines):
            v = ops[e["engine"]][i] if i < len(ops[e["engine"]]) else 0
            y = y0 + j * bar
            out.append(f'<rect x="{left}" y="{y}" width="{v * scale:.1f}" height="{bar - 2}" '
                       f'fill="{COLORS[j % len(COLORS)]}"/>')
            out.append(f'<text x="{left + v * scale + 4:.1f}" y="{y + bar - 4}" font-size="10">{v:,.0f}</text>')
    ly = 50 + plot_h + 15
    for j, e in enumerate(engines):
        x = left + j * 120
        out.append(f'<rect x="{x}" y="{ly}" width="12" height="12" fill="{COLORS[j % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 16}" y="{ly + 11}">{escape(e["engine"])}</text>')
    out.append("</svg>")
    open(dst, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) < 3 or not sys.argv[1].endswith(".svg"):
        sys.exit("usage: plot.py CHART.svg RUN.json [RUN.json ...]")
    main(sys.argv[1], sys.argv[2:])
