#!/usr/bin/env bash
# META.json is valid PGXN metadata and agrees with the control file and the
# install scripts (no server needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 - <<'PY'
import json, re, sys, os
meta = json.load(open("META.json"))
errors = []
for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
    if key not in meta:
        errors.append(f"META.json lacks {key}")
control = open("extension/pg_cachekit.control").read()
default = re.search(r"default_version\s*=\s*'([^']+)'", control).group(1)
if meta.get("version") != default:
    errors.append(f"META.json version {meta.get('version')} != control default_version {default}")
prov = meta.get("provides", {}).get("pg_cachekit", {})
if prov.get("version") != default:
    errors.append("provides.pg_cachekit.version disagrees with the control file")
if not os.path.exists(prov.get("file", "")):
    errors.append(f"provides file {prov.get('file')} does not exist")
if not os.path.exists(f"sql/pg_cachekit--{default}.sql"):
    errors.append(f"no install script for default_version {default}")
if meta.get("meta-spec", {}).get("version") != "1.0.0":
    errors.append("meta-spec.version must be 1.0.0")
if not re.fullmatch(r"\d+\.\d+\.\d+", meta.get("version", "")):
    errors.append("version is not semver")
for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
PY
echo "ok - META.json agrees with extension/pg_cachekit.control"
