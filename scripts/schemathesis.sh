#!/usr/bin/env bash
# Tests the REST front door against the server's own OpenAPI document with
# schemathesis: it reads the document the server publishes for the core
# group (/openapi/v3/api/v1, OpenAPI 3.0), generates requests that fit it
# (and some that do not), sends them, and checks every answer. It fails
# on any 5xx answer (`not_a_server_error`): whatever a client sends, a
# malformed request is the client's error, never the server's.
#
#   scripts/schemathesis.sh
#
# Bounded by SCHEMATHESIS_MAX_EXAMPLES requests per operation (default 20)
# and SCHEMATHESIS_MAX_TIME seconds in all (default 120). The operations
# are those of ConfigMaps, Pods, Services and Secrets in a namespace, and
# of one of each by name: GET, POST, PUT, PATCH and DELETE, in the
# namespace `default`. SCHEMATHESIS_CHECKS names other checks (comma
# separated, e.g. `not_a_server_error,response_schema_conformance`).
#
# The server runs without an agent, so that no generated pod is ever run
# as a process on this host. Requests go over TLS as the admin, with the
# CA and the certificate the server made in its data dir.
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-20}"
max_time="${SCHEMATHESIS_MAX_TIME:-120}"
checks="${SCHEMATHESIS_CHECKS:-not_a_server_error}"

if [[ "$(schemathesis --version 2>/dev/null)" != *"$version"* ]]; then
  echo "scripts/schemathesis.sh: installing schemathesis $version" >&2
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
fi
cargo build --quiet -p tinykube --bin tinykube

dir=$(mktemp -d)
server=
stop() {
  if [[ -n "$server" ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap stop EXIT

target/debug/tinykube server --listen 127.0.0.1:0 --no-agent --data-dir "$dir/data" >"$dir/server.log" 2>&1 &
server=$!

# The server writes its kubeconfig, with the port it got, once it listens.
tls="$dir/data/tls"
curl_tls=(--cacert "$tls/ca.crt" --cert "$tls/admin.crt" --key "$tls/admin.key")
url=
for _ in $(seq 100); do
  url=$(sed -nE 's/^ *server: (https:\/\/127\.0\.0\.1:[1-9][0-9]*)\/?$/\1/p' "$dir/data/kubeconfig.yaml" 2>/dev/null || true)
  [[ -n "$url" ]] && curl -sf "${curl_tls[@]}" "$url/api/v1/namespaces/default" >/dev/null && break
  url=
  sleep 0.2
done
if [[ -z "$url" ]]; then
  echo "scripts/schemathesis.sh: the server did not come up; its log:" >&2
  cat "$dir/server.log" >&2
  exit 1
fi
curl -sf "${curl_tls[@]}" "$url/openapi/v3/api/v1" >"$dir/api-v1.json"

# One object of each kind, named `sample`, for the operations on one
# object by name to find; schemathesis would otherwise only meet 404s there.
for kind in configmaps secrets services pods; do
  case $kind in
    configmaps) body='{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sample"},"data":{"a":"b"}}' ;;
    secrets) body='{"apiVersion":"v1","kind":"Secret","metadata":{"name":"sample"},"stringData":{"a":"b"}}' ;;
    services) body='{"apiVersion":"v1","kind":"Service","metadata":{"name":"sample"},"spec":{"selector":{"app":"sample"},"ports":[{"port":80}]}}' ;;
    pods) body='{"apiVersion":"v1","kind":"Pod","metadata":{"name":"sample"},"spec":{"containers":[{"name":"main","image":"busybox:1"}]}}' ;;
  esac
  curl -sf "${curl_tls[@]}" -X POST -H 'Content-Type: application/json' -d "$body" "$url/api/v1/namespaces/default/$kind" >/dev/null
done

# Parameters schemathesis must not invent: the namespace and the name are
# those that exist, so that requests get past the lookup to the decoders
# and the registry; `watch` stays off, since a watch answers for as long
# as the client listens.
cat >"$dir/schemathesis.toml" <<'TOML'
[parameters]
"path.namespace" = "default"
"path.name" = "sample"
"query.watch" = false
TOML

echo "scripts/schemathesis.sh: schemathesis $version against $url ($checks, $max_examples examples per operation, at most ${max_time}s)" >&2
status=0
# From the temporary directory: schemathesis keeps a cache in the current one.
(cd "$dir" && schemathesis --config-file "$dir/schemathesis.toml" run "$dir/api-v1.json" \
  --url "$url" \
  --tls-verify "$tls/ca.crt" \
  --request-cert "$tls/admin.crt" \
  --request-cert-key "$tls/admin.key" \
  --include-path-regex '^/api/v1/namespaces/\{namespace\}/(configmaps|pods|services|secrets)(/\{name\})?$' \
  --checks "$checks" \
  --max-examples "$max_examples" \
  --max-time "$max_time" \
  --request-timeout 10 \
  --workers 1 \
  --seed 1 \
  --no-color) || status=$?
if ((status)); then
  echo "scripts/schemathesis.sh: schemathesis failed (exit $status); the server's log:" >&2
  tail -n 50 "$dir/server.log" >&2
fi
exit "$status"
