#!/usr/bin/env python3
"""Summarise the runs of test/bench/metrics.sh.

Reads the pgbench runs (part,rep,clients,variant,tps,latency_ms,hits,calls,scrapes),
the scrape timings (config,kind,spacing,seq,ms,bytes,status) and the notes;
writes OUT.txt (notes and tables), OUT.csv (one row per table line) and OUT.png
(gnuplot: hit throughput of both pairs, scrape times) when gnuplot is there.
A ratio is taken between the two runs of a pair in the same repetition (they
ran one right after the other); its median and min-max over the repetitions
are reported next to the ratio of the median throughputs.
"""
import argparse
import csv
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict

PAIRS = {
    "counters": ("base", "head", "counters: cached_query hits, base (before issue 10) vs HEAD"),
    "load": ("noscrape", "scrape1s", "load: cached_query hits, no scraping vs GET /metrics every 1 s"),
}


def num(s):
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def percentile(xs, p):
    """Nearest rank."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[min(len(xs), max(1, math.ceil(p / 100 * len(xs)))) - 1]


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def pair_rows(runs):
    rows = []
    for part, (a, b, _) in PAIRS.items():
        by = defaultdict(dict)  # (clients) -> rep -> variant -> row
        for r in runs:
            if r["part"] == part:
                by[int(r["clients"])].setdefault(r["rep"], {})[r["variant"]] = r
        for c in sorted(by):
            reps = by[c]
            ta = [num(v[a]["tps"]) for v in reps.values() if a in v]
            tb = [num(v[b]["tps"]) for v in reps.values() if b in v]
            ratios = [num(v[b]["tps"]) / num(v[a]["tps"]) for v in reps.values()
                      if a in v and b in v and num(v[a]["tps"]) and num(v[b]["tps"]) is not None]
            hits = sum(int(v[x]["hits"] or 0) for v in reps.values() for x in (a, b) if x in v)
            calls = sum(int(v[x]["calls"] or 0) for v in reps.values() for x in (a, b) if x in v)
            scrapes = [num(v[b]["scrapes"]) for v in reps.values() if b in v and v[b]["scrapes"]]
            ma, mb = median(ta), median(tb)
            rows.append({
                "part": part, "clients": c, "a": a, "b": b, "n": len(ratios),
                "median_a": ma, "min_a": min(ta, default=None), "max_a": max(ta, default=None),
                "median_b": mb, "min_b": min(tb, default=None), "max_b": max(tb, default=None),
                "ratio_of_medians": mb / ma if ma and mb else None,
                "median_ratio": median(ratios), "min_ratio": min(ratios, default=None),
                "max_ratio": max(ratios, default=None),
                "hit_pct": 100 * hits / calls if calls else None,
                "scrapes_per_run": median(scrapes),
            })
    return rows


def scrape_rows(scrapes):
    groups = defaultdict(list)
    for s in scrapes:
        groups[(s["config"], s["kind"], s["spacing"])].append(s)
    rows = []
    for (cfg, kind, spacing), ss in sorted(groups.items()):
        ms = [num(s["ms"]) for s in ss]
        bad = [s for s in ss if s["status"] not in ("200", "ok")]
        rows.append({
            "config": cfg, "kind": kind, "spacing": spacing, "n": len(ss),
            "median_ms": median(ms), "p95_ms": percentile(ms, 95), "max_ms": max(ms, default=None),
            "bytes": median([num(s["bytes"]) for s in ss]), "not_200": len(bad),
        })
    return rows


def write_txt(path, notes, prows, srows):
    with open(path, "w") as f:
        f.write("pg_cachekit metrics benchmark (test/bench/metrics.sh)\n\n")
        f.write("".join(notes))
        for part, (a, b, title) in PAIRS.items():
            rows = [r for r in prows if r["part"] == part]
            if not rows:
                continue
            f.write(f"\n== {title}\n")
            f.write(f"{'clients':>7} {'reps':>4} {a + ' tps':>14} {b + ' tps':>14} "
                    f"{'ratio of medians':>16} {'per-rep ratio: median':>21} {'min-max':>13} {'hit%':>6}"
                    + ("  scrapes/run" if part == "load" else "") + "\n")
            for r in rows:
                f.write(f"{r['clients']:>7} {r['n']:>4} {fmt(r['median_a']):>14} {fmt(r['median_b']):>14} "
                        f"{fmt(r['ratio_of_medians'], 3):>16} {fmt(r['median_ratio'], 3):>21} "
                        f"{fmt(r['min_ratio'], 3) + '-' + fmt(r['max_ratio'], 3):>13} {fmt(r['hit_pct']):>6}"
                        + (f"  {fmt(r['scrapes_per_run'], 0):>11}" if part == "load" else "") + "\n")
            f.write(f"   (tps min-max: " + "; ".join(
                f"c{r['clients']} {a} {fmt(r['min_a'])}-{fmt(r['max_a'])}, {b} {fmt(r['min_b'])}-{fmt(r['max_b'])}"
                for r in rows) + ")\n")
        if srows:
            f.write("\n== scrape cost (ms; http = curl time_total incl. connect, sql = psql \\timing round trip)\n")
            f.write(f"{'config':<16} {'kind':<5} {'spacing':<13} {'n':>4} {'median':>8} {'p95':>8} "
                    f"{'max':>8} {'bytes':>9} {'not 200':>7}\n")
            for r in srows:
                f.write(f"{r['config']:<16} {r['kind']:<5} {r['spacing']:<13} {r['n']:>4} "
                        f"{fmt(r['median_ms'], 2):>8} {fmt(r['p95_ms'], 2):>8} {fmt(r['max_ms'], 2):>8} "
                        f"{fmt(r['bytes'], 0):>9} {r['not_200']:>7}\n")


def write_csv(path, prows, srows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["section", "config", "variant_a", "variant_b", "n", "median_a", "min_a", "max_a",
                    "median_b", "min_b", "max_b", "ratio_of_medians", "median_ratio", "min_ratio",
                    "max_ratio", "hit_pct", "median_ms", "p95_ms", "max_ms", "bytes"])
        for r in prows:
            w.writerow([r["part"], f"c{r['clients']}", r["a"], r["b"], r["n"]] + [
                fmt(r[k], 4) for k in ("median_a", "min_a", "max_a", "median_b", "min_b", "max_b",
                                       "ratio_of_medians", "median_ratio", "min_ratio", "max_ratio",
                                       "hit_pct")] + ["", "", "", ""])
        for r in srows:
            w.writerow(["scrape", f"{r['config']}/{r['kind']}/{r['spacing']}", "", "", r["n"]]
                       + [""] * 11 + [fmt(r[k], 3) for k in ("median_ms", "p95_ms", "max_ms")]
                       + [fmt(r["bytes"], 0)])


def plot(path, prows, srows):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("no gnuplot: no plot", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tp = f"{tmp}/tps.dat"
        with open(tp, "w") as f:
            for r in prows:
                label = f"{r['part']} c{r['clients']}"
                f.write(f'"{label}\\n{r["b"]}/{r["a"]} {fmt(r["median_ratio"], 3)}" '
                        f"{fmt(r['median_a'])} {fmt(r['min_a'])} {fmt(r['max_a'])} "
                        f"{fmt(r['median_b'])} {fmt(r['min_b'])} {fmt(r['max_b'])}\n")
        sp = f"{tmp}/scrape.dat"
        with open(sp, "w") as f:
            for r in srows:
                f.write(f'"{r["config"]}\\n{r["kind"]} {r["spacing"]}" {fmt(r["median_ms"], 3)} {fmt(r["p95_ms"], 3)}\n')
        gp = f"{tmp}/plot.gp"
        with open(gp, "w") as f:
            f.write(f"""set terminal pngcairo size 1400,1000 font ",9"
