#!/usr/bin/env python3
"""Prints the Markdown tables of BENCHMARKS.md from `strata-bench --json` files of the same
command run several times: medians over the runs, ratios to Strata, p99s, memory.

    python3 benches/summarize.py run1.json run2.json run3.json

Standard library only.
"""
import sys

from results import Runs

MIB = 1 << 20


def fmt_ops(v):
    return "—" if v is None else f"{v:,.0f}"


def main(paths):
    r = Runs(paths)
    base = "strata"
    others = [e for e in r.engines if e != base]
    print(f"Medians of {len(paths)} runs.\n")
    head = ["workload", "Strata ops/s"] + [f"{e} ops/s (× Strata)" for e in others]
    head.append("p99 µs " + " / ".join(r.engines))
    print("| " + " | ".join(head) + " |")
    print("| --- |" + " ---: |" * (len(head) - 1))
    for w in r.workloads:
        ours = r.ops(base, w)
        row = [w, fmt_ops(ours)]
        for e in others:
            v = r.ops(e, w)
            row.append("—" if v is None else f"{v:,.0f} ({v / ours:.2f}×)")
        row.append(" / ".join(f"{r.p99(e, w):.1f}" for e in r.engines))
        print("| " + " | ".join(row) + " |")
    print()
    print("| | " + " | ".join(r.engines) + " |")
    print("| --- |" + " ---: |" * len(r.engines))
    rows = [
        ("peak RssAnon, MiB (median / max of runs)",
         lambda e: f"{r.engine_median(e, 'peak_rss_anon_bytes') / MIB:.1f} / "
                   f"{r.engine_max(e, 'peak_rss_anon_bytes') / MIB:.1f}"),
        ("peak RSS incl. mapped tables, MiB",
         lambda e: f"{r.engine_median(e, 'peak_rss_bytes') / MIB:.1f}"),
        ("write amplification",
         lambda e: f"{r.engine_median(e, 'bytes_written') / r.engine_median(e, 'user_bytes_written'):.2f}"),
        ("space amplification",
         lambda e: f"{r.engine_median(e, 'space_amplification'):.2f}"),
        ("database size at the end, MiB",
         lambda e: f"{r.engine_median(e, 'db_bytes') / MIB:.1f}"),
    ]
    for name, f in rows:
        print(f"| {name} | " + " | ".join(f(e) for e in r.engines) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: summarize.py RUN.json [RUN.json ...]")
    main(sys.argv[1:])
