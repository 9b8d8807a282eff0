#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (Debian's postgresql package): initdb in a
# temporary directory, listening on 127.0.0.1 only, trust auth, on a free port.
#   scripts/postgres-cluster.sh start [dir]   starts it and prints its URL on stdout
#   scripts/postgres-cluster.sh stop  [dir]   stops it and removes the directory
# The tests read the URL from OPAMP_TEST_POSTGRES_URL (see test/support/postgres.ts).
set -euo pipefail
cmd="${1:-start}"
dir="${2:-${TMPDIR:-/tmp}/opamp-test-postgres}"

bin=""
for candidate in /usr/lib/postgresql/*/bin; do
  [ -x "$candidate/initdb" ] && bin="$candidate"
done
if [ -z "$bin" ]; then
  echo "PostgreSQL is not installed (apt-get install -y postgresql)" >&2
  exit 1
fi

# initdb and postgres refuse to run as root: run them as the package's postgres user.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Test workers may start it at once: one at a time. The lock's descriptor must not reach
# the server (pg_ctl below closes it): a postmaster holding it would keep the lock forever,
# and "stop" would wait on it for good.
exec 9>"${dir}.lock"
flock 9

case "$cmd" in
  start)
    if [ -f "$dir/port" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
      exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1
    port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    echo "$port" >"$dir/port"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null 9>&-
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 9>&- || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop [dir]" >&2
    exit 2
    ;;
esac
