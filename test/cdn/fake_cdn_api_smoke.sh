#!/usr/bin/env bash
# Checks that test/cdn/fake_cdn_api.py refuses what the real APIs refuse, so
# that a provider test passing against it means something. Needs curl,
# openssl and /usr/bin/python3.
#
#   test/cdn/fake_cdn_api_smoke.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /tmp/cdn_fake_smoke.XXXXXX)
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

failures=0
check() { # check NAME EXPECTED ACTUAL
	if [[ $2 == "$3" ]]; then
		echo "ok - $1"
	else
		echo "not ok - $1: expected [$2], got [$3]"
		failures=$((failures + 1))
	fi
}
contains() { # contains NAME NEEDLE HAYSTACK
	if [[ $3 == *"$2"* ]]; then
		echo "ok - $1"
	else
		echo "not ok - $1: [$2] not in [$3]"
		failures=$((failures + 1))
	fi
}

"$here/make_test_ca.sh" "$work/ca"

# start_fake API NAME -> sets PORT; the fake's stdout goes to $work/NAME.out
start_fake() {
	local api=$1 name=$2 line i
	"$here/fake_cdn_api.py" --api "$api" --cert "$work/ca/server.pem" --key "$work/ca/server-key.pem" \
		--token "good-token" --port 0 --log "$work/$name.log" >"$work/$name.out" 2>"$work/$name.err" &
	pids+=($!)
	for ((i = 0; i < 100; i++)); do
		line=$(head -n1 "$work/$name.out" 2>/dev/null || true)
		if [[ $line == PORT\ * ]]; then
			PORT=${line#PORT }
			return 0
		fi
		sleep 0.05
	done
	echo "fake $api did not start: $(cat "$work/$name.err")" >&2
	exit 1
}

# call PORT METHOD PATH [curl args...] -> "STATUS BODY"
call() {
	local port=$1 method=$2 path=$3
	shift 3
	curl -sS --cacert "$work/ca/ca.pem" -X "$method" -o "$work/body" -w '%{http_code}' \
		"https://127.0.0.1:$port$path" "$@" >"$work/status"
	echo "$(cat "$work/status") $(cat "$work/body")"
}

keys_json() { # keys_json N
	python3 -c 'import json,sys; print(json.dumps({"surrogate_keys": ["k%d" % i for i in range(int(sys.argv[1]))]}))' "$1"
}

# ---------------------------------------------------------------- Fastly
start_fake fastly fastly
F=$PORT
out=$(call "$F" POST /purge/www.example.com/a.png -H 'Fastly-Key: wrong')
check "fastly: a wrong token is 401" 401 "${out%% *}"
contains "fastly: 401 says why" "Provided credentials are missing or invalid" "$out"
out=$(call "$F" POST /purge/www.example.com/a.png)
check "fastly: no token is 401" 401 "${out%% *}"
out=$(call "$F" POST /purge/www.example.com/a.png -H 'Fastly-Key: good-token')
check "fastly: url purge" 200 "${out%% *}"
contains "fastly: url purge answers status ok" '"status": "ok"' "$out"
out=$(call "$F" POST /service/svc1/purge -H 'Fastly-Key: good-token' \
	-H 'Content-Type: application/json' -d "$(keys_json 257)")
check "fastly: 257 keys is 400" 400 "${out%% *}"
out=$(call "$F" POST /service/svc1/purge -H 'Fastly-Key: good-token' \
	-H 'Content-Type: application/json' -d "$(keys_json 256)")
check "fastly: 256 keys" 200 "${out%% *}"
out=$(call "$F" POST /service/svc1/purge -H 'Fastly-Key: good-token' \
	-H 'Content-Type: application/json' -d '{"keys": ["a"]}')
check "fastly: wrong body shape is 400" 400 "${out%% *}"
out=$(call "$F" POST /service/nope/purge_all -H 'Fastly-Key: good-token')
check "fastly: unknown service is 404" 404 "${out%% *}"
out=$(call "$F" POST /service/svc1/purge_all -H 'Fastly-Key: good-token' -H 'Fastly-Soft-Purge: 1')
check "fastly: soft purge_all is refused" 400 "${out%% *}"
out=$(call "$F" POST /_fake/fail -d '{"status": 503, "count": 1, "retry_after": 2}')
check "fastly: script a failure" 200 "${out%% *}"
curl -sS --cacert "$work/ca/ca.pem" -X POST -D "$work/headers" -o /dev/null \
	-H 'Fastly-Key: good-token' "https://127.0.0.1:$F/service/svc1/purge_all"
contains "fastly: the scripted 503" " 503" "$(head -n1 "$work/headers")"
contains "fastly: with its Retry-After" "Retry-After: 2" "$(cat "$work/headers")"
out=$(call "$F" POST /service/svc1/purge_all -H 'Fastly-Key: good-token')
check "fastly: then purge_all works" 200 "${out%% *}"
state=$(call "$F" GET /_fake/state)
summary=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1].split(" ", 1)[1])
print(s["accepted"], s["rejected"], s["injected"], len(s["purged"]), s["purged"][0]["item"], s["purged"][-1]["kind"])
' "$state")
check "fastly: state counts and order" "3 6 1 258 www.example.com/a.png all" "$summary"
if grep -q good-token "$work/fastly.log"; then
	check "fastly: the log never has the token" absent present
