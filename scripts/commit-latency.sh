#!/usr/bin/env bash
# What synchronous replication costs a commit, side by side in one sitting:
# a private primary (and standby) under target/commit-latency/, pgbench
# inserting one message-sized row per transaction from two clients (the
# writer's two shards), per-transaction latencies turned into p50/p99.
#
#   scripts/commit-latency.sh [SECONDS]      (default 10 per run)
#
# Runs, alternating: no standby, asynchronous standby, synchronous standby
# (synchronous_standby_names = '*'), then each again, then no standby.
# Needs the PostgreSQL server packages (scripts/test-deps.sh postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
dir=$PWD/target/commit-latency
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=$(free_port); S=$(free_port)

cleanup() {
  for d in "$dir/standby" "$dir/primary"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
rm -rf "$dir"; mkdir -p "$dir"; [ "$(id -u)" = 0 ] && chown postgres: "$dir"

conf() { # data-dir port
  printf 'local all postgres trust\nhost all postgres 127.0.0.1/32 trust\nhost replication postgres 127.0.0.1/32 trust\n' > "$1/pg_hba.conf"
  printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$2" "$dir" >> "$1/postgresql.conf"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$1"; true
}
start() { as_pg "$bin/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start >/dev/null; }
q() { "$bin/psql" -h 127.0.0.1 -p "$P" -U postgres -d postgres -tAc "$1"; }

as_pg "$bin/initdb" -D "$dir/primary" -U postgres -A reject --no-instructions >/dev/null
conf "$dir/primary" "$P"; start "$dir/primary"
q "CREATE TABLE m (id bigserial PRIMARY KEY, room bigint, body text, sent_at timestamptz DEFAULT now())" >/dev/null
printf "INSERT INTO m (room, body) VALUES (:client_id, repeat('x', 60));\n" > "$dir/insert.sql"

results=()
measure() { # label
  rm -f "$dir"/pgbench_log.*
  (cd "$dir" && "$bin/pgbench" -h 127.0.0.1 -p "$P" -U postgres -n -c 2 -j 2 -T "$secs" -f insert.sql -l postgres >/dev/null 2>&1)
  local line
  line=$(cat "$dir"/pgbench_log.* | python3 -c '
import sys
xs = sorted(int(l.split()[2]) for l in sys.stdin)
p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))] / 1000
print(f"{len(xs)} commits, p50 {p(0.50):.2f} ms, p99 {p(0.99):.2f} ms")')
  echo "$1: $line"
  results+=("| $1 | $line |")
}

measure "no standby"
as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$P" -U postgres -D "$dir/standby" -R -X stream -c fast
conf "$dir/standby" "$S"; start "$dir/standby"
for _ in $(seq 1 100); do [ "$(q "select count(*) from pg_stat_replication where state = 'streaming'")" = 1 ] && break; sleep 0.1; done
for round in 1 2; do
  q "ALTER SYSTEM SET synchronous_standby_names = ''" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null; sleep 0.5
  measure "asynchronous standby (round $round)"
  q "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 100); do [ "$(q "select sync_state from pg_stat_replication")" = sync ] && break; sleep 0.1; done
  measure "synchronous standby (round $round)"
done
q "ALTER SYSTEM SET synchronous_standby_names = ''" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/standby" -m fast -w stop >/dev/null
measure "no standby (again)"
printf '%s\n' "${results[@]}"
