#!/usr/bin/env bash
# The PostgreSQL engine's figures, side by side, in one run (BENCHMARKS.md quotes them):
#   1. upserts and page reads through the Django REST Framework peer's own client, measure.py,
#      against bulkhost on PostgreSQL, bulkhost on redb, and the peer on PostgreSQL;
#   2. page-1 reads per second of 8 clients against one host, then against two hosts on the
#      same database;
#   3. the download of a 1,000,000-record export from bulkhost on PostgreSQL against the peer
#      `COPY (SELECT row_to_json(t) FROM records t) TO STDOUT` of as many records.
# Runs beside the private cluster of scripts/with-postgres.sh (`make bench-postgres` does
# both), with the peers of PEERS (default ../shared/peers). One JSON object per figure.
# usage: bench-postgres.sh [documents=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
PEERS=${PEERS:-../shared/peers}
BIN=target/release/bulkhost
SERVER=${BULKHOST_TEST_POSTGRES:?run through scripts/with-postgres.sh}
PSQL=$(ls /usr/lib/postgresql/*/bin/psql | tail -1)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkhost-bench.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$BIN" ] || { echo "build it first: make bench-postgres" >&2; exit 1; }
VENV=${PEER_VENV:-/tmp/peers/venv}
[ -x "$VENV/bin/python" ] || "$PEERS/drf/setup.sh" >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# database NAME: a fresh database of the private server; prints its URL.
database() {
  "$PSQL" "$SERVER" -qc "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
  echo "${SERVER%/*}/$1"
}

cat >"$WORK/bench.toml" <<EOF
[[tenants]]
name = "bench"
changes_enabled = true
[tenants.quotas]
document_mib = 1048576
result_mib = 1048576
[[tenants.users]]
name = "bench"
password = "bench"
[plugins]
dir = "$WORK/plugins"
[database]
pool_size = 32
EOF
mkdir -p "$WORK/plugins"
cp target/plugins/wasm32-wasip2/release/synthetic.wasm "$WORK/plugins/"

# host NAME [DATABASE]: starts a host (on redb without a database); its base URL in BASE.
host() {
  local port; port=$(free_port)
  local args=(serve --dev --listen "127.0.0.1:$port" --data "$WORK/$1" --config "$WORK/bench.toml")
  [ $# -gt 1 ] && args+=(--database "$2" --migrate)
  BULKHOST_LOG=warn "$BIN" "${args[@]}" >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && { BASE="http://127.0.0.1:$port"; return; }
    sleep 0.1
  done
  cat "$WORK/$1.log" >&2; exit 1
}

# token BASE: an API token of the benchmark user, which measure.py sends as a Bearer token.
token() {
  curl -fsS -u bench:bench -H 'content-type: application/json' \
    -d '{"domain": "bench", "api": "xxl"}' "$1/api_token/" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["WINFRA-API-TOKEN"])'
}

# The cashiers 100-139 that the peer's documents name as stuff_id (bulkhost checks it).
cashiers() {
  python3 -c 'import json; print(json.dumps([{"cashier_id": str(i), "name": "c%d" % i} for i in range(100, 140)]))' |
    curl -fsS -o /dev/null -H "authorization: Bearer $2" -H 'content-type: application/json' \
      --data-binary @- "$1/api/v1/cashiers/"
}

measure() { "$VENV/bin/python" "$PEERS/drf/measure.py" "$@"; }

# 1. Upserts and pages, the peer's client against each.
pg=$(database bench_one)
host one "$pg"; one=$BASE
tok=$(token "$one"); cashiers "$one" "$tok"
measure "$one" "$tok" --label bulkhost-postgres --n "$N" --phases a,b
host redb; redb=$BASE
rtok=$(token "$redb"); cashiers "$redb" "$rtok"
measure "$redb" "$rtok" --label bulkhost-redb --n "$N" --phases a,b
kill "${PIDS[-1]}"
"$PEERS/drf/bench.sh" postgres --n "$N" --phases a,b

# 2. Reads per second of 8 clients: one host, then two on the same database.
measure "$one" "$tok" --label "one-host" --phases c --clients 8
host two "$pg"; two=$BASE
measure "$one" "$tok" --label "two-hosts:first" --phases c --clients 4 &
m1=$!
measure "$two" "$tok" --label "two-hosts:second" --phases c --clients 4
wait "$m1"

# 3. Export download against COPY.
curl -fsS -u bench:bench -H 'content-type: application/json' \
  -d '[{"dataset": "synthetic", "count": 1000000, "width": 200}]' "$one/api_v1/generar_xxl" >"$WORK/queued.json"
id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["peticion_id"])' "$WORK/queued.json")
until curl -fsS -u bench:bench "$one/api_v1/estado_xxl/$id" | grep -q '"estado":"OK"'; do sleep 0.2; done
curl -fsS -o /dev/null -u bench:bench "$one/api_v1/datos_xxl/$id/synthetic" # warm-up
for run in 1 2 3; do
  curl -fsS -o /dev/null -u bench:bench -w '{"label":"bulkhost-postgres","metric":"export_download","run":'"$run"',"bytes":%{size_download},"seconds":%{time_total},"bytes_per_s":%{speed_download}}\n' \
    "$one/api_v1/datos_xxl/$id/synthetic"
done
[ -f /tmp/peers/pg/data/PG_VERSION ] || "$PEERS/pg-export/setup.sh" >&2
"$PEERS/pg-export/measure.sh"
