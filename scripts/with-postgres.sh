#!/usr/bin/env bash
# Runs a command beside private, throw-away PostgreSQL clusters: each is initdb'd in a
# temporary directory, listens on a free loopback port only and trusts its clients.
# - BULKHOST_TEST_POSTGRES names the cluster every test shares.
# - BULKHOST_TEST_POSTGRES_RESTARTABLE names a second cluster for the one test that restarts
#   its database under load, and BULKHOST_TEST_POSTGRES_RESTART is a script that restarts it
#   (a fast shutdown, then a start on the same port and data). Restarting the shared cluster
#   instead would break whatever other test happened to be talking to it at that moment.
# The clusters and their data are gone when the command ends.
# initdb and the server refuse to run as root, so as root they run as the `postgres` user
# that Debian's package creates. `make setup` installs the package when it is missing.
set -euo pipefail

bin=
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && bin=$d
done
if [ -z "$bin" ]; then
  echo "PostgreSQL is not installed (run \`make setup\`)" >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

clusters=()
stop() {
  for dir in "${clusters[@]}"; do
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
  done
}
trap stop EXIT

# Starts a cluster in a new directory and prints that directory; its URL is in $dir/url.
start_cluster() {
  local dir port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/bulkhost-pg.XXXXXX")
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400" start >/dev/null ||
    { cat "$dir/server.log" >&2; return 1; }
  echo "postgres://postgres@127.0.0.1:$port/postgres" >"$dir/url"
  echo "$dir"
}

shared=$(start_cluster)
clusters+=("$shared")
restartable=$(start_cluster)
clusters+=("$restartable")

cat >"$restartable/restart" <<RESTART
#!/usr/bin/env bash
set -e
$( [ "$(id -u)" = 0 ] && echo "runuser -u postgres --" ) "$bin/pg_ctl" -D "$restartable/data" -l "$restartable/server.log" -m fast -w -t 60 restart >/dev/null
RESTART
chmod +x "$restartable/restart"

BULKHOST_TEST_POSTGRES=$(cat "$shared/url")
BULKHOST_TEST_POSTGRES_RESTARTABLE=$(cat "$restartable/url")
export BULKHOST_TEST_POSTGRES BULKHOST_TEST_POSTGRES_RESTARTABLE
export BULKHOST_TEST_POSTGRES_RESTART="$restartable/restart"
"$@"
