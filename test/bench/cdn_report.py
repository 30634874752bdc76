#!/usr/bin/env python3
"""Figures of test/bench/cdn.sh.

  cdn_report.py analyse --measure throughput|latency --round R --provider P --paths N
                        --client OUT --log LOG --skip LINES --db "batches api_calls failed items"
                        --runs RUNS.csv --samples SAMPLES.csv [--warmup K]
      One measured run: the client's timestamps (psql output: "T t0 t1 done_at"
      for a throughput run, "S seq request_id t0 t1 done_at planned" per latency
      sample, planned being when its batch row was inserted) against the
      endpoint's log from line SKIP on. Appends rows to RUNS
      (round,measure,provider,metric,value) and, for latency, SAMPLES
      (round,provider,seq,latency_ms,from_before_commit_ms,planned_ms),
      all from t1 but the second; prints a summary
      on stderr and "ANOMALY: ..." lines on stdout.

  cdn_report.py report --runs RUNS.csv --samples SAMPLES.csv --notes NOTES.txt --out PREFIX
      PREFIX.txt (notes and tables), PREFIX.csv (medians over the rounds, min,
      max; pooled latency percentiles) and PREFIX.png (gnuplot, when present).

Endpoint logs: fake_cloudfront.py and fake_cdn_api.py JSON lines (the
former's "received", the latter's "t": epoch seconds), varnishncsa lines
"epoch method url status". t0 is clock_timestamp() just before COMMIT, t1
right after COMMIT returned (the next statement of the same session).
"""
import argparse
import csv
import datetime
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict

PROVIDERS = ["cloudfront", "fastly", "cloudflare", "http"]
TITLE = {"cloudfront": "CloudFront (fake)", "fastly": "Fastly (fake)", "cloudflare": "Cloudflare (fake)",
         "http": "Varnish PURGE"}
COLOR = {"cloudfront": "#dd8452", "fastly": "#4c72b0", "cloudflare": "#55a868", "http": "#8172b3"}


def percentile(sorted_xs, p):
    """Nearest rank, as tasks_report.py."""
    if not sorted_xs:
        return None
    rank = math.ceil(p / 100 * len(sorted_xs))
    return sorted_xs[min(len(sorted_xs), max(1, rank)) - 1]


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


# --- analyse ----------------------------------------------------------------


class Event:
    """One request the endpoint received."""

    def __init__(self, t, send, ok, items, paths):
        self.t = t          # epoch seconds
        self.send = send    # a purge (False: a CloudFront GetInvalidation poll)
        self.ok = ok        # accepted (2xx)
        self.items = items  # paths/URLs it purged when accepted
        self.paths = paths  # the purged paths when the log shows them, else None