else
	check "fastly: the log never has the token" absent absent
fi

# ------------------------------------------------------------ Cloudflare
start_fake cloudflare cloudflare
C=$PORT
P=/client/v4/zones/zone1/purge_cache
json=(-H 'Content-Type: application/json')
out=$(call "$C" POST $P -H 'Authorization: Bearer wrong' "${json[@]}" -d '{"purge_everything": true}')
check "cloudflare: a wrong token is 403" 403 "${out%% *}"
contains "cloudflare: with code 10000" '"code": 10000' "$out"
auth=(-H 'Authorization: Bearer good-token')
out=$(call "$C" POST $P "${auth[@]}" "${json[@]}" -d '{"files": ["https://www.example.com/a"], "tags": ["t"]}')
check "cloudflare: two kinds in one request is 400" 400 "${out%% *}"
files=$(python3 -c 'import json; print(json.dumps({"files": ["https://www.example.com/%d" % i for i in range(101)]}))')
out=$(call "$C" POST $P "${auth[@]}" "${json[@]}" -d "$files")
check "cloudflare: 101 files is 400" 400 "${out%% *}"
contains "cloudflare: success false" '"success": false' "$out"
out=$(call "$C" POST $P "${auth[@]}" "${json[@]}" -d '{"prefixes": ["https://www.example.com/img/"]}')
check "cloudflare: a prefix with a scheme is 400" 400 "${out%% *}"
out=$(call "$C" POST /client/v4/zones/other/purge_cache "${auth[@]}" "${json[@]}" -d '{"purge_everything": true}')
check "cloudflare: unknown zone is 404" 404 "${out%% *}"
out=$(call "$C" POST $P "${auth[@]}" "${json[@]}" -d '{"files": ["https://www.example.com/a"]}')
check "cloudflare: files" 200 "${out%% *}"
contains "cloudflare: success true" '"success": true' "$out"
out=$(call "$C" POST $P "${auth[@]}" "${json[@]}" -d '{"prefixes": ["www.example.com/img/"]}')
check "cloudflare: prefixes" 200 "${out%% *}"
call "$C" POST /_fake/fail -d '{"status": 429, "count": 2}' >/dev/null
out=$(call "$C" POST $P "${auth[@]}" "${json[@]}" -d '{"purge_everything": true}')
check "cloudflare: scripted 429 (1)" 429 "${out%% *}"
out=$(call "$C" POST $P "${auth[@]}" "${json[@]}" -d '{"purge_everything": true}')
check "cloudflare: scripted 429 (2)" 429 "${out%% *}"
out=$(call "$C" POST $P "${auth[@]}" "${json[@]}" -d '{"purge_everything": true}')
check "cloudflare: then it works" 200 "${out%% *}"
state=$(call "$C" GET /_fake/state)
summary=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1].split(" ", 1)[1])
print(s["accepted"], s["rejected"], s["injected"], [p["kind"] + ":" + p["item"] for p in s["purged"]])
' "$state")
check "cloudflare: state" "3 5 2 ['files:https://www.example.com/a', 'prefixes:www.example.com/img/', 'purge_everything:zone1']" "$summary"

if ((failures > 0)); then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all fake API checks passed"
