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

from plot import bar_chart


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
    title = f'ops/sec per workload and client count{", median of %d runs" % n if n > 1 else ""}'
    bars = [
        (f"{w}, {c} client{'s' if c > 1 else ''}",
         [rows[(w, c)].get(t, {}).get("ops", 0) for t in targets])
        for w, c in order
    ]
    bar_chart(dst, title, bars, targets)


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
