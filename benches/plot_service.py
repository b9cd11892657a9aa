#!/usr/bin/env python3
"""Draws ops/s per (workload, clients) per target from `strata bench --json` files as an SVG
bar chart, the median of each over the runs given, and prints the same medians as a Markdown
table with CPU per operation and the Strata/etcd ratios.

    python3 benches/plot_service.py chart.svg run1.json [run2.json ...]

Standard library only, so that it runs wherever the benchmark does.
"""
import json
import statistics
import sys
from xml.sax.saxutils import escape

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]


def medians(srcs):
    """{(workload, clients): {target: {"ops", "p50", "p99", "cpu"}}} over the runs, in the
    order the first run lists them, and the targets in order."""
    rows, order, targets = {}, [], []
    for src in srcs:
        for r in json.load(open(src))["results"]:
            key = (r["workload"], r["clients"])
            if key not in order:
                order.append(key)
            if r["target"] not in targets:
                targets.append(r["target"])
            rows.setdefault(key, {}).setdefault(r["target"], []).append(r)
    med = lambda runs, f: statistics.median(f(r) for r in runs)
    out = {}
    for key in order:
        out[key] = {
            t: {
                "ops": med(runs, lambda r: r["ops_per_sec"]),
                "p50": med(runs, lambda r: r["latency_ms"]["p50"]),
                "p99": med(runs, lambda r: r["latency_ms"]["p99"]),
                "cpu": med(runs, lambda r: (r.get("cpu") or {}).get("us_per_op") or 0),
                "runs": [r["ops_per_sec"] for r in runs],
            }
            for t, runs in rows[key].items()
        }
    return order, targets, out


def chart(dst, order, targets, rows, n):
    bar, gap, left = 14, 18, 170
    group = bar * len(targets) + gap
    plot_h = group * len(order)
    width, height = 980, plot_h + 90
    span = width - left - 120
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14">ops/sec per workload and client count'
        f'{", median of %d runs" % n if n > 1 else ""}</text>',
        f'<text x="{left}" y="36" font-size="11">bars scaled to the faster system of each '
        f'row; numbers are ops/sec</text>',
    ]
    for i, (workload, clients) in enumerate(order):
        y0 = 50 + i * group
        label = escape(f"{workload}, {clients} client{'s' if clients > 1 else ''}")
        out.append(f'<text x="{left - 8}" y="{y0 + group / 2}" text-anchor="end">{label}</text>')
        best = max((rows[(workload, clients)].get(t, {}).get("ops", 0) for t in targets)) or 1.0
        for j, t in enumerate(targets):
            v = rows[(workload, clients)].get(t, {}).get("ops", 0)
            y = y0 + j * bar
            w = v * span / best
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}" '
                       f'fill="{COLORS[j % len(COLORS)]}"/>')
            out.append(f'<text x="{left + w + 4:.1f}" y="{y + bar - 4}" font-size="10">{v:,.0f}</text>')
    ly = 50 + plot_h + 15
    for j, t in enumerate(targets):
        x = left + j * 120
        out.append(f'<rect x="{x}" y="{ly}" width="12" height="12" fill="{COLORS[j % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 16}" y="{ly + 11}">{escape(t)}</text>')
    out.append("</svg>")
    open(dst, "w").write("\n".join(out) + "\n")


def table(order, rows):
    print("| workload | clients | Strata ops/s | etcd ops/s | ratio | Strata p50 / p99 ms "
          "| etcd p50 / p99 ms | Strata CPU µs/op | etcd CPU µs/op | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in order:
        s, e = rows[key].get("strata"), rows[key].get("etcd")
        if not s or not e:
            continue
        print(f"| {key[0]} | {key[1]} | {s['ops']:,.0f} | {e['ops']:,.0f} | {s['ops'] / e['ops']:.2f} "
              f"| {s['p50']:.2f} / {s['p99']:.1f} | {e['p50']:.2f} / {e['p99']:.1f} "
              f"| {s['cpu']:,.0f} | {e['cpu']:,.0f} | {s['cpu'] / e['cpu']:.2f} |")
    print()
    print("| workload | clients | Strata ops/s, each run | etcd ops/s, each run |")
    print("|---|---:|---:|---:|")
    for key in order:
        s, e = rows[key].get("strata"), rows[key].get("etcd")
        if s and e:
            each = lambda x: " / ".join(f"{v:,.0f}" for v in x["runs"])
            print(f"| {key[0]} | {key[1]} | {each(s)} | {each(e)} |")


if __name__ == "__main__":
    if len(sys.argv) < 3 or not sys.argv[1].endswith(".svg"):
        sys.exit(__doc__)
    order, targets, rows = medians(sys.argv[2:])
    chart(sys.argv[1], order, targets, rows, len(sys.argv) - 2)
    table(order, rows)
