#!/usr/bin/env python3
"""Draws ops/s per workload per engine from a `strata-bench --json` file as an SVG bar chart.

    python3 benches/plot.py results.json chart.svg

Standard library only, so that it runs wherever the driver does.
"""
import json
import sys
from xml.sax.saxutils import escape

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]


def main(src, dst):
    doc = json.load(open(src))
    engines = doc["engines"]
    workloads = [w["name"] for w in engines[0]["workloads"]]
    ops = {e["engine"]: [w["ops_per_sec"] for w in e["workloads"]] for e in engines}
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
        f'{doc["run"]["value_size"]} B values, {doc["run"]["threads"]} thread(s))</text>',
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
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS.json CHART.svg")
    main(sys.argv[1], sys.argv[2])
