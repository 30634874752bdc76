#!/usr/bin/env python3
"""Checks the Grafana dashboard and the Prometheus alert rules of pg_cachekit.

    test/monitoring/check_dashboard.py [--exposition FILE] [--allow-missing NAME,...]

- the dashboard's structure: unique panel ids (rows' panels too), a grid
  position for each, a data source that is the ${DS_PROMETHEUS} variable,
  every target with a non-empty expression and a unique refId, and the
  DS_PROMETHEUS (datasource, prometheus), instance and database variables;
- every metric name in any expression of the dashboard (panels and variable
  queries) and of monitoring/prometheus/alerts.yml is a family of
  monitoring/metric_names.txt (histograms: _bucket/_sum/_count, summaries:
  _sum/_count), every label a selector, a grouping or an alert template uses is
  one of the catalogue's (or instance, job, le), and the labels in a
  selector belong to that family;
- every dashboard expression parses: with Grafana's variables replaced, they go
  into a temporary rules file as recording rules for `promtool check rules`
  (without promtool that part is skipped and the script exits 77 once the rest
  passed);
- promtool check rules alerts.yml, promtool test rules alerts_test.yml (each
  alert fires on a synthetic unhealthy series, stays quiet on healthy ones)
  and promtool check config prometheus.yml;
- with --exposition FILE (Prometheus text, e.g. `psql -Atc 'SELECT
  cachekit.metrics()'`): its # TYPE lines name exactly the families of
  metric_names.txt with the same types, in the same order (names in
  --allow-missing may be absent, e.g. HTTP-only families).

Standard library only. Exits 0 when everything holds, 1 (listing every
problem) when not.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DASHBOARD = os.path.join(ROOT, "monitoring", "grafana", "pg_cachekit.json")
ALERTS = os.path.join(ROOT, "monitoring", "prometheus", "alerts.yml")
NAMES = os.path.join(ROOT, "monitoring", "metric_names.txt")

# Labels Prometheus adds to every scraped series (instance, job) or that a
# histogram's buckets carry (le).
SCRAPE_LABELS = {"instance", "job"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "Inf", "NaN"}
SUFFIXES = {"histogram": ["_bucket", "_sum", "_count"], "summary": ["_sum", "_count"]}

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def load_catalogue():
    families = {}  # name -> (type, set of labels)
    order = []
    with open(NAMES) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3 or parts[1] not in ("counter", "gauge", "histogram", "summary"):
                problem(f"{NAMES}:{n}", f"expected 'name type labels', got {line!r}")
                continue
            name, kind, labels = parts
            if name in families:
                problem(f"{NAMES}:{n}", f"{name} listed twice")
            if kind == "counter" and not name.endswith("_total"):
                problem(f"{NAMES}:{n}", f"counter {name} does not end in _total")
            families[name] = (kind, set() if labels == "-" else set(labels.split(",")))
            order.append(name)
    return families, order


def sample_names(families):
    """Sample name -> (family, labels a selector may use)."""
    names = {}
    for name, (kind, labels) in families.items():
        for suffix in SUFFIXES.get(kind, [""]):
            extra = {"le"} if suffix == "_bucket" else set()
            names[name + suffix] = (name, labels | extra | SCRAPE_LABELS)
    return names


STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''
SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{((?:" + STRING + r"|[^}\"'])*)\}")
MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*(" + STRING + ")")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def check_expr(where, expr, samples, all_labels):
    """Metric and label names of one PromQL expression against the catalogue."""
    if not expr.strip():
        problem(where, "empty expression")
        return

    def selector(m):
        metric, body = m.group(1), m.group(2)
        used = [lm.group(1) for lm in MATCHER.finditer(body)]
        rest = MATCHER.sub("", body).replace(",", "").strip()
        if rest:
            problem(where, f"cannot read the label matchers {{{body}}}")
        if metric and metric not in KEYWORDS:
            if metric not in samples:
                problem(where, f"metric {metric} is not in the catalogue")
            else:
                for label in used:
                    if label not in samples[metric][1]:
                        problem(where, f"{metric} has no label {label}")
        else:
            for label in used:
                if label == "__name__":
                    continue
                if label not in all_labels:
                    problem(where, f"label {label} is not in the catalogue")
        # The metric name stays for the scan below only when there was none.
        return (" " + metric + " ") if metric and metric in KEYWORDS else " __selector__ "

    text = SELECTOR.sub(selector, expr)
    text = re.sub(STRING, " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    for m in GROUPING.finditer(text):
        for label in filter(None, (s.strip() for s in m.group(2).split(","))):
            if label not in all_labels:
                problem(where, f"label {label} in {m.group(1)}(...) is not in the catalogue")
    text = GROUPING.sub(" ", text)
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word in KEYWORDS or word == "__selector__":
            continue
        if word not in samples:
            problem(where, f"metric {word} is not in the catalogue")


def grafana_to_promql(where, expr, variables):
    """Replaces Grafana's variables by what Prometheus would get."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}", "5m", expr)

    def var(m):
        name = m.group(1) or m.group(2)
        if name not in variables:
            problem(where, f"unknown dashboard variable ${name}")
        return ".*"

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", var, expr)


