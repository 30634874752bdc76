#!/usr/bin/env python3
"""Summarise the runs of test/bench/transparent.sh.

Reads the per-run CSV (rep,workload,mode,clients,variant,tps,latency_ms,failed,
cache,cache_hits,cache_lookups), the notes and the stale-check CSV
(variant,mode,checks,stale); writes OUT.txt (notes, table, TPC-B overhead,
targets), OUT.csv (one row per workload/mode/clients/variant) and OUT.png
(gnuplot, grouped bars of median TPS) when gnuplot is available.
"""
import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cached_query_report import fmt, median, num, ratio  # noqa: E402

WORKLOAD_ORDER = ["hot", "agg", "select", "tpcb"]
WORKLOAD_TITLE = {
    "hot": "hot set: the SELECT of pgbench -S, aid random(1, N): hits dominate",
    "agg": "~1 ms aggregate sent as plain SQL (20 keys)",
    "select": "pgbench -S built-in, aid over the whole table: mostly misses",
    "tpcb": "TPC-B built-in: transparent off vs registered (no TPC-B shape registered)",
}
VARIANT_ORDER = ["transparent", "transparent_all", "direct", "pgpool", "off", "registered", "registered_pk"]
MODE_ORDER = ["simple", "extended", "prepared"]
# Targets of issue 12 (those of the performance issue): transparent over
# pgpool at 8 clients, and TPC-B's cost of transparent = registered.
TARGET_SIMPLE = 1.5
TARGET_PREPARED = 3.0
TARGET_TPCB_OVERHEAD = 0.02


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--notes", required=True)
    ap.add_argument("--stale", help="variant,mode,checks,stale")
    ap.add_argument("--out", required=True, help="output path without extension")
    args = ap.parse_args()

    runs = defaultdict(list)  # (wl, mode, clients, variant) -> [(rep, tps, lat)]
    hits = {}  # key -> [hits, lookups], summed over the runs
    with open(args.runs, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["workload"], r["mode"], int(r["clients"]), r["variant"])
            runs[key].append((int(r["rep"]), num(r["tps"]), num(r["latency_ms"])))
            if r.get("cache_lookups"):
                h = hits.setdefault(key, [0, 0])
                h[0] += int(r["cache_hits"])
                h[1] += int(r["cache_lookups"])

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
        tps = [t for _, t, _ in runs[key] if t is not None]
        h = hits.get(key)
        summary[key] = {
            "runs": len(runs[key]),
            "tps": median(tps),
            "lat": median([l for _, _, l in runs[key]]),
            "min": min(tps) if tps else None,
            "max": max(tps) if tps else None,
            "hit": (h[0] / h[1]) if h and h[1] else None,
            "by_rep": {rep: t for rep, t, _ in runs[key] if t is not None},
        }

    def get(wl, mode, c, v, field="tps"):
        s = summary.get((wl, mode, c, v))
        return s[field] if s else None

    def paired(wl, mode, c, v, base):
        """Median over the repetitions of v's TPS / base's TPS in the same repetition."""
        a, b = get(wl, mode, c, v, "by_rep"), get(wl, mode, c, base, "by_rep")
        if not a or not b:
            return None
        rs = [a[r] / b[r] for r in a if r in b and b[r]]
        return statistics.median(rs) if rs else None

    rows = []
    for key, s in summary.items():
        wl, mode, c, v = key
        vs_direct = vs_pgpool = None
        if v.startswith("transparent"):
            vs_direct = ratio(s["tps"], get(wl, mode, c, "direct"))
            vs_pgpool = ratio(s["tps"], get(wl, mode, c, "pgpool"))
        elif v in ("registered", "registered_pk"):
            vs_direct = ratio(s["tps"], get(wl, mode, c, "off"))
        spread = None
        if s["tps"] and s["min"] is not None:
            spread = 100.0 * (s["max"] - s["min"]) / s["tps"]
        rows.append((key, s, vs_direct, vs_pgpool, spread))

    # --- text table ---
    header = ["workload", "mode", "clients", "variant", "runs", "median TPS", "spread%",
              "median lat ms", "hit%", "vs direct", "vs pgpool"]
    table = []
    for key, s, vd, vp, spread in rows:
        wl, mode, c, v = key
        table.append([wl, mode, str(c), v, str(s["runs"]), fmt(s["tps"]), fmt(spread, 0),
                      fmt(s["lat"], 3), fmt(None if s["hit"] is None else 100 * s["hit"], 1),
                      fmt(vd, 2), fmt(vp, 2)])
    widths = [max(len(header[i]), *(len(r[i]) for r in table)) if table else len(header[i])
              for i in range(len(header))]
    right = set(range(4, len(header)))

    def line(cells):
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    prev = None
    for r in table:
        group = tuple(r[:3])
        if prev is not None and group != prev:
            out.append("")
        prev = group
        out.append(line(r))
    out += [
        "",
        "workloads: hot = the statement of pgbench -S (SELECT abalance FROM pgbench_accounts WHERE aid = :aid;)",
        "  with aid random(1, BENCH_HOT_KEYS), all keys warmed: the cache-hit case; agg = workloads/agg_direct.sql",
        "  (plain SQL, 20 keys, warmed); select = pgbench -S itself, aid over the whole table: mostly misses",
        "  unless the run is long or the scale small (read its hit%); tpcb = pgbench's built-in TPC-B.",
        "variants: transparent = cachekit.transparent = registered for the session (shapes registered with",
        "  cachekit.create_cache); direct = the same server and SQL, transparent off; pgpool = the same SQL through",
        "  pgpool-II's query cache; TPC-B: off vs registered (only the aggregate's shape registered, so no TPC-B",
        "  statement qualifies); registered_pk: TPC-B's SELECT registered too (served path, bypassed: own write).",
        "vs direct / vs pgpool: median TPS over that of direct / pgpool, same workload, mode and clients",
        "  (TPC-B: over off). spread%: (max-min)/median TPS over the repetitions. hit%: hits / lookups during the",
        "  runs (cachekit.caches deltas; SHOW POOL_CACHE deltas for pgpool, which counts a prepared execution twice).",
    ]

    # --- TPC-B overhead ---
    tpcb = []
    for (wl, mode, c, v), s in summary.items():
        if wl != "tpcb" or v not in ("registered", "registered_pk"):
            continue
        base = get(wl, mode, c, "off")
        r_med = ratio(s["tps"], base)
        r_pair = paired(wl, mode, c, v, "off")
        tpcb.append((mode, c, v, base, s["tps"], r_med, r_pair))
    if tpcb:
        out += ["", "TPC-B overhead of cachekit.transparent (overhead = 1 - TPS ratio; paired: the median of the",
                "per-repetition ratios of the two variants run back to back)"]
        for mode, c, v, base, t, r_med, r_pair in tpcb:
            out.append(f"  {mode:8} c{c} {v:13} off {fmt(base)} TPS, {v} {fmt(t)} TPS: ratio of medians {fmt(r_med, 3)}"
                       f" (overhead {fmt(None if r_med is None else 100 * (1 - r_med), 1)}%), paired {fmt(r_pair, 3)}"
                       f" (overhead {fmt(None if r_pair is None else 100 * (1 - r_pair), 1)}%)")

    # --- stale checks ---
    stale_rows = []
    if args.stale and os.path.exists(args.stale):
        with open(args.stale, newline="") as f:
            stale_rows = list(csv.DictReader(f))
    if stale_rows:
        out += ["", "Stale reads after an UPDATE committed on another connection (reader: one pgbench client reading",
                "a hot key twice, then again after the UPDATE):"]
        for r in stale_rows:
            what = {"transparent": "transparent (registered)", "transparent_all": "transparent (all)",
                    "pgpool": "pgpool, UPDATE through pgpool",
                    "pgpool_unseen": "pgpool, UPDATE straight to Postgres (stale by design)"}.get(r["variant"], r["variant"])
            out.append(f"  {what:54} -M {r['mode']:9} {r['stale']} stale of {r['checks']} checks")

    # --- targets ---
    targets = []

    def target(label, value, ok, informative=False):
        status = "-" if value is None else ("met" if ok else "NOT met")
        if informative and value is not None:
            status += " (informative)"
        targets.append(f"  {label:70} {status}")

    for wl in ("hot", "agg", "select"):
        for mode, goal in (("simple", TARGET_SIMPLE), ("prepared", TARGET_PREPARED)):
            r = ratio(get(wl, mode, 8, "transparent"), get(wl, mode, 8, "pgpool"))
            if r is None:
                continue
            target(f"{wl} -M {mode} c8: transparent/pgpool {fmt(r, 2)} >= {goal}", r, r >= goal,
                   informative=(wl == "select"))
    for mode, c, v, _, _, r_med, r_pair in tpcb:
        if v != "registered":
            continue
        r = r_pair if r_pair is not None else r_med
        target(f"tpcb -M {mode} c{c}: overhead {fmt(100 * (1 - r), 1)}% (paired) <= {100 * TARGET_TPCB_OVERHEAD:.0f}%",
               r, 1 - r <= TARGET_TPCB_OVERHEAD)
    for r in stale_rows:
        if r["variant"].startswith("transparent"):
            target(f"stale reads through the transparent path, -M {r['mode']}: {r['stale']} of {r['checks']}",
                   1, r["stale"] == "0" and r["checks"] != "0")
    if targets:
        out += ["", "Targets of issue 12 (select: pgbench -S over the whole table, mostly misses, not a target):", *targets]

    with open(args.notes) as f:
        notes = f.read().rstrip("\n")
    with open(args.out + ".txt", "w") as f:
        f.write("\n".join(["pg_cachekit transparent caching benchmark", "", notes, "", *out]) + "\n")
    sys.stdout.write("\n".join(out) + "\n")

    # --- CSV ---
    with open(args.out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "mode", "clients", "variant", "runs", "median_tps", "min_tps", "max_tps",
                    "median_latency_ms", "hit_ratio", "over_direct_tps", "over_pgpool_tps"])

        def r4(x):
            return "" if x is None else f"{x:.4f}"

        for key, s, vd, vp, _ in rows:
            w.writerow([*key, s["runs"], r4(s["tps"]), r4(s["min"]), r4(s["max"]), r4(s["lat"]),
                        r4(s["hit"]), r4(vd), r4(vp)])

    plot(args.out, summary, get)