set output "{path}"
set termoption noenhanced
set multiplot layout 2,1
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set key top right
set grid ytics
set yrange [0:*]
set title "cached_query hit throughput: median TPS (bars) and min-max over the repetitions; label: median per-rep ratio"
set ylabel "TPS"
plot "{tp}" using 2:3:4:xtic(1) title "first variant (base / noscrape)" lc rgb "#4c72b0", \\
     "" using 5:6:7 title "second variant (head / scrape every 1 s)" lc rgb "#dd8452"
set style histogram clustered gap 2
set title "scrape time (ms): median and p95"
set ylabel "ms"
set logscale y
set yrange [*:*]
set xtics rotate by -30
set bmargin 6
plot "{sp}" using 2:xtic(1) title "median" lc rgb "#55a868", "" using 3 title "p95" lc rgb "#c44e52"
unset multiplot
""")
        res = subprocess.run([gnuplot, gp], capture_output=True, text=True)
        if res.returncode != 0:
            print("gnuplot failed:\n" + res.stderr, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--scrapes")
    ap.add_argument("--notes")
    ap.add_argument("--out", required=True, help="prefix of OUT.txt, OUT.csv, OUT.png")
    a = ap.parse_args()
    with open(a.runs) as f:
        runs = list(csv.DictReader(f))
    scrapes = []
    if a.scrapes:
        with open(a.scrapes) as f:
            scrapes = list(csv.DictReader(f))
    notes = open(a.notes).readlines() if a.notes else []
    prows, srows = pair_rows(runs), scrape_rows(scrapes)
    write_txt(a.out + ".txt", notes, prows, srows)
    write_csv(a.out + ".csv", prows, srows)
    if prows or srows:
        plot(a.out + ".png", prows, srows)
    sys.stdout.write(open(a.out + ".txt").read())


if __name__ == "__main__":
    main()
