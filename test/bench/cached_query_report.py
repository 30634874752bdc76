#!/usr/bin/env python3
"""Summarise the runs of test/bench/cached_query.sh.

Reads the per-run CSV (rep,workload,mode,clients,variant,tps,latency_ms,failed,
cache,cache_hits,cache_lookups), the notes and the stale-result flags written
by cached_query.sh; writes OUT.txt (notes + table),
OUT.csv (one row per workload/mode/clients/variant) and OUT.png (gnuplot,
grouped bars of median TPS) when gnuplot is available.
"""
import argparse
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict

WORKLOAD_ORDER = ["pk", "agg", "mixed", "eq", "herd", "tpcb"]
WORKLOAD_TITLE = {
    "pk": "(a) 1-row PK lookup",
    "agg": "(b) ~1 ms aggregate",
    "mixed": "mixed 80% agg / 15% PK / 5% UPDATE",
    "eq": "per-customer aggregate 95% / UPDATE of a random customer 5%",
    "herd": "64 clients, one invalidated heavy query (64 / time to the last answer)",
    "tpcb": "TPC-B, tables watched vs unwatched",
}
# cached_query: everything on (L1, planner shortcut, coalescing; tables
# watched as a whole). cached_l1off: L1 off. cached_noshortcut: L1 and the
# planner shortcut off (the hit path of the previous release). cached_value:
# the written table watched by a column (per-value generations).
# cached_nocoalesce: miss coalescing off.
VARIANT_ORDER = ["direct", "cached_query", "cached_value", "cached_l1off", "cached_noshortcut",
                 "cached_nocoalesce", "pgpool", "floor", "unwatched", "watched"]
MODE_ORDER = ["simple", "extended", "prepared"]


