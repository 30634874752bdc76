#!/usr/bin/env bash
# make_test_ca.sh DIR: a throwaway certificate authority for the CDN tests.
#
# Writes DIR/ca.pem (the CA certificate, what a client is given as its CA
# file), DIR/server.pem and DIR/server-key.pem (a server certificate signed by
# that CA, for IP 127.0.0.1 and DNS localhost). Files that already exist and
# still fit together are reused, so tests can call this every time; a lock
# keeps concurrent calls on one DIR from mixing two CAs. P-256 keys: made in
# milliseconds. Nothing here is secret: the keys exist only for loopback tests.
set -euo pipefail

if (($# != 1)); then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

ca=$dir/ca.pem
cert=$dir/server.pem
key=$dir/server-key.pem

# Reused while valid for another day and signed by the CA beside it.
if [[ -s $ca && -s $cert && -s $key ]] &&
	openssl x509 -in "$cert" -noout -checkend 86400 >/dev/null 2>&1 &&
	openssl verify -CAfile "$ca" "$cert" >/dev/null 2>&1; then
	exit 0
fi

work=$(mktemp -d "$dir/.new.XXXXXX")
trap 'rm -rf "$work"' EXIT

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$work/ca-key.pem" -out "$work/ca.pem" -days 3650 \
	-subj "/CN=pg_cachekit test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$work/server-key.pem" -out "$work/server.csr" \
	-subj "/CN=localhost" 2>/dev/null

cat >"$work/server.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOF

openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" \
	-CAcreateserial -out "$work/server.pem" -days 825 -extfile "$work/server.ext" 2>/dev/null

chmod 600 "$work/server-key.pem"
# The key first: a reader that finds server.pem also finds its key.
mv "$work/server-key.pem" "$key"
mv "$work/server.pem" "$cert"
mv "$work/ca.pem" "$ca"
