#!/usr/bin/env bash
# A/B benchmark: alternating runs of one load-generator workload against two
# server binaries, in one sitting, each run on a fresh database (and Redis
# prefix), so the two builds see the same machine state.
#
#   scripts/ab.sh OLD_BINARY NEW_BINARY RUNS -- <load generator arguments>
#
# e.g. scripts/ab.sh /tmp/old/switchboard target/release/switchboard 3 -- --workload W4 --duration 20
# Build both binaries with `cargo build --release --bin switchboard`: the one
# `cargo test --release` leaves in target/release has the dev-dependencies'
# features compiled in (1 MB more code, 2-3 MiB more RSS under W1) and makes
# a false regression.
#
# Extra server environment: AB_ENV="REDIS_URL=redis://127.0.0.1:6379 RATE_LIMIT_PER_SEC=1000".
# AB_BACKEND=sqlite: the embedded database instead (a fresh DATA_DIR per run).
# AB_INSTANCES=2: that many instances of each build, sharing the run's
# database and a Redis prefix (REDIS_URL, default redis://127.0.0.1:6379);
# each instance's /metrics is kept as target/ab/<label>-<n>-<i>.prom
# (scripts/stages.py reads the delivery stages from them).
# AB_B_DB_PARAMS="options=-c%20commit_delay%3D100": a query string for B's
# DATABASE_URL only (one binary, two PostgreSQL session settings).
# AB_B_DB_HOST=%2Fvar%2Frun%2Fpostgresql: B's DATABASE_URL host instead of
# 127.0.0.1:5432 (here: the same server over its Unix socket).
# AB_B_ARGS="--mark-read": load-generator arguments for B's runs only (one
# binary, two client behaviours: pass it as both OLD and NEW).
# AB_B_ENV="WORKERS=1": server environment for B's runs only (one binary,
# two settings).
# Each run's JSON line goes to target/ab/<label>-<n>.json; the human summary
# to stderr. The load generator is target/release/deps/load-* (built by
# `cargo bench --no-run --bench load`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] && [ "$4" = "--" ] || { echo "usage: $0 OLD_BIN NEW_BIN RUNS -- LOADGEN_ARGS..." >&2; exit 2; }
old=$1 new=$2 runs=$3; shift 4
loadgen=$(ls -t target/release/deps/load-* 2>/dev/null | grep -Ev '\.(d|dwp)$' | head -n 1)
[ -x "$loadgen" ] || { echo "build the load generator first: cargo bench --no-run --bench load" >&2; exit 2; }
mkdir -p target/ab
servers=()
instances=${AB_INSTANCES:-1}
[ "$instances" -gt 1 ] && AB_ENV="${AB_ENV:-} REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}"
cleanup() { [ ${#servers[@]} -gt 0 ] && kill "${servers[@]}" 2>/dev/null && wait "${servers[@]}" 2>/dev/null || true; }
trap cleanup EXIT

run_one() { # label binary n loadgen-args...
  local label=$1 bin=$2 n=$3; shift 3
  local db="sbab_$(date +%s)_$RANDOM" log="target/ab/$label-$n.log" prefix="ab$RANDOM:"
  local database="DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db" urls=() i url
  [ "$label" = B ] && [ -n "${AB_B_DB_HOST:-}" ] && database="DATABASE_URL=postgres://postgres@$AB_B_DB_HOST/$db"
  [ "$label" = B ] && [ -n "${AB_B_DB_PARAMS:-}" ] && database="$database?$AB_B_DB_PARAMS"
  [ "${AB_BACKEND:-}" = sqlite ] && database="DATA_DIR=target/ab/data-$db"
  local only_b=""
  [ "$label" = B ] && only_b="${AB_B_ENV:-}"
  for i in $(seq 1 "$instances"); do
    # shellcheck disable=SC2086
    env -u DATABASE_URL $AB_ENV $only_b "$database" BIND_ADDR=127.0.0.1:0 INSTANCE_ID="ab-$i" \
      REDIS_KEY_PREFIX="$prefix" RUST_LOG=warn "$bin" >"$log.$i.out" 2>"$log.$i" &
    servers+=($!)
    url=""
    for _ in $(seq 1 200); do
      url=$(sed -n 's/^switchboard listening on //p' "$log.$i.out" | head -n 1)
      [ -n "$url" ] && break
      sleep 0.1
    done
    [ -n "$url" ] || { echo "server $label did not start; see $log.$i" >&2; exit 1; }
    for _ in $(seq 1 100); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
    urls+=(--url "$url")
  done
  echo "== $label run $n ($bin)" >&2
  "$loadgen" "${urls[@]}" --label "$label" "$@" >"target/ab/$label-$n.json"
  i=0
  for url in "${urls[@]}"; do
    [ "$url" = --url ] && continue
    i=$((i + 1))
    curl -sf "$url/metrics" >"target/ab/$label-$n-$i.prom" || true
  done
  # Thread switches of the servers' threads over the whole run (start-up
  # included): wake-ups per delivery, which CPU time alone hides.
  local pid switches=0
  for pid in "${servers[@]}"; do
    switches=$((switches + $(cat /proc/"$pid"/task/*/status 2>/dev/null \
      | awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}')))
  done
  echo "server context switches: $switches" >&2
  kill "${servers[@]}"; wait "${servers[@]}" 2>/dev/null || true; servers=()
  if [ "${AB_BACKEND:-}" = sqlite ]; then rm -rf "target/ab/data-$db"; else
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" postgres >/dev/null
  fi
}

AB_ENV=${AB_ENV:-}
for n in $(seq 1 "$runs"); do
  run_one A "$old" "$n" "$@"
  # shellcheck disable=SC2086
  run_one B "$new" "$n" "$@" ${AB_B_ARGS:-}
done
echo "results: target/ab/{A,B}-{1..$runs}.json" >&2