def iso_epoch(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def read_events(provider, path, skip):
    events = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()[skip:]
    for line in lines:
        if not line.strip():
            continue
        if provider == "http":
            t, method, url, status = line.split(" ", 3)
            if method != "PURGE":
                continue
            ok = status.startswith("2")
            events.append(Event(float(t), True, ok, 1 if ok else 0, [url]))
            continue
        e = json.loads(line)
        if e["path"].startswith("/_fake/"):
            continue
        if provider == "cloudfront":
            t = e.get("received") or iso_epoch(e["time"])
            ok = e.get("outcome") == "accepted"
            if e["method"] == "POST":
                paths = e.get("paths")
                fresh = ok and not e.get("replayed")
                events.append(Event(t, True, ok, len(paths or []) if fresh else 0, paths))
            else:
                events.append(Event(t, False, ok, 0, None))
        else:
            ok = e.get("outcome") == "accepted"
            paths = None
            if provider == "fastly" and e["path"].startswith("/purge/"):
                # /purge/{host}/{path}: the path after the host
                rest = e["path"][len("/purge/"):]
                paths = ["/" + rest.split("/", 1)[1]] if "/" in rest else None
            events.append(Event(e["t"], True, ok, e.get("items", 0) if ok else 0, paths))
    events.sort(key=lambda ev: ev.t)
    return events


def analyse(args):
    runs = open(args.runs, "a", newline="")
    w = csv.writer(runs)
    anomalies = []

    def row(metric, value):
        if value is None:
            return
        if isinstance(value, float):
            value = round(value, 6)
        w.writerow([args.round, args.measure, args.provider, metric, value])

    def anomaly(text):
        anomalies.append(f"ANOMALY: round {args.round}: {args.provider} {args.measure}: {text}")

    db_batches, db_calls, db_failed, db_items = (int(x) for x in args.db.split())
    events = read_events(args.provider, args.log, args.skip)
    sends = [e for e in events if e.send]
    polls = [e for e in events if not e.send]
    rejected = sum(1 for e in events if not e.ok)
    items = sum(e.items for e in sends)
    seen = [p for e in sends if e.ok and e.paths for p in e.paths]
    duplicates = len(seen) - len(set(seen)) if seen else None

    with open(args.client) as f:
        client = [line.split() for line in f if line.strip()]

    if args.measure == "throughput":
        t0, t1, done = (float(x) for x in next(c for c in client if c[0] == "T")[1:4])
        timed_out = done < 0
        seconds = (done - t1) if not timed_out else None
        row("paths", args.paths)
        row("seconds", seconds)
        row("paths_per_s", args.paths / seconds if seconds else None)
        row("commit_ms", (t1 - t0) * 1000)
        row("api_calls", len(events))
        row("api_calls_db", db_calls)
        row("api_calls_per_1000", len(events) * 1000 / args.paths)
        row("api_calls_per_1000_db", db_calls * 1000 / args.paths)
        row("sends", len(sends))
        row("polls", len(polls))
        row("rejected", rejected)
        row("batches", db_batches)
        row("failed_batches", db_failed)
        row("items_at_endpoint", items)
        row("duplicates", duplicates)
        if sends:
            row("first_request_ms", (sends[0].t - t1) * 1000)
            row("last_send_ms", (sends[-1].t - t1) * 1000)
        row("timed_out", int(timed_out))
        if timed_out:
            anomaly(f"not completed within the run's time limit ({items} of {args.paths} paths purged)")
        summary = (f"{args.paths} paths in {fmt(seconds, 2)} s: {fmt(args.paths / seconds if seconds else None, 0)} paths/s, "
                   f"{len(events)} API calls ({len(sends)} purges, {len(polls)} polls; pg_cachekit counted {db_calls}), "
                   f"{db_batches} batches, first request {fmt((sends[0].t - t1) * 1000 if sends else None, 1)} ms after commit")
    else:
        samples = [c for c in client if c[0] == "S"]
        if len(samples) != args.paths:
            anomaly(f"{len(samples)} samples of {args.paths} in the client's output")
        j, lat, lat0, planned, lost, mismatched, timeouts = 0, [], [], [], 0, 0, 0
        out = open(args.samples, "a", newline="")
        sw = csv.writer(out)
        for s in samples:
            seq, t0, t1, done, plan_t = int(s[1]), float(s[3]), float(s[4]), float(s[5]), float(s[6])
            if done < 0:
                timeouts += 1
            # Runs are one at a time: the first purge request at or after
            # this transaction's last statement is this sample's.
            while j < len(sends) and sends[j].t < t0:
                j += 1
            if j == len(sends) or (done >= 0 and sends[j].t > done + 0.05):
                lost += 1
                continue
            e = sends[j]
            j += 1
            want = f"/lat/r{args.round}/{args.provider}/{seq}.html"
            if e.paths is not None and e.paths != [want]:
                mismatched += 1
            if seq <= args.warmup:
                continue
            ms, ms0 = (e.t - t1) * 1000, (e.t - t0) * 1000
            pms = (plan_t - t1) * 1000 if plan_t > 0 else None
            lat.append(ms)
            lat0.append(ms0)
            if pms is not None:
                planned.append(pms)
            sw.writerow([args.round, args.provider, seq, round(ms, 4), round(ms0, 4), "" if pms is None else round(pms, 4)])
        out.close()
        xs, xs0 = sorted(lat), sorted(lat0)
        for name, p in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99)):
            row(name, percentile(xs, p))
        row("p50_from_before_commit_ms", percentile(xs0, 50))
        row("p99_from_before_commit_ms", percentile(xs0, 99))
        row("planned_p50_ms", percentile(sorted(planned), 50))
        row("planned_p99_ms", percentile(sorted(planned), 99))
        row("mean_ms", statistics.mean(xs) if xs else None)
        row("max_ms", xs[-1] if xs else None)
        row("min_ms", xs[0] if xs else None)
        row("samples", len(xs))
        row("lost", lost)
        row("timeouts", timeouts)
        row("mismatched", mismatched)
        row("api_calls", len(events))
        row("api_calls_db", db_calls)
        row("rejected", rejected)
        row("failed_batches", db_failed)
        if lost:
            anomaly(f"{lost} purges not seen at the endpoint")
        if timeouts:
            anomaly(f"{timeouts} purges not completed within 15 s")
        if mismatched:
            anomaly(f"{mismatched} requests at the endpoint were not the purge they were matched with")
        if len(sends) != len(samples):
            anomaly(f"{len(sends)} purge requests at the endpoint for {len(samples)} purges (retries?)")
        summary = (f"p50 {fmt(percentile(xs, 50), 2)} ms, p99 {fmt(percentile(xs, 99), 2)} ms, "
                   f"max {fmt(xs[-1] if xs else None, 2)} ms ({len(xs)} samples); batch planned: p50 "
                   f"{fmt(percentile(sorted(planned), 50), 2)} ms")

    if db_failed:
        anomaly(f"{db_failed} batches failed")
    if rejected:
        anomaly(f"the endpoint refused {rejected} requests")
    if len(events) != db_calls:
        anomaly(f"the endpoint saw {len(events)} API calls, pg_cachekit counted {db_calls}")
    if items != db_items or (args.measure == "throughput" and items != args.paths):
        anomaly(f"{items} paths purged at the endpoint, {db_items} in completed batches, {args.paths} queued")
    if duplicates:
        anomaly(f"{duplicates} paths purged more than once")
    runs.close()
    print(f"bench: round {args.round} {args.measure:<10} {args.provider:<10} {summary}", file=sys.stderr)
    for a in anomalies:
        print(a)