def check_dashboard(samples, all_labels):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    where = os.path.relpath(DASHBOARD, ROOT)
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        problem(where, f"schemaVersion {dash.get('schemaVersion')!r}, expected a number >= 36")
    for key in ("title", "uid", "panels", "templating"):
        if key not in dash:
            problem(where, f"no {key}")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problem(where, "no DS_PROMETHEUS variable of type datasource for prometheus")
    for name in ("instance", "database"):
        if name not in variables or variables[name].get("type") != "query":
            problem(where, f"no {name} query variable")
    exprs = []  # (where, PromQL)
    for name, v in variables.items():
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q)
        if not m:
            problem(f"{where} variable {name}", f"expected label_values(selector, label), got {q!r}")
            continue
        if m.group(2) not in all_labels:
            problem(f"{where} variable {name}", f"label {m.group(2)} is not in the catalogue")
        exprs.append((f"{where} variable {name}", grafana_to_promql(where, m.group(1), variables)))

    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    ids = {}
    for p in walk(dash.get("panels", [])):
        pw = f"{where} panel {p.get('id')} {p.get('title')!r}"
        if not isinstance(p.get("id"), int):
            problem(pw, "no numeric id")
        elif p["id"] in ids:
            problem(pw, f"id {p['id']} also used by panel {ids[p['id']]!r}")
        else:
            ids[p["id"]] = p.get("title")
        grid = p.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
            problem(pw, "no complete gridPos")
        elif grid["x"] + grid["w"] > 24:
            problem(pw, "wider than the grid")
        if p.get("type") == "row":
            continue
        if not p.get("title"):
            problem(pw, "no title")
        if (p.get("datasource") or {}).get("uid") != "${DS_PROMETHEUS}":
            problem(pw, "data source is not ${DS_PROMETHEUS}")
        targets = p.get("targets") or []
        if not targets:
            problem(pw, "no targets")
        refs = set()
        for t in targets:
            tw = f"{pw} target {t.get('refId')}"
            if t.get("refId") in refs or not t.get("refId"):
                problem(tw, "missing or repeated refId")
            refs.add(t.get("refId"))
            if (t.get("datasource") or {}).get("uid", "${DS_PROMETHEUS}") != "${DS_PROMETHEUS}":
                problem(tw, "data source is not ${DS_PROMETHEUS}")
            expr = t.get("expr") or ""
            if not expr.strip():
                problem(tw, "empty expr")
                continue
            exprs.append((tw, grafana_to_promql(tw, expr, variables)))
    if len(ids) < 10:
        problem(where, f"only {len(ids)} panels")
    return exprs


def alert_rules():
    """(alert, expr, text of the rule) of alerts.yml, read without a YAML library."""
    rules = []
    with open(ALERTS) as f:
        lines = f.read().split("\n")
    i = 0
    current = None
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)- alert:\s*(\S+)", line)
        if m:
            current = {"alert": m.group(2), "expr": None, "text": line}
            rules.append(current)
        elif current is not None:
            current["text"] += "\n" + line
        m = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if m and current is not None:
            indent, value = len(m.group(1)), m.group(2).strip()
            if value in ("|", "|-", ">", ">-"):
                body = []
                while i + 1 < len(lines) and (not lines[i + 1].strip() or
                                              len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent):
                    i += 1
                    body.append(lines[i].strip())
                    current["text"] += "\n" + lines[i]
                value = " ".join(b for b in body if b)
            current["expr"] = value
        i += 1
    return rules


