#!/usr/bin/env bash
# PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 for running the
# server against them by hand (and for .ci/run). The tests need none of this:
# `cargo test --release` finds these or starts private ones itself.
#
#   scripts/services.sh          start what does not answer yet (idempotent)
#   scripts/services.sh stop     stop what this script started
#
# Where nothing listens on a port, a private server is started under
# target/services/ (initdb with trust for the postgres user on 127.0.0.1
# only; a redis-server that keeps nothing on disk). No system configuration
# file is changed. Missing packages are installed by scripts/test-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD/target/services
log() { printf '[services] %s\n' "$*"; }
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
pg_up() { "$(pg_bin)/psql" -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

start_pg() {
  scripts/test-deps.sh postgres >/dev/null
  if pg_up; then log "PostgreSQL answers on 127.0.0.1:5432"; return; fi
  if listening 5432; then
    log "something else holds 127.0.0.1:5432 (a PostgreSQL that wants a password?): the tests will start their own"
    return
  fi
  local bin data
  bin=$(pg_bin)
  data=$ROOT/pg/data
  mkdir -p "$ROOT/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$ROOT/pg"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$data" -U postgres -A reject -E UTF8 --no-instructions >/dev/null
    printf 'local all postgres trust\nhost all postgres 127.0.0.1/32 trust\n' > "$data/pg_hba.conf"
    printf "port = 5432\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nmax_connections = 500\n" "$ROOT/pg" >> "$data/postgresql.conf"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$ROOT/pg"
  fi
  log "starting a private PostgreSQL on 127.0.0.1:5432 ($data)"
  as_pg "$bin/pg_ctl" -D "$data" -l "$ROOT/pg/server.log" -w -t 60 start >/dev/null
}

start_redis() {
  scripts/test-deps.sh redis >/dev/null
  if redis_up; then log "Redis answers on 127.0.0.1:6379"; return; fi
  if listening 6379; then log "something else holds 127.0.0.1:6379: the tests will start their own"; return; fi
  mkdir -p "$ROOT/redis"
  log "starting a private Redis on 127.0.0.1:6379"
  redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --dir "$ROOT/redis" \
    --daemonize yes --pidfile "$ROOT/redis/redis.pid" --logfile "$ROOT/redis/redis.log"
  for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
  redis_up || { log "Redis did not come up; see $ROOT/redis/redis.log"; exit 1; }
}

stop() {
  if [ -f "$ROOT/pg/data/postmaster.pid" ]; then as_pg "$(pg_bin)/pg_ctl" -D "$ROOT/pg/data" -m fast -w stop >/dev/null; log "PostgreSQL stopped"; fi
  if [ -f "$ROOT/redis/redis.pid" ]; then kill "$(cat "$ROOT/redis/redis.pid")" 2>/dev/null || true; rm -f "$ROOT/redis/redis.pid"; log "Redis stopped"; fi
}

case "${1:-start}" in
  start) start_pg; start_redis; log "ready" ;;
  stop) stop ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