# --- report -----------------------------------------------------------------


def report(args):
    values = defaultdict(list)  # (measure, provider, metric) -> [per round]
    rounds = set()
    with open(args.runs) as f:
        for r in csv.DictReader(f):
            rounds.add(r["round"])
            values[(r["measure"], r["provider"], r["metric"])].append(float(r["value"]))
    samples = defaultdict(list)
    samples0 = defaultdict(list)
    planned = defaultdict(list)
    with open(args.samples) as f:
        for r in csv.DictReader(f):
            samples[r["provider"]].append(float(r["latency_ms"]))
            samples0[r["provider"]].append(float(r["from_before_commit_ms"]))
            if r.get("planned_ms"):
                planned[r["provider"]].append(float(r["planned_ms"]))
    for xs in list(samples.values()) + list(samples0.values()) + list(planned.values()):
        xs.sort()
    with open(args.notes) as f:
        notes = f.read().rstrip("\n")

    def vals(m, p, k):
        return values.get((m, p, k), [])

    def med(m, p, k):
        xs = vals(m, p, k)
        return statistics.median(xs) if xs else None

    def spread(m, p, k, digits=1):
        xs = vals(m, p, k)
        return f"{min(xs):.{digits}f}-{max(xs):.{digits}f}" if xs else "-"

    providers = [p for p in PROVIDERS if any(k[1] == p for k in values)]
    lines = ["pg_cachekit CDN purges: throughput and latency per provider (fakes on loopback)", "", notes, ""]
    csv_rows = [["measure", "provider", "metric", "rounds", "median", "min", "max"]]
    for (m, p, k), xs in sorted(values.items(), key=lambda kv: (kv[0][0], PROVIDERS.index(kv[0][1]), kv[0][2])):
        csv_rows.append([m, p, k, len(xs), round(statistics.median(xs), 6), round(min(xs), 6), round(max(xs), 6)])

    if any(k[0] == "throughput" for k in values):
        lines += ["== Throughput: N paths queued by cdn_purge() calls in one transaction -> every batch completed",
                  "   from the commit returning to the client; medians over the rounds, min-max in brackets;",
                  "   API calls counted at the endpoint (pg_cachekit's own count, _cdn_batches.api_calls, in brackets)", ""]
        lines.append(f"{'provider':<18} {'paths':>6} {'paths/s':>9} {'[min-max]':>15} {'seconds':>8} "
                     f"{'API calls/1000 paths':>22} {'purges':>7} {'polls':>6} {'batches':>7} {'1st request ms':>14}")
        for p in providers:
            if med("throughput", p, "paths") is None:
                continue
            calls = f"{fmt(med('throughput', p, 'api_calls_per_1000'), 1)} ({fmt(med('throughput', p, 'api_calls_per_1000_db'), 1)})"
            lines.append(f"{TITLE[p]:<18} {fmt(med('throughput', p, 'paths'), 0):>6} {fmt(med('throughput', p, 'paths_per_s'), 0):>9} "
                         f"{spread('throughput', p, 'paths_per_s', 0):>15} {fmt(med('throughput', p, 'seconds'), 2):>8} "
                         f"{calls:>22} {fmt(med('throughput', p, 'sends'), 0):>7} {fmt(med('throughput', p, 'polls'), 0):>6} "
                         f"{fmt(med('throughput', p, 'batches'), 0):>7} {fmt(med('throughput', p, 'first_request_ms'), 1):>14}")
        lines.append("")
    if any(k[0] == "latency" for k in values):
        lines += ["== Latency: commit of a one-path cdn_purge() (returned to the client) -> the purge request received by the endpoint",
                  "   one purge at a time on an idle queue; p50/p99: medians of the per-round values; pooled: all samples of all rounds;",
                  "   'from COMMIT sent': pooled p50 measured from clock_timestamp() just before COMMIT instead;",
                  "   'batch planned': pooled p50 of commit returned -> the dispatcher inserted the purge's batch (first run; the next run sends it)", ""]
        lines.append(f"{'provider':<18} {'p50 ms':>8} {'[min-max]':>13} {'p99 ms':>8} {'[min-max]':>13} "
                     f"{'pooled p50':>10} {'pooled p99':>10} {'max ms':>8} {'from COMMIT sent':>16} {'batch planned':>13} {'samples':>8}")
        for p in providers:
            xs = samples.get(p, [])
            if not xs:
                continue
            lines.append(f"{TITLE[p]:<18} {fmt(med('latency', p, 'p50_ms'), 2):>8} {spread('latency', p, 'p50_ms', 2):>13} "
                         f"{fmt(med('latency', p, 'p99_ms'), 2):>8} {spread('latency', p, 'p99_ms', 2):>13} "
                         f"{fmt(percentile(xs, 50), 2):>10} {fmt(percentile(xs, 99), 2):>10} {fmt(xs[-1], 2):>8} "
                         f"{fmt(percentile(samples0[p], 50), 2):>16} {fmt(percentile(planned[p], 50), 2):>13} {len(xs):>8}")
            csv_rows.append(["latency_pooled", p, "p50_ms", len(xs), round(percentile(xs, 50), 4), round(xs[0], 4), round(xs[-1], 4)])
            csv_rows.append(["latency_pooled", p, "p99_ms", len(xs), round(percentile(xs, 99), 4), round(xs[0], 4), round(xs[-1], 4)])
            csv_rows.append(["latency_pooled", p, "p50_from_before_commit_ms", len(xs), round(percentile(samples0[p], 50), 4),
                             round(samples0[p][0], 4), round(samples0[p][-1], 4)])
        lines.append("")
    anomalies = [l for l in notes.splitlines() if l.startswith("ANOMALY")]
    lines.append(f"{len(rounds)} rounds; {len(anomalies)} anomalies" + (" (listed above)" if anomalies else ""))

    with open(args.out + ".txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(args.out + ".csv", "w", newline="") as f:
        csv.writer(f).writerows(csv_rows)
    plot(args.out + ".png", providers, med, samples)


def plot(png, providers, med, samples):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("no gnuplot: no plot", file=sys.stderr)
        return
    tp = [p for p in providers if med("throughput", p, "paths_per_s") is not None]
    lt = [p for p in providers if samples.get(p)]
    if not tp and not lt:
        return
    tmp = tempfile.mkdtemp(prefix="cdn_report.")
    script = ["set terminal pngcairo size 1400,560 font 'sans,10'", f"set output '{png}'",
              "set multiplot layout 1,2", "set style data histograms", "set style histogram clustered gap 1",
              "set style fill solid 0.85 border -1", "set boxwidth 0.9", "set grid ytics", "set key top left",
              "set xtics nomirror", "set ytics nomirror"]
    if tp:
        dat = os.path.join(tmp, "tp.dat")
        with open(dat, "w") as f:
            for p in tp:
                f.write(f"\"{TITLE[p]}\" {med('throughput', p, 'paths_per_s'):.3f} "
                        f"{med('throughput', p, 'api_calls_per_1000'):.3f}\n")
        script += ["set title '(a) purge throughput: paths/s, medians over the rounds (label: API calls per 1,000 paths)'",
                   "set ylabel 'paths/s'", "set yrange [0:*]", "set offsets 0, 0, graph 0.08, 0",
                   f"plot '{dat}' using 2:xtic(1) notitle lc rgb '#4c72b0', "
                   f"'' using ($0):2:(sprintf('%.0f/s, %.4g calls/1k', $2, $3)) with labels offset 0,0.8 notitle"]
    else:
        script.append("set multiplot next")
    if lt:
        dat = os.path.join(tmp, "lat.dat")
        with open(dat, "w") as f:
            for p in lt:
                xs = samples[p]
                f.write(f"\"{TITLE[p]}\" {percentile(xs, 50):.4f} {percentile(xs, 90):.4f} {percentile(xs, 99):.4f}\n")
        script += ["set yrange [0:*]", "set offsets 0, 0, 0, 0",
                   "set title '(b) commit -> request at the endpoint, ms (all samples pooled)'", "set ylabel 'ms'",
                   f"plot '{dat}' using 2:xtic(1) title 'p50' lc rgb '#55a868', '' using 3 title 'p90' lc rgb '#dd8452', "
                   "'' using 4 title 'p99' lc rgb '#c44e52'"]
    script.append("unset multiplot")
    gp = os.path.join(tmp, "plot.gp")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    res = subprocess.run([gnuplot, gp], capture_output=True, text=True)
    if res.returncode != 0:
        print("gnuplot failed:\n" + res.stderr, file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("analyse")
    a.add_argument("--measure", choices=("throughput", "latency"), required=True)
    a.add_argument("--round", type=int, required=True)
    a.add_argument("--provider", choices=PROVIDERS, required=True)
    a.add_argument("--paths", type=int, required=True, help="paths queued (throughput) or purges made (latency)")
    a.add_argument("--warmup", type=int, default=0)
    a.add_argument("--client", required=True)
    a.add_argument("--log", required=True)
    a.add_argument("--skip", type=int, default=0)
    a.add_argument("--db", required=True)
    a.add_argument("--runs", required=True)
    a.add_argument("--samples", required=True)
    r = sub.add_parser("report")
    r.add_argument("--runs", required=True)
    r.add_argument("--samples", required=True)
    r.add_argument("--notes", required=True)
    r.add_argument("--out", required=True, help="output path without extension")
    args = ap.parse_args()
    (analyse if args.cmd == "analyse" else report)(args)


if __name__ == "__main__":
    main()
