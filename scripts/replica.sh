#!/usr/bin/env bash
# A streaming read replica of the local primary (127.0.0.1:5432) on
# 127.0.0.1:5433, made with pg_basebackup -R. For the replica tests.
#   scripts/replica.sh start   (idempotent; takes a base backup when there is
#                               none or the old one can no longer stream)
#   scripts/replica.sh stop
#   scripts/replica.sh status
set -euo pipefail

PORT=5433
DIR=${REPLICA_DIR:-/var/lib/postgresql/switchboard-replica-$PORT}
BIN=/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -n 1)/bin
log() { printf '[replica] %s\n' "$*"; }
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }
up() { pg_isready -q -h 127.0.0.1 -p "$PORT"; }

streaming() {
  [ "$(psql -h 127.0.0.1 -p "$PORT" -U postgres -tAc 'select status from pg_stat_wal_receiver' 2>/dev/null)" = streaming ]
}

wait_streaming() {
  for _ in $(seq 1 "$1"); do
    if streaming; then return 0; fi
    sleep 1
  done
  return 1
}

allow_replication() {
  # The primary must accept replication connections from 127.0.0.1.
  hba=$(psql -h 127.0.0.1 -p 5432 -U postgres -tAc 'show hba_file')
  if ! grep -q '^host replication all 127.0.0.1/32 trust' "$hba"; then
    log "allowing local replication connections in $hba"
    printf 'host replication all 127.0.0.1/32 trust\n' >> "$hba"
    psql -h 127.0.0.1 -p 5432 -U postgres -qc 'select pg_reload_conf()' >/dev/null
  fi
}

base_backup() {
  log "base backup into $DIR"
  rm -rf "$DIR"
  mkdir -p "$(dirname "$DIR")"
  chown postgres: "$(dirname "$DIR")" 2>/dev/null || true
  as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p 5432 -U postgres -D "$DIR" -R -X stream -c fast
  # Debian keeps these in /etc for the primary; the copy needs its own.
  as_pg sh -c "printf '' > '$DIR/postgresql.conf'; printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' > '$DIR/pg_hba.conf'; printf '' > '$DIR/pg_ident.conf'"
}

launch() {
  if up; then return; fi
  log "starting on $PORT"
  as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c hot_standby=on -c max_connections=300" start >/dev/null
}

start() {
  if up && streaming; then log "already running on $PORT"; return; fi
  allow_replication
  if up || [ -f "$DIR/standby.signal" ]; then
    launch
    if wait_streaming 15; then log "ready"; return; fi
    # No replication slot (a forgotten one would keep WAL forever), so a
    # replica stopped for long can need WAL the primary has recycled.
    log "the replica cannot stream (the WAL it needs is gone): starting over"
    stop
  fi
  base_backup
  launch
  if wait_streaming 60; then log "ready"; else log "not streaming; see $DIR/server.log"; exit 1; fi
}

stop() {
  if [ -f "$DIR/postmaster.pid" ]; then
    as_pg "$BIN/pg_ctl" -D "$DIR" -m fast -w stop >/dev/null && log "stopped"
  else
    log "not running"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if up; then echo running; else echo stopped; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