def check_alerts(samples, all_labels):
    where = os.path.relpath(ALERTS, ROOT)
    rules = alert_rules()
    if not rules:
        problem(where, "no alerts found")
    for r in rules:
        aw = f"{where} alert {r['alert']}"
        if not r["expr"]:
            problem(aw, "no expr")
            continue
        check_expr(aw, r["expr"], samples, all_labels)
        if not re.search(r"^\s*severity:\s*(critical|warning|info)\s*$", r["text"], re.M):
            problem(aw, "no severity label (critical, warning or info)")
        for key in ("summary", "description"):
            if not re.search(rf"^\s*{key}:", r["text"], re.M):
                problem(aw, f"no {key} annotation")
        for label in re.findall(r"\$labels\.(\w+)", r["text"]):
            if label not in all_labels:
                problem(aw, f"template uses label {label}, not in the catalogue")


def promtool_check(exprs):
    promtool = shutil.which("promtool")
    if not promtool:
        return False
    rules = [{"record": f"dashboard:expr_{n}", "expr": e} for n, (_, e) in enumerate(exprs)]
    # JSON is YAML, so no YAML writer is needed.
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, indent=1)
        path = f.name
    try:
        out = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        text = out.stdout + out.stderr
        # promtool names the rule by position: map it back to the panel.
        for n, (where, expr) in enumerate(exprs):
            text = text.replace(f"dashboard:expr_{n}", f"{where} ({expr})")
        problem("promtool check rules (dashboard expressions)", text.strip())
    # The alert rules, their unit tests and the example scrape config.
    prom = os.path.dirname(ALERTS)
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"],
                 ["check", "config", "prometheus.yml"]):
        out = subprocess.run([promtool] + args, cwd=prom, capture_output=True, text=True)
        if out.returncode != 0:
            problem(f"promtool {' '.join(args)} (in monitoring/prometheus)", (out.stdout + out.stderr).strip())
    return True


def check_exposition(path, families, order, allow_missing):
    seen = []
    with open(path) as f:
        for line in f:
            m = re.match(r"^# TYPE (\S+) (\S+)", line)
            if not m:
                continue
            name, kind = m.groups()
            seen.append(name)
            if name not in families:
                problem(path, f"family {name} is not in metric_names.txt")
            elif families[name][0] != kind:
                problem(path, f"{name} is a {kind}, metric_names.txt says {families[name][0]}")
    for name in order:
        if name not in seen and name not in allow_missing:
            problem(path, f"family {name} of metric_names.txt is missing")
    listed = [n for n in order if n in seen]
    if [n for n in seen if n in families] != listed:
        problem(path, "families are not in the order of metric_names.txt")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exposition", help="Prometheus text exposition to compare with metric_names.txt")
    ap.add_argument("--allow-missing", default="", help="families that may be absent from --exposition")
    args = ap.parse_args()

    families, order = load_catalogue()
    samples = sample_names(families)
    all_labels = set(SCRAPE_LABELS) | {"le"}
    for _, labels in families.values():
        all_labels |= labels

    exprs = check_dashboard(samples, all_labels)
    for where, expr in exprs:
        check_expr(where, expr, samples, all_labels)
    check_alerts(samples, all_labels)
    ran_promtool = promtool_check(exprs)
    if args.exposition:
        check_exposition(args.exposition, families, order, set(filter(None, args.allow_missing.split(","))))

    for p in problems:
        print(f"not ok - {p}")
    if problems:
        return 1
    print(f"ok - dashboard: {len(exprs)} expressions, alerts: {len(alert_rules())} rules, "
          f"only catalogue metrics and labels ({len(families)} families)")
    if args.exposition:
        print(f"ok - {args.exposition}: the catalogue's families, types and order")
    if not ran_promtool:
        print("skip - promtool not installed: dashboard expressions not parsed")
        return 77
    print("ok - promtool check rules parses every dashboard expression")
    print("ok - promtool: check rules alerts.yml, test rules alerts_test.yml, check config prometheus.yml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
