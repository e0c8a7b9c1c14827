#!/usr/bin/env bash
# Makes a self-signed test certificate (ECDSA P-256, unencrypted key) whose subjectAltName lists the
# given DNS names, for tests and for trying Tls "terminate" by hand. Never for production.
#
# Usage: scripts/make-test-cert.sh CERT.pem KEY.pem CN [NAME ...]
#   NAME is a DNS name ("a.example.test", "*.b.example.test"); with none, the SAN is the CN alone;
#   a lone "-" makes a certificate without subjectAltName (CN only, as old certificates were).
#   Files are written beside their final path and renamed into place, so a watcher never reads half.
# Example:
#   scripts/make-test-cert.sh certs/a.crt certs/a.key a.example.test a.example.test '*.a.example.test'
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '5,10p' "$0" >&2
  exit 2
fi
cert=$1 key=$2 cn=$3
shift 3
[ $# -eq 0 ] && set -- "$cn"
san=""
for name in "$@"; do san="${san:+$san,}DNS:$name"; done
ext=(-addext "subjectAltName=$san")
[ "$san" = "DNS:-" ] && ext=()
tmp_cert="$cert.tmp.$$" tmp_key="$key.tmp.$$"
trap 'rm -f "$tmp_cert" "$tmp_key"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
  -subj "/CN=$cn" "${ext[@]}" \
  -keyout "$tmp_key" -out "$tmp_cert" 2>/dev/null
chmod 600 "$tmp_key"
mv -f "$tmp_key" "$key"
mv -f "$tmp_cert" "$cert"