def plot(out, summary, get):
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
            if (k[1], k[2]) not in groups:
                groups.append((k[1], k[2]))
        path = os.path.join(tmp, f"{wl}.dat")
        with open(path, "w") as f:
            for mode, c in groups:
                vals = [get(wl, mode, c, v) for v in variants]
                f.write(f'"{mode} c{c}" ' + " ".join("-" if x is None else f"{x:.1f}" for x in vals) + "\n")
        panels.append((wl, path, variants, len(groups)))
    cols = 2 if len(panels) > 1 else 1
    nrows = (len(panels) + cols - 1) // cols
    colors = {"transparent": "#dd8452", "transparent_all": "#c44e52", "direct": "#4c72b0", "pgpool": "#55a868",
              "off": "#4c72b0", "registered": "#dd8452", "registered_pk": "#e8b48a"}
    script = [
        f"set terminal pngcairo noenhanced size {700 * cols},{430 * nrows} font 'sans,9'",
        f"set output '{out}.png'",
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
        f"set multiplot layout {nrows},{cols} title 'pg_cachekit transparent caching vs direct SQL vs pgpool-II query cache"
        " (median TPS, higher is better)'",
    ]
    for wl, path, variants, ngroups in panels:
        script.append(f"set title '{WORKLOAD_TITLE.get(wl, wl)}'")
        script.append(f"set xrange [-0.6:{ngroups - 0.4}]")
        plots = [f"'{path}' using {i + 2}:xtic(1) title '{v}' lc rgb '{colors.get(v, '#000000')}'"
                 for i, v in enumerate(variants)]
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
