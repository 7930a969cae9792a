#!/usr/bin/env bash
# The PostgreSQL 15 server of one CTest run (tests/CMakeLists.txt: the
# FIXTURES_SETUP / FIXTURES_CLEANUP pair "postgres").
#
#   postgres_server.sh start STATE_DIR   initdb + pg_ctl start on a fresh temporary
#                                        directory, 127.0.0.1 and a free port, plus
#                                        a Unix socket in that directory; writes
#                                        STATE_DIR/conninfo (libpq keywords, for the
#                                        tests), STATE_DIR/pid and STATE_DIR/data_dir
#   postgres_server.sh stop STATE_DIR    stops the server by its PID (SIGINT: fast
#                                        shutdown; SIGKILL after 20 s) and removes
#                                        its directory
#
# The server does not sync (fsync off: it is thrown away); with
# TACTD_PG_DURABLE=1 it syncs every commit, as in production (the benchmarks).
#
# PostgreSQL refuses to run as root: as root the server runs as the
# unprivileged `postgres` user of Debian's package (runuser). Every failure
# says why and exits non-zero, so that the tests needing the server fail
# loudly instead of being skipped.
set -euo pipefail

bin=${TACTD_PG_BIN:-/usr/lib/postgresql/15/bin}
action=${1:-}
state=${2:-}
[ -n "$action" ] && [ -n "$state" ] || { echo "usage: $0 start|stop STATE_DIR" >&2; exit 2; }

fail() {
  echo "postgres fixture: $*" >&2
  exit 1
}

as_server=()
if [ "$(id -u)" -eq 0 ]; then
  getent passwd postgres >/dev/null || fail "running as root, and there is no 'postgres' user to run the server as (apt-get install postgresql-15)"
  as_server=(runuser -u postgres --)
fi

stop() {
  local pid data
  pid=$(cat "$state/pid" 2>/dev/null || true)
  data=$(cat "$state/data_dir" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid"
    for _ in $(seq 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "postgres fixture: server $pid did not stop within 20 s; killing it" >&2
      kill -KILL "$pid" || true
    fi
  fi
  # Only ever the directory this script made.
  case "$data" in
    */tactd-pg.*) rm -rf "$data" ;;
  esac
  rm -f "$state/pid" "$state/data_dir" "$state/conninfo"
}

start() {
  [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] ||
    fail "no initdb/pg_ctl in $bin (apt-get install postgresql-15; .ci/deps does)"
  mkdir -p "$state"
  stop  # what an interrupted earlier run left behind
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tactd-pg.XXXXXXXX")
  echo "$dir" >"$state/data_dir"
  [ ${#as_server[@]} -eq 0 ] || chown postgres: "$dir"
  chmod 700 "$dir"

  # A free port: the kernel picks one; the server takes it a moment later
  # (another process could take it in between: pg_ctl then fails, and we try again).
  local port attempt log="$dir/server.log"
  # fsync off and small shared buffers: a throwaway test server on a loaded
  # machine. TACTD_PG_DURABLE=1 (the benchmarks): every commit synced, as in
  # production.
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB"
  [ "${TACTD_PG_DURABLE:-}" = 1 ] && durability="-c shared_buffers=128MB"
  "${as_server[@]}" "$bin/initdb" -D "$dir/data" -U tactd --auth=trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; fail "initdb failed (above)"; }
  for attempt in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if "${as_server[@]}" "$bin/pg_ctl" start -w -t 60 -D "$dir/data" -l "$log" -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200 \
       $durability" >"$dir/pg_ctl.log" 2>&1; then
      break
    fi
    [ "$attempt" -lt 5 ] || { cat "$dir/pg_ctl.log" "$log" >&2 2>/dev/null; fail "pg_ctl start failed (above)"; }
  done
  head -1 "$dir/data/postmaster.pid" >"$state/pid"
  # The database the tests connect to first; each test makes its own from there.
  "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U tactd -d postgres -c "CREATE DATABASE tactd_test" \
    >/dev/null || fail "could not create the database tactd_test on 127.0.0.1:$port"
  echo "host=127.0.0.1 port=$port user=tactd dbname=tactd_test" >"$state/conninfo"
  echo "postgres fixture: server $(cat "$state/pid") on 127.0.0.1:$port and $dir; conninfo in $state/conninfo"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) fail "unknown action '$action' (start or stop)" ;;
esac