def num(s):
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--notes", required=True)
    ap.add_argument("--flags", help="lines 'workload mode clients|* variant stale': rows to mark")
    ap.add_argument("--out", required=True, help="output path without extension")
    args = ap.parse_args()

    runs = defaultdict(list)  # (wl, mode, clients, variant) -> [(tps, lat)]
    hits = {}  # key -> [hits, lookups], summed over the runs
    with open(args.runs, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["workload"], r["mode"], int(r["clients"]), r["variant"])
            runs[key].append((num(r["tps"]), num(r["latency_ms"])))
            if r.get("cache_lookups"):
                h = hits.setdefault(key, [0, 0])
                h[0] += int(r["cache_hits"])
                h[1] += int(r["cache_lookups"])

    stale = set()  # (wl, mode, clients or "*", variant)
    if args.flags and os.path.exists(args.flags):
        with open(args.flags) as f:
            for ln in f:
                parts = ln.split()
                if len(parts) >= 5 and parts[4] == "stale":
                    stale.add(tuple(parts[:4]))

    def is_stale(wl, mode, c, v):
        return (wl, mode, "*", v) in stale or (wl, mode, str(c), v) in stale

    def sort_key(k):
        wl, mode, c, v = k
        return (
            WORKLOAD_ORDER.index(wl) if wl in WORKLOAD_ORDER else 99,
            MODE_ORDER.index(mode) if mode in MODE_ORDER else 99,
            c,
            VARIANT_ORDER.index(v) if v in VARIANT_ORDER else 99,
        )

    summary = {}
    for key in sorted(runs, key=sort_key):
        tps = [t for t, _ in runs[key] if t is not None]
        lat = [l for _, l in runs[key]]
        h = hits.get(key)
        summary[key] = {
            "runs": len(runs[key]),
            "tps": median(tps),
            "lat": median(lat),
            "min": min(tps) if tps else None,
            "max": max(tps) if tps else None,
            "hit": (h[0] / h[1]) if h and h[1] else None,
        }

    def get(wl, mode, c, v, field):
        s = summary.get((wl, mode, c, v))
        return s[field] if s else None

    rows = []
    for key, s in summary.items():
        wl, mode, c, v = key
        vs_direct = vs_pgpool = vs_floor = None
        if v.startswith("cached_"):
            vs_direct = ratio(s["tps"], get(wl, mode, c, "direct", "tps"))
            vs_pgpool = ratio(s["tps"], get(wl, mode, c, "pgpool", "tps"))
            vs_floor = ratio(s["lat"], get(wl, mode, c, "floor", "lat"))
        elif v == "watched":
            vs_direct = ratio(s["tps"], get(wl, mode, c, "unwatched", "tps"))
        spread = None
        if s["tps"] and s["min"] is not None:
            spread = 100.0 * (s["max"] - s["min"]) / s["tps"]
        rows.append((key, s, vs_direct, vs_pgpool, vs_floor, spread))

    # --- text table ---
    header = ["workload", "mode", "clients", "variant", "runs", "median TPS", "spread%",
              "median lat ms", "hit%", "cached/direct", "cached/pgpool", "lat/floor lat"]
    table = []
    for key, s, vd, vp, vf, spread in rows:
        wl, mode, c, v = key
        mark = " *" if is_stale(wl, mode, c, v) else ""
        table.append([wl, mode, str(c), v + mark, str(s["runs"]), fmt(s["tps"]), fmt(spread, 0),
                      fmt(s["lat"], 3), fmt(None if s["hit"] is None else 100 * s["hit"], 1),
                      fmt(vd, 2), fmt(vp, 2), fmt(vf, 2)])
    widths = [max(len(header[i]), *(len(r[i]) for r in table)) if table else len(header[i])
              for i in range(len(header))]
    right = set(range(4, len(header)))

    def line(cells):
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    out_lines = [line(header), line(["-" * w for w in widths])]
    prev = None
    for r in table:
        group = tuple(r[:3])
        if prev is not None and group != prev:
            out_lines.append("")
        prev = group
        out_lines.append(line(r))
    legend = [
        "",
        "variants: cached_query = L1 + planner shortcut + coalescing, tables watched whole; cached_value = the",
        "written table watched by a column (per-value); cached_l1off = L1 off; cached_noshortcut = L1 and the",
        "planner shortcut off; cached_nocoalesce = miss coalescing off.",
        "cached/direct and cached/pgpool: median TPS of a cached variant over the same workload's direct / pgpool",
        "median TPS (TPC-B: watched/unwatched in the cached/direct column). lat/floor lat: cached_query's",
        "median latency over that of one cachekit.cache_get() (one Redis GET from the backend), same mode and clients.",
        "spread%: (max-min)/median of TPS over the repetitions. hit%: cache hits / lookups during the runs",
        "(cachekit.query_stats for cached_query; SHOW POOL_CACHE deltas for pgpool, which counts a prepared",
        "execution twice).",
    ]
    if stale:
        legend += [
            "* served results older than committed writes (see the read-your-writes probe / stale checks in the",
            "  notes): its cache missed invalidations, so its TPS and hit% here are not a like-for-like comparison.",
        ]
    with open(args.notes) as f:
        notes = f.read().rstrip("\n")
    text = "\n".join(["pg_cachekit cached_query benchmark", "", notes, "", *out_lines, *legend]) + "\n"
    with open(args.out + ".txt", "w") as f:
        f.write(text)
    sys.stdout.write("\n".join(out_lines + legend) + "\n")

    # --- CSV ---
    with open(args.out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "mode", "clients", "variant", "runs", "median_tps", "min_tps",
                    "max_tps", "median_latency_ms", "hit_ratio", "cached_over_direct_tps",
                    "cached_over_pgpool_tps", "cached_over_floor_latency", "stale_results"])
        for key, s, vd, vp, vf, _ in rows:
            wl, mode, c, v = key

            def r4(x):
                return "" if x is None else f"{x:.4f}"

            w.writerow([wl, mode, c, v, s["runs"], r4(s["tps"]), r4(s["min"]), r4(s["max"]),
                        r4(s["lat"]), r4(s["hit"]), r4(vd), r4(vp), r4(vf),
                        "yes" if is_stale(wl, mode, c, v) else ""])

    # --- plot ---
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("no gnuplot: no plot", file=sys.stderr)
        return
    workloads = [wl for wl in WORKLOAD_ORDER if any(k[0] == wl for k in summary)]
    if not workloads:
        return
    tmp = tempfile.mkdtemp(prefix="ckbench-plot.")
    panels = []
    for wl in workloads:
        keys = [k for k in summary if k[0] == wl]
        variants = [v for v in VARIANT_ORDER if any(k[3] == v for k in keys)]
        groups = []
        for k in keys:
            g = (k[1], k[2])
            if g not in groups:
                groups.append(g)
        path = os.path.join(tmp, f"{wl}.dat")
        with open(path, "w") as f:
            for mode, c in groups:
                vals = [get(wl, mode, c, v, "tps") for v in variants]
                f.write(f'"{mode} c{c}" ' + " ".join("-" if x is None else f"{x:.1f}" for x in vals) + "\n")
        panels.append((wl, path, variants, len(groups)))
    cols = 2 if len(panels) > 1 else 1
    nrows = (len(panels) + cols - 1) // cols
    colors = {"direct": "#4c72b0", "cached_query": "#dd8452", "cached_value": "#c44e52",
              "cached_l1off": "#e8b48a", "cached_noshortcut": "#f3d9c4", "cached_nocoalesce": "#e8b48a",
              "pgpool": "#55a868", "floor": "#8c8c8c", "unwatched": "#4c72b0", "watched": "#dd8452"}
    script = [
        f"set terminal pngcairo noenhanced size {700 * cols},{430 * nrows} font 'sans,9'",
        f"set output '{args.out}.png'",
        "set datafile missing '-'",
        "set style data histogram",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set key top left horizontal font 'sans,8'",
        "set grid ytics",
        "set yrange [0:*]",
        "set offsets 0, 0, graph 0.12, 0",
        "set ylabel 'median TPS'",
        f"set multiplot layout {nrows},{cols} title 'pg_cachekit cached_query vs direct SQL vs pgpool-II query cache (median TPS, higher is better)'",
    ]
    for wl, path, variants, ngroups in panels:
        title = WORKLOAD_TITLE.get(wl, wl)
        marks = sorted({f"{v} {m}" + ("" if c == "*" else f" c{c}") for w_, m, c, v in stale if w_ == wl})
        if marks:
            title += f" (stale results: {', '.join(marks)})"
        script.append(f"set title '{title}'")
        script.append(f"set xrange [-0.6:{ngroups - 0.4}]")
        plots = []
        for i, v in enumerate(variants):
            plots.append(f"'{path}' using {i + 2}:xtic(1) title '{v}' lc rgb '{colors.get(v, '#000000')}'")
        script.append("plot " + ", ".join(plots))
    script.append("unset multiplot")
    gp = os.path.join(tmp, "plot.gp")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    res = subprocess.run([gnuplot, gp], capture_output=True, text=True)
    if res.returncode != 0:
        print("gnuplot failed:\n" + res.stderr, file=sys.stderr)
    elif res.stderr.strip():
        print(res.stderr, file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
