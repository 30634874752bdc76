#!/usr/bin/env python3
"""Summarise the runs of test/bench/tasks.sh.

Reads the long-format runs file (round,measure,system,clients,metric,value),
the pickup samples (round,system,seq,latency_ms) and the notes; writes
OUT.txt (notes, tables, the issue's targets), OUT.csv (medians over the
rounds, min, max, ratios) and OUT.png (gnuplot: throughput, pickup latency
and its distribution, enqueue overhead per system) when gnuplot is available.
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

SYSTEMS = ["cachekit", "graphile", "pgboss"]
TITLE = {"cachekit": "pg_cachekit", "graphile": "graphile-worker", "pgboss": "pg-boss", "plain": "no enqueue"}
COLOR = {"cachekit": "#dd8452", "graphile": "#4c72b0", "pgboss": "#55a868"}
# The targets for pg_cachekit.
TARGET_DRAIN_VS_GRAPHILE = 2.0
TARGET_P50_MS = 2.0
TARGET_P99_MS = 10.0
TARGET_OVERHEAD_PCT = 10.0


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


def percentile(sorted_xs, p):
    """Nearest rank, like the driver."""
    if not sorted_xs:
        return None
    rank = math.ceil(p / 100 * len(sorted_xs))
    return sorted_xs[min(len(sorted_xs), max(1, rank)) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--pickup", required=True)
    ap.add_argument("--notes", required=True)
    ap.add_argument("--out", required=True, help="output path without extension")
    args = ap.parse_args()

    # values[(measure, system, clients, metric)] = [value per round]
    values = defaultdict(list)
    by_round = defaultdict(dict)
    rounds = set()
    with open(args.runs) as f:
        for row in csv.DictReader(f):
            rounds.add(row["round"])
            key = (row["measure"], row["system"], row["clients"], row["metric"])
            values[key].append(num(row["value"]))
            by_round[key][row["round"]] = num(row["value"])
    samples = defaultdict(list)
    with open(args.pickup) as f:
        for row in csv.DictReader(f):
            v = num(row["latency_ms"])
            if v is not None:
                samples[row["system"]].append(v)
    for xs in samples.values():
        xs.sort()
    with open(args.notes) as f:
        notes = f.read().rstrip("\n")

    systems = [s for s in SYSTEMS if any(k[1] == s for k in values)]

    def vals(measure, system, metric, clients=None):
        for k, v in values.items():
            if k[0] == measure and k[1] == system and k[3] == metric and (clients is None or k[2] == str(clients)):
                return v
        return []

    def med(measure, system, metric, clients=None):
        return median(vals(measure, system, metric, clients))

    def spread(measure, system, metric, clients=None, digits=1):
        v = [x for x in vals(measure, system, metric, clients) if x is not None]
        return f"{fmt(min(v), digits)}-{fmt(max(v), digits)}" if v else "-"

    lines = ["pg_cachekit task queue vs graphile-worker vs pg-boss", "", notes, ""]
    csv_rows = []

    def add_csv(measure, system, clients, metric, digits=3):
        v = [x for x in vals(measure, system, metric, clients) if x is not None]
        m = median(v)
        rg = ratio(m, med(measure, "graphile", metric, clients)) if system == "cachekit" else None
        rp = ratio(m, med(measure, "pgboss", metric, clients)) if system == "cachekit" else None
        r4 = lambda x: "" if x is None else round(x, digits)
        csv_rows.append([measure, system, clients or "", metric, len(v), r4(m), r4(min(v) if v else None),
                         r4(max(v) if v else None), r4(rg), r4(rp)])

    # --- throughput ---
    if any(k[0] == "throughput" for k in values):
        lines += ["== No-op throughput: enqueue N (pgbench, 8 clients, 1 job per transaction, no consumer), then drain",
                  "   (medians over the rounds; min-max in brackets; ratio = pg_cachekit / peer)", ""]
        lines.append(f"{'system':<17} {'enqueue jobs/s':>15} {'[min-max]':>17} {'drain jobs/s':>13} {'[min-max]':>17} {'drain s':>8} {'peer CPU s':>10}")
        for s in systems:
            lines.append(f"{TITLE[s]:<17} {fmt(med('throughput', s, 'enqueue_rate')):>15} {spread('throughput', s, 'enqueue_rate'):>17} "
                         f"{fmt(med('throughput', s, 'rate')):>13} {spread('throughput', s, 'rate'):>17} "
                         f"{fmt(med('throughput', s, 'seconds'), 2):>8} {fmt(med('throughput', s, 'peer_cpu_s'), 1):>10}")
            for m in ("enqueue_rate", "rate", "seconds", "queued", "peer_cpu_s"):
                add_csv("throughput", s, None, m)
        if "cachekit" in systems:
            for peer in ("graphile", "pgboss"):
                if peer in systems:
                    lines.append(f"  pg_cachekit / {TITLE[peer]}: enqueue x{fmt(ratio(med('throughput', 'cachekit', 'enqueue_rate'), med('throughput', peer, 'enqueue_rate')), 2)}, "
                                 f"drain x{fmt(ratio(med('throughput', 'cachekit', 'rate'), med('throughput', peer, 'rate')), 2)}")
        lines.append("")

    # --- steady ---
    if any(k[0] == "steady" for k in values):
        rate = med("steady", systems[0], "rate")
        secs = med("steady", systems[0], "seconds")
        clients = sorted({k[2] for k in values if k[0] == "steady"})
        lines += [f"== Steady state: producer at {fmt(rate, 0)} jobs/s (pgbench -R, {'/'.join(clients)} clients, one job per transaction) for {fmt(secs, 0)} s, consumers running", ""]
        lines.append(f"{'system':<17} {'enqueued/s':>11} {'completed/s':>12} {'[min-max]':>17} {'backlog at end':>15} {'catch-up s':>11}")
        for s in systems:
            lines.append(f"{TITLE[s]:<17} {fmt(med('steady', s, 'enqueue_rate')):>11} {fmt(med('steady', s, 'completion_rate')):>12} "
                         f"{spread('steady', s, 'completion_rate'):>17} {fmt(med('steady', s, 'backlog_end'), 0):>15} "
                         f"{fmt(med('steady', s, 'catchup_s'), 2):>11}")
            for m in ("enqueue_rate", "completion_rate", "backlog_end", "catchup_s", "schedule_lag_avg_ms", "peer_cpu_s"):
                add_csv("steady", s, None, m)
        lines.append("")

    # --- pickup ---
    if any(k[0] == "pickup" for k in values):
        lines += ["== Pickup latency: enqueue committed (returned to the client) -> handler start, one job at a time, idle queue",
                  "   p50/p99: medians of the per-round values; pooled: over all samples of all rounds", ""]
        lines.append(f"{'system':<17} {'p50 ms':>9} {'[min-max]':>17} {'p99 ms':>9} {'[min-max]':>17} {'pooled p50':>10} {'pooled p99':>10} {'max ms':>9} {'samples':>8}")
        for s in systems:
            xs = samples.get(s, [])
            lines.append(f"{TITLE[s]:<17} {fmt(med('pickup', s, 'p50_ms'), 3):>9} {spread('pickup', s, 'p50_ms', digits=3):>17} "
                         f"{fmt(med('pickup', s, 'p99_ms'), 3):>9} {spread('pickup', s, 'p99_ms', digits=3):>17} "
                         f"{fmt(percentile(xs, 50), 3):>10} {fmt(percentile(xs, 99), 3):>10} {fmt(xs[-1] if xs else None, 3):>9} {len(xs):>8}")
            for m in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms", "samples", "lost"):
                add_csv("pickup", s, None, m)
            if xs:
                csv_rows.append(["pickup_pooled", s, "", "p50_ms", len(xs), round(percentile(xs, 50), 3), round(xs[0], 3), round(xs[-1], 3), "", ""])
                csv_rows.append(["pickup_pooled", s, "", "p99_ms", len(xs), round(percentile(xs, 99), 3), round(xs[0], 3), round(xs[-1], 3), "", ""])
        neg = {s: sum(1 for x in samples.get(s, []) if x < 0) for s in systems}
        if any(neg.values()):
            lines.append("  negative samples (handler started before the enqueuer saw its commit return): "
                         + ", ".join(f"{TITLE[s]} {n}" for s, n in neg.items()))
        lines.append("")

    # --- overhead ---
    # overhead_pct[(measure, system, clients)]: median over the rounds of the
    # latency added within a round (the variants of a round run back to back).
    overhead_pct = {}
    overhead_title = {
        "overhead": "synchronous_commit on" if "fsync and synchronous_commit on" in notes else "synchronous_commit off",
        "overhead_nosync": "synchronous_commit off (per session)",
    }
    for measure in ("overhead", "overhead_nosync"):
        if not any(k[0] == measure for k in values):
            continue
        lines += [f"== Enqueue overhead, {overhead_title[measure]}: BEGIN; INSERT one row; [enqueue one job;] END",
                  "   (pgbench -M prepared, no consumer running; added = median over the rounds of",
                  "   latency with the enqueue / latency without, both of the same round, - 1)", ""]
        clients = sorted({int(k[2]) for k in values if k[0] == measure})
        lines.append(f"{'variant':<17} {'clients':>7} {'tps':>10} {'[min-max]':>19} {'latency ms':>11} {'added':>8} {'[min-max]':>17}")
        for c in clients:
            base = by_round.get((measure, "plain", str(c), "latency_ms"), {})
            for v in ["plain"] + systems:
                lat = med(measure, v, "latency_ms", c)
                per_round = []
                if v != "plain":
                    mine = by_round.get((measure, v, str(c), "latency_ms"), {})
                    per_round = [(mine[r] / base[r] - 1) * 100 for r in mine
                                 if r in base and mine[r] is not None and base[r]]
                pct = median(per_round)
                if v != "plain":
                    overhead_pct[(measure, v, c)] = pct
                rng = f"{min(per_round):+.1f}..{max(per_round):+.1f}%" if per_round else "-"
                lines.append(f"{TITLE[v]:<17} {c:>7} {fmt(med(measure, v, 'tps', c)):>10} {spread(measure, v, 'tps', c):>19} "
                             f"{fmt(lat, 3):>11} {('-' if pct is None else f'{pct:+.1f}%'):>8} {rng if v != 'plain' else '':>17}")
                add_csv(measure, v, c, "tps")
                add_csv(measure, v, c, "latency_ms")
                if pct is not None:
                    csv_rows.append([measure, v, c, "latency_added_pct", len(per_round), round(pct, 2),
                                     round(min(per_round), 2), round(max(per_round), 2), "", ""])
        lines.append("")

    # --- targets ---
    if "cachekit" in systems:
        lines.append("== Targets of the issue for pg_cachekit")
        checks = []
        if "graphile" in systems and any(k[0] == "throughput" for k in values):
            r = ratio(med("throughput", "cachekit", "rate"), med("throughput", "graphile", "rate"))
            checks.append((f"no-op drain >= {TARGET_DRAIN_VS_GRAPHILE:g}x graphile-worker's", f"x{fmt(r, 2)}",
                           r is not None and r >= TARGET_DRAIN_VS_GRAPHILE))
        if any(k[0] == "pickup" for k in values):
            p50, p99 = med("pickup", "cachekit", "p50_ms"), med("pickup", "cachekit", "p99_ms")
            checks.append((f"pickup p50 <= {TARGET_P50_MS:g} ms", f"{fmt(p50, 3)} ms", p50 is not None and p50 <= TARGET_P50_MS))
            checks.append((f"pickup p99 <= {TARGET_P99_MS:g} ms", f"{fmt(p99, 3)} ms", p99 is not None and p99 <= TARGET_P99_MS))
        for (m, v, c), pct in sorted(overhead_pct.items()):
            if v == "cachekit":
                checks.append((f"enqueue adds <= {TARGET_OVERHEAD_PCT:g}% to a one-row INSERT (c{c}, {overhead_title[m]})",
                               "-" if pct is None else f"{pct:+.1f}%", pct is not None and pct <= TARGET_OVERHEAD_PCT))
        for what, got, ok in checks:
            lines.append(f"  {'met    ' if ok else 'NOT MET'}  {what}: {got}")
        lines.append("")

    with open(args.out + ".txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[lines.index(notes) + 2:] if notes in lines else lines))
    with open(args.out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["measure", "system", "clients", "metric", "rounds", "median", "min", "max",
                    "cachekit_over_graphile", "cachekit_over_pgboss"])
        w.writerows(csv_rows)

    fsync = "on" if "fsync and synchronous_commit on" in notes else "off" if "synchronous_commit off" in notes else "?"
    plot(args.out, systems, med, samples, overhead_pct, len(rounds), fsync)


def plot(out, systems, med, samples, overhead_pct, nrounds, fsync):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("no gnuplot: no plot", file=sys.stderr)
        return
    tmp = tempfile.mkdtemp(prefix="ckbench-tasks-plot.")
    script = [
        "set terminal pngcairo noenhanced size 1400,900 font 'sans,9'",
        f"set output '{out}.png'",
        "set datafile missing '-'",
        "set style fill solid 0.85 border -1",
        "set key top left font 'sans,8'",
        "set grid ytics",
        f"set multiplot layout 2,2 title 'pg_cachekit task queue vs graphile-worker vs pg-boss (medians of {nrounds} round(s); concurrency 8 each; fsync {fsync})'",
    ]

    def bars(name, groups, getter, title, ylabel, logscale=False, fmtv="%.0f", negative=False):
        path = os.path.join(tmp, name + ".dat")
        with open(path, "w") as f:
            for label, key in groups:
                vs = [getter(s, key) for s in systems]
                f.write(f'"{label}" ' + " ".join("-" if v is None else f"{v:.6g}" for v in vs) + "\n")
        script.extend([
            f"set title '{title}'",
            f"set ylabel '{ylabel}'",
            "set style data histogram",
            "set style histogram clustered gap 1",
            "set boxwidth 0.9",
            f"set xrange [-0.6:{len(groups) - 0.4}]",
            "unset logscale y",
        ])
        if logscale:
            script.extend(["set logscale y", "set yrange [*:*]", "set format y '%g'"])
        else:
            script.extend([f"set yrange [{'*' if negative else '0'}:*]", "set offsets 0, 0, graph 0.15, graph 0.05", "set format y '%g'"])
        plots = []
        for i, s in enumerate(systems):
            col = i + 2
            plots.append(f"'{path}' using {col}:xtic(1) title '{TITLE[s]}' lc rgb '{COLOR[s]}'")
            # Value labels above the bars.
            off = (i - (len(systems) - 1) / 2) * (0.9 / (len(systems) + 1))
            plots.append(f"'{path}' using ($0 + {off:.3f}):{col}:(sprintf('{fmtv}', ${col})) with labels offset 0,0.6 font 'sans,7' notitle")
        script.append("plot " + ", ".join(plots))
        script.append("set offsets 0, 0, 0, 0")

    groups = [("enqueue (8 clients)", ("throughput", "enqueue_rate")),
              ("drain of the backlog", ("throughput", "rate")),
              ("steady: completed", ("steady", "completion_rate"))]
    groups = [g for g in groups if any(med(g[1][0], s, g[1][1]) is not None for s in systems)]
    if groups:
        bars("throughput", groups, lambda s, k: med(k[0], s, k[1]), "(a) no-op throughput, jobs/s (higher is better)", "jobs/s")
    else:
        script.append("set multiplot next")
    if any(med("pickup", s, "p50_ms") is not None for s in systems):
        bars("pickup", [("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms")],
             lambda s, k: med("pickup", s, k), "(b) pickup latency: commit -> handler start, ms (log scale, lower is better)",
             "ms", logscale=True, fmtv="%.3g")
        # Distribution of all samples (empirical CDF, log x).
        plots = []
        for s in systems:
            xs = samples.get(s, [])
            if not any(x > 0 for x in xs):
                continue
            # Fractions of all samples; those <= 0 (the handler started
            # before the enqueuer saw its commit return) have no place on a
            # log axis: the curve starts at their share.
            path = os.path.join(tmp, f"cdf-{s}.dat")
            with open(path, "w") as f:
                for i, x in enumerate(xs):
                    if x > 0:
                        f.write(f"{x:.6g} {(i + 1) / len(xs):.6f}\n")
            plots.append(f"'{path}' using 1:2 with lines lw 2 lc rgb '{COLOR[s]}' title '{TITLE[s]}'")
        script += ["set title '(c) pickup latency, all samples: fraction of jobs picked up within x ms (samples <= 0 are where a curve starts)'",
                   "set ylabel 'fraction'", "set xlabel 'ms (log scale)'", "set logscale x", "unset logscale y",
                   "set xrange [*:*]", "set yrange [0:1]", "set key bottom right", "set grid xtics ytics"]
        script.append("plot " + ", ".join(plots) if plots else "set multiplot next")
        script += ["unset logscale x", "unset xlabel", "set key top left", "unset grid", "set grid ytics"]
    else:
        script += ["set multiplot next", "set multiplot next"]
    groups = sorted({(m, c) for (m, _, c) in overhead_pct})
    if groups:
        bars("overhead", [(f"c{c}" + (", no fsync wait" if m == "overhead_nosync" else ""), (m, c)) for m, c in groups],
             lambda s, k: overhead_pct.get((k[0], s, k[1])), "(d) latency an enqueue adds to a one-row INSERT transaction, % (lower is better)",
             "% added", fmtv="%+.1f%%", negative=True)
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
