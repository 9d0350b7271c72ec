#!/usr/bin/env bash
# A local Redis Cluster of three masters on 127.0.0.1:7101-7103, for the
# trying the bus and the caches on a cluster (sharded pub/sub) by hand. The
# tests start their own (tests/api/support/services.rs).
#   scripts/redis-cluster.sh start   (idempotent)
#   scripts/redis-cluster.sh stop
set -euo pipefail

PORTS=(7101 7102 7103)
DIR=${REDIS_CLUSTER_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target/redis-cluster}
log() { printf '[redis-cluster] %s\n' "$*"; }
ok() { [ "$(redis-cli -p "${PORTS[0]}" cluster info 2>/dev/null | tr -d '\r' | grep cluster_state)" = "cluster_state:ok" ]; }

start() {
  if ok; then log "already running on ${PORTS[*]}"; return; fi
  for port in "${PORTS[@]}"; do
    mkdir -p "$DIR/$port"
    if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
      rm -f "$DIR/$port/nodes.conf"
      redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$DIR/$port/nodes.conf" --cluster-node-timeout 2000 \
        --save "" --appendonly no --dir "$DIR/$port" --daemonize yes \
        --logfile "$DIR/$port/redis.log" >/dev/null
    fi
  done
  for port in "${PORTS[@]}"; do
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  if [ "$(redis-cli -p "${PORTS[0]}" cluster info | tr -d '\r' | grep cluster_known_nodes)" != "cluster_known_nodes:${#PORTS[@]}" ]; then
    log "creating the cluster"
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${PORTS[@]}") --cluster-replicas 0 --cluster-yes >/dev/null
  fi
  for _ in $(seq 1 100); do ok && break; sleep 0.1; done
  ok && log "ready on ${PORTS[*]}"
}

stop() {
  for port in "${PORTS[@]}"; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$DIR"
  log "stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
