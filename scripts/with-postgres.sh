#!/usr/bin/env bash
# Runs a command beside a private, throw-away PostgreSQL cluster: initdb in a temporary
# directory, listening on a free loopback port only, trust authentication. The command finds
# the server in BULKHOST_TEST_POSTGRES, and a script that restarts it (a fast shutdown, then a
# start on the same port and data) in BULKHOST_TEST_POSTGRES_RESTART; the cluster and its data
# are gone when it ends.
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

dir=$(mktemp -d "${TMPDIR:-/tmp}/bulkhost-pg.XXXXXX")
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400" start >/dev/null ||
  { cat "$dir/server.log" >&2; exit 1; }

cat >"$dir/restart" <<RESTART
#!/usr/bin/env bash
set -e
$( [ "$(id -u)" = 0 ] && echo "runuser -u postgres --" ) "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null
RESTART
chmod +x "$dir/restart"

export BULKHOST_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
export BULKHOST_TEST_POSTGRES_RESTART="$dir/restart"
"$@"
